/**
 * QueuePair (struct ibv_qp), reliable connected (RC) or unreliable datagram (UD): state
 * transitions RESET → INIT → RTR → RTS whose errors name the attribute at fault, and posting of
 * send and receive work requests.
 *
 * Hot path: postSend/postRecv write the work requests and their SGE lists into native memory
 * preallocated per queue pair (addresses fixed at creation; only numbers are written), call the
 * provider's post_send/post_recv through the cached static-inline shim and return a number
 * (0, or the errno the provider returned — ENOMEM when the queue is full). Nothing is allocated.
 *
 * Lifetime: every memory region named by a posted work request is kept in a ring (one slot per
 * work request) until the completion of that request — or of a later one on the same queue,
 * completions being in order — is polled from the CQ, or the QP is destroyed. The region keeps
 * its JS memory reachable; so memory the NIC may still DMA is never collected.
 *
 * A queue pair created with `srq` takes its receives from that SharedReceiveQueue instead of a
 * receive queue of its own: its receive completions carry its qp_num like any other, and reap()
 * hands them to the SRQ, which keeps (and releases) the references of those receives.
 */
import { backend } from '../../ffi/backend.js';
import { C, IBV_QP, IBV_QP_ATTR, IBV_QP_INIT_ATTR, IBV_RECV_WR, IBV_SEND_WR, IBV_SGE } from '../../ffi/verbs-layout.js';
import { ClosedError, errnoError, UsageError } from '../errors.js';
import type { Completion, CompletionQueue } from './completion-queue.js';
import { loadVerbs } from './device.js';
import { countLive } from './live.js';
import type { MemoryRegion } from './memory-region.js';
import { checkPointer, getU64, hex, NativeBlock, setU64 } from './native.js';
import { checkCreateOptions, writeInitAttr } from './queue-pair-create.js';
import type { ProtectionDomain } from './protection-domain.js';
import { PostedRing, sgeList, stageChain, writeRecvChain, writeSgeList } from './queue-pair-posting.js';
import { PreparedRecv, writeSendChain, type PreparedRequests, type PreparedSend } from './queue-pair-prepared.js';
import { initAttributes, rtrAttributes, rtsAttributes, writeSendWr } from './queue-pair-transitions.js';
import {
  DEFAULT_QKEY, maskText, STATE_NAMES,
  type ConnectOptions, type InitOptions, type QueuePairEndpoint, type QueuePairOptions, type QueuePairState, type QueuePairType,
  type RecvRequest, type RtrOptions, type RtsOptions, type Sge, type SendRequest,
} from './queue-pair-types.js';
import type { SharedReceiveQueue } from './shared-receive-queue.js';

// The types, the prepared requests and the posting helpers live beside this file; importers of
// queue-pair.js find them here too.
export * from './queue-pair-types.js';
export { PreparedRecv, PreparedSend } from './queue-pair-prepared.js';
export { sgeList, writeRecvChain, writeSgeList, type RecvChain, type RefSlots } from './queue-pair-posting.js';

// Scratch layout of a QP's native block:
//   0     attribute struct (ibv_qp_init_attr / ibv_qp_attr, 144 bytes at most); 160 a second one
//   256   bad_wr out-pointer (8)
//   512   send WRs (maxChain × 128), then their SGEs (maxChain × maxSendSge × 16),
//         then recv WRs (maxChain × 32), then their SGEs (maxChain × maxRecvSge × 16)
const ATTR_AT = 0;
const INIT_OUT_AT = 160; // ibv_query_qp's ibv_qp_init_attr out-parameter (64 bytes), after the 144 of ibv_qp_attr
const BAD_WR_AT = 256;
const ARENA_AT = 512;

export class QueuePair {
  readonly pd: ProtectionDomain;
  readonly sendCq: CompletionQueue;
  readonly recvCq: CompletionQueue;
  readonly type: QueuePairType;
  /** The QP number. */
  readonly qpn: number;
  /** The initial send PSN this side announces (random 24 bits). */
  readonly psn: number;
  readonly maxSendWr: number;
  readonly maxRecvWr: number;
  readonly maxSendSge: number;
  readonly maxRecvSge: number;
  readonly maxInlineData: number;
  readonly maxChain: number;
  /** The shared receive queue this QP receives through, if it was created with one. */
  readonly srq: SharedReceiveQueue | undefined;
  /** After a failed post: the index of the first work request not posted. */
  badIndex = -1;
  #handle: number;
  #state: QueuePairState = 'RESET';
  #port = 1;
  #maxRdAtomic = 0;
  #qkey = DEFAULT_QKEY;
  readonly #signalAll: boolean;
  readonly #scratch: NativeBlock;
  readonly #sendWrAt: number;
  readonly #sendSgeAt: number;
  readonly #recvWrAt: number;
  readonly #recvSgeAt: number;
  readonly #sendRing: PostedRing;
  readonly #recvRing: PostedRing;
  readonly #postSend: (qp: number, wr: number, bad: number) => number;
  readonly #postRecv: (qp: number, wr: number, bad: number) => number;
  readonly #destroy: (qp: number) => number;
  readonly #prepared = new Set<PreparedRequests>();

  /**
   * @internal use pd.createQueuePair(). `make` creates the native QP from an ibv_qp_init_attr
   * address (default ibv_create_qp); `destroy` destroys it (default ibv_destroy_qp).
   */
  static create(
    pd: ProtectionDomain,
    pdHandle: number,
    options: QueuePairOptions,
    make?: (initAttr: number) => number,
    destroy?: (qp: number) => number,
  ): QueuePair {
    return new QueuePair(pd, pdHandle, options, make, destroy);
  }

  private constructor(
    pd: ProtectionDomain,
    pdHandle: number,
    options: QueuePairOptions,
    make: ((initAttr: number) => number) | undefined,
    destroy: ((qp: number) => number) | undefined,
  ) {
    const spec = checkCreateOptions(pd, options);
    const { sendCq, recvCq, srq, maxSendWr, maxRecvWr, maxSendSge, maxRecvSge, maxInline, type, maxChain } = spec;

    this.pd = pd;
    this.srq = srq;
    this.sendCq = sendCq;
    this.recvCq = recvCq;
    this.type = type;
    this.#signalAll = spec.signalAll;
    this.maxChain = maxChain;
    this.#sendWrAt = ARENA_AT;
    this.#sendSgeAt = this.#sendWrAt + maxChain * IBV_SEND_WR.size;
    this.#recvWrAt = this.#sendSgeAt + maxChain * maxSendSge * IBV_SGE.size;
    this.#recvSgeAt = this.#recvWrAt + maxChain * IBV_RECV_WR.size;
    const total = this.#recvSgeAt + maxChain * maxRecvSge * IBV_SGE.size;
    const sendCqHandle = sendCq.handle; // ClosedError for a disposed CQ, before anything is made
    const recvCqHandle = recvCq.handle;
    const srqHandle = srq ? srq.handle : 0; // ClosedError for a disposed SRQ, likewise
    const scratch = new NativeBlock(total, 'queue pair work requests');
    this.#scratch = scratch;

    const dv = scratch.view;
    const f = IBV_QP_INIT_ATTR.fields;
    writeInitAttr(dv, ATTR_AT, spec, sendCqHandle, recvCqHandle, srqHandle);
    const v = loadVerbs();
    let handle: number;
    try {
      const args = { pd: hex(pdHandle), qp_type: type, ...(srq ? { srq: hex(srqHandle) } : {}), max_send_wr: maxSendWr, max_recv_wr: maxRecvWr, max_send_sge: maxSendSge, max_recv_sge: maxRecvSge, max_inline_data: maxInline };
      handle = make ? checkPointer('rdma_create_qp', make(scratch.address + ATTR_AT), args) : checkPointer('ibv_create_qp', v.ibv_create_qp(pdHandle, scratch.address + ATTR_AT) as number, args);
    } catch (error) {
      scratch.free();
      throw error;
    }
    this.#handle = handle;
    this.#destroy = destroy ?? ((qp) => v.ibv_destroy_qp(qp) as number);
    // ibv_create_qp wrote back the capabilities actually granted.
    this.maxSendWr = dv.getUint32(ATTR_AT + f['cap.max_send_wr'], true);
    this.maxRecvWr = srq ? 0 : dv.getUint32(ATTR_AT + f['cap.max_recv_wr'], true);
    this.maxSendSge = Math.min(dv.getUint32(ATTR_AT + f['cap.max_send_sge'], true), maxSendSge);
    this.maxRecvSge = srq ? 0 : Math.min(dv.getUint32(ATTR_AT + f['cap.max_recv_sge'], true), maxRecvSge);
    this.maxInlineData = dv.getUint32(ATTR_AT + f['cap.max_inline_data'], true);
    this.qpn = new DataView(backend.view(handle, IBV_QP.size)).getUint32(IBV_QP.fields.qp_num, true);
    this.psn = Math.floor(Math.random() * 0x1000000);
    this.#sendRing = new PostedRing(Math.max(this.maxSendWr, 1), maxSendSge);
    this.#recvRing = new PostedRing(Math.max(this.maxRecvWr, 1), maxRecvSge);
    this.#postSend = pd.context.inline.ibv_post_send;
    this.#postRecv = pd.context.inline.ibv_post_recv;

    // Fixed pointers: each WR's sg_list points at its own SGE slots.
    for (let i = 0; i < maxChain; i++) {
      setU64(dv, this.#sendWrAt + i * IBV_SEND_WR.size + IBV_SEND_WR.fields.sg_list, scratch.address + this.#sendSgeAt + i * maxSendSge * IBV_SGE.size);
      setU64(dv, this.#recvWrAt + i * IBV_RECV_WR.size + IBV_RECV_WR.fields.sg_list, scratch.address + this.#recvSgeAt + i * maxRecvSge * IBV_SGE.size);
    }
    sendCq.attach(this.qpn, this);
    recvCq.attach(this.qpn, this);
    srq?.attach(this);
    countLive('qps', 1);
  }

  /** The struct ibv_qp address. ClosedError once disposed. */
  get handle(): number {
    if (!this.#handle) throw new ClosedError(`queue pair ${this.qpn}`);
    return this.#handle;
  }

  get disposed(): boolean {
    return this.#handle === 0;
  }

  /** The state as of this object's last transition (see queryState() for the device's view). */
  get state(): QueuePairState {
    return this.#state;
  }

  /** @internal librdmacm moved this QP to RTS (rdma_connect / rdma_accept). */
  markConnected(): void {
    this.#state = 'RTS';
  }

  /**
   * RTS → RTS with a new min_rnr_timer (IB encoding 0–31: 1 = 0.01 ms … 12 = 0.64 ms … 0 =
   * 655.36 ms): how long a peer whose SEND found no posted receive here waits before it retries.
   * rdma_cm moves its QPs to RTR with 0 — the longest — so an rdma_cm connection calls this once
   * it is in RTS (rdma-cm.ts).
   */
  setMinRnrTimer(minRnrTimer: number): void {
    this.#requireState('setMinRnrTimer', 'RTS');
    if (!Number.isInteger(minRnrTimer) || minRnrTimer < 0 || minRnrTimer > 31) throw new UsageError(`minRnrTimer must be 0–31, got ${String(minRnrTimer)}`);
    this.#clearAttr();
    this.#scratch.view.setUint8(ATTR_AT + IBV_QP_ATTR.fields.min_rnr_timer, minRnrTimer);
    this.#modify('RTS', C.IBV_QP_MIN_RNR_TIMER, { min_rnr_timer: minRnrTimer });
  }

  /** The port this QP was bound to (toInit; 1 until then). */
  get port(): number {
    return this.#port;
  }

  /**
   * The initiator depth this QP was moved to RTS with (RDMA READs and atomics it may have in
   * flight, max_rd_atomic), or 0 when it was connected by rdma_cm (see its initiatorDepth).
   */
  get maxRdAtomic(): number {
    return this.#maxRdAtomic;
  }

  /** Send-queue slots free now: maxSendWr minus the send work requests posted and not yet reaped. No allocation. */
  get sendSlotsFree(): number {
    return this.#sendRing.capacity - this.#sendRing.size;
  }

  /**
   * Work requests posted whose completion has not been polled yet (send, receive). The receives
   * of a QP with an SRQ are the SRQ's: see `srq.outstanding`.
   */
  get outstanding(): { send: number; recv: number } {
    return { send: this.#sendRing.size, recv: this.#recvRing.size };
  }

  /** ibv_query_qp for the current state (e.g. ERR after a failed work request). */
  queryState(): QueuePairState {
    this.#query(C.IBV_QP_STATE, 'STATE');
    this.#state = STATE_NAMES[this.#scratch.view.getUint32(ATTR_AT + IBV_QP_ATTR.fields.qp_state, true)] ?? this.#state;
    return this.#state;
  }

  /** ibv_query_qp for min_rnr_timer (IB encoding; see setMinRnrTimer). */
  queryMinRnrTimer(): number {
    this.#query(C.IBV_QP_MIN_RNR_TIMER, 'MIN_RNR_TIMER');
    return this.#scratch.view.getUint8(ATTR_AT + IBV_QP_ATTR.fields.min_rnr_timer);
  }

  /** ibv_query_qp of the attributes in `mask` into the attribute struct at ATTR_AT. */
  #query(mask: number, maskName: string): void {
    const handle = this.handle;
    this.#scratch.bytes.fill(0, ATTR_AT, 256);
    // The init_attr out-parameter is required; the part of the block after qp_attr serves.
    const rc = loadVerbs().ibv_query_qp(handle, this.#scratch.address + ATTR_AT, mask, this.#scratch.address + INIT_OUT_AT) as number;
    if (rc !== 0) throw errnoError('ibv_query_qp', rc > 0 ? rc : 22, { qp_num: this.qpn, attr_mask: maskName });
  }

  /** This side's connection facts, to send to the peer out of band. */
  localEndpoint(port = this.#port): QueuePairEndpoint {
    this.handle;
    const ctx = this.pd.context;
    const attrs = ctx.queryPort(port);
    return { gid: ctx.gid(port).gid, qpn: this.qpn, psn: this.psn, lid: attrs.lid, mtu: attrs.activeMtu };
  }

  #requireState(method: string, needed: QueuePairState): void {
    if (this.#state !== needed) {
      throw new UsageError(`queue pair ${this.qpn} is ${this.#state}; ${method}() needs ${needed}`);
    }
  }

  #modify(target: QueuePairState, mask: number, shown: Record<string, string | number>): void {
    const handle = this.handle;
    const dv = this.#scratch.view;
    dv.setUint32(ATTR_AT + IBV_QP_ATTR.fields.qp_state, STATE_NAMES.indexOf(target), true);
    const rc = loadVerbs().ibv_modify_qp(handle, this.#scratch.address + ATTR_AT, mask | C.IBV_QP_STATE) as number;
    if (rc !== 0) {
      const code = rc > 0 ? rc : 22;
      throw errnoError('ibv_modify_qp', code, { qp_num: this.qpn, from: this.#state, qp_state: target, attr_mask: maskText(mask | C.IBV_QP_STATE), ...shown });
    }
    this.#state = target;
  }

  #clearAttr(): void {
    this.#scratch.bytes.fill(0, ATTR_AT, ATTR_AT + IBV_QP_ATTR.size);
  }

  /** RESET → INIT: port, P_Key index, the remote access the QP allows (UD: its Q_Key). */
  toInit(options: InitOptions = {}): void {
    this.#requireState('toInit', 'RESET');
    this.#clearAttr();
    const t = initAttributes(this.#scratch.view, ATTR_AT, this.type, options);
    this.#modify('INIT', t.mask, t.shown);
    this.#port = t.port;
    if (this.type === 'UD') this.#qkey = t.qkey;
  }

  /** INIT → RTR: the path to the remote QP (GID, QPN, its PSN), MTU, responder resources. */
  toRtr(options: RtrOptions): void {
    this.#requireState('toRtr', 'INIT');
    this.#clearAttr();
    if (this.type === 'UD') {
      this.#modify('RTR', 0, {});
      return;
    }
    const t = rtrAttributes(this.pd.context, this.#scratch.view, ATTR_AT, this.#port, options);
    this.#modify('RTR', t.mask, t.shown);
  }

  /** RTR → RTS: timeouts, retries, this side's send PSN, initiator depth. */
  toRts(options: RtsOptions = {}): void {
    this.#requireState('toRts', 'RTR');
    this.#clearAttr();
    if (this.type === 'UD') {
      this.#scratch.view.setUint32(ATTR_AT + IBV_QP_ATTR.fields.sq_psn, this.psn, true);
      this.#modify('RTS', C.IBV_QP_SQ_PSN, { sq_psn: this.psn });
      return;
    }
    const t = rtsAttributes(this.pd.context, this.#scratch.view, ATTR_AT, this.psn, options);
    this.#modify('RTS', t.mask, t.shown);
    this.#maxRdAtomic = t.maxRdAtomic;
  }

  /**
   * RESET → INIT → RTR → RTS against a remote endpoint exchanged out of band (its
   * `localEndpoint()`). Receives may be posted before or after.
   */
  connect(remote: QueuePairEndpoint, options: ConnectOptions = {}): void {
    if (this.type === 'UD') throw new UsageError('a UD queue pair is not connected: use activate(), then send to address handles');
    if (this.#state === 'RESET') this.toInit(options);
    this.toRtr({ ...options, remote });
    this.toRts(options);
  }

  /**
   * UD: RESET → INIT → RTR → RTS, ready to send datagrams (to address handles) and receive them
   * (each receive buffer starts with the 40-byte GRH). `qkey` defaults to DEFAULT_QKEY.
   */
  activate(options: InitOptions = {}): void {
    if (this.type !== 'UD') throw new UsageError('activate() is for UD queue pairs; connect an RC queue pair with connect()');
    this.toInit(options);
    this.toRtr(undefined as unknown as RtrOptions);
    this.toRts();
  }

  /** The Q_Key of this UD queue pair (what senders put in remoteQkey). */
  get qkey(): number {
    return this.#qkey;
  }

  /** Any state → RESET. Outstanding work is discarded (no completions); references are released. */
  reset(): void {
    this.#clearAttr();
    this.#modify('RESET', 0, {});
    this.#sendRing.releaseAll();
    this.#recvRing.releaseAll();
  }

  /** Any state → ERR: outstanding work requests complete with IBV_WC_WR_FLUSH_ERR. */
  toError(): void {
    this.#clearAttr();
    this.#modify('ERR', 0, {});
  }

  // ---- posting (hot path) ----

  #writeSges(sges: Sge | readonly Sge[] | undefined, at: number, max: number, ring: PostedRing, slot: number, method: string, opName: string, dv = this.#scratch.view): void {
    writeSgeList(this.pd, sges, dv, at, max, ring, slot, method, opName, "this queue pair's");
  }

  /**
   * Post one send work request or a chain. Returns 0, or the errno value the provider returned
   * (e.g. 12 ENOMEM: the send queue is full) with `badIndex` set to the first request not posted.
   * UsageError for a malformed request, ClosedError on a disposed QP or region.
   */
  postSend(requests: SendRequest | readonly SendRequest[]): number {
    const qp = this.#handle;
    if (!qp) throw new ClosedError(`queue pair ${this.qpn}`);
    const isArray = Array.isArray(requests);
    const count = isArray ? (requests as readonly SendRequest[]).length : 1;
    if (count === 0) return 0;
    if (count > this.maxChain) throw new UsageError(`postSend: a chain of ${count} exceeds maxChain ${this.maxChain}`);
    const ring = this.#sendRing;
    if (ring.size + count > ring.capacity) {
      this.badIndex = 0;
      return 12; // ENOMEM: the send queue is full until completions are polled
    }
    const dv = this.#scratch.view;
    const base = this.#scratch.address;
    let i = 0;
    try {
      for (; i < count; i++) {
        const wr = isArray ? (requests as readonly SendRequest[])[i] : (requests as SendRequest);
        const at = this.#sendWrAt + i * IBV_SEND_WR.size;
        const slot = ring.slot(i);
        const sgeAt = this.#sendSgeAt + i * this.maxSendSge * IBV_SGE.size;
        writeSendWr(this, this.#signalAll, wr, dv, at, sgeAt, i + 1 < count ? base + at + IBV_SEND_WR.size : 0, ring, slot);
      }
    } catch (error) {
      for (let k = 0; k <= i && k < count; k++) ring.clear(ring.slot(k)); // drop references of the unposted chain
      throw error;
    }
    const rc = this.#postSend(qp, base + this.#sendWrAt, base + BAD_WR_AT);
    return this.#settlePost(rc, dv, base + this.#sendWrAt, IBV_SEND_WR.size, count, ring);
  }

  /**
   * Write one send work request — or a chain of up to maxChain (a post list, perftest's `-l`) —
   * into native memory once, for posting many times with `postPrepared()`: the hot loop then
   * writes no struct field at all (the requests are validated once, here). Data of an inline
   * request is copied at each post, so the caller may change the bytes of its buffers between
   * posts. The returned object keeps the requests' memory regions referenced; it is freed by its
   * dispose() or with this queue pair. UsageError / ClosedError as postSend for a malformed request.
   */
  prepareSend(requests: SendRequest | readonly SendRequest[]): PreparedSend {
    this.handle;
    const list = (Array.isArray(requests) ? requests : [requests]) as readonly SendRequest[];
    const count = list.length;
    if (count === 0 || count > this.maxChain) throw new UsageError(`prepareSend: a chain of 1..${this.maxChain} requests (maxChain), got ${count}`);
    const prepared = writeSendChain(this, list, (wr, dv, at, sgeAt, next, ring, slot) => writeSendWr(this, this.#signalAll, wr, dv, at, sgeAt, next, ring, slot));
    this.#prepared.add(prepared);
    return prepared;
  }

  /**
   * Post a request (or chain) made by `prepareSend()`. Returns 0 or the provider's errno value
   * (12 ENOMEM: the send queue is full until completions are polled), with `badIndex` as postSend.
   * The regions stay referenced until the completions (or later ones) are polled. ClosedError if
   * this QP or one of the regions is disposed.
   */
  postPrepared(prepared: PreparedSend): number {
    const qp = this.#handle;
    if (!qp) throw new ClosedError(`queue pair ${this.qpn}`);
    if (prepared.qp !== this || prepared.address === 0) throw new UsageError('postPrepared: a disposed request, or one prepared on another queue pair');
    const ring = this.#sendRing;
    const count = prepared.count;
    if (ring.size + count > ring.capacity) {
      this.badIndex = 0;
      return 12;
    }
    stageChain(ring, count, prepared.refs, prepared.refCounts, 0, prepared.wrIds, prepared.signaledFlags, prepared.ahs, 'postPrepared');
    const rc = this.#postSend(qp, prepared.address, this.#scratch.address + BAD_WR_AT);
    if (rc === 0) {
      this.badIndex = -1;
      ring.size += count;
      return 0;
    }
    return this.#settlePost(rc, this.#scratch.view, prepared.address, IBV_SEND_WR.size, count, ring);
  }

  /**
   * Write one receive work request — or a chain of them — into native memory once, for posting
   * it many times with `postPreparedRecv()` (perftest re-posts prepared ibv_recv_wr the same way;
   * a chain re-posts several receives with one call). The returned object keeps the requests'
   * memory regions referenced; it is freed by its dispose() or with this queue pair.
   * UsageError / ClosedError as postRecv (a chain longer than maxRecvWr is a UsageError).
   */
  prepareRecv(requests: RecvRequest | readonly RecvRequest[]): PreparedRecv {
    this.handle;
    if (this.srq) throw this.#srqUsage('prepareRecv');
    const chain = writeRecvChain(this.pd, requests, this.maxRecvSge, this.maxRecvWr, 'maxRecvWr', "this queue pair's", true);
    const prepared = new PreparedRecv(this, chain.block, chain.refs, chain.refCounts, chain.wrIds);
    this.#prepared.add(prepared);
    return prepared;
  }

  /**
   * Post a request (or chain) made by `prepareRecv()`: no struct field is written, nothing is
   * allocated. Returns 0 or the provider's errno value (12 ENOMEM: the receive queue is full),
   * with `badIndex` as postRecv. The regions stay referenced until the completions (or later
   * ones) are polled. ClosedError if this QP or one of the regions is disposed.
   */
  postPreparedRecv(prepared: PreparedRecv): number {
    const qp = this.#handle;
    if (!qp) throw new ClosedError(`queue pair ${this.qpn}`);
    if (this.srq) throw this.#srqUsage('postPreparedRecv');
    const address = prepared.address;
    if (prepared.qp !== this || address === 0) throw new UsageError('postPreparedRecv: a disposed request, or one prepared on another queue pair');
    const ring = this.#recvRing;
    const count = prepared.count;
    if (ring.size + count > ring.capacity) {
      this.badIndex = 0;
      return 12;
    }
    const refs = prepared.refs;
    const refCounts = prepared.refCounts;
    const wrIds = prepared.wrIds;
    let r = 0;
    for (let i = 0; i < count; i++) {
      const slot = ring.slot(i);
      const n = refCounts[i];
      ring.counts[slot] = 0;
      for (let j = 0; j < n; j++) {
        const mr = refs[r + j];
        if (mr.disposed) {
          for (let k = 0; k <= i; k++) ring.clear(ring.slot(k));
          throw new ClosedError(`memory region (lkey ${mr.lkey}) in postPreparedRecv`);
        }
        ring.refs[slot * ring.perSlot + j] = mr;
      }
      ring.counts[slot] = n;
      ring.wrIds[slot] = wrIds[i];
      r += n;
    }
    const rc = this.#postRecv(qp, address, this.#scratch.address + BAD_WR_AT);
    if (rc === 0) {
      this.badIndex = -1;
      ring.size += count;
      return 0;
    }
    return this.#settlePost(rc, this.#scratch.view, address, IBV_RECV_WR.size, count, ring);
  }

  /** @internal */
  forgetPrepared(prepared: PreparedRequests): void {
    this.#prepared.delete(prepared);
  }

  #srqUsage(method: string): UsageError {
    return new UsageError(`queue pair ${this.qpn} receives through a shared receive queue: ${method}() on the SRQ (qp.srq), not on the queue pair`);
  }

  /**
   * Post one receive work request or a chain. Returns 0 or the provider's errno value (with
   * `badIndex`). The buffers stay referenced until their completions are polled. UsageError on
   * a queue pair created with an SRQ (post to the SRQ), ClosedError once disposed.
   */
  postRecv(requests: RecvRequest | readonly RecvRequest[]): number {
    const qp = this.#handle;
    if (!qp) throw new ClosedError(`queue pair ${this.qpn}`);
    if (this.srq) throw this.#srqUsage('postRecv');
    const isArray = Array.isArray(requests);
    const count = isArray ? (requests as readonly RecvRequest[]).length : 1;
    if (count === 0) return 0;
    if (count > this.maxChain) throw new UsageError(`postRecv: a chain of ${count} exceeds maxChain ${this.maxChain}`);
    const ring = this.#recvRing;
    if (ring.size + count > ring.capacity) {
      this.badIndex = 0;
      return 12;
    }
    const dv = this.#scratch.view;
    const base = this.#scratch.address;
    const f = IBV_RECV_WR.fields;
    let i = 0;
    try {
      for (; i < count; i++) {
        const wr = isArray ? (requests as readonly RecvRequest[])[i] : (requests as RecvRequest);
        const at = this.#recvWrAt + i * IBV_RECV_WR.size;
        const slot = ring.slot(i);
        const wrId = wr.wrId ?? 0;
        if (!Number.isSafeInteger(wrId) || wrId < 0) throw new UsageError(`postRecv: wrId must be a non-negative safe integer, got ${wrId}`);
        const sgeAt = this.#recvSgeAt + i * this.maxRecvSge * IBV_SGE.size;
        this.#writeSges(wr.sge, sgeAt, this.maxRecvSge, ring, slot, 'postRecv', '');
        const n = sgeList.count;
        setU64(dv, at + f.wr_id, wrId);
        setU64(dv, at + f.next, i + 1 < count ? base + at + IBV_RECV_WR.size : 0);
        dv.setInt32(at + f.num_sge, n, true);
        ring.wrIds[slot] = wrId;
      }
    } catch (error) {
      for (let k = 0; k <= i && k < count; k++) ring.clear(ring.slot(k));
      throw error;
    }
    const rc = this.#postRecv(qp, base + this.#recvWrAt, base + BAD_WR_AT);
    return this.#settlePost(rc, dv, base + this.#recvWrAt, IBV_RECV_WR.size, count, ring);
  }

  /**
   * @internal Post a chain of `count` send work requests the caller wrote into its own native
   * memory at `address` (struct ibv_send_wr, IBV_SEND_WR.size apart, `next` pointers set, each
   * sg_list pointing at its SGEs), for the request engine (src/coalesce/). Work request i keeps
   * `refCounts[i]` regions, `refs[i * perWr ...]`, referenced until its completion (or a later one)
   * is polled; `wrIds[i]` and `signaled[i]` as written in the chain. Returns 0 or the provider's
   * errno value with `badIndex` (12 ENOMEM before any call when fewer than `count` slots are free).
   * No allocation; the caller checked every value.
   */
  postSendChain(address: number, count: number, wrIds: Float64Array, signaled: Uint8Array, refs: readonly (MemoryRegion | undefined)[], refCounts: Uint8Array, perWr: number): number {
    const qp = this.#handle;
    if (!qp) throw new ClosedError(`queue pair ${this.qpn}`);
    const ring = this.#sendRing;
    if (ring.size + count > ring.capacity) {
      this.badIndex = 0;
      return 12;
    }
    stageChain(ring, count, refs, refCounts, perWr, wrIds, signaled, undefined, 'postSendChain');
    const rc = this.#postSend(qp, address, this.#scratch.address + BAD_WR_AT);
    return this.#settlePost(rc, this.#scratch.view, address, IBV_SEND_WR.size, count, ring);
  }

  /**
   * After ibv_post_send / ibv_post_recv of a chain of `count` requests written from `chainAt`:
   * on failure the provider's bad_wr says which request it stopped at — keep the references of
   * those before it (posted), drop the rest. Sets badIndex; returns the call's result.
   */
  #settlePost(rc: number, dv: DataView, chainAt: number, wrSize: number, count: number, ring: PostedRing): number {
    let posted = count;
    if (rc !== 0) {
      const bad = getU64(dv, BAD_WR_AT);
      posted = bad ? Math.max(0, Math.min(count, (bad - chainAt) / wrSize)) : 0;
      for (let i = posted; i < count; i++) ring.clear(ring.slot(i));
      this.badIndex = posted;
    } else {
      this.badIndex = -1;
    }
    ring.size += posted;
    return rc;
  }

  /** @internal a completion of this QP was polled: release the references it covers. */
  reap(c: Completion): void {
    // A receive taken from the SRQ (its wr_id says so, whatever the status) is the SRQ's to
    // release; it also puts the caller's wrId back into c.
    if (this.srq !== undefined && this.srq.reap(c)) return;
    if (c.status === C.IBV_WC_SUCCESS) {
      if (c.opcode & C.IBV_WC_RECV) this.#recvRing.release(c.wrId, false);
      else this.#sendRing.release(c.wrId, true);
      return;
    }
    // The opcode of a failed completion is undefined: find which queue holds the request
    // (flushed WRs complete whether signaled or not).
    if (!this.#sendRing.release(c.wrId, false)) this.#recvRing.release(c.wrId, false);
  }

  /**
   * Destroy the QP (ibv_destroy_qp). Idempotent. Outstanding work is abandoned; the NIC no
   * longer touches the memory, so the references kept for it are released.
   */
  dispose(): void {
    const handle = this.#handle;
    if (!handle) return;
    this.#handle = 0;
    this.sendCq.detach(this.qpn);
    this.recvCq.detach(this.qpn);
    this.srq?.detach(this);
    countLive('qps', -1);
    this.pd.forget(this);
    const rc = this.#destroy(handle);
    this.#sendRing.releaseAll();
    this.#recvRing.releaseAll();
    for (const prepared of [...this.#prepared]) prepared.dispose();
    this.#scratch.free();
    if (rc !== 0) throw errnoError('ibv_destroy_qp', rc > 0 ? rc : 22, { qp_num: this.qpn, qp: hex(handle) });
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
