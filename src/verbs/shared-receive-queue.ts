/**
 * SharedReceiveQueue (struct ibv_srq): one pool of receive work requests that several queue pairs
 * of a protection domain take their receives from (`pd.createQueuePair({ ..., srq })`), so a
 * server with many connections posts buffers once instead of per connection.
 *
 * Hot path: postRecv writes the work requests and their SGE lists into native memory made once
 * per SRQ, calls the provider's post_srq_recv through the cached static-inline shim and returns a
 * number (0, or the errno the provider returned — ENOMEM when the SRQ is full). Nothing is
 * allocated.
 *
 * Lifetime: every memory region named by a posted receive is kept in a slot until that receive's
 * completion is polled from the CQ of whichever queue pair consumed it (CompletionQueue.poll →
 * QueuePair.reap → SharedReceiveQueue.reap), or the SRQ is destroyed. Unlike a queue pair's own
 * receive queue, the completions of an SRQ come back in no fixed order — several queue pairs,
 * perhaps several CQs, messages of different lengths — so "release everything up to the completed
 * request" would drop references of receives the NIC is still writing. Each posted receive
 * therefore carries its slot in the native wr_id (see SLOT_BASE) and its completion releases
 * exactly that slot; reap() puts the caller's wrId back into the Completion before poll() returns.
 * (A completion polled after its queue pair was disposed reaches no SRQ and shows that raw
 * wr_id, 2^53 or more.)
 */
import { C, IBV_RECV_WR, IBV_SGE, IBV_SRQ_ATTR, IBV_SRQ_INIT_ATTR } from '../../ffi/verbs-layout.js';
import { ClosedError, UsageError } from '../errors.js';
import type { Completion } from './completion-queue.js';
import { loadVerbs } from './device.js';
import { countLive } from './live.js';
import type { MemoryRegion } from './memory-region.js';
import { checkPointer, checkStatus, CleanupSteps, getU64, hex, NativeBlock, setU64 } from './native.js';
import type { ProtectionDomain } from './protection-domain.js';
import { intIn, sgeList, writeRecvChain, writeSgeList, type QueuePair, type RecvRequest, type RefSlots } from './queue-pair.js';

export interface SharedReceiveQueueOptions {
  /** Most receive work requests posted at once (1..2^20; the device may grant more, see `maxWr`). */
  readonly maxWr: number;
  /** Most SGEs per receive request (1..255). Default 1. */
  readonly maxSge?: number;
  /** Arm the low watermark right after creation (see `armLimit`). Default: not armed. */
  readonly limit?: number;
  /** Most work requests in one postRecv chain. Default min(maxWr, 32). */
  readonly maxChain?: number;
}

/** What ibv_query_srq reports. */
export interface SharedReceiveQueueAttributes {
  readonly maxWr: number;
  readonly maxSge: number;
  /** The armed low watermark, or 0 when not armed (any more: it disarms when it fires). */
  readonly limit: number;
}

/**
 * The native wr_id of a posted SRQ receive is SLOT_BASE + 2·slot, not the caller's wrId. Values
 * from 2^53 up are never a wrId the caller gave (postSend/postRecv accept safe integers only), so
 * a completion's wrId tells by itself whether it is an SRQ receive — also when it failed, when
 * its opcode is undefined. Doubles between 2^53 and 2^54 are spaced 2 apart, so SLOT_BASE + 2·slot
 * is exact and CompletionQueue.poll's plain u64 decode reads it back unchanged.
 */
const SLOT_BASE = 2 ** 53;

/**
 * Posted receives by slot: the caller's wrId and the regions of each, and a stack of free slots.
 * Starts at the SRQ's granted maxWr and grows (rarely) instead of refusing: a receive consumed by
 * a queue pair that is reset or destroyed before its completion is polled never completes, so its
 * slot stays taken until the SRQ is disposed, and the provider — not this table — says when the
 * SRQ is full.
 */
class SlotTable implements RefSlots {
  wrIds: Float64Array;
  refs: (MemoryRegion | undefined)[];
  counts: Uint8Array;
  busy: Uint8Array;
  free: Int32Array;
  freeTop: number;
  used = 0;
  constructor(
    public capacity: number,
    readonly perSlot: number,
  ) {
    this.wrIds = new Float64Array(capacity);
    this.refs = new Array(capacity * perSlot).fill(undefined);
    this.counts = new Uint8Array(capacity);
    this.busy = new Uint8Array(capacity);
    this.free = new Int32Array(capacity);
    // Lowest slots on top, so a quiet SRQ reuses the same few.
    for (let i = 0; i < capacity; i++) this.free[i] = capacity - 1 - i;
    this.freeTop = capacity;
  }
  take(): number {
    if (this.freeTop === 0) this.#grow();
    const slot = this.free[--this.freeTop];
    this.busy[slot] = 1;
    this.used++;
    return slot;
  }
  put(slot: number): void {
    const base = slot * this.perSlot;
    for (let j = 0; j < this.counts[slot]; j++) this.refs[base + j] = undefined;
    this.counts[slot] = 0;
    this.busy[slot] = 0;
    this.free[this.freeTop++] = slot;
    this.used--;
  }
  releaseAll(): void {
    for (let s = 0; s < this.capacity; s++) if (this.busy[s]) this.put(s);
  }
  #grow(): void {
    const old = this.capacity;
    const capacity = old * 2;
    const wrIds = new Float64Array(capacity);
    wrIds.set(this.wrIds);
    const counts = new Uint8Array(capacity);
    counts.set(this.counts);
    const busy = new Uint8Array(capacity);
    busy.set(this.busy);
    const free = new Int32Array(capacity);
    for (let i = 0; i < capacity - old; i++) free[i] = capacity - 1 - i; // the table was full: only new slots are free
    this.refs = this.refs.concat(new Array(old * this.perSlot).fill(undefined));
    this.wrIds = wrIds;
    this.counts = counts;
    this.busy = busy;
    this.free = free;
    this.freeTop = capacity - old;
    this.capacity = capacity;
  }
}

// Scratch layout of an SRQ's native block:
//   0    struct ibv_srq_init_attr (24) / struct ibv_srq_attr (12)
//   64   bad_wr out-pointer (8)
//   128  recv WRs (maxChain × 32), then their SGEs (maxChain × maxSge × 16)
const ATTR_AT = 0;
const BAD_WR_AT = 64;
const ARENA_AT = 128;

export class SharedReceiveQueue {
  readonly pd: ProtectionDomain;
  /** Receive work requests the SRQ holds (≥ the maxWr asked for: ibv_query_srq after creation). */
  readonly maxWr: number;
  /** SGEs per receive request this SRQ accepts. */
  readonly maxSge: number;
  readonly maxChain: number;
  /** After a failed post: the index of the first work request not posted. */
  badIndex = -1;
  #handle: number;
  readonly #scratch: NativeBlock;
  readonly #wrAt: number;
  readonly #sgeAt: number;
  readonly #slots: SlotTable;
  /** Slots taken for the chain being posted (a prepared chain may be maxWr long). */
  readonly #taken: Int32Array;
  readonly #post: (srq: number, wr: number, bad: number) => number;
  readonly #qps = new Set<QueuePair>();
  readonly #prepared = new Set<PreparedSharedRecv>();

  /** @internal use pd.createSharedReceiveQueue(). */
  constructor(pd: ProtectionDomain, pdHandle: number, options: SharedReceiveQueueOptions) {
    const o = options ?? ({} as SharedReceiveQueueOptions);
    if (typeof o !== 'object') throw new UsageError('createSharedReceiveQueue needs { maxWr }');
    const maxWr = o.maxWr;
    const maxSge = o.maxSge ?? 1;
    if (maxWr === undefined) throw new UsageError('createSharedReceiveQueue needs { maxWr } (1..1048576)');
    intIn('maxWr', maxWr, 1, 1 << 20);
    intIn('maxSge', maxSge, 1, 255);
    intIn('limit', o.limit, 0, maxWr);
    const maxChain = o.maxChain ?? Math.min(maxWr, 32);
    intIn('maxChain', maxChain, 1, 4096);

    const v = loadVerbs();
    this.pd = pd;
    this.maxChain = maxChain;
    this.#wrAt = ARENA_AT;
    this.#sgeAt = this.#wrAt + maxChain * IBV_RECV_WR.size;
    const scratch = new NativeBlock(this.#sgeAt + maxChain * maxSge * IBV_SGE.size, 'shared receive queue work requests');
    this.#scratch = scratch;
    const dv = scratch.view;
    const f = IBV_SRQ_INIT_ATTR.fields;
    dv.setUint32(ATTR_AT + f['attr.max_wr'], maxWr, true);
    dv.setUint32(ATTR_AT + f['attr.max_sge'], maxSge, true);
    let handle: number;
    try {
      handle = checkPointer('ibv_create_srq', v.ibv_create_srq(pdHandle, scratch.address + ATTR_AT) as number, { pd: hex(pdHandle), max_wr: maxWr, max_sge: maxSge });
    } catch (error) {
      scratch.free();
      throw error;
    }
    this.#handle = handle;
    // ibv_create_srq writes back what it granted — in principle: rxe (kernel 6.1, rdma-core 44)
    // hands back the max_wr asked for while its queue holds the next power of two minus one
    // (4 → 7), which ibv_query_srq reports and post_srq_recv accepts. Ask, so that maxWr is the
    // real capacity; the write-back stays if the provider cannot answer.
    let grantedWr = dv.getUint32(ATTR_AT + f['attr.max_wr'], true);
    const grantedSge = dv.getUint32(ATTR_AT + f['attr.max_sge'], true);
    dv.setUint32(ATTR_AT + IBV_SRQ_ATTR.fields.max_wr, 0, true);
    if ((v.ibv_query_srq(handle, scratch.address + ATTR_AT) as number) === 0) {
      grantedWr = Math.max(grantedWr, dv.getUint32(ATTR_AT + IBV_SRQ_ATTR.fields.max_wr, true));
    }
    this.maxWr = grantedWr;
    this.maxSge = Math.min(grantedSge, maxSge);
    if (o.limit) {
      try {
        this.armLimit(o.limit);
      } catch (error) {
        // Unwind the half-built SRQ.
        this.#handle = 0;
        v.ibv_destroy_srq(handle);
        scratch.free();
        throw error;
      }
    }
    this.#slots = new SlotTable(Math.max(this.maxWr, 1), maxSge);
    this.#taken = new Int32Array(Math.max(this.maxWr, maxChain));
    this.#post = pd.context.inline.ibv_post_srq_recv;
    for (let i = 0; i < maxChain; i++) {
      setU64(dv, this.#wrAt + i * IBV_RECV_WR.size + IBV_RECV_WR.fields.sg_list, scratch.address + this.#sgeAt + i * maxSge * IBV_SGE.size);
    }
    countLive('srqs', 1);
  }

  /** The struct ibv_srq address. ClosedError once disposed. */
  get handle(): number {
    if (!this.#handle) throw new ClosedError('shared receive queue');
    return this.#handle;
  }

  get disposed(): boolean {
    return this.#handle === 0;
  }

  /** Receives posted whose completion has not been polled yet. */
  get outstanding(): number {
    return this.#slots.used;
  }

  /** The queue pairs that receive through this SRQ. */
  get queuePairs(): readonly QueuePair[] {
    return [...this.#qps];
  }

  /** ibv_query_srq. SystemError if the call fails, ClosedError once disposed. */
  query(): SharedReceiveQueueAttributes {
    const handle = this.handle;
    const at = ATTR_AT;
    this.#scratch.bytes.fill(0, at, at + IBV_SRQ_ATTR.size);
    checkStatus('ibv_query_srq', loadVerbs().ibv_query_srq(handle, this.#scratch.address + at) as number, { srq: hex(handle) });
    const dv = this.#scratch.view;
    const f = IBV_SRQ_ATTR.fields;
    return {
      maxWr: dv.getUint32(at + f.max_wr, true),
      maxSge: dv.getUint32(at + f.max_sge, true),
      limit: dv.getUint32(at + f.srq_limit, true),
    };
  }

  /**
   * Arm the low watermark (ibv_modify_srq with IBV_SRQ_LIMIT): once fewer than `limit` receives
   * remain posted, the device raises the asynchronous event IBV_EVENT_SRQ_LIMIT_REACHED (read it
   * with `context.nextAsyncEvent()`: its `srq` is this SRQ) and disarms — `query().limit` reads
   * 0 again. UsageError for a limit outside 1..maxWr, SystemError if the device refuses it.
   */
  armLimit(limit: number): void {
    const handle = this.handle;
    if (limit === undefined) throw new UsageError(`armLimit needs a limit (1..${this.maxWr})`);
    intIn('limit', limit, 1, this.maxWr);
    const dv = this.#scratch.view;
    this.#scratch.bytes.fill(0, ATTR_AT, ATTR_AT + IBV_SRQ_ATTR.size);
    dv.setUint32(ATTR_AT + IBV_SRQ_ATTR.fields.srq_limit, limit, true);
    const rc = loadVerbs().ibv_modify_srq(handle, this.#scratch.address + ATTR_AT, C.IBV_SRQ_LIMIT) as number;
    checkStatus('ibv_modify_srq', rc, { srq: hex(handle), srq_limit: limit, srq_attr_mask: 'LIMIT' });
  }

  /**
   * Post one receive work request or a chain (same RecvRequest shape and checks as
   * QueuePair.postRecv). Returns 0 or the provider's errno value (12 ENOMEM: the SRQ is full),
   * with `badIndex` set to the first request not posted. The regions stay referenced until the
   * completion of their receive is polled, on the CQ of whichever queue pair consumed it.
   * UsageError for a malformed request (or a chain longer than maxChain), ClosedError on a
   * disposed SRQ or region.
   */
  postRecv(requests: RecvRequest | readonly RecvRequest[]): number {
    const srq = this.#handle;
    if (!srq) throw new ClosedError('shared receive queue');
    const isArray = Array.isArray(requests);
    const count = isArray ? (requests as readonly RecvRequest[]).length : 1;
    if (count === 0) return 0;
    if (count > this.maxChain) throw new UsageError(`postRecv: a chain of ${count} exceeds maxChain ${this.maxChain}`);
    const slots = this.#slots;
    const taken = this.#taken;
    const dv = this.#scratch.view;
    const base = this.#scratch.address;
    const f = IBV_RECV_WR.fields;
    let n = 0; // slots taken so far
    try {
      for (let i = 0; i < count; i++) {
        const wr = isArray ? (requests as readonly RecvRequest[])[i] : (requests as RecvRequest);
        if (!wr || typeof wr !== 'object') throw new UsageError(`postRecv: request ${i} is not an object`);
        const wrId = wr.wrId ?? 0;
        if (!Number.isSafeInteger(wrId) || wrId < 0) throw new UsageError(`postRecv: wrId must be a non-negative safe integer, got ${wrId}`);
        const slot = slots.take();
        taken[n++] = slot;
        const at = this.#wrAt + i * IBV_RECV_WR.size;
        writeSgeList(this.pd, wr.sge, dv, this.#sgeAt + i * this.maxSge * IBV_SGE.size, this.maxSge, slots, slot, 'postRecv', '', "this shared receive queue's");
        setU64(dv, at + f.wr_id, SLOT_BASE + 2 * slot);
        setU64(dv, at + f.next, i + 1 < count ? base + at + IBV_RECV_WR.size : 0);
        dv.setInt32(at + f.num_sge, sgeList.count, true);
        slots.wrIds[slot] = wrId;
      }
    } catch (error) {
      for (let k = 0; k < n; k++) slots.put(taken[k]); // drop references of the unposted chain
      throw error;
    }
    const rc = this.#post(srq, base + this.#wrAt, base + BAD_WR_AT);
    return this.#settle(rc, base + this.#wrAt, count);
  }

  /**
   * After ibv_post_srq_recv of `count` requests whose slots are in #taken: on failure bad_wr says
   * where the provider stopped — keep the slots before it (posted), free the rest.
   */
  #settle(rc: number, chainAt: number, count: number): number {
    if (rc === 0) {
      this.badIndex = -1;
      return 0;
    }
    const bad = getU64(this.#scratch.view, BAD_WR_AT);
    const posted = bad ? Math.max(0, Math.min(count, (bad - chainAt) / IBV_RECV_WR.size)) : 0;
    for (let k = posted; k < count; k++) this.#slots.put(this.#taken[k]);
    this.badIndex = posted;
    return rc;
  }

  /**
   * Write one receive work request — or a chain — into native memory once, for posting it many
   * times with `postPreparedRecv()` (each post writes only the requests' wr_id, which carries the
   * slot). The returned object keeps the requests' regions referenced; it is freed by its
   * dispose() or with this SRQ. UsageError / ClosedError as postRecv (a chain is 1..maxWr long).
   */
  prepareRecv(requests: RecvRequest | readonly RecvRequest[]): PreparedSharedRecv {
    this.handle;
    const chain = writeRecvChain(this.pd, requests, this.maxSge, this.maxWr, 'maxWr', "this shared receive queue's", false);
    const prepared = new PreparedSharedRecv(this, chain.block, chain.refs, chain.refCounts, chain.wrIds);
    this.#prepared.add(prepared);
    return prepared;
  }

  /**
   * Post a request (or chain) made by `prepareRecv()`. Returns 0 or the provider's errno value
   * (12 ENOMEM: the SRQ is full), with `badIndex` as postRecv. The regions stay referenced until
   * the completions are polled. ClosedError if this SRQ or one of the regions is disposed.
   */
  postPreparedRecv(prepared: PreparedSharedRecv): number {
    const srq = this.#handle;
    if (!srq) throw new ClosedError('shared receive queue');
    if (prepared?.srq !== this || prepared.block === undefined) throw new UsageError('postPreparedRecv: a disposed request, or one prepared on another shared receive queue');
    const block = prepared.block;
    const slots = this.#slots;
    const taken = this.#taken;
    const count = prepared.count;
    const refs = prepared.refs;
    const refCounts = prepared.refCounts;
    const wrIds = prepared.wrIds;
    const dv = block.view;
    let r = 0;
    for (let i = 0; i < count; i++) {
      const slot = slots.take();
      taken[i] = slot;
      const n = refCounts[i];
      for (let j = 0; j < n; j++) {
        const mr = refs[r + j];
        if (mr.disposed) {
          for (let k = 0; k <= i; k++) slots.put(taken[k]);
          throw new ClosedError(`memory region (lkey ${mr.lkey}) in postPreparedRecv`);
        }
        slots.refs[slot * slots.perSlot + j] = mr;
        slots.counts[slot] = j + 1;
      }
      slots.wrIds[slot] = wrIds[i];
      setU64(dv, i * IBV_RECV_WR.size + IBV_RECV_WR.fields.wr_id, SLOT_BASE + 2 * slot);
      r += n;
    }
    const rc = this.#post(srq, block.address, this.#scratch.address + BAD_WR_AT);
    return this.#settle(rc, block.address, count);
  }

  /** @internal */
  forgetPrepared(prepared: PreparedSharedRecv): void {
    this.#prepared.delete(prepared);
  }

  /** @internal a queue pair created with this SRQ. */
  attach(qp: QueuePair): void {
    this.#qps.add(qp);
  }

  /** @internal */
  detach(qp: QueuePair): void {
    this.#qps.delete(qp);
  }

  /**
   * @internal A completion of a queue pair that receives through this SRQ was polled: when it is
   * one of this SRQ's receives, release that slot's references, put the caller's wrId into `c`
   * and return true; false for anything else (a send of that queue pair).
   */
  reap(c: Completion): boolean {
    const w = c.wrId;
    if (w < SLOT_BASE) return false;
    const slot = (w - SLOT_BASE) / 2;
    const slots = this.#slots;
    if (slot >= slots.capacity || slots.busy[slot] === 0) return true; // already released (e.g. the SRQ was reset by dispose)
    c.wrId = slots.wrIds[slot];
    slots.put(slot);
    return true;
  }

  /**
   * Destroy the SRQ (ibv_destroy_srq) after the queue pairs that receive through it. Idempotent.
   * Receives still posted are abandoned; the NIC no longer touches their memory, so their
   * references are released (unless ibv_destroy_srq fails: then they stay, and the SystemError
   * is thrown once every step has run).
   */
  dispose(): void {
    const handle = this.#handle;
    if (!handle) return;
    const steps = new CleanupSteps();
    // ibv_destroy_srq fails with EBUSY while a QP still uses the SRQ.
    for (const qp of [...this.#qps]) steps.run(() => qp.dispose());
    this.#handle = 0;
    countLive('srqs', -1);
    this.pd.forget(this);
    const rc = loadVerbs().ibv_destroy_srq(handle) as number;
    if (rc === 0) this.#slots.releaseAll();
    for (const prepared of [...this.#prepared]) steps.run(() => prepared.dispose());
    this.#scratch.free();
    steps.run(() => checkStatus('ibv_destroy_srq', rc, { srq: hex(handle) }));
    steps.finish();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/**
 * Receive work requests (one, or a chain) written once into native memory by
 * `SharedReceiveQueue.prepareRecv()`, posted with `srq.postPreparedRecv(prepared)` (or
 * `prepared.post()`). Owns that block: freed by dispose() (idempotent) or with the SRQ. The
 * provider copies the requests at each post, so the block is only read during the call.
 */
export class PreparedSharedRecv {
  readonly srq: SharedReceiveQueue;
  /** How many receive work requests one post adds (the chain's length). */
  readonly count: number;
  /** @internal the regions of every request, in order (refCounts[i] for request i) */
  readonly refs: readonly MemoryRegion[];
  /** @internal */
  readonly refCounts: Uint8Array;
  /** @internal */
  readonly wrIds: Float64Array;
  #block: NativeBlock | undefined;

  /** @internal use srq.prepareRecv(). */
  constructor(srq: SharedReceiveQueue, block: NativeBlock, refs: readonly MemoryRegion[], refCounts: Uint8Array, wrIds: Float64Array) {
    this.srq = srq;
    this.#block = block;
    this.refs = refs;
    this.refCounts = refCounts;
    this.wrIds = wrIds;
    this.count = wrIds.length;
  }

  /** @internal the native block (undefined once disposed). */
  get block(): NativeBlock | undefined {
    return this.#block;
  }

  /** The first request's wrId. */
  get wrId(): number {
    return this.wrIds[0];
  }

  /** Post it on its SRQ: see SharedReceiveQueue.postPreparedRecv. */
  post(): number {
    return this.srq.postPreparedRecv(this);
  }

  dispose(): void {
    const block = this.#block;
    if (!block) return;
    this.#block = undefined;
    block.free();
    this.srq.forgetPrepared(this);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
