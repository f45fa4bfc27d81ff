/**
 * The chain of work requests one ibv_post_send hands over for the RequestEngine (engine.ts):
 * up to `postList` struct ibv_send_wr, each with room for `perWr` SGEs, written into one native
 * block made once (the addresses never move). A position's sg_list points at its own SGEs, or at
 * a prepared request's SGE list (prepared.ts), so it is written with the rest of the header.
 * Beside it, per chain position: the wr_id, whether it is signaled, the regions its SGEs use (the
 * queue pair keeps those referenced until the work request is reaped), and the request state
 * before the work request was formatted, so a post the provider refuses part of can be undone.
 *
 * No allocation after construction; the engine checked every value it writes.
 *
 * The hot path writes through a Uint32Array over the block rather than DataView calls (no call
 * and no Math.floor per u64 field). Measured on the host, the first 1 100 writes of 32 SGEs in a
 * fresh process (median of 5 interleaved runs, host load 2–5): Node 34 µs either way, Bun 17.9 µs
 * (DataView) / 16.7 µs (Uint32Array) — no measurable gain on its own; the engine's whole loop
 * gained from formatNext (plan.ts). Every field written is 4-byte aligned (struct ibv_send_wr
 * and ibv_sge on x86_64) and the block is page-aligned; a u64 is two little-endian words (the
 * layouts are x86_64's).
 */
import { C, IBV_SEND_WR, IBV_SGE } from '../../ffi/verbs-layout.js';
import type { MemoryRegion } from '../verbs/memory-region.js';
import { NativeBlock, setU64 } from '../verbs/native.js';
import type { QueuePair } from '../verbs/queue-pair.js';
import type { FormattedWr } from './plan.js';
import type { PreparedRequest } from './prepared.js';
import type { RequestElement } from './types.js';

const F = IBV_SEND_WR.fields;
const TWO_32 = 2 ** 32;
// Word indexes (4-byte units) of the fields written per work request and per SGE.
const WR_WORDS = IBV_SEND_WR.size >> 2;
const SGE_WORDS = IBV_SGE.size >> 2;
const W_WR_ID = F.wr_id >> 2;
const W_NEXT = F.next >> 2;
const W_NUM_SGE = F.num_sge >> 2;
const W_OPCODE = F.opcode >> 2;
const W_SEND_FLAGS = F.send_flags >> 2;
const W_SG_LIST = F.sg_list >> 2;
const W_REMOTE_ADDR = F['wr.rdma.remote_addr'] >> 2;
const W_RKEY = F['wr.rdma.rkey'] >> 2;
const W_SGE_ADDR = IBV_SGE.fields.addr >> 2;
const W_SGE_LENGTH = IBV_SGE.fields.length >> 2;
const W_SGE_LKEY = IBV_SGE.fields.lkey >> 2;

/**
 * Write one struct ibv_sge at word `o` of `u` (the one encoding of an SGE for the engine's chain
 * and for prepared requests' SGE lists). `addr` below 2^53; `x / 2^32 >>> 0` is the high word.
 */
export function writeSge(u: Uint32Array, o: number, addr: number, length: number, lkey: number): void {
  u[o + W_SGE_ADDR] = addr >>> 0;
  u[o + W_SGE_ADDR + 1] = (addr / TWO_32) >>> 0;
  u[o + W_SGE_LENGTH] = length;
  u[o + W_SGE_LKEY] = lkey;
}

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
  readonly #u32: Uint32Array;
  readonly #sgeAt: number;
  /** Per position: the address of its own SGE area (write() points sg_list there, writePrepared() elsewhere). */
  readonly #ownSgList: Float64Array;
  readonly #refs: (MemoryRegion | undefined)[];
  readonly #refCounts: Uint8Array;

  constructor(capacity: number, perWr: number) {
    this.capacity = capacity;
    this.perWr = perWr;
    this.#sgeAt = capacity * IBV_SEND_WR.size;
    this.#block = new NativeBlock(this.#sgeAt + capacity * perWr * IBV_SGE.size, 'request engine work requests');
    const dv = this.#block.view;
    this.#u32 = new Uint32Array(dv.buffer, dv.byteOffset, dv.byteLength >> 2);
    this.#ownSgList = new Float64Array(capacity);
    for (let i = 0; i < capacity; i++) {
      this.#ownSgList[i] = this.#block.address + this.#sgeAt + i * perWr * IBV_SGE.size;
      setU64(dv, i * IBV_SEND_WR.size + F.sg_list, this.#ownSgList[i]);
    }
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
    const u = this.#u32;
    const sgeAt = (this.#sgeAt >> 2) + k * this.perWr * SGE_WORDS;
    const n = out.sgeCount;
    for (let j = 0; j < n; j++) {
      const mr = elements[out.sgeElement[j]].mr;
      writeSge(u, sgeAt + j * SGE_WORDS, mr.addr + out.sgeOffset[j], out.sgeLength[j], mr.lkey);
      this.#refs[k * this.perWr + j] = mr;
    }
    this.#refCounts[k] = n;
    this.#header(k, wrId, this.#ownSgList[k], n, isRead, remoteAddr + out.remoteOffset, rkey);
  }

  /**
   * Write position `k` as work request `i` of a prepared request: its SGE list stays where
   * prepare() wrote it (sg_list points there: the provider reads it during ibv_post_send only, so
   * several positions may share it), and the queue pair keeps the regions it names referenced.
   */
  writePrepared(k: number, p: PreparedRequest, i: number, wrId: number): void {
    const from = p.wrRegionStart[i];
    const n = p.wrRegionStart[i + 1] - from;
    const refs = this.#refs;
    const base = k * this.perWr;
    for (let j = 0; j < n; j++) refs[base + j] = p.wrRegions[from + j];
    this.#refCounts[k] = n;
    this.#header(k, wrId, p.wrSgList[i], p.wrSgeCount[i], p.isRead, p.wrRemoteAddr[i], p.remote.rkey);
  }

  /** The fields of position k's struct ibv_send_wr that change from post to post (send_flags: post()). */
  #header(k: number, wrId: number, sgList: number, numSge: number, isRead: number, remoteAddr: number, rkey: number): void {
    const u = this.#u32;
    const at = k * WR_WORDS;
    this.ids[k] = wrId;
    // A u64 below 2^53 as two words; `x / 2^32 >>> 0` is the high word (truncation = floor here).
    u[at + W_WR_ID] = wrId >>> 0;
    u[at + W_WR_ID + 1] = (wrId / TWO_32) >>> 0;
    const next = this.#block.address + (at + WR_WORDS) * 4;
    u[at + W_NEXT] = next >>> 0;
    u[at + W_NEXT + 1] = (next / TWO_32) >>> 0;
    u[at + W_SG_LIST] = sgList >>> 0;
    u[at + W_SG_LIST + 1] = (sgList / TWO_32) >>> 0;
    u[at + W_NUM_SGE] = numSge;
    u[at + W_OPCODE] = isRead ? C.IBV_WR_RDMA_READ : C.IBV_WR_RDMA_WRITE;
    u[at + W_REMOTE_ADDR] = remoteAddr >>> 0;
    u[at + W_REMOTE_ADDR + 1] = (remoteAddr / TWO_32) >>> 0;
    u[at + W_RKEY] = rkey;
  }

  /**
   * Post positions [0, k) in one ibv_post_send (send flags from `signaled`, the last one ending
   * the chain). Returns the call's result; on failure `qp.badIndex` says how many were taken.
   * The region references pass to the queue pair either way (it keeps those of what it took).
   */
  post(qp: QueuePair, k: number): number {
    const u = this.#u32;
    for (let i = 0; i < k; i++) u[i * WR_WORDS + W_SEND_FLAGS] = this.signaled[i] ? C.IBV_SEND_SIGNALED : 0;
    u[(k - 1) * WR_WORDS + W_NEXT] = 0;
    u[(k - 1) * WR_WORDS + W_NEXT + 1] = 0;
    const rc = qp.postSendChain(this.#block.address, k, this.ids, this.signaled, this.#refs, this.#refCounts, this.perWr);
    // Drop the chain's references (the queue pair holds what it took): only the entries in use.
    const refs = this.#refs;
    for (let i = 0; i < k; i++) for (let j = 0, base = i * this.perWr, n = this.#refCounts[i]; j < n; j++) refs[base + j] = undefined;
    return rc;
  }

  free(): void {
    this.#block.free();
  }
}
