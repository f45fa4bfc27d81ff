/**
 * Connection set-up with the RDMA connection manager (librdmacm): address and route resolution,
 * listen, connect and accept with private data, disconnect — driven without blocking the event
 * loop. Each listener and each connection has its own event channel whose fd is O_NONBLOCK;
 * waiting for the next event is a poll(2) of that fd off the main thread in slices of at most
 * SLICE_MS (koffi: libuv's pool; Bun: a Worker), then rdma_get_cm_event, which cannot block,
 * and rdma_ack_cm_event at once (after copying what the event carries).
 *
 * A connection owns what librdmacm's device context needs: a Context borrowed from the cm_id
 * (librdmacm opens the devices itself; it is not closed by memwire), a ProtectionDomain, a
 * CompletionQueue and the QueuePair (made with rdma_create_qp, moved to RTS by librdmacm).
 * Register memory on `connection.pd`.
 */
import { backend } from '../../ffi/backend.js';
import { errno as lastErrno } from '../../ffi/libc.js';
import { rdmacm } from '../../ffi/rdmacm.js';
import { C, IBV_CONTEXT, RDMA_CM_EVENT, RDMA_CM_ID, RDMA_CONN_PARAM, RDMA_EVENT_CHANNEL, SOCKADDR_IN } from '../../ffi/verbs-layout.js';
import { checkSyscall, ClosedError, errnoError, MemwireError, TimeoutError, UsageError, type CallArgs } from '../errors.js';
import type { CompletionQueue, CompletionQueueOptions } from './completion-queue.js';
import { Context } from './context.js';
import { listDevices, loadVerbs } from './device.js';
import { countLive, stopWatching, watchForLeak } from './live.js';
import { CleanupSteps, getU64, hex, NativeBlock, pollReadable, setNonBlocking, setU64 } from './native.js';
import type { ProtectionDomain } from './protection-domain.js';
import { QueuePair, type QueuePairOptions } from './queue-pair.js';

export const CM_SLICE_MS = 250;
/** One rdma_resolve_addr attempt (see rdmaConnect). */
export const RESOLVE_ATTEMPT_MS = 500;
/** Private data limits of the IB/RoCE CM: REQ 56 bytes, REP 196 bytes. */
export const MAX_CONNECT_PRIVATE_DATA = 56;
export const MAX_ACCEPT_PRIVATE_DATA = 196;

const EVENT_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(C).filter(([k]) => k.startsWith('RDMA_CM_EVENT_')).map(([k, v]) => [v, k.slice('RDMA_CM_EVENT_'.length)]),
);

/** A connection-manager event that ended a set-up step (REJECTED, UNREACHABLE, ADDR_ERROR …). */
export class ConnectionError extends MemwireError {
  readonly event: string;
  readonly status: number;
  readonly privateData: Uint8Array;
  constructor(step: string, event: string, status: number, privateData: Uint8Array = new Uint8Array(0)) {
    super('ERR_MEMWIRE_CONNECTION', `${step}: got RDMA_CM_EVENT_${event} (status ${status})`);
    this.event = event;
    this.status = status;
    this.privateData = privateData;
  }
}

interface CmEvent {
  readonly type: number;
  readonly name: string;
  readonly status: number;
  readonly id: number;
  readonly listenId: number;
  readonly privateData: Uint8Array;
}

function check(call: string, result: number, args: CallArgs = {}): void {
  if (result !== 0) throw errnoError(call, lastErrno() || 5, args);
}

/** Parse dotted IPv4 text into 4 bytes. */
function ipv4Bytes(address: string, what: string): number[] {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(address ?? '');
  const parts = m ? m.slice(1).map(Number) : [];
  if (!m || parts.some((p) => p > 255)) throw new UsageError(`${what} must be an IPv4 address (a.b.c.d), got ${JSON.stringify(address)}`);
  return parts;
}

function writeSockaddr(block: NativeBlock, at: number, address: string, port: number, what: string): number {
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) throw new UsageError(`${what} port must be 0..65535, got ${port}`);
  block.bytes.fill(0, at, at + SOCKADDR_IN.size);
  block.view.setUint16(at + SOCKADDR_IN.fields.sin_family, C.AF_INET, true);
  block.view.setUint16(at + SOCKADDR_IN.fields.sin_port, port, false); // network order
  block.bytes.set(ipv4Bytes(address, what), at + SOCKADDR_IN.fields.sin_addr);
  return block.address + at;
}

// Scratch layout of a channel's block: 0 pollfd, 16 out-pointer (cm_id / event),
// 64 sockaddr_in src, 96 sockaddr_in dst, 128 rdma_conn_param, 256.. private data (256 bytes).
const POLLFD_AT = 0;
const OUT_AT = 16;
const SRC_AT = 64;
const DST_AT = 96;
const PARAM_AT = 128;
const PDATA_AT = 256;

/** One rdma_event_channel (non-blocking fd) and the scratch memory of its calls. Internal. */
class CmChannel {
  readonly handle: number;
  readonly fd: number;
  readonly scratch: NativeBlock;
  #closed = false;
  #pending = 0;

  constructor() {
    const cm = rdmacm();
    const handle = cm.rdma_create_event_channel() as number;
    if (!handle) throw errnoError('rdma_create_event_channel', lastErrno() || 19);
    this.handle = handle;
    this.fd = new DataView(backend.view(handle, RDMA_EVENT_CHANNEL.size)).getInt32(RDMA_EVENT_CHANNEL.fields.fd, true);
    try {
      setNonBlocking(this.fd, 'rdma_cm event channel');
      this.scratch = new NativeBlock(1024, 'rdma_cm channel scratch');
    } catch (error) {
      cm.rdma_destroy_event_channel(handle);
      throw error;
    }
    countLive('channels', 1);
  }

  /** Create a cm_id on this channel (RDMA_PS_TCP: reliable connected). */
  createId(): number {
    check('rdma_create_id', rdmacm().rdma_create_id(this.handle, this.scratch.address + OUT_AT, 0, C.RDMA_PS_TCP) as number, { ps: 'RDMA_PS_TCP' });
    countLive('cmIds', 1);
    return getU64(this.scratch.view, OUT_AT);
  }

  /** Take the next event if one is there (non-blocking), copied and acknowledged. */
  #take(): CmEvent | undefined {
    const cm = rdmacm();
    const rc = cm.rdma_get_cm_event(this.handle, this.scratch.address + OUT_AT) as number;
    if (rc !== 0) {
      const code = lastErrno();
      if (code === 11 /* EAGAIN */) return undefined;
      throw errnoError('rdma_get_cm_event', code, { channel: hex(this.handle) });
    }
    const at = getU64(this.scratch.view, OUT_AT);
    const ev = new DataView(backend.view(at, RDMA_CM_EVENT.size));
    const f = RDMA_CM_EVENT.fields;
    const type = ev.getUint32(f.event, true);
    const pdAddress = getU64(ev, f['param.conn.private_data']);
    const pdLength = ev.getUint8(f['param.conn.private_data_len']);
    const hasConnParam = type === C.RDMA_CM_EVENT_CONNECT_REQUEST || type === C.RDMA_CM_EVENT_ESTABLISHED || type === C.RDMA_CM_EVENT_REJECTED || type === C.RDMA_CM_EVENT_CONNECT_RESPONSE;
    const privateData = hasConnParam && pdAddress && pdLength ? new Uint8Array(backend.view(pdAddress, pdLength)).slice() : new Uint8Array(0);
    const event: CmEvent = {
      type,
      name: EVENT_NAMES[type] ?? String(type),
      status: ev.getInt32(f.status, true),
      id: getU64(ev, f.id),
      listenId: getU64(ev, f.listen_id),
      privateData,
    };
    check('rdma_ack_cm_event', cm.rdma_ack_cm_event(at) as number, { event: event.name });
    return event;
  }

  /** The next event, waiting off-thread in bounded slices. TimeoutError after timeoutMs. */
  async next(timeoutMs: number, step: string): Promise<CmEvent> {
    const deadline = performance.now() + timeoutMs;
    this.#pending++;
    try {
      for (;;) {
        if (this.#closed) throw new ClosedError(`rdma_cm channel (${step})`);
        const event = this.#take();
        if (event) return event;
        const left = deadline - performance.now();
        if (left <= 0) throw new TimeoutError(`${step}: no rdma_cm event within ${timeoutMs} ms`);
        await pollReadable(this.scratch, POLLFD_AT, this.fd, left, CM_SLICE_MS);
      }
    } finally {
      this.#pending--;
      if (this.#closed && this.#pending === 0) this.scratch.free();
    }
  }

  /** An event of one expected type, or ConnectionError naming what came instead. */
  async expect(type: number, timeoutMs: number, step: string): Promise<CmEvent> {
    const event = await this.next(timeoutMs, step);
    if (event.type !== type) throw new ConnectionError(step, event.name, event.status, event.privateData);
    return event;
  }

  /** Write an rdma_conn_param (with private data) into the scratch block; returns its address. */
  connParam(privateData: Uint8Array | undefined, max: number, o: CmConnectionOptions): number {
    const dv = this.scratch.view;
    const f = RDMA_CONN_PARAM.fields;
    this.scratch.bytes.fill(0, PARAM_AT, PARAM_AT + RDMA_CONN_PARAM.size);
    if (privateData && privateData.length) {
      if (privateData.length > max) throw new UsageError(`privateData is ${privateData.length} bytes; at most ${max} fit here`);
      this.scratch.bytes.set(privateData, PDATA_AT);
      setU64(dv, PARAM_AT + f.private_data, this.scratch.address + PDATA_AT);
      dv.setUint8(PARAM_AT + f.private_data_len, privateData.length);
    }
    dv.setUint8(PARAM_AT + f.responder_resources, o.responderResources ?? 16);
    dv.setUint8(PARAM_AT + f.initiator_depth, o.initiatorDepth ?? 16);
    dv.setUint8(PARAM_AT + f.retry_count, o.retryCount ?? 7);
    dv.setUint8(PARAM_AT + f.rnr_retry_count, o.rnrRetryCount ?? 7);
    return this.scratch.address + PARAM_AT;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    rdmacm().rdma_destroy_event_channel(this.handle);
    countLive('channels', -1);
    if (this.#pending === 0) this.scratch.free();
  }
}

export interface CmConnectionOptions {
  /** Bytes for the peer (connect: at most 56; accept: at most 196). The CM may pad them. */
  readonly privateData?: Uint8Array;
  /** Each step (address, route, connection) must finish within this. Default 5000 ms. */
  readonly timeoutMs?: number;
  /** Capabilities of the queue pair (sendCq/recvCq are made by the connection). */
  readonly qp?: Omit<QueuePairOptions, 'sendCq' | 'recvCq' | 'srq'>;
  readonly cq?: CompletionQueueOptions;
  readonly responderResources?: number;
  readonly initiatorDepth?: number;
  readonly retryCount?: number;
  readonly rnrRetryCount?: number;
}

export interface ConnectTarget extends CmConnectionOptions {
  /** The listener's IPv4 address and port. */
  readonly address: string;
  readonly port: number;
  /**
   * The local IPv4 address to connect from. Give it when several devices share a host:
   * without it the route may put both ends on one device.
   */
  readonly source?: string;
}

/** An established RC connection made through rdma_cm. */
export class CmConnection {
  readonly context: Context;
  readonly pd: ProtectionDomain;
  readonly cq: CompletionQueue;
  readonly qp: QueuePair;
  /** The private data the peer sent (connect request or accept), possibly padded by the CM. */
  readonly peerPrivateData: Uint8Array;
  #id: number;
  readonly #channel: CmChannel;
  #connected = true;

  /** @internal */
  constructor(id: number, channel: CmChannel, parts: { context: Context; pd: ProtectionDomain; cq: CompletionQueue; qp: QueuePair }, peerPrivateData: Uint8Array) {
    this.#id = id;
    this.#channel = channel;
    this.context = parts.context;
    this.pd = parts.pd;
    this.cq = parts.cq;
    this.qp = parts.qp;
    this.peerPrivateData = peerPrivateData;
  }

  get disposed(): boolean {
    return this.#id === 0;
  }

  /** @internal The event channel's fd (readable when an rdma_cm event waits), -1 once disposed; for the agent links' pump. */
  get eventFd(): number {
    return this.#id ? this.#channel.fd : -1;
  }

  /** rdma_disconnect, then wait (bounded) for RDMA_CM_EVENT_DISCONNECTED. */
  async disconnect(options: { timeoutMs?: number } = {}): Promise<void> {
    if (!this.#id) throw new ClosedError('rdma_cm connection');
    if (!this.#connected) return;
    this.#connected = false;
    check('rdma_disconnect', rdmacm().rdma_disconnect(this.#id) as number, { id: hex(this.#id) });
    await this.#channel.expect(C.RDMA_CM_EVENT_DISCONNECTED, options.timeoutMs ?? 5000, 'disconnect');
  }

  /** Wait (bounded) until the peer disconnects. */
  async disconnected(options: { timeoutMs?: number } = {}): Promise<void> {
    if (!this.#id) throw new ClosedError('rdma_cm connection');
    if (!this.#connected) return;
    await this.#channel.expect(C.RDMA_CM_EVENT_DISCONNECTED, options.timeoutMs ?? 5000, 'waiting for the peer to disconnect');
    this.#connected = false;
    // dispose() may have run while the event's promise settled (it is taken synchronously but
    // reported a microtask later): the cm_id is destroyed then, and #id is 0 — rdma_disconnect
    // on it would dereference NULL (the agent's exit-time SIGSEGV of issue 12). dispose() has
    // already sent the disconnect.
    if (!this.#id) return;
    // Answer the peer's DREQ (the CM sends the DREP from rdma_disconnect); without it the peer
    // sees DISCONNECTED only when its DREQ times out.
    rdmacm().rdma_disconnect(this.#id);
  }

  /**
   * Disconnect (without waiting), destroy the QP, CQ and PD, the cm_id and its channel.
   * Idempotent. The borrowed device context stays open in librdmacm.
   */
  dispose(): void {
    const id = this.#id;
    if (!id) return;
    this.#id = 0;
    const cm = rdmacm();
    if (this.#connected) cm.rdma_disconnect(id);
    this.#connected = false;
    const steps = new CleanupSteps();
    steps.run(() => this.context.dispose()); // QP (rdma_destroy_qp), CQ, PD; the context itself is borrowed
    // checkSyscall reads errno right after the call, before anything else can change it.
    steps.run(() => checkSyscall('rdma_destroy_id', cm.rdma_destroy_id(id) as number, { id: hex(id) }));
    countLive('cmIds', -1);
    this.#channel.close();
    steps.finish();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** Make the borrowed context, PD, CQ and rdma_cm QP for a cm_id whose device is known. */
function connectionParts(id: number, options: CmConnectionOptions) {
  const idView = new DataView(backend.view(id, RDMA_CM_ID.size));
  const verbsContext = getU64(idView, RDMA_CM_ID.fields.verbs);
  if (!verbsContext) throw new UsageError('rdma_cm id has no device yet (address not resolved)');
  const device = getU64(new DataView(backend.view(verbsContext, IBV_CONTEXT.size)), IBV_CONTEXT.fields.device);
  const name = String(loadVerbs().ibv_get_device_name(device));
  const info = listDevices().find((d) => d.name === name) ?? { name, guid: '', nodeType: 'unknown' as const, transportType: 'unknown' as const };
  const context = new Context(verbsContext, info, false);
  try {
    const pd = context.allocPd();
    const cq = context.createCompletionQueue(options.cq ?? {});
    const cm = rdmacm();
    const qp = QueuePair.create(
      pd,
      pd.handle,
      { ...(options.qp ?? {}), sendCq: cq, recvCq: cq },
      (initAttr) => ((cm.rdma_create_qp(id, pd.handle, initAttr) as number) === 0 ? getU64(idView, RDMA_CM_ID.fields.qp) : 0),
      () => {
        cm.rdma_destroy_qp(id);
        return 0;
      },
    );
    pd.adopt(qp);
    return { context, pd, cq, qp };
  } catch (error) {
    context.dispose();
    throw error;
  }
}

/**
 * The min_rnr_timer of every rdma_cm connection's QP (IB encoding: 12 = 0.64 ms, the value
 * QueuePair.toRtr uses too). The kernel's connection manager moves an rdma_cm QP to RTR with 0,
 * which encodes the LONGEST wait, 655.36 ms: each time a SEND finds no posted receive at this
 * end (the peer sent faster than this process re-posted), the peer's QP stalls 655 ms — with
 * everything queued behind it on that QP, RDMA WRITEs included. Measured in the TCG guest before
 * this (issue 12): agent control calls unanswered for 10 s, reconnects taking 11–43 s.
 */
export const CM_MIN_RNR_TIMER = 12;

/**
 * Connect to a listener: resolve the address and the route, make the queue pair, send the
 * connect request with `privateData`, wait for ESTABLISHED. Each step is bounded by timeoutMs.
 * ConnectionError for REJECTED / UNREACHABLE / ADDR_ERROR / ROUTE_ERROR (with the peer's
 * private data when rejected); TimeoutError when a step does not finish.
 */
export async function rdmaConnect(target: ConnectTarget): Promise<CmConnection> {
  const timeoutMs = target.timeoutMs ?? 5000;
  if (target.privateData && target.privateData.length > MAX_CONNECT_PRIVATE_DATA) {
    throw new UsageError(`privateData is ${target.privateData.length} bytes; a connect request carries at most ${MAX_CONNECT_PRIVATE_DATA}`);
  }
  const channel = new CmChannel();
  let id = 0;
  let parts: ReturnType<typeof connectionParts> | undefined;
  try {
    id = channel.createId();
    const cm = rdmacm();
    const dst = writeSockaddr(channel.scratch, DST_AT, target.address, target.port, 'address');
    const src = target.source ? writeSockaddr(channel.scratch, SRC_AT, target.source, 0, 'source') : 0;
    // Address resolution in short attempts: when the neighbour (ARP) entry is missing, Linux
    // retries the resolution only at the request's deadline unless a neighbour-update event
    // wakes it (measured on kernel 6.1 / rxe: a 15 s timeout took 15 s). An attempt that ends
    // in ADDR_ERROR is repeated until timeoutMs; by then the neighbour is usually known.
    const deadline = performance.now() + timeoutMs;
    for (let attempt = 1; ; attempt++) {
      const attemptMs = Math.max(1, Math.min(RESOLVE_ATTEMPT_MS, Math.ceil(deadline - performance.now())));
      check('rdma_resolve_addr', cm.rdma_resolve_addr(id, src, dst, attemptMs) as number, { dst: `${target.address}:${target.port}`, src: target.source ?? null, timeout_ms: attemptMs, attempt });
      const event = await channel.next(attemptMs + 1000, `resolving ${target.address}`);
      if (event.type === C.RDMA_CM_EVENT_ADDR_RESOLVED) break;
      if (event.type !== C.RDMA_CM_EVENT_ADDR_ERROR || performance.now() >= deadline) {
        throw new ConnectionError(`resolving ${target.address} (attempt ${attempt})`, event.name, event.status, event.privateData);
      }
    }
    check('rdma_resolve_route', cm.rdma_resolve_route(id, timeoutMs) as number, { dst: target.address, timeout_ms: timeoutMs });
    await channel.expect(C.RDMA_CM_EVENT_ROUTE_RESOLVED, timeoutMs + 1000, `resolving the route to ${target.address}`);
    parts = connectionParts(id, target);
    const param = channel.connParam(target.privateData, MAX_CONNECT_PRIVATE_DATA, target);
    check('rdma_connect', cm.rdma_connect(id, param) as number, { dst: `${target.address}:${target.port}`, qp_num: parts.qp.qpn });
    const established = await channel.expect(C.RDMA_CM_EVENT_ESTABLISHED, timeoutMs, `connecting to ${target.address}:${target.port}`);
    parts.qp.markConnected();
    parts.qp.setMinRnrTimer(CM_MIN_RNR_TIMER);
    return new CmConnection(id, channel, parts, established.privateData);
  } catch (error) {
    parts?.context.dispose();
    if (id) {
      rdmacm().rdma_destroy_id(id);
      countLive('cmIds', -1);
    }
    channel.close();
    throw error;
  }
}

export interface ListenOptions {
  /** Local IPv4 address to listen on (e.g. the rxe device's). */
  readonly address: string;
  /** Default 0: an ephemeral port (read it from `listener.port`). */
  readonly port?: number;
  readonly backlog?: number;
}

/** A listening cm_id. accept() waits (without blocking the event loop) for the next request. */
export class CmListener {
  readonly address: string;
  /** The port bound (the ephemeral one when 0 was asked). */
  readonly port: number;
  #id: number;
  readonly #channel: CmChannel;
  #accepting = false;

  private constructor(address: string, port: number, id: number, channel: CmChannel) {
    this.address = address;
    this.port = port;
    this.#id = id;
    this.#channel = channel;
    watchForLeak(this, `rdma_cm listener on ${address}:${port}`);
  }

  /** rdma_create_id + rdma_bind_addr + rdma_listen. */
  static listen(options: ListenOptions): CmListener {
    const channel = new CmChannel();
    let id = 0;
    try {
      id = channel.createId();
      const cm = rdmacm();
      const addr = writeSockaddr(channel.scratch, SRC_AT, options.address, options.port ?? 0, 'address');
      check('rdma_bind_addr', cm.rdma_bind_addr(id, addr) as number, { address: options.address, port: options.port ?? 0 });
      check('rdma_listen', cm.rdma_listen(id, options.backlog ?? 16) as number, { address: options.address, backlog: options.backlog ?? 16 });
      const idView = new DataView(backend.view(id, RDMA_CM_ID.size));
      const port = idView.getUint16(RDMA_CM_ID.fields['route.addr.src_addr'] + SOCKADDR_IN.fields.sin_port, false);
      return new CmListener(options.address, port, id, channel);
    } catch (error) {
      if (id) {
        rdmacm().rdma_destroy_id(id);
        countLive('cmIds', -1);
      }
      channel.close();
      throw error;
    }
  }

  get disposed(): boolean {
    return this.#id === 0;
  }

  /**
   * Wait for a connect request, make the queue pair on the request's device, accept with
   * `privateData` and wait for ESTABLISHED. The connection gets its own event channel.
   * TimeoutError when no request comes within timeoutMs (default 5000 ms).
   */
  async accept(options: CmConnectionOptions = {}): Promise<CmConnection> {
    if (!this.#id) throw new ClosedError('rdma_cm listener');
    if (this.#accepting) throw new UsageError('another accept() on this listener is still pending');
    if (options.privateData && options.privateData.length > MAX_ACCEPT_PRIVATE_DATA) {
      throw new UsageError(`privateData is ${options.privateData.length} bytes; an accept carries at most ${MAX_ACCEPT_PRIVATE_DATA}`);
    }
    const timeoutMs = options.timeoutMs ?? 5000;
    this.#accepting = true;
    try {
      const request = await this.#channel.expect(C.RDMA_CM_EVENT_CONNECT_REQUEST, timeoutMs, `waiting for a connect request on ${this.address}:${this.port}`);
      const id = request.id;
      countLive('cmIds', 1);
      const channel = new CmChannel();
      let parts: ReturnType<typeof connectionParts> | undefined;
      try {
        check('rdma_migrate_id', rdmacm().rdma_migrate_id(id, channel.handle) as number, { id: hex(id) });
        parts = connectionParts(id, options);
        const param = channel.connParam(options.privateData, MAX_ACCEPT_PRIVATE_DATA, options);
        check('rdma_accept', rdmacm().rdma_accept(id, param) as number, { id: hex(id), qp_num: parts.qp.qpn });
        // rdma_accept moved the QP to RTS before it answered: the short RNR timer is in place
        // (almost always) before the peer's first SEND can come.
        parts.qp.markConnected();
        parts.qp.setMinRnrTimer(CM_MIN_RNR_TIMER);
        await channel.expect(C.RDMA_CM_EVENT_ESTABLISHED, timeoutMs, 'accepting');
        return new CmConnection(id, channel, parts, request.privateData);
      } catch (error) {
        if (!parts) rdmacm().rdma_reject(id, 0, 0);
        parts?.context.dispose();
        rdmacm().rdma_destroy_id(id);
        countLive('cmIds', -1);
        channel.close();
        throw error;
      }
    } finally {
      this.#accepting = false;
    }
  }

  /** Stop listening: destroy the cm_id and its channel. Idempotent. Connections live on. */
  dispose(): void {
    const id = this.#id;
    if (!id) return;
    this.#id = 0;
    stopWatching(this);
    const rc = rdmacm().rdma_destroy_id(id) as number;
    countLive('cmIds', -1);
    this.#channel.close();
    if (rc !== 0) throw errnoError('rdma_destroy_id', lastErrno(), { id: hex(id) });
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
