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
 * Crash recovery (docs/shmem-recovery.md): a process can die at any instruction, also inside
 * an update of several block headers. Every such update is journalled first: the final values
 * of the headers it will write (at most three: alloc writes the used block and the split-off
 * tail, free the merged block and up to two headers it absorbs) go into the journal on the
 * allocator's line, then the entry count is stored (the commit), then the headers are written,
 * then the count is cleared. The bins, free-list links, previous sizes and counters are derived
 * data: they are written outside the journal and re-derived. If the holder of the allocator's
 * lock dies, the next one is told 'owner-died' and calls rebuild(): it replays a committed
 * journal (writing the same values twice is harmless), then walks the heap by block sizes —
 * a header marked merged whose absorbing block never grew is free space — and re-derives
 * everything else, merging free neighbours through the journal too, so a death inside
 * rebuild() is recovered the same way. needsRecovery says a rebuild is owed even without a
 * dead holder (an update or a rebuild that threw). A header that fails its check outside
 * any journalled write is corruption, reported rather than guessed at.
 *
 * Fragmentation is reported by stats(): fragmentation = 1 − largestFree / freeBytes (0 when the
 * free space is one block, near 1 when it is in many small pieces).
 */
import { UsageError } from '../errors.js';
import type { PoolContext } from './context.js';
import { crashPoint, crashPointsArmed } from './crash-points.js';
import {
  BIN_COUNT,
  BLOCK_FREE,
  BLOCK_KIND_PLAIN,
  BLOCK_MERGED,
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
  JOURNAL_FREE,
  JOURNAL_INDEX_MASK,
  JOURNAL_MAX_ENTRIES,
  JOURNAL_MERGED,
  JOURNAL_USED,
  MIN_BLOCK_GRANULES,
  P_BINS,
  P_BIN_MAP,
  P_FREE_BLOCKS,
  P_FREE_GRANULES,
  P_JOURNAL,
  P_JOURNAL_ENTRIES,
  P_REBUILDS,
  P_RECOVERING,
  P_USED_BLOCKS,
  P_USED_GRANULES,
  binOf,
  blockCheck,
} from './layout.js';

/** Blocks of the request's own bin tried before a larger bin is used. */
const OWN_BIN_SCAN = 8;

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
  /** Crash points armed (tests only): asked once, so malloc/free skip them otherwise. */
  readonly #traced = crashPointsArmed();

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
    this.#writeChecked(FIRST_BLOCK, size, BLOCK_FREE);
    this.#put(this.#ctx.blockBase(FIRST_BLOCK) + B_PREV_SIZE / 4, 0);
    this.#insert(FIRST_BLOCK, size);
    this.#hdr(P_FREE_BLOCKS, 1);
    this.#hdr(P_FREE_GRANULES, size);
  }

  /** Granules a block for `bytes` of payload needs. */
  static granulesFor(bytes: number): number {
    return Math.max(MIN_BLOCK_GRANULES, HEADER_GRANULES + Math.ceil(bytes / GRANULE));
  }

  /**
   * Whether rebuild() is owed even though the lock's last holder did not die: a journalled
   * update or a rebuild was left unfinished (it threw). The holder of the lock checks this.
   */
  get needsRecovery(): boolean {
    return Atomics.load(this.#w, P_JOURNAL >>> 2) !== 0 || Atomics.load(this.#w, P_RECOVERING >>> 2) !== 0;
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
    const base = this.#ctx.blockBase(found);
    const size = w[base + B_SIZE / 4];
    this.#unlink(found, size);
    const rest = size - need;
    const split = rest >= MIN_BLOCK_GRANULES; // else the whole block is taken
    const taken = split ? need : size;
    // `found` is in no free list now: its link words become the owners. A death before the
    // commit leaves a free block whose links the rebuild rewrites.
    this.#put(base + B_OWNERS_LO / 4, ownersLo);
    this.#put(base + B_OWNERS_HI / 4, ownersHi);
    this.#put(base + B_SLACK / 4, (taken - HEADER_GRANULES) * GRANULE - bytes);
    this.#put(base + B_KIND / 4, kind);
    this.#entry(0, found, taken, JOURNAL_USED);
    if (split) this.#entry(1, found + need, rest, JOURNAL_FREE);
    this.#commit(split ? 2 : 1);
    // The journal's writes, from the values in hand (a replay reads them back from the journal).
    this.#writeChecked(found, taken, BLOCK_USED);
    if (split) this.#writeChecked(found + need, rest, BLOCK_FREE);
    if (split) {
      this.#setPrevSize(found + need + rest, rest);
      this.#put(this.#ctx.blockBase(found + need) + B_PREV_SIZE / 4, need);
      this.#insert(found + need, rest);
    }
    this.#hdr(P_FREE_BLOCKS, split ? 0 : -1);
    this.#hdr(P_FREE_GRANULES, -taken);
    this.#hdr(P_USED_BLOCKS, 1);
    this.#hdr(P_USED_GRANULES, taken);
    this.#closeJournal();
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
    const nextSize = next < this.#end ? this.#checkAny(next, false) : 0;
    const nextFree = nextSize !== 0 && w[ctx.blockBase(next) + B_STATE / 4] === BLOCK_FREE;
    const prevSize = w[base + B_PREV_SIZE / 4];
    const prev = index - prevSize;
    let prevFree = false;
    if (prevSize !== 0) {
      if (prevSize < MIN_BLOCK_GRANULES || prev < FIRST_BLOCK) throw ctx.corrupt(`block ${index} has previous size ${prevSize}`);
      if (this.#checkAny(prev, false) !== prevSize) throw ctx.corrupt(`block ${index}'s previous size ${prevSize} disagrees with block ${prev}`);
      prevFree = w[ctx.blockBase(prev) + B_STATE / 4] === BLOCK_FREE;
    }
    let start = index;
    let merged = size;
    if (nextFree) {
      this.#unlink(next, nextSize);
      merged += nextSize;
    }
    if (prevFree) {
      this.#unlink(prev, prevSize);
      merged += prevSize;
      start = prev;
    }
    // The block that absorbs the others grows first; the absorbed headers are marked merged
    // after it (so even the headers alone, read in address order, never skip free space).
    let entries = 0;
    this.#entry(entries++, start, merged, JOURNAL_FREE);
    if (prevFree) this.#entry(entries++, index, size, JOURNAL_MERGED);
    if (nextFree) this.#entry(entries++, next, nextSize, JOURNAL_MERGED);
    this.#commit(entries);
    this.#writeChecked(start, merged, BLOCK_FREE);
    if (prevFree) this.#writeChecked(index, size, BLOCK_MERGED);
    if (nextFree) this.#writeChecked(next, nextSize, BLOCK_MERGED);
    this.#setPrevSize(start + merged, merged);
    this.#insert(start, merged);
    this.#hdr(P_USED_BLOCKS, -1);
    this.#hdr(P_USED_GRANULES, -size);
    this.#hdr(P_FREE_BLOCKS, 1 - (nextFree ? 1 : 0) - (prevFree ? 1 : 0));
    this.#hdr(P_FREE_GRANULES, size);
    this.#closeJournal();
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
      const size = this.#checkAny(index, false);
      visit(index, size, this.#w[this.#ctx.blockBase(index) + B_STATE / 4] === BLOCK_USED);
      index += size;
    }
    if (index !== this.#end) throw this.#ctx.corrupt(`heap blocks end at granule ${index}, the heap at ${this.#end}`);
  }

  /**
   * After the allocator's lock holder died (or an update threw): replay a committed journal,
   * then re-derive links, bins, previous sizes and counters from the blocks, merging free
   * neighbours. Safe to interrupt at any point: the next holder of the lock runs it again.
   */
  rebuild(): void {
    const w = this.#w;
    const ctx = this.#ctx;
    if (this.#traced) crashPoint();
    // Ordering point: "recovering" is set before anything is rewritten, cleared after all of it.
    Atomics.store(w, P_RECOVERING >>> 2, 1);
    if (Atomics.load(w, P_JOURNAL >>> 2) !== 0) {
      this.#applyJournal();
      this.#closeJournal();
    }
    const binsBase = P_BINS >>> 2;
    for (let b = 0; b < BIN_COUNT; b++) this.#put(binsBase + b, 0);
    this.#put(P_BIN_MAP >>> 2, 0);
    let usedBlocks = 0;
    let usedGranules = 0;
    let freeBlocks = 0;
    let freeGranules = 0;
    let index = FIRST_BLOCK;
    let prevSize = 0;
    let openFree = 0; // a free block still growing by absorbing free neighbours
    let openSize = 0;
    while (index < this.#end) {
      const size = this.#checkAny(index, true);
      const base = ctx.blockBase(index);
      const state = w[base + B_STATE / 4];
      if (state === BLOCK_USED) {
        if (openFree !== 0) this.#insert(openFree, openSize);
        openFree = 0;
        this.#put(base + B_PREV_SIZE / 4, prevSize);
        usedBlocks++;
        usedGranules += size;
        prevSize = size;
      } else if (openFree !== 0) {
        // Free space right after a free block: that block absorbs it (journalled, grown first).
        const grown = openSize + size;
        this.#entry(0, openFree, grown, JOURNAL_FREE);
        this.#entry(1, index, size, JOURNAL_MERGED);
        this.#commit(2);
        this.#applyJournal();
        this.#closeJournal();
        openSize = grown;
        freeGranules += size;
        prevSize = grown;
      } else {
        if (state !== BLOCK_FREE) {
          // Marked merged, but the block meant to absorb it never grew (its owner died first):
          // it is free space of its own.
          this.#entry(0, index, size, JOURNAL_FREE);
          this.#commit(1);
          this.#applyJournal();
          this.#closeJournal();
        }
        this.#put(base + B_PREV_SIZE / 4, prevSize);
        openFree = index;
        openSize = size;
        freeBlocks++;
        freeGranules += size;
        prevSize = size;
      }
      index += size;
    }
    if (index !== this.#end) throw ctx.corrupt(`heap blocks end at granule ${index}, the heap at ${this.#end}`);
    if (openFree !== 0) this.#insert(openFree, openSize);
    this.#put(P_USED_BLOCKS >>> 2, usedBlocks);
    this.#put(P_USED_GRANULES >>> 2, usedGranules);
    this.#put(P_FREE_BLOCKS >>> 2, freeBlocks);
    this.#put(P_FREE_GRANULES >>> 2, freeGranules);
    this.#hdr(P_REBUILDS, 1);
    if (this.#traced) crashPoint();
    Atomics.store(w, P_RECOVERING >>> 2, 0);
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
    if (
      usedBlocks !== this.#get(P_USED_BLOCKS) ||
      usedGranules !== this.#get(P_USED_GRANULES) ||
      freeBlocks !== this.#get(P_FREE_BLOCKS) ||
      freeGranules !== this.#get(P_FREE_GRANULES)
    ) {
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

  // --- the journal ---------------------------------------------------------------------------

  /** Entry `slot` of the journal: block `index` is to get `size` and the state of `code`. */
  #entry(slot: number, index: number, size: number, code: number): void {
    const at = (P_JOURNAL_ENTRIES >>> 2) + slot * 2;
    this.#put(at, index | (code << 28));
    this.#put(at + 1, size);
  }

  #commit(entries: number): void {
    if (this.#traced) crashPoint();
    // Ordering point: the entries are written before the count that makes them binding.
    Atomics.store(this.#w, P_JOURNAL >>> 2, entries);
  }

  /** Write the committed journal's headers (again, after a death: the same values). */
  #applyJournal(): void {
    const w = this.#w;
    const count = Atomics.load(w, P_JOURNAL >>> 2);
    if (count < 0 || count > JOURNAL_MAX_ENTRIES) throw this.#ctx.corrupt(`the allocator journal claims ${count} entries`);
    const first = P_JOURNAL_ENTRIES >>> 2;
    // Every entry is checked before any is applied: a forged journal changes nothing.
    for (let e = 0; e < count; e++) {
      const index = w[first + e * 2] & JOURNAL_INDEX_MASK;
      const code = w[first + e * 2] >>> 28;
      const size = w[first + e * 2 + 1];
      if (code < JOURNAL_USED || code > JOURNAL_MERGED || index < FIRST_BLOCK || size < MIN_BLOCK_GRANULES || index + size > this.#end) {
        throw this.#ctx.corrupt(`allocator journal entry ${e} (block ${index}, ${size} granules, code ${code}) is impossible`);
      }
    }
    for (let e = 0; e < count; e++) {
      const code = w[first + e * 2] >>> 28;
      const state = code === JOURNAL_USED ? BLOCK_USED : code === JOURNAL_FREE ? BLOCK_FREE : BLOCK_MERGED;
      this.#writeChecked(w[first + e * 2] & JOURNAL_INDEX_MASK, w[first + e * 2 + 1], state);
    }
  }

  #closeJournal(): void {
    if (this.#traced) crashPoint();
    // Ordering point: every header of the update is written before the journal lets go of it.
    Atomics.store(this.#w, P_JOURNAL >>> 2, 0);
  }

  // --- headers ---------------------------------------------------------------------------

  /** Size, state and check word of a header (the previous size is outside the check). */
  #writeChecked(index: number, size: number, state: number): void {
    const base = this.#ctx.blockBase(index);
    this.#put(base + B_SIZE / 4, size);
    this.#put(base + B_STATE / 4, state);
    this.#put(base + B_CHECK / 4, blockCheck(index, size, state));
  }

  #setPrevSize(index: number, prevSize: number): void {
    if (index < this.#end) this.#put(this.#ctx.blockBase(index) + B_PREV_SIZE / 4, prevSize);
  }

  /**
   * Check any block header at `index` (used or free; merged too if `allowMerged`, for the
   * rebuild); returns its size.
   */
  #checkAny(index: number, allowMerged: boolean): number {
    const base = this.#ctx.blockBase(index);
    const w = this.#w;
    const size = w[base + B_SIZE / 4];
    const state = w[base + B_STATE / 4];
    const known = state === BLOCK_USED || state === BLOCK_FREE || (allowMerged && state === BLOCK_MERGED);
    if (!known || w[base + B_CHECK / 4] !== blockCheck(index, size, state)) {
      throw this.#ctx.corrupt(`block header at granule ${index} fails its check (state 0x${(state >>> 0).toString(16)})`);
    }
    if (size < MIN_BLOCK_GRANULES || index + size > this.#end) throw this.#ctx.corrupt(`block ${index} has size ${size}`);
    return size;
  }

  #checkFree(index: number): void {
    if (index < FIRST_BLOCK || index >= this.#end) throw this.#ctx.corrupt(`free-list link ${index} is outside the heap`);
    this.#checkAny(index, false);
    if (this.#w[this.#ctx.blockBase(index) + B_STATE / 4] !== BLOCK_FREE) throw this.#ctx.corrupt(`free list holds used block ${index}`);
  }

  // --- bins (derived data: the rebuild re-derives them) --------------------------------------

  #insert(index: number, size: number): void {
    const w = this.#w;
    const ctx = this.#ctx;
    const bin = binOf(size);
    const head = (P_BINS >>> 2) + bin;
    const first = w[head];
    const base = ctx.blockBase(index);
    this.#put(base + B_NEXT_FREE / 4, first);
    this.#put(base + B_PREV_FREE / 4, 0);
    if (first !== 0) {
      this.#checkFree(first);
      this.#put(ctx.blockBase(first) + B_PREV_FREE / 4, index);
    }
    this.#put(head, index);
    this.#put(P_BIN_MAP >>> 2, this.#get(P_BIN_MAP) | (1 << bin));
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
      this.#put(head, next);
    } else {
      this.#checkFree(prev);
      if (w[ctx.blockBase(prev) + B_NEXT_FREE / 4] !== index) throw ctx.corrupt(`free-list links around block ${index} disagree`);
      this.#put(ctx.blockBase(prev) + B_NEXT_FREE / 4, next);
    }
    if (next !== 0) {
      this.#checkFree(next);
      this.#put(ctx.blockBase(next) + B_PREV_FREE / 4, prev);
    }
    if (w[head] === 0) this.#put(P_BIN_MAP >>> 2, this.#get(P_BIN_MAP) & ~(1 << bin));
  }

  // --- shared words (all under the allocator's lock) -----------------------------------------

  #get(byteOffset: number): number {
    return this.#w[byteOffset >>> 2];
  }

  /** Every write of the allocator goes through here: one crash point per word written. */
  #put(wordIndex: number, value: number): void {
    if (this.#traced) crashPoint();
    this.#w[wordIndex] = value;
  }

  #hdr(byteOffset: number, delta: number): void {
    this.#put(byteOffset >>> 2, this.#w[byteOffset >>> 2] + delta);
  }
}
