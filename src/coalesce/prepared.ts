/**
 * PreparedRequest: a request (seed 002) checked, planned and formatted once, for a hot loop that
 * moves the same elements between the same places again and again — a ring's slots, a fixed
 * header plus body, a benchmark. `RequestEngine.prepare()` makes it; `submitPrepared()` then costs
 * no walk over the elements at all: its work requests' SGE lists were written into native memory
 * here, and a post writes only what changes per work request into the engine's post list (wr_id,
 * the link, the flags, the sg_list pointer, the remote address). The request engine's form of
 * `QueuePair.prepareSend`.
 *
 * Why the SGE lists and not whole work requests: one prepared request may be submitted many times
 * before the first settles, and several of those submissions may go in one ibv_post_send chain,
 * where one struct ibv_send_wr can appear only once (its `next` links it). Several work requests
 * of a chain may point at the same SGE list, though: the provider copies the SGEs into its send
 * queue during ibv_post_send, and reads the list only then.
 *
 * Who owns what: the prepared request keeps its elements array and their regions referenced; the
 * caller keeps the bytes where it wants them moved and the regions registered while any submission
 * is unsettled (a region disposed meanwhile: submitPrepared throws ClosedError; a work request
 * already posted fails with a protection error). dispose() frees the native SGE lists once no
 * submission of it is unsettled (at once if none is, else when the last one settles).
 */
import { ClosedError } from '../errors.js';
import { IBV_SGE } from '../../ffi/verbs-layout.js';
import type { MemoryRegion } from '../verbs/memory-region.js';
import { NativeBlock } from '../verbs/native.js';
import { writeSge } from './chain.js';
import { formatNext, FormattedWr, RequestCursor, type PlanLimits } from './plan.js';
import type { RemoteRegion, RequestElement, RequestOp } from './types.js';

const SGE_WORDS = IBV_SGE.size >> 2;

export class PreparedRequest {
  /** The engine that made it (submitPrepared refuses another engine's). */
  readonly owner: object;
  readonly op: RequestOp;
  /** 1 for a READ, 0 for a WRITE (the engine's hot-path form). */
  readonly isRead: number;
  readonly remote: RemoteRegion;
  readonly elements: readonly RequestElement[];
  /** Bytes of the whole request. */
  readonly bytes: number;
  /** Work requests one submission posts (0 for an empty request). */
  readonly workRequests: number;
  /** The limits it was formatted with (the engine's, lowered by prepare's options). */
  readonly maxMessageSize: number;
  readonly maxSge: number;
  /** The distinct regions of its elements (checked live at each submission). */
  readonly regions: readonly MemoryRegion[];

  /** Per work request: bytes, absolute remote address, SGE count, native address of its SGE list. */
  readonly wrBytes: Float64Array;
  readonly wrRemoteAddr: Float64Array;
  readonly wrSgeCount: Int32Array;
  readonly wrSgList: Float64Array;
  /**
   * The regions work request i names, without repeats: wrRegions[wrRegionStart[i] ..
   * wrRegionStart[i + 1]) — what the queue pair keeps referenced while it is posted.
   */
  readonly wrRegionStart: Int32Array;
  readonly wrRegions: readonly MemoryRegion[];

  #block: NativeBlock | undefined;
  #inUse = 0;
  #disposed = false;

  /**
   * @internal use RequestEngine.prepare(), which validated `elements` against `remote` and the
   * queue pair and checked `limits`.
   */
  constructor(owner: object, op: RequestOp, remote: RemoteRegion, elements: readonly RequestElement[], bytes: number, limits: PlanLimits) {
    this.owner = owner;
    this.op = op;
    this.isRead = op === 'read' ? 1 : 0;
    this.remote = { addr: remote.addr, rkey: remote.rkey, length: remote.length };
    this.elements = elements;
    this.bytes = bytes;
    this.maxMessageSize = limits.maxMessageSize;
    this.maxSge = limits.maxSge;

    // Plan it once by the engine's greedy rule (plan.ts), keeping each work request's SGEs.
    const cursor = new RequestCursor();
    const out = new FormattedWr(limits.maxSge);
    const sges: { element: number; offset: number; length: number }[][] = [];
    const wrs: { bytes: number; remoteOffset: number }[] = [];
    for (;;) {
      const done = formatNext(elements, cursor, limits, out);
      if (out.sgeCount > 0) {
        wrs.push({ bytes: out.bytes, remoteOffset: out.remoteOffset });
        const list = [];
        for (let j = 0; j < out.sgeCount; j++) list.push({ element: out.sgeElement[j], offset: out.sgeOffset[j], length: out.sgeLength[j] });
        sges.push(list);
      }
      if (done) break;
    }
    const n = wrs.length;
    this.workRequests = n;
    this.wrBytes = new Float64Array(n);
    this.wrRemoteAddr = new Float64Array(n);
    this.wrSgeCount = new Int32Array(n);
    this.wrSgList = new Float64Array(n);
    this.wrRegionStart = new Int32Array(n + 1);
    const totalSges = sges.reduce((s, list) => s + list.length, 0);
    const block = new NativeBlock(Math.max(1, totalSges) * IBV_SGE.size, 'prepared request SGE lists');
    this.#block = block;
    const u32 = new Uint32Array(block.view.buffer, block.view.byteOffset, block.view.byteLength >> 2);
    const wrRegions: MemoryRegion[] = [];
    const regions = new Set<MemoryRegion>();
    let at = 0; // SGE index in the block
    for (let i = 0; i < n; i++) {
      this.wrBytes[i] = wrs[i].bytes;
      this.wrRemoteAddr[i] = this.remote.addr + wrs[i].remoteOffset;
      this.wrSgeCount[i] = sges[i].length;
      this.wrSgList[i] = block.address + at * IBV_SGE.size;
      this.wrRegionStart[i] = wrRegions.length;
      const mine = new Set<MemoryRegion>();
      for (const sge of sges[i]) {
        const mr = elements[sge.element].mr;
        writeSge(u32, at * SGE_WORDS, mr.addr + sge.offset, sge.length, mr.lkey);
        at++;
        mine.add(mr);
        regions.add(mr);
      }
      wrRegions.push(...mine);
    }
    this.wrRegionStart[n] = wrRegions.length;
    this.wrRegions = wrRegions;
    this.regions = [...regions];
  }

  /** Submissions not yet settled. */
  get inUse(): number {
    return this.#inUse;
  }

  get disposed(): boolean {
    return this.#disposed;
  }

  /**
   * @internal the engine takes it for a submission: ClosedError once disposed or when one of its
   * regions was deregistered (its lkey would fail every work request).
   */
  acquire(): void {
    if (this.#disposed) throw new ClosedError('prepared request');
    const regions = this.regions;
    for (let i = 0; i < regions.length; i++) {
      if (regions[i].disposed) throw new ClosedError(`memory region (lkey ${regions[i].lkey}) of a prepared request`);
    }
    this.#inUse++;
  }

  /** @internal a submission settled (every work request it posted is accounted for). */
  release(): void {
    this.#inUse--;
    if (this.#disposed && this.#inUse === 0) this.#free();
  }

  /**
   * No further submissions (ClosedError); the native SGE lists are freed now, or when the last
   * unsettled submission settles (its queued work requests are still formatted from them).
   * Idempotent; the engine's dispose() disposes the requests it prepared.
   */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    if (this.#inUse === 0) this.#free();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  #free(): void {
    this.#block?.free();
    this.#block = undefined;
  }
}
