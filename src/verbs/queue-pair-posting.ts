/**
 * How queue pairs (and shared receive queues) write work requests into native memory and keep
 * the memory regions those requests name referenced until their completions are polled: SGE lists,
 * prepared receive chains, and the ring of posted requests. Internal to src/verbs/.
 */
import { IBV_RECV_WR, IBV_SGE } from '../../ffi/verbs-layout.js';
import { ClosedError, UsageError } from '../errors.js';
import type { AddressHandle } from './address-handle.js';
import type { MemoryRegion } from './memory-region.js';
import { NativeBlock, setU64 } from './native.js';
import type { ProtectionDomain } from './protection-domain.js';
import type { RecvRequest, Sge } from './queue-pair-types.js';

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

/** @internal The memory references of posted work requests, one slot per WR, released in order. */
export class PostedRing {
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

/**
 * @internal Record a chain of `count` send requests in `ring`'s next slots: request i keeps
 * `refCounts[i]` regions — `refs[i * perWr ...]` when `perWr` > 0, else the next ones of `refs`
 * in order — with `wrIds[i]`, `signaled[i]` and `ahs?.[i]`. ClosedError (naming `method`) for a
 * disposed region, after clearing what it recorded. The caller checked that the ring has room.
 */
export function stageChain(
  ring: PostedRing,
  count: number,
  refs: readonly (MemoryRegion | undefined)[],
  refCounts: Uint8Array,
  perWr: number,
  wrIds: Float64Array,
  signaled: Uint8Array,
  ahs: readonly (AddressHandle | undefined)[] | undefined,
  method: string,
): void {
  let r = 0;
  for (let i = 0; i < count; i++) {
    const slot = ring.slot(i);
    const n = refCounts[i];
    if (perWr > 0) r = i * perWr;
    ring.counts[slot] = 0;
    for (let j = 0; j < n; j++) {
      const mr = refs[r + j]!;
      if (mr.disposed) {
        for (let k = 0; k <= i; k++) ring.clear(ring.slot(k));
        throw new ClosedError(`memory region (lkey ${mr.lkey}) in ${method}`);
      }
      ring.refs[slot * ring.perSlot + j] = mr;
    }
    ring.counts[slot] = n;
    ring.ahs[slot] = ahs ? ahs[i] : undefined;
    ring.wrIds[slot] = wrIds[i];
    ring.signaled[slot] = signaled[i];
    r += n;
  }
}
