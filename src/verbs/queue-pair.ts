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
import type { AddressHandle } from './address-handle.js';
import type { Completion, CompletionQueue } from './completion-queue.js';
import { gidText, mtuBytes, mtuEnum, parseGid } from './context.js';
import { loadVerbs } from './device.js';
import { countLive } from './live.js';
import type { MemoryRegion } from './memory-region.js';
import { checkPointer, getU64, hex, NativeBlock, setU64, setU64Any } from './native.js';
import type { ProtectionDomain } from './protection-domain.js';
import type { SharedReceiveQueue } from './shared-receive-queue.js';

export type QueuePairState = 'RESET' | 'INIT' | 'RTR' | 'RTS' | 'SQD' | 'SQE' | 'ERR';
const STATE_NAMES: QueuePairState[] = ['RESET', 'INIT', 'RTR', 'RTS', 'SQD', 'SQE', 'ERR'];

export type QueuePairType = 'RC' | 'UD';

/** The Q_Key UD queue pairs use unless told otherwise. */
export const DEFAULT_QKEY = 0x11111111;

export interface QueuePairOptions {
  readonly sendCq: CompletionQueue;
  /** 'RC' (default): reliable connected. 'UD': datagrams to address handles; receives start with a 40-byte GRH. */
  readonly type?: QueuePairType;
  /** Default: sendCq. */
  readonly recvCq?: CompletionQueue;
  /** Default 128 each. */
  readonly maxSendWr?: number;
  readonly maxRecvWr?: number;
  /** Default 4 each. */
  readonly maxSendSge?: number;
  readonly maxRecvSge?: number;
  /** Default 64 bytes. */
  readonly maxInlineData?: number;
  /** Every send WR generates a completion (sq_sig_all). Default false: each WR says. */
  readonly signalAll?: boolean;
  /** Most work requests in one postSend/postRecv chain. Default min(maxSendWr, 32). */
  readonly maxChain?: number;
  /**
   * Receive through this shared receive queue (of the same protection domain) instead of a
   * receive queue of the QP's own: maxRecvWr and maxRecvSge are then ignored, and postRecv /
   * prepareRecv on the QP are UsageErrors (post to the SRQ). Disposing the SRQ disposes this QP.
   */
  readonly srq?: SharedReceiveQueue;
}

/** What two sides exchange out of band to connect RC queue pairs. */
export interface QueuePairEndpoint {
  /** GID as IPv6 text (RoCE v2: ::ffff:a.b.c.d). */
  readonly gid: string;
  readonly qpn: number;
  /** The first packet sequence number this side sends with (24 bits). */
  readonly psn: number;
  /** LID (InfiniBand; 0 on RoCE). */
  readonly lid: number;
  /** Active MTU in bytes; the connection uses the smaller of the two. */
  readonly mtu?: number;
}

export interface Sge {
  readonly mr: MemoryRegion;
  /** Byte offset into the region. Default 0. */
  readonly offset?: number;
  /** Default: the rest of the region. */
  readonly length?: number;
}

export type SendOpcode = 'send' | 'send-with-imm' | 'write' | 'write-with-imm' | 'read' | 'fetch-add' | 'compare-swap';

export interface SendRequest {
  /** Returned in the completion. A safe integer. Default 0. */
  readonly wrId?: number;
  /** Default 'send'. */
  readonly opcode?: SendOpcode;
  /** Local buffers (gather for sends and writes, scatter for reads and atomics' result). */
  readonly sge?: Sge | readonly Sge[];
  /** Generate a completion. Default true (always, if the QP has signalAll). */
  readonly signaled?: boolean;
  /** Copy the data into the WQE at post time (sends and writes, up to maxInlineData). */
  readonly inline?: boolean;
  readonly fence?: boolean;
  readonly solicited?: boolean;
  /** Immediate data for *-with-imm (u32, sent in network order). */
  readonly imm?: number;
  /** UD only: where the datagram goes (address handle, remote QPN, its Q_Key — default this QP's). */
  readonly ah?: AddressHandle;
  readonly remoteQpn?: number;
  readonly remoteQkey?: number;
  /** Remote address and rkey for write, read and atomics. */
  readonly remoteAddr?: number | bigint;
  readonly rkey?: number;
  /** fetch-add: the addend; compare-swap: the value compared. */
  readonly compareAdd?: number | bigint;
  /** compare-swap: the value stored when equal. */
  readonly swap?: number | bigint;
}

export interface RecvRequest {
  readonly wrId?: number;
  readonly sge?: Sge | readonly Sge[];
}

export interface InitOptions {
  readonly port?: number;
  readonly pkeyIndex?: number;
  /** Remote access the QP allows (memory regions still gate each access). Default: all three. */
  readonly remoteRead?: boolean;
  readonly remoteWrite?: boolean;
  readonly remoteAtomic?: boolean;
  /** UD: the Q_Key datagrams to this QP must carry. Default DEFAULT_QKEY. */
  readonly qkey?: number;
}

export interface RtrOptions {
  readonly remote: QueuePairEndpoint;
  readonly port?: number;
  /** Path MTU in bytes. Default: the smaller of this port's active MTU and remote.mtu. */
  readonly pathMtu?: number;
  /** Source GID index. Default: context.gid(port).index (the RoCE v2 IPv4 GID). */
  readonly sgidIndex?: number;
  readonly hopLimit?: number;
  readonly trafficClass?: number;
  readonly serviceLevel?: number;
  /** Responder resources (incoming READ/atomic). Default min(device max, 16). */
  readonly maxDestRdAtomic?: number;
  /** 0..31 (12 = 0.64 ms). Default 12. */
  readonly minRnrTimer?: number;
}

export interface RtsOptions {
  /** Local ACK timeout exponent 0..31 (4.096 µs · 2^timeout). Default 14. */
  readonly timeout?: number;
  /** 0..7. Default 7. */
  readonly retryCount?: number;
  /** 0..7 (7 = infinite). Default 7. */
  readonly rnrRetry?: number;
  /** Initiator depth (outgoing READ/atomic). Default min(device max, 16). */
  readonly maxRdAtomic?: number;
}

export type ConnectOptions = InitOptions & Omit<RtrOptions, 'remote'> & RtsOptions;

const OPCODES: Record<SendOpcode, number> = {
  send: C.IBV_WR_SEND,
  'send-with-imm': C.IBV_WR_SEND_WITH_IMM,
  write: C.IBV_WR_RDMA_WRITE,
  'write-with-imm': C.IBV_WR_RDMA_WRITE_WITH_IMM,
  read: C.IBV_WR_RDMA_READ,
  'fetch-add': C.IBV_WR_ATOMIC_FETCH_AND_ADD,
  'compare-swap': C.IBV_WR_ATOMIC_CMP_AND_SWP,
};

const MASK_NAMES: [number, string][] = Object.entries(C)
  .filter(([k]) => k.startsWith('IBV_QP_') && !k.startsWith('IBV_QPT_') && !k.startsWith('IBV_QPS_'))
  .map(([k, v]) => [v as number, k.slice(7)]);

function maskText(mask: number): string {
  return MASK_NAMES.filter(([bit]) => mask & bit).map(([, name]) => name).join('|');
}

/** @internal UsageError unless `value` (when given) is an integer in min..max. */
export function intIn(name: string, value: number | undefined, min: number, max: number): void {
  if (value === undefined) return;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new UsageError(`${name} must be an integer ${min}..${max}, got ${String(value)}`);
  }
}

/**
 * @internal Where posted work requests keep their memory regions: `perSlot` entries per slot,
 * `counts[slot]` of them in use (a QueuePair's PostedRing, a SharedReceiveQueue's slot table).
 */
export interface RefSlots {
  readonly refs: (MemoryRegion | undefined)[];
  readonly counts: Uint8Array;
  readonly perSlot: number;
}

/** @internal What the last writeSgeList wrote (fields, not a returned object: the hot path allocates nothing). */
export const sgeList = { count: 0, bytes: 0 };

// Error messages are built only when thrown: the hot path makes no string and no closure.
function where(method: string, opName: string): string {
  return opName ? `${method} ${opName}` : method;
}

/**
 * @internal Check an SGE list (regions of `pd`, alive, ranges inside them, at most `max`) and
 * write it as struct ibv_sge entries at `at` in `dv`, recording each region in `slots`' `slot`.
 * Sets sgeList.count and sgeList.bytes. UsageError / ClosedError name `method` and `owner`.
 */
export function writeSgeList(
  pd: ProtectionDomain,
  sges: Sge | readonly Sge[] | undefined,
  dv: DataView,
  at: number,
  max: number,
  slots: RefSlots,
  slot: number,
  method: string,
  opName: string,
  owner: string,
): void {
  sgeList.count = 0;
  sgeList.bytes = 0;
  slots.counts[slot] = 0;
  if (sges === undefined) return;
  const isArray = Array.isArray(sges);
  const n = isArray ? (sges as readonly Sge[]).length : 1;
  if (n > max) throw new UsageError(`${where(method, opName)}: ${n} SGEs exceed ${owner} max ${max}`);
  let bytes = 0;
  for (let j = 0; j < n; j++) {
    const s = isArray ? (sges as readonly Sge[])[j] : (sges as Sge);
    const mr = s?.mr;
    if (!mr || mr.disposed) throw mr ? new ClosedError(`memory region (lkey ${mr.lkey}) in ${where(method, opName)}`) : new UsageError(`${where(method, opName)}: sge[${j}].mr is missing`);
    if (mr.pd !== pd) throw new UsageError(`${where(method, opName)}: sge[${j}].mr belongs to another protection domain`);
    const offset = s.offset ?? 0;
    const length = s.length ?? mr.length - offset;
    if (!(offset >= 0 && length >= 0 && offset + length <= mr.length && Number.isInteger(offset) && Number.isInteger(length))) {
      throw new UsageError(`${where(method, opName)}: sge[${j}] offset ${offset} + length ${length} is outside the region's ${mr.length} bytes`);
    }
    const o = at + j * IBV_SGE.size;
    setU64(dv, o + IBV_SGE.fields.addr, mr.addr + offset);
    dv.setUint32(o + IBV_SGE.fields.length, length, true);
    dv.setUint32(o + IBV_SGE.fields.lkey, mr.lkey, true);
    slots.refs[slot * slots.perSlot + j] = mr;
    slots.counts[slot] = j + 1; // so a throw on a later SGE still clears this reference
    bytes += length;
  }
  sgeList.count = n;
  sgeList.bytes = bytes;
}

/** @internal A receive chain written once into native memory, for a prepareRecv (QP or SRQ). */
export interface RecvChain {
  readonly block: NativeBlock;
  /** The regions of every request, in order (refCounts[i] for request i). */
  readonly refs: MemoryRegion[];
  readonly refCounts: Uint8Array;
  readonly wrIds: Float64Array;
}

/**
 * @internal Check `requests` (1..maxCount objects with non-negative safe-integer wrIds and SGE
 * lists of at most `maxSge` regions of `pd`) and write them into a new NativeBlock as a chain of
 * struct ibv_recv_wr followed by their SGEs. wr_id is written as given when `writeWrIds`; an SRQ
 * writes its own at each post. UsageError names `countName` (the limit's option) and `owner`.
 */
export function writeRecvChain(
  pd: ProtectionDomain,
  requests: RecvRequest | readonly RecvRequest[],
  maxSge: number,
  maxCount: number,
  countName: string,
  owner: string,
  writeWrIds: boolean,
): RecvChain {
  const list = (Array.isArray(requests) ? requests : [requests]) as readonly RecvRequest[];
  const count = list.length;
  if (count === 0 || count > maxCount) throw new UsageError(`prepareRecv: a chain of 1..${maxCount} requests (${countName}), got ${count}`);
  for (const wr of list) {
    if (!wr || typeof wr !== 'object') throw new UsageError('prepareRecv: every request must be an object');
    const wrId = wr.wrId ?? 0;
    if (!Number.isSafeInteger(wrId) || wrId < 0) throw new UsageError(`prepareRecv: wrId must be a non-negative safe integer, got ${wrId}`);
  }
  const wrSize = IBV_RECV_WR.size;
  const sgeSize = maxSge * IBV_SGE.size;
  const block = new NativeBlock(count * (wrSize + sgeSize), 'prepared receive work requests');
  try {
    const dv = block.view;
    const f = IBV_RECV_WR.fields;
    const scratch: RefSlots = { refs: new Array(count * maxSge).fill(undefined), counts: new Uint8Array(count), perSlot: maxSge };
    const refs: MemoryRegion[] = [];
    const refCounts = new Uint8Array(count);
    const wrIds = new Float64Array(count);
    for (let i = 0; i < count; i++) {
      const at = i * wrSize;
      const sgeAt = count * wrSize + i * sgeSize;
      writeSgeList(pd, list[i].sge, dv, sgeAt, maxSge, scratch, i, 'prepareRecv', '', owner);
      wrIds[i] = list[i].wrId ?? 0;
      if (writeWrIds) setU64(dv, at + f.wr_id, wrIds[i]);
      setU64(dv, at + f.next, i + 1 < count ? block.address + at + wrSize : 0);
      setU64(dv, at + f.sg_list, block.address + sgeAt);
      dv.setInt32(at + f.num_sge, sgeList.count, true);
      refCounts[i] = scratch.counts[i];
      for (let j = 0; j < refCounts[i]; j++) refs.push(scratch.refs[i * maxSge + j]!);
    }
    return { block, refs, refCounts, wrIds };
  } catch (error) {
    block.free();
    throw error;
  }
}

/** The memory references of posted work requests, one slot per WR, released in order. */
class PostedRing {
  readonly wrIds: Float64Array;
  readonly refs: (MemoryRegion | undefined)[];
  readonly ahs: (AddressHandle | undefined)[];
  readonly counts: Uint8Array;
  /** 1 when the slot's WR asked for a completion (a successful unsignaled WR never gets one). */
  readonly signaled: Uint8Array;
  head = 0;
  size = 0;
  constructor(
    readonly capacity: number,
    readonly perSlot: number,
  ) {
    this.wrIds = new Float64Array(capacity);
    this.refs = new Array(capacity * perSlot).fill(undefined);
    this.ahs = new Array(capacity).fill(undefined);
    this.counts = new Uint8Array(capacity);
    this.signaled = new Uint8Array(capacity);
  }
  slot(i: number): number {
    return (this.head + this.size + i) % this.capacity;
  }
  /**
   * Release every slot up to and including the first one with this wrId (and, for a successful
   * send completion, that asked to be signaled: an unsignaled WR with the same wrId is not the
   * one that completed); false if none.
   */
  release(wrId: number, signaledOnly: boolean): boolean {
    for (let k = 0; k < this.size; k++) {
      const s = (this.head + k) % this.capacity;
      if (this.wrIds[s] !== wrId || (signaledOnly && this.signaled[s] === 0)) continue;
      for (let j = 0; j <= k; j++) this.clear((this.head + j) % this.capacity);
      this.head = (this.head + k + 1) % this.capacity;
      this.size -= k + 1;
      return true;
    }
    return false;
  }
  clear(s: number): void {
    const base = s * this.perSlot;
    for (let j = 0; j < this.counts[s]; j++) this.refs[base + j] = undefined;
    this.counts[s] = 0;
    this.ahs[s] = undefined;
  }
  releaseAll(): void {
    while (this.size > 0) {
      this.clear(this.head);
      this.head = (this.head + 1) % this.capacity;
      this.size--;
    }
  }
}

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
    const o = options ?? ({} as QueuePairOptions);
    const sendCq = o.sendCq;
    const recvCq = o.recvCq ?? o.sendCq;
    if (!sendCq || typeof sendCq.poll !== 'function') throw new UsageError('createQueuePair needs { sendCq } (a CompletionQueue)');
    if (sendCq.context !== pd.context || recvCq.context !== pd.context) throw new UsageError('the completion queues must belong to the protection domain\'s context');
    const srq = o.srq;
    if (srq !== undefined) {
      if (!srq || typeof srq.postRecv !== 'function') throw new UsageError('srq must be a SharedReceiveQueue');
      // Same PD, so the PD's dispose() (and a Context's) can destroy the QPs before the SRQ.
      if (srq.pd !== pd) throw new UsageError('the shared receive queue must belong to the queue pair\'s protection domain');
    }
    // With an SRQ the receive queue capacities are the SRQ's; the QP asks for none (C callers
    // leave them 0 too; providers ignore them when init_attr.srq is set).
    const maxSendWr = o.maxSendWr ?? 128;
    const maxRecvWr = srq ? 0 : (o.maxRecvWr ?? 128);
    const maxSendSge = o.maxSendSge ?? 4;
    const maxRecvSge = srq ? 0 : (o.maxRecvSge ?? 4);
    const maxInline = o.maxInlineData ?? 64;
    intIn('maxSendWr', maxSendWr, 1, 1 << 20);
    if (!srq) intIn('maxRecvWr', maxRecvWr, 1, 1 << 20);
    intIn('maxSendSge', maxSendSge, 1, 255);
    if (!srq) intIn('maxRecvSge', maxRecvSge, 1, 255);
    intIn('maxInlineData', maxInline, 0, 1 << 16);
    const type = o.type ?? 'RC';
    if (type !== 'RC' && type !== 'UD') throw new UsageError(`type must be 'RC' or 'UD', got ${JSON.stringify(type)}`);
    const maxChain = o.maxChain ?? Math.min(Math.max(maxSendWr, maxRecvWr), 32);
    intIn('maxChain', maxChain, 1, 4096);

    this.pd = pd;
    this.srq = srq;
    this.sendCq = sendCq;
    this.recvCq = recvCq;
    this.type = type;
    this.#signalAll = o.signalAll === true;
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
    setU64(dv, ATTR_AT + f.send_cq, sendCqHandle);
    setU64(dv, ATTR_AT + f.recv_cq, recvCqHandle);
    setU64(dv, ATTR_AT + f.srq, srqHandle);
    dv.setUint32(ATTR_AT + f['cap.max_send_wr'], maxSendWr, true);
    dv.setUint32(ATTR_AT + f['cap.max_recv_wr'], maxRecvWr, true);
    dv.setUint32(ATTR_AT + f['cap.max_send_sge'], maxSendSge, true);
    dv.setUint32(ATTR_AT + f['cap.max_recv_sge'], maxRecvSge, true);
    dv.setUint32(ATTR_AT + f['cap.max_inline_data'], maxInline, true);
    dv.setUint32(ATTR_AT + f.qp_type, type === 'UD' ? C.IBV_QPT_UD : C.IBV_QPT_RC, true);
    dv.setInt32(ATTR_AT + f.sq_sig_all, this.#signalAll ? 1 : 0, true);
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
   * Work requests posted whose completion has not been polled yet (send, receive). The receives
   * of a QP with an SRQ are the SRQ's: see `srq.outstanding`.
   */
  get outstanding(): { send: number; recv: number } {
    return { send: this.#sendRing.size, recv: this.#recvRing.size };
  }

  /** ibv_query_qp for the current state (e.g. ERR after a failed work request). */
  queryState(): QueuePairState {
    const handle = this.handle;
    const at = this.#scratch.address + ATTR_AT;
    this.#scratch.bytes.fill(0, ATTR_AT, 256);
    // The init_attr out-parameter is required; the part of the block after qp_attr serves.
    const rc = loadVerbs().ibv_query_qp(handle, at, C.IBV_QP_STATE, this.#scratch.address + INIT_OUT_AT) as number;
    if (rc !== 0) throw errnoError('ibv_query_qp', rc > 0 ? rc : 22, { qp_num: this.qpn, attr_mask: 'STATE' });
    this.#state = STATE_NAMES[this.#scratch.view.getUint32(ATTR_AT + IBV_QP_ATTR.fields.qp_state, true)] ?? this.#state;
    return this.#state;
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

  /** RESET → INIT: port, P_Key index, the remote access the QP allows. */
  toInit(options: InitOptions = {}): void {
    this.#requireState('toInit', 'RESET');
    const port = options.port ?? 1;
    intIn('port', port, 1, 255);
    intIn('pkeyIndex', options.pkeyIndex, 0, 0xffff);
    if (this.type === 'UD') {
      const qkey = options.qkey ?? DEFAULT_QKEY;
      intIn('qkey', qkey, 0, 0xffffffff);
      this.#clearAttr();
      const dv = this.#scratch.view;
      const f = IBV_QP_ATTR.fields;
      dv.setUint16(ATTR_AT + f.pkey_index, options.pkeyIndex ?? 0, true);
      dv.setUint8(ATTR_AT + f.port_num, port);
      dv.setUint32(ATTR_AT + f.qkey, qkey, true);
      this.#modify('INIT', C.IBV_QP_PKEY_INDEX | C.IBV_QP_PORT | C.IBV_QP_QKEY, { port_num: port, pkey_index: options.pkeyIndex ?? 0, qkey });
      this.#port = port;
      this.#qkey = qkey;
      return;
    }
    let access = 0;
    if (options.remoteRead !== false) access |= C.IBV_ACCESS_REMOTE_READ;
    if (options.remoteWrite !== false) access |= C.IBV_ACCESS_REMOTE_WRITE;
    if (options.remoteAtomic !== false) access |= C.IBV_ACCESS_REMOTE_ATOMIC;
    this.#clearAttr();
    const dv = this.#scratch.view;
    const f = IBV_QP_ATTR.fields;
    dv.setUint16(ATTR_AT + f.pkey_index, options.pkeyIndex ?? 0, true);
    dv.setUint8(ATTR_AT + f.port_num, port);
    dv.setUint32(ATTR_AT + f.qp_access_flags, access, true);
    this.#modify('INIT', C.IBV_QP_PKEY_INDEX | C.IBV_QP_PORT | C.IBV_QP_ACCESS_FLAGS, { port_num: port, pkey_index: options.pkeyIndex ?? 0, qp_access_flags: access });
    this.#port = port;
  }

  /** INIT → RTR: the path to the remote QP (GID, QPN, its PSN), MTU, responder resources. */
  toRtr(options: RtrOptions): void {
    this.#requireState('toRtr', 'INIT');
    if (this.type === 'UD') {
      this.#clearAttr();
      this.#modify('RTR', 0, {});
      return;
    }
    const remote = options?.remote;
    if (!remote || typeof remote !== 'object') throw new UsageError('toRtr needs { remote: { gid, qpn, psn, lid } }');
    intIn('remote.qpn', remote.qpn, 1, 0xffffff);
    intIn('remote.psn', remote.psn, 0, 0xffffff);
    intIn('remote.lid', remote.lid ?? 0, 0, 0xffff);
    const dgid = parseGid(remote.gid);
    const port = options.port ?? this.#port;
    intIn('port', port, 1, 255);
    const ctx = this.pd.context;
    const portAttr = ctx.queryPort(port);
    const localMtu = portAttr.activeMtu;
    const pathMtu = options.pathMtu ?? Math.min(localMtu, remote.mtu ?? localMtu);
    const mtu = mtuEnum(pathMtu);
    if (pathMtu > localMtu) throw new UsageError(`pathMtu ${pathMtu} exceeds the active MTU ${localMtu} of ${ctx.device.name} port ${port}`);
    const table = ctx.gidTable(port);
    const sgidIndex = options.sgidIndex ?? ctx.gid(port).index;
    if (!table.some((e) => e.index === sgidIndex)) {
      throw new UsageError(`sgidIndex ${sgidIndex} is not a valid GID of ${ctx.device.name} port ${port} (valid: ${table.map((e) => e.index).join(', ')})`);
    }
    const dev = ctx.query();
    const maxDestRdAtomic = options.maxDestRdAtomic ?? Math.min(dev.maxQpRdAtom, 16);
    intIn('maxDestRdAtomic', maxDestRdAtomic, 0, Math.min(dev.maxQpRdAtom, 255));
    const minRnrTimer = options.minRnrTimer ?? 12;
    intIn('minRnrTimer', minRnrTimer, 0, 31);
    const hopLimit = options.hopLimit ?? 64;
    intIn('hopLimit', hopLimit, 0, 255);
    intIn('trafficClass', options.trafficClass, 0, 255);
    intIn('serviceLevel', options.serviceLevel, 0, 15);

    this.#clearAttr();
    const dv = this.#scratch.view;
    const f = IBV_QP_ATTR.fields;
    dv.setUint32(ATTR_AT + f.path_mtu, mtu, true);
    dv.setUint32(ATTR_AT + f.dest_qp_num, remote.qpn, true);
    dv.setUint32(ATTR_AT + f.rq_psn, remote.psn, true);
    dv.setUint8(ATTR_AT + f.max_dest_rd_atomic, maxDestRdAtomic);
    dv.setUint8(ATTR_AT + f.min_rnr_timer, minRnrTimer);
    this.#scratch.bytes.set(dgid, ATTR_AT + f['ah_attr.grh.dgid']);
    dv.setUint8(ATTR_AT + f['ah_attr.grh.sgid_index'], sgidIndex);
    dv.setUint8(ATTR_AT + f['ah_attr.grh.hop_limit'], hopLimit);
    dv.setUint8(ATTR_AT + f['ah_attr.grh.traffic_class'], options.trafficClass ?? 0);
    dv.setUint16(ATTR_AT + f['ah_attr.dlid'], remote.lid ?? 0, true);
    dv.setUint8(ATTR_AT + f['ah_attr.sl'], options.serviceLevel ?? 0);
    dv.setUint8(ATTR_AT + f['ah_attr.is_global'], 1);
    dv.setUint8(ATTR_AT + f['ah_attr.port_num'], port);
    this.#modify(
      'RTR',
      C.IBV_QP_AV | C.IBV_QP_PATH_MTU | C.IBV_QP_DEST_QPN | C.IBV_QP_RQ_PSN | C.IBV_QP_MAX_DEST_RD_ATOMIC | C.IBV_QP_MIN_RNR_TIMER,
      {
        path_mtu: mtuBytes(mtu),
        dest_qp_num: remote.qpn,
        rq_psn: remote.psn,
        dgid: gidText(dgid),
        dlid: remote.lid ?? 0,
        sgid_index: sgidIndex,
        hop_limit: hopLimit,
        port_num: port,
        max_dest_rd_atomic: maxDestRdAtomic,
        min_rnr_timer: minRnrTimer,
      },
    );
  }

  /** RTR → RTS: timeouts, retries, this side's send PSN, initiator depth. */
  toRts(options: RtsOptions = {}): void {
    this.#requireState('toRts', 'RTR');
    if (this.type === 'UD') {
      this.#clearAttr();
      this.#scratch.view.setUint32(ATTR_AT + IBV_QP_ATTR.fields.sq_psn, this.psn, true);
      this.#modify('RTS', C.IBV_QP_SQ_PSN, { sq_psn: this.psn });
      return;
    }
    const timeout = options.timeout ?? 14;
    const retryCount = options.retryCount ?? 7;
    const rnrRetry = options.rnrRetry ?? 7;
    const dev = this.pd.context.query();
    const maxRdAtomic = options.maxRdAtomic ?? Math.min(dev.maxQpInitRdAtom, 16);
    intIn('timeout', timeout, 0, 31);
    intIn('retryCount', retryCount, 0, 7);
    intIn('rnrRetry', rnrRetry, 0, 7);
    intIn('maxRdAtomic', maxRdAtomic, 0, Math.min(dev.maxQpInitRdAtom, 255));
    this.#clearAttr();
    const dv = this.#scratch.view;
    const f = IBV_QP_ATTR.fields;
    dv.setUint8(ATTR_AT + f.timeout, timeout);
    dv.setUint8(ATTR_AT + f.retry_cnt, retryCount);
    dv.setUint8(ATTR_AT + f.rnr_retry, rnrRetry);
    dv.setUint32(ATTR_AT + f.sq_psn, this.psn, true);
    dv.setUint8(ATTR_AT + f.max_rd_atomic, maxRdAtomic);
    this.#modify('RTS', C.IBV_QP_TIMEOUT | C.IBV_QP_RETRY_CNT | C.IBV_QP_RNR_RETRY | C.IBV_QP_SQ_PSN | C.IBV_QP_MAX_QP_RD_ATOMIC, {
      timeout,
      retry_cnt: retryCount,
      rnr_retry: rnrRetry,
      sq_psn: this.psn,
      max_rd_atomic: maxRdAtomic,
    });
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
   * Write one send work request at `at` in `dv` (its SGEs at `sgeAt`, its sg_list already
   * pointing there), record it in `ring`'s `slot`; `next` is the next WR's address or 0.
   */
  #writeSendWr(wr: SendRequest, dv: DataView, at: number, sgeAt: number, next: number, ring: PostedRing, slot: number): void {
    const f = IBV_SEND_WR.fields;
    const opName = wr.opcode ?? 'send';
    const opcode = OPCODES[opName];
    if (opcode === undefined) throw new UsageError(`postSend: unknown opcode ${JSON.stringify(opName)}`);
    const wrId = wr.wrId ?? 0;
    if (!Number.isSafeInteger(wrId) || wrId < 0) throw new UsageError(`postSend: wrId must be a non-negative safe integer, got ${wrId}`);
    this.#writeSges(wr.sge, sgeAt, this.maxSendSge, ring, slot, 'postSend', opName, dv);
    const n = sgeList.count;
    const bytes = sgeList.bytes;
    let flags = 0;
    if (wr.signaled !== false || this.#signalAll) flags |= C.IBV_SEND_SIGNALED;
    if (wr.fence) flags |= C.IBV_SEND_FENCE;
    if (wr.solicited) flags |= C.IBV_SEND_SOLICITED;
    if (wr.inline) {
      if (opcode === C.IBV_WR_RDMA_READ || opcode >= C.IBV_WR_ATOMIC_CMP_AND_SWP) throw new UsageError(`postSend: ${opName} cannot be inline`);
      if (bytes > this.maxInlineData) throw new UsageError(`postSend: ${bytes} inline bytes exceed maxInlineData ${this.maxInlineData}`);
      flags |= C.IBV_SEND_INLINE;
    }
    setU64(dv, at + f.wr_id, wrId);
    setU64(dv, at + f.next, next);
    dv.setInt32(at + f.num_sge, n, true);
    dv.setUint32(at + f.opcode, opcode, true);
    dv.setUint32(at + f.send_flags, flags, true);
    if (opcode === C.IBV_WR_SEND_WITH_IMM || opcode === C.IBV_WR_RDMA_WRITE_WITH_IMM) {
      const imm = wr.imm ?? 0;
      if (!Number.isInteger(imm) || imm < 0 || imm > 0xffffffff) throw new UsageError(`postSend: imm must be a u32, got ${imm}`);
      dv.setUint32(at + f.imm_data, imm, false); // __be32: network order
    } else {
      dv.setUint32(at + f.imm_data, 0, true);
    }
    if (this.type === 'UD') {
      if (opcode !== C.IBV_WR_SEND && opcode !== C.IBV_WR_SEND_WITH_IMM) throw new UsageError(`postSend ${opName}: a UD queue pair only sends`);
      const ah = wr.ah;
      if (!ah || ah.disposed) throw ah ? new ClosedError('address handle in postSend') : new UsageError('postSend on a UD queue pair needs ah and remoteQpn');
      if (ah.pd !== this.pd) throw new UsageError('postSend: ah belongs to another protection domain');
      const remoteQpn = wr.remoteQpn;
      if (remoteQpn === undefined || !Number.isInteger(remoteQpn) || remoteQpn < 1 || remoteQpn > 0xffffff) {
        throw new UsageError(`postSend: remoteQpn must be an integer 1..0xffffff, got ${remoteQpn}`);
      }
      setU64(dv, at + f['wr.ud.ah'], ah.handle);
      dv.setUint32(at + f['wr.ud.remote_qpn'], remoteQpn, true);
      dv.setUint32(at + f['wr.ud.remote_qkey'], (wr.remoteQkey ?? this.#qkey) >>> 0, true);
      ring.ahs[slot] = ah;
    } else if (opcode !== C.IBV_WR_SEND && opcode !== C.IBV_WR_SEND_WITH_IMM) {
      const remote = wr.remoteAddr;
      const rkey = wr.rkey;
      if (remote === undefined || rkey === undefined || !Number.isInteger(rkey) || rkey < 0 || rkey > 0xffffffff) {
        throw new UsageError(`postSend ${opName}: remoteAddr and rkey (u32) are required`);
      }
      setU64Any(dv, at + f['wr.rdma.remote_addr'], remote);
      if (opcode >= C.IBV_WR_ATOMIC_CMP_AND_SWP) {
        if (n !== 1 || bytes !== 8) throw new UsageError(`postSend ${opName}: needs exactly one 8-byte SGE for the old value`);
        if (Number(typeof remote === 'bigint' ? remote & 7n : remote % 8) !== 0) throw new UsageError(`postSend ${opName}: remoteAddr must be 8-byte aligned`);
        if (wr.compareAdd === undefined) throw new UsageError(`postSend ${opName}: compareAdd is required`);
        if (opcode === C.IBV_WR_ATOMIC_CMP_AND_SWP && wr.swap === undefined) throw new UsageError('postSend compare-swap: swap is required');
        setU64Any(dv, at + f['wr.atomic.compare_add'], wr.compareAdd);
        setU64Any(dv, at + f['wr.atomic.swap'], wr.swap ?? 0);
        dv.setUint32(at + f['wr.atomic.rkey'], rkey, true);
      } else {
        dv.setUint32(at + f['wr.rdma.rkey'], rkey, true);
      }
    }
    ring.wrIds[slot] = wrId;
    ring.signaled[slot] = flags & C.IBV_SEND_SIGNALED ? 1 : 0;
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
        this.#writeSendWr(wr, dv, at, sgeAt, i + 1 < count ? base + at + IBV_SEND_WR.size : 0, ring, slot);
      }
    } catch (error) {
      for (let k = 0; k <= i && k < count; k++) ring.clear(ring.slot(k)); // drop references of the unposted chain
      throw error;
    }
    const rc = this.#postSend(qp, base + this.#sendWrAt, base + BAD_WR_AT);
    return this.#settlePost(rc, dv, base + this.#sendWrAt, IBV_SEND_WR.size, count, ring);
  }

  /**
   * Write one send work request into native memory once, for posting it many times with
   * `postPrepared()` — perftest's way: the hot loop then writes no struct field at all (the
   * request is validated once, here). Data of an inline request is copied at each post, so the
   * caller may change the bytes of its buffers between posts. The returned object keeps the
   * request's memory regions referenced; it is freed by its dispose() or with this queue pair.
   * UsageError / ClosedError as postSend for a malformed request.
   */
  prepareSend(request: SendRequest): PreparedSend {
    this.handle;
    const block = new NativeBlock(IBV_SEND_WR.size + this.maxSendSge * IBV_SGE.size, 'prepared send work request');
    try {
      setU64(block.view, IBV_SEND_WR.fields.sg_list, block.address + IBV_SEND_WR.size);
      const scratchRing = new PostedRing(1, this.maxSendSge);
      this.#writeSendWr(request, block.view, 0, IBV_SEND_WR.size, 0, scratchRing, 0);
      const refs = scratchRing.refs.slice(0, scratchRing.counts[0]) as MemoryRegion[];
      const prepared = new PreparedSend(this, block, refs, scratchRing.wrIds[0], scratchRing.signaled[0], scratchRing.ahs[0]);
      this.#prepared.add(prepared);
      return prepared;
    } catch (error) {
      block.free();
      throw error;
    }
  }

  /**
   * Post a request made by `prepareSend()`. Returns 0 or the provider's errno value (12 ENOMEM:
   * the send queue is full until completions are polled). Its regions stay referenced until its
   * completion (or a later one) is polled. ClosedError if this QP or one of the regions is disposed.
   */
  postPrepared(prepared: PreparedSend): number {
    const qp = this.#handle;
    if (!qp) throw new ClosedError(`queue pair ${this.qpn}`);
    if (prepared.qp !== this || prepared.address === 0) throw new UsageError('postPrepared: a disposed request, or one prepared on another queue pair');
    const ring = this.#sendRing;
    if (ring.size >= ring.capacity) {
      this.badIndex = 0;
      return 12;
    }
    const slot = ring.slot(0);
    const refs = prepared.refs;
    for (let j = 0; j < refs.length; j++) {
      if (refs[j].disposed) {
        ring.clear(slot);
        throw new ClosedError(`memory region (lkey ${refs[j].lkey}) in postPrepared`);
      }
      ring.refs[slot * ring.perSlot + j] = refs[j];
    }
    ring.counts[slot] = refs.length;
    ring.ahs[slot] = prepared.ah;
    ring.wrIds[slot] = prepared.wrId;
    ring.signaled[slot] = prepared.signaled;
    const rc = this.#postSend(qp, prepared.address, this.#scratch.address + BAD_WR_AT);
    if (rc !== 0) {
      ring.clear(slot);
      this.badIndex = 0;
      return rc;
    }
    this.badIndex = -1;
    ring.size += 1;
    return 0;
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

/**
 * Work requests written once into native memory by a queue pair, for posting many times: owns
 * that block (freed by dispose(), idempotent, or with the queue pair). The provider copies the
 * requests at each post, so the block is only read during the call.
 */
abstract class PreparedRequests {
  readonly qp: QueuePair;
  #block: NativeBlock | undefined;

  constructor(qp: QueuePair, block: NativeBlock) {
    this.qp = qp;
    this.#block = block;
  }

  /** @internal the first work request's address (0 once disposed). */
  get address(): number {
    return this.#block ? this.#block.address : 0;
  }

  dispose(): void {
    const block = this.#block;
    if (!block) return;
    this.#block = undefined;
    block.free();
    this.qp.forgetPrepared(this);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/**
 * A send work request written once into native memory by `QueuePair.prepareSend()`, posted with
 * `qp.postPrepared(prepared)` (or `prepared.post()`).
 */
export class PreparedSend extends PreparedRequests {
  /** @internal */
  readonly refs: readonly MemoryRegion[];
  readonly wrId: number;
  /** @internal 1 when signaled */
  readonly signaled: number;
  /** @internal */
  readonly ah: AddressHandle | undefined;

  /** @internal use qp.prepareSend(). */
  constructor(qp: QueuePair, block: NativeBlock, refs: readonly MemoryRegion[], wrId: number, signaled: number, ah: AddressHandle | undefined) {
    super(qp, block);
    this.refs = refs;
    this.wrId = wrId;
    this.signaled = signaled;
    this.ah = ah;
  }

  /** Post it on its queue pair: see QueuePair.postPrepared. */
  post(): number {
    return this.qp.postPrepared(this);
  }
}

/**
 * Receive work requests (one, or a chain) written once into native memory by
 * `QueuePair.prepareRecv()`, posted with `qp.postPreparedRecv(prepared)` (or `prepared.post()`).
 */
export class PreparedRecv extends PreparedRequests {
  /** How many receive work requests one post adds (the chain's length). */
  readonly count: number;
  /** @internal the regions of every request, in order (refCounts[i] for request i) */
  readonly refs: readonly MemoryRegion[];
  /** @internal */
  readonly refCounts: Uint8Array;
  /** @internal */
  readonly wrIds: Float64Array;

  /** @internal use qp.prepareRecv(). */
  constructor(qp: QueuePair, block: NativeBlock, refs: readonly MemoryRegion[], refCounts: Uint8Array, wrIds: Float64Array) {
    super(qp, block);
    this.refs = refs;
    this.refCounts = refCounts;
    this.wrIds = wrIds;
    this.count = wrIds.length;
  }

  /** The first request's wrId. */
  get wrId(): number {
    return this.wrIds[0];
  }

  /** Post it on its queue pair: see QueuePair.postPreparedRecv. */
  post(): number {
    return this.qp.postPreparedRecv(this);
  }
}
