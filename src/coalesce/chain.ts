/**
 * The chain of work requests one ibv_post_send hands over for the RequestEngine (engine.ts):
 * up to `postList` struct ibv_send_wr, each with room for `perWr` SGEs, written into one native
 * block made once (the addresses never move, so each WR's sg_list pointer is written once, here).
 * Beside it, per chain position: the wr_id, whether it is signaled, the regions its SGEs use (the
 * queue pair keeps those referenced until the work request is reaped), and the request state
 * before the work request was formatted, so a post the provider refuses part of can be undone.
 *
 * No allocation after construction; the engine checked every value it writes.
 */
import { C, IBV_SEND_WR, IBV_SGE } from '../../ffi/verbs-layout.js';
import type { MemoryRegion } from '../verbs/memory-region.js';
import { NativeBlock, setU64 } from '../verbs/native.js';
import type { QueuePair } from '../verbs/queue-pair.js';
import type { FormattedWr } from './plan.js';
import type { RequestElement } from './types.js';

const F = IBV_SEND_WR.fields;

export class WorkRequestChain {
  /** Work requests per post, at most. */
  readonly capacity: number;
  /** SGEs per work request, at most. */
  readonly perWr: number;
  readonly ids: Float64Array;
  readonly signaled: Uint8Array;
  /** Per chain position: the request slot and its cursor (element, offset) before formatting. */
  readonly undoSlot: Int32Array;
  readonly undoElement: Int32Array;
  readonly undoOffset: Float64Array;

  readonly #block: NativeBlock;
  readonly #sgeAt: number;
  readonly #refs: (MemoryRegion | undefined)[];
  readonly #refCounts: Uint8Array;

  constructor(capacity: number, perWr: number) {
    this.capacity = capacity;
    this.perWr = perWr;
    this.#sgeAt = capacity * IBV_SEND_WR.size;
    this.#block = new NativeBlock(this.#sgeAt + capacity * perWr * IBV_SGE.size, 'request engine work requests');
    const dv = this.#block.view;
    for (let i = 0; i < capacity; i++) setU64(dv, i * IBV_SEND_WR.size + F.sg_list, this.#block.address + this.#sgeAt + i * perWr * IBV_SGE.size);
    this.ids = new Float64Array(capacity);
    this.signaled = new Uint8Array(capacity);
    this.#refs = new Array(capacity * perWr).fill(undefined);
    this.#refCounts = new Uint8Array(capacity);
    this.undoSlot = new Int32Array(capacity);
    this.undoElement = new Int32Array(capacity);
    this.undoOffset = new Float64Array(capacity);
  }

  /**
   * Write position `k`: the SGEs `out` formatted from `elements`, an RDMA READ or WRITE to
   * `remoteAddr` + out.remoteOffset with `rkey`, wr_id `wrId`; linked to position k + 1 (seal()
   * ends the chain). Its signaled flag is set apart (signaled[k], written by seal()).
   */
  write(k: number, elements: readonly RequestElement[], out: FormattedWr, isRead: number, remoteAddr: number, rkey: number, wrId: number): void {
    const dv = this.#block.view;
    const at = k * IBV_SEND_WR.size;
    const sgeAt = this.#sgeAt + k * this.perWr * IBV_SGE.size;
    const n = out.sgeCount;
    for (let j = 0; j < n; j++) {
      const mr = elements[out.sgeElement[j]].mr;
      const o = sgeAt + j * IBV_SGE.size;
      setU64(dv, o + IBV_SGE.fields.addr, mr.addr + out.sgeOffset[j]);
      dv.setUint32(o + IBV_SGE.fields.length, out.sgeLength[j], true);
      dv.setUint32(o + IBV_SGE.fields.lkey, mr.lkey, true);
      this.#refs[k * this.perWr + j] = mr;
    }
    this.#refCounts[k] = n;
    this.ids[k] = wrId;
    setU64(dv, at + F.wr_id, wrId);
    setU64(dv, at + F.next, this.#block.address + at + IBV_SEND_WR.size);
    dv.setInt32(at + F.num_sge, n, true);
    dv.setUint32(at + F.opcode, isRead ? C.IBV_WR_RDMA_READ : C.IBV_WR_RDMA_WRITE, true);
    setU64(dv, at + F['wr.rdma.remote_addr'], remoteAddr + out.remoteOffset);
    dv.setUint32(at + F['wr.rdma.rkey'], rkey, true);
  }

  /**
   * Post positions [0, k) in one ibv_post_send (send flags from `signaled`, the last one ending
   * the chain). Returns the call's result; on failure `qp.badIndex` says how many were taken.
   * The region references pass to the queue pair either way (it keeps those of what it took).
   */
  post(qp: QueuePair, k: number): number {
    const dv = this.#block.view;
    for (let i = 0; i < k; i++) dv.setUint32(i * IBV_SEND_WR.size + F.send_flags, this.signaled[i] ? C.IBV_SEND_SIGNALED : 0, true);
    setU64(dv, (k - 1) * IBV_SEND_WR.size + F.next, 0);
    const rc = qp.postSendChain(this.#block.address, k, this.ids, this.signaled, this.#refs, this.#refCounts, this.perWr);
    for (let i = 0; i < k * this.perWr; i++) this.#refs[i] = undefined;
    return rc;
  }

  free(): void {
    this.#block.free();
  }
}
