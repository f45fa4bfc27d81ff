/**
 * The pool's allocator (seed 003, claims 8–12): variable-length contiguous blocks carved from the
 * heap inside the shared region, so an offset it returns is valid in every process.
 *
 * Boundary tags with segregated free lists: every block has a 32-byte header (size, state,
 * previous block's size, a check word, owners or free-list links; layout.ts). Free blocks sit in
 * 32 bins by floor(log2(granules)); a request takes the first fit among the first few blocks of
 * its own bin, else the first block of the next non-empty bin (found through a bitmap), else
 * the first fit in the rest of its own bin, and the rest is split off when it can
 * form a block. Freeing merges with free neighbours on both sides at once, so two free blocks are
 * never adjacent, and a heap with nothing allocated is one free block again.
 *
 * Every method here runs under the allocator's lock (lock 0, held by ShmemPool); `usedIndex()`
 * also runs without it for read/write checks. Every header, link and size read is checked first
 * (shared memory is untrusted): a bad one is a CorruptionError naming the region, and free-list
 * walks are bounded, so a cycle cannot hang a process.
 *
 * Crash recovery: if a process dies holding the allocator's lock, the next one is told
 * 'owner-died' and calls rebuild(): it walks the heap by block sizes, merges free neighbours,
 * rebuilds the bins and counters. A header torn mid-write by the death fails its check word and
 * is reported as corruption rather than guessed at.
 *
 * Fragmentation is reported by stats(): fragmentation = 1 − largestFree / freeBytes (0 when the
 * free space is one block, near 1 when it is in many small pieces).
 */
import { UsageError } from '../errors.js';
import type { PoolContext } from './context.js';
import {
  BIN_COUNT,
  BLOCK_FREE,
  BLOCK_KIND_PLAIN,
  BLOCK_USED,
  B_CHECK,
  B_KIND,
  B_NEXT_FREE,
  B_OWNERS_HI,
  B_OWNERS_LO,
  B_PREV_FREE,
  B_PREV_SIZE,
  B_SIZE,
  B_SLACK,
  B_STATE,
  FIRST_BLOCK,
  GRANULE,
  HEADER_GRANULES,
  MIN_BLOCK_GRANULES,
  P_BINS,
  P_BIN_MAP,
  P_FREE_BLOCKS,
  P_FREE_GRANULES,
  P_REBUILDS,
  P_USED_BLOCKS,
  P_USED_GRANULES,
  binOf,
  blockCheck,
} from './layout.js';

/** Blocks of the request's own bin tried before a larger bin is used. */
const OWN_BIN_SCAN = 8;

/** A header merged into a neighbour: still checkable, so freeing it again says "double free". */
const BLOCK_MERGED = 0x4d574d47; // "MWMG"

export interface HeapStats {
  /** Bytes of the heap (headers included). */
  heapBytes: number;
  /** Bytes in allocated blocks, headers included. */
  usedBytes: number;
  usedBlocks: number;
  /** Bytes in free blocks, headers included. */
  freeBytes: number;
  freeBlocks: number;
  /** The largest free block's payload: the largest malloc that can succeed now. */
  largestFree: number;
  /** 1 − largestFree/freeBytes: 0 when the free space is one block. */
  fragmentation: number;
  /** Times the heap was rebuilt because a process died holding the allocator's lock. */
  rebuilds: number;
}

export class Heap {
  readonly #ctx: PoolContext;
  readonly #w: Int32Array;
  readonly #end: number;
  /** More steps than this through a list or the heap means a cycle. */
  readonly #maxSteps: number;

  constructor(ctx: PoolContext) {
    this.#ctx = ctx;
    this.#w = ctx.w;
    this.#end = ctx.heapGranules;
    this.#maxSteps = Math.ceil(ctx.heapGranules / MIN_BLOCK_GRANULES) + 2;
  }

  /** The largest request that could ever succeed, in bytes. */
  get maxRequest(): number {
    return (this.#end - FIRST_BLOCK - HEADER_GRANULES) * GRANULE;
  }

  /** Creator only: one free block spanning the heap. */
  init(): void {
    const size = this.#end - FIRST_BLOCK;
    this.#writeHeader(FIRST_BLOCK, size, BLOCK_FREE, 0);
    this.#insert(FIRST_BLOCK, size);
    this.#hdr(P_FREE_BLOCKS, 1);
    this.#hdr(P_FREE_GRANULES, size);
  }

  /** Granules a block for `bytes` of payload needs. */
  static granulesFor(bytes: number): number {
    return Math.max(MIN_BLOCK_GRANULES, HEADER_GRANULES + Math.ceil(bytes / GRANULE));
  }

  /**
   * Take a block for `bytes` (1 ≤ bytes ≤ maxRequest, checked by the caller), owned by `ownersLo`
   * / `ownersHi`. Returns its index, or 0 when no free block is large enough.
   */
  alloc(bytes: number, ownersLo: number, ownersHi: number, kind = BLOCK_KIND_PLAIN): number {
    const need = Heap.granulesFor(bytes);
    const w = this.#w;
    const bins = P_BINS >>> 2; // word index of bin 0 (the pool header is at data offset 0)
    const wanted = binOf(need);
    let found = 0;
    let steps = 0;
    // First fit inside the request's own bin (its blocks may be smaller than the request), for
    // a few blocks only: small remainders collect there and would make every search long.
    let i = w[bins + wanted];
    for (; i !== 0 && steps < OWN_BIN_SCAN; i = w[this.#ctx.blockBase(i) + B_NEXT_FREE / 4]) {
      this.#checkFree(i);
      steps++;
      if (w[this.#ctx.blockBase(i) + B_SIZE / 4] >= need) {
        found = i;
        break;
      }
    }
    if (found === 0 && wanted < BIN_COUNT - 1) {
      // Any block of a higher bin is large enough: take the first of the lowest non-empty one.
      const higher = this.#get(P_BIN_MAP) & ~((2 << wanted) - 1);
      if (higher !== 0) {
        const bin = 31 - Math.clz32(higher & -higher);
        found = w[bins + bin];
        if (found === 0) throw this.#ctx.corrupt(`bin map says bin ${bin} holds a block, its head is empty`);
        this.#checkFree(found);
      }
    }
    // Nothing larger anywhere: the rest of the own bin is the last chance.
    for (; found === 0 && i !== 0; i = w[this.#ctx.blockBase(i) + B_NEXT_FREE / 4]) {
      this.#checkFree(i);
      if (++steps > this.#maxSteps) throw this.#ctx.corrupt(`free list of bin ${wanted} does not end`);
      if (w[this.#ctx.blockBase(i) + B_SIZE / 4] >= need) found = i;
    }
    if (found === 0) return 0;
    let size = w[this.#ctx.blockBase(found) + B_SIZE / 4];
    this.#unlink(found, size);
    this.#hdr(P_FREE_BLOCKS, -1);
    this.#hdr(P_FREE_GRANULES, -size);
    const rest = size - need;
    if (rest >= MIN_BLOCK_GRANULES) {
      // Split: the tail becomes a free block (written whole before the head shrinks).
      const tail = found + need;
      this.#writeHeader(tail, rest, BLOCK_FREE, need);
      this.#setPrevSize(tail + rest, rest);
      this.#insert(tail, rest);
      this.#hdr(P_FREE_BLOCKS, 1);
      this.#hdr(P_FREE_GRANULES, rest);
      size = need;
    }
    const base = this.#ctx.blockBase(found);
    this.#writeHeader(found, size, BLOCK_USED, w[base + B_PREV_SIZE / 4]);
    w[base + B_OWNERS_LO / 4] = ownersLo;
    w[base + B_OWNERS_HI / 4] = ownersHi;
    w[base + B_SLACK / 4] = (size - HEADER_GRANULES) * GRANULE - bytes;
    w[base + B_KIND / 4] = kind;
    this.#hdr(P_USED_BLOCKS, 1);
    this.#hdr(P_USED_GRANULES, size);
    return found;
  }

  /** Free used block `index` (already checked by usedIndex), merging with free neighbours. */
  release(index: number): void {
    const w = this.#w;
    const ctx = this.#ctx;
    const base = ctx.blockBase(index);
    const size = w[base + B_SIZE / 4];
    // Check both neighbours before changing anything, so a corrupt one leaves the heap as it was.
    const next = index + size;
    const nextSize = next < this.#end ? this.#checkAny(next) : 0;
    const nextFree = nextSize !== 0 && w[ctx.blockBase(next) + B_STATE / 4] === BLOCK_FREE;
    const prevSize = w[base + B_PREV_SIZE / 4];
    const prev = index - prevSize;
    let prevFree = false;
    if (prevSize !== 0) {
      if (prevSize < MIN_BLOCK_GRANULES || prev < FIRST_BLOCK) throw ctx.corrupt(`block ${index} has previous size ${prevSize}`);
      if (this.#checkAny(prev) !== prevSize) throw ctx.corrupt(`block ${index}'s previous size ${prevSize} disagrees with block ${prev}`);
      prevFree = w[ctx.blockBase(prev) + B_STATE / 4] === BLOCK_FREE;
    }
    this.#hdr(P_USED_BLOCKS, -1);
    this.#hdr(P_USED_GRANULES, -size);
    let start = index;
    let merged = size;
    if (nextFree) {
      this.#unlink(next, nextSize);
      this.#hdr(P_FREE_BLOCKS, -1);
      this.#hdr(P_FREE_GRANULES, -nextSize);
      this.#markMerged(next, nextSize);
      merged += nextSize;
    }
    if (prevFree) {
      this.#unlink(prev, prevSize);
      this.#hdr(P_FREE_BLOCKS, -1);
      this.#hdr(P_FREE_GRANULES, -prevSize);
      this.#markMerged(index, size);
      merged += prevSize;
      start = prev;
    }
    this.#writeHeader(start, merged, BLOCK_FREE, w[ctx.blockBase(start) + B_PREV_SIZE / 4]);
    this.#setPrevSize(start + merged, merged);
    this.#insert(start, merged);
    this.#hdr(P_FREE_BLOCKS, 1);
    this.#hdr(P_FREE_GRANULES, merged);
  }

  /**
   * The block index of a caller's offset, checked: UsageError ERR_MEMWIRE_BAD_OFFSET for an
   * offset that is not an allocated block of this pool, ERR_MEMWIRE_DOUBLE_FREE for one already
   * freed (best effort: once its memory is handed out again, a stale offset cannot be told
   * from a live one that happens to start at the same place).
   */
  usedIndex(offset: number, what: string): number {
    const ctx = this.#ctx;
    const index = ctx.indexOf(offset);
    if (index < 0) {
      throw new UsageError(`${what}: ${String(offset)} is not an offset of a block of pool ${JSON.stringify(ctx.name)}`, 'ERR_MEMWIRE_BAD_OFFSET');
    }
    const base = ctx.blockBase(index);
    const w = this.#w;
    const size = w[base + B_SIZE / 4];
    const state = w[base + B_STATE / 4];
    const valid = w[base + B_CHECK / 4] === blockCheck(index, size, state);
    if (valid && state === BLOCK_USED) {
      if (size < MIN_BLOCK_GRANULES || index + size > this.#end) throw ctx.corrupt(`block ${index} has size ${size}`);
      return index;
    }
    if (valid && (state === BLOCK_FREE || state === BLOCK_MERGED)) {
      throw new UsageError(`${what}: block at offset ${offset} was already freed`, 'ERR_MEMWIRE_DOUBLE_FREE');
    }
    throw new UsageError(
      `${what}: ${offset} is not the start of an allocated block of pool ${JSON.stringify(ctx.name)}`,
      'ERR_MEMWIRE_BAD_OFFSET',
    );
  }

  /** Usable bytes of used block `index` (the requested size). */
  length(index: number): number {
    const base = this.#ctx.blockBase(index);
    const capacity = (this.#w[base + B_SIZE / 4] - HEADER_GRANULES) * GRANULE;
    const slack = this.#w[base + B_SLACK / 4];
    if (slack < 0 || slack >= capacity) throw this.#ctx.corrupt(`block ${index} has slack ${slack} of ${capacity} bytes`);
    return capacity - slack;
  }

  /**
   * Visit every block in address order (checked). `visit` gets index, size, used. Throws
   * CorruptionError if the blocks do not tile the heap exactly.
   */
  walk(visit: (index: number, size: number, used: boolean) => void): void {
    let index = FIRST_BLOCK;
    while (index < this.#end) {
      const size = this.#checkAny(index);
      visit(index, size, this.#w[this.#ctx.blockBase(index) + B_STATE / 4] === BLOCK_USED);
      index += size;
    }
    if (index !== this.#end) throw this.#ctx.corrupt(`heap blocks end at granule ${index}, the heap at ${this.#end}`);
  }

  /** After an allocator holder died: re-derive links, bins, previous sizes and counters from the blocks. */
  rebuild(): void {
    const w = this.#w;
    const ctx = this.#ctx;
    const binsBase = P_BINS >>> 2;
    for (let b = 0; b < BIN_COUNT; b++) w[binsBase + b] = 0;
    this.#set(P_BIN_MAP, 0);
    let usedBlocks = 0;
    let usedGranules = 0;
    let freeBlocks = 0;
    let freeGranules = 0;
    let index = FIRST_BLOCK;
    let prevSize = 0;
    let openFree = 0; // a free block still growing by merging free neighbours
    while (index < this.#end) {
      const size = this.#checkAny(index);
      const used = w[ctx.blockBase(index) + B_STATE / 4] === BLOCK_USED;
      if (used) {
        if (openFree) {
          this.#insert(openFree, w[ctx.blockBase(openFree) + B_SIZE / 4]);
          openFree = 0;
        }
        w[ctx.blockBase(index) + B_PREV_SIZE / 4] = prevSize;
        usedBlocks++;
        usedGranules += size;
        prevSize = size;
      } else if (openFree) {
        const merged = w[ctx.blockBase(openFree) + B_SIZE / 4] + size;
        this.#markMerged(index, size);
        this.#writeHeader(openFree, merged, BLOCK_FREE, w[ctx.blockBase(openFree) + B_PREV_SIZE / 4]);
        freeGranules += size;
        prevSize = merged;
      } else {
        this.#writeHeader(index, size, BLOCK_FREE, prevSize);
        openFree = index;
        freeBlocks++;
        freeGranules += size;
        prevSize = size;
      }
      index += size;
    }
    if (index !== this.#end) throw ctx.corrupt(`heap blocks end at granule ${index}, the heap at ${this.#end}`);
    if (openFree) this.#insert(openFree, w[ctx.blockBase(openFree) + B_SIZE / 4]);
    this.#set(P_USED_BLOCKS, usedBlocks);
    this.#set(P_USED_GRANULES, usedGranules);
    this.#set(P_FREE_BLOCKS, freeBlocks);
    this.#set(P_FREE_GRANULES, freeGranules);
    this.#hdr(P_REBUILDS, 1);
  }

  /** Walk the heap and the bins and report; CorruptionError if the counters disagree with the blocks. */
  stats(): HeapStats {
    let usedBlocks = 0;
    let usedGranules = 0;
    let freeBlocks = 0;
    let freeGranules = 0;
    let largest = 0;
    this.walk((_index, size, used) => {
      if (used) {
        usedBlocks++;
        usedGranules += size;
      } else {
        freeBlocks++;
        freeGranules += size;
        if (size > largest) largest = size;
      }
    });
    if (usedBlocks !== this.#get(P_USED_BLOCKS) || freeBlocks !== this.#get(P_FREE_BLOCKS) || freeGranules !== this.#get(P_FREE_GRANULES)) {
      throw this.#ctx.corrupt(
        `allocator counters (${this.#get(P_USED_BLOCKS)} used, ${this.#get(P_FREE_BLOCKS)} free blocks) disagree with the heap (${usedBlocks}, ${freeBlocks})`,
      );
    }
    const freeBytes = freeGranules * GRANULE;
    const largestFree = largest === 0 ? 0 : (largest - HEADER_GRANULES) * GRANULE;
    return {
      heapBytes: (this.#end - FIRST_BLOCK) * GRANULE,
      usedBytes: usedGranules * GRANULE,
      usedBlocks,
      freeBytes,
      freeBlocks,
      largestFree,
      fragmentation: freeBytes === 0 ? 0 : 1 - (largest * GRANULE) / freeBytes,
      rebuilds: this.#get(P_REBUILDS),
    };
  }

  // --- headers ---------------------------------------------------------------------------

  #writeHeader(index: number, size: number, state: number, prevSize: number): void {
    const base = this.#ctx.blockBase(index);
    const w = this.#w;
    w[base + B_SIZE / 4] = size;
    w[base + B_STATE / 4] = state;
    w[base + B_PREV_SIZE / 4] = prevSize;
    w[base + B_CHECK / 4] = blockCheck(index, size, state);
  }

  #markMerged(index: number, size: number): void {
    const base = this.#ctx.blockBase(index);
    this.#w[base + B_STATE / 4] = BLOCK_MERGED;
    this.#w[base + B_CHECK / 4] = blockCheck(index, size, BLOCK_MERGED);
  }

  #setPrevSize(index: number, prevSize: number): void {
    if (index < this.#end) this.#w[this.#ctx.blockBase(index) + B_PREV_SIZE / 4] = prevSize;
  }

  /** Check any block header at `index` (used or free); returns its size. */
  #checkAny(index: number): number {
    const base = this.#ctx.blockBase(index);
    const w = this.#w;
    const size = w[base + B_SIZE / 4];
    const state = w[base + B_STATE / 4];
    if ((state !== BLOCK_USED && state !== BLOCK_FREE) || w[base + B_CHECK / 4] !== blockCheck(index, size, state)) {
      throw this.#ctx.corrupt(`block header at granule ${index} fails its check (state 0x${(state >>> 0).toString(16)})`);
    }
    if (size < MIN_BLOCK_GRANULES || index + size > this.#end) throw this.#ctx.corrupt(`block ${index} has size ${size}`);
    return size;
  }

  #checkFree(index: number): void {
    if (index < FIRST_BLOCK || index >= this.#end) throw this.#ctx.corrupt(`free-list link ${index} is outside the heap`);
    this.#checkAny(index);
    if (this.#w[this.#ctx.blockBase(index) + B_STATE / 4] !== BLOCK_FREE) throw this.#ctx.corrupt(`free list holds used block ${index}`);
  }

  // --- bins ------------------------------------------------------------------------------

  #insert(index: number, size: number): void {
    const w = this.#w;
    const ctx = this.#ctx;
    const bin = binOf(size);
    const head = (P_BINS >>> 2) + bin;
    const first = w[head];
    const base = ctx.blockBase(index);
    w[base + B_NEXT_FREE / 4] = first;
    w[base + B_PREV_FREE / 4] = 0;
    if (first !== 0) {
      this.#checkFree(first);
      w[ctx.blockBase(first) + B_PREV_FREE / 4] = index;
    }
    w[head] = index;
    this.#set(P_BIN_MAP, this.#get(P_BIN_MAP) | (1 << bin));
  }

  #unlink(index: number, size: number): void {
    const w = this.#w;
    const ctx = this.#ctx;
    const bin = binOf(size);
    const head = (P_BINS >>> 2) + bin;
    const base = ctx.blockBase(index);
    const next = w[base + B_NEXT_FREE / 4];
    const prev = w[base + B_PREV_FREE / 4];
    if (prev === 0) {
      if (w[head] !== index) throw ctx.corrupt(`free block ${index} is not at the head of bin ${bin}`);
      w[head] = next;
    } else {
      this.#checkFree(prev);
      if (w[ctx.blockBase(prev) + B_NEXT_FREE / 4] !== index) throw ctx.corrupt(`free-list links around block ${index} disagree`);
      w[ctx.blockBase(prev) + B_NEXT_FREE / 4] = next;
    }
    if (next !== 0) {
      this.#checkFree(next);
      w[ctx.blockBase(next) + B_PREV_FREE / 4] = prev;
    }
    if (w[head] === 0) this.#set(P_BIN_MAP, this.#get(P_BIN_MAP) & ~(1 << bin));
  }

  // --- pool header counters (all under the allocator's lock) ------------------------------

  #get(byteOffset: number): number {
    return this.#w[byteOffset >>> 2];
  }

  #set(byteOffset: number, value: number): void {
    this.#w[byteOffset >>> 2] = value;
  }

  #hdr(byteOffset: number, delta: number): void {
    this.#w[byteOffset >>> 2] += delta;
  }
}

