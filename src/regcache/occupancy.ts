/**
 * Which descriptor slots of a registered heap hold a block (any state but EMPTY), as a two-level
 * bitmap in the control region (layout.ts, "Occupancy"), so that malloc, free and growing never
 * scan the whole descriptor table: finding an empty slot, and stepping from one occupied slot to
 * the next, read at most a few summary words and one bitmap word (maxBlocks ≤ 4096: 128 bitmap
 * words, 4 words per summary).
 *
 *   level 0   bit s        slot s is occupied (state ≠ EMPTY)
 *   used      bit j        level-0 word j has a bit set (some slot of it occupied)
 *   free      bit j        level-0 word j has a clear bit among the slots that exist
 *
 * It is derived data: the descriptors' states are the truth. Every change happens under the
 * heap's lock, right beside the state change it mirrors; a process killed between the two leaves
 * the lock 'owner-died' and the next holder's repair rebuilds all of it from the states (rebuild).
 * Any process of the heap can write these words, so a caller checks the state of every slot this
 * hands it (a wrong bit costs a CorruptionError or a missed block, never a bogus range).
 */
import { crashPoint } from '../shmem/crash-points.js';

/** Words of the three levels for a table of `maxBlocks` slots. */
export function occupancyWords(maxBlocks: number): { level0: number; summary: number } {
  const level0 = Math.ceil(maxBlocks / 32);
  return { level0, summary: Math.ceil(level0 / 32) };
}

/** Index of the lowest set bit of a non-zero word. */
function lowestBit(x: number): number {
  return 31 - Math.clz32(x & -x);
}

export class Occupancy {
  readonly #w: Int32Array;
  readonly #maxBlocks: number;
  /** Word indexes of level 0, of the used summary and of the free summary. */
  readonly #l0: number;
  readonly #used: number;
  readonly #free: number;
  readonly #words: number;
  readonly #summaryWords: number;

  constructor(w: Int32Array, offset: number, maxBlocks: number) {
    const { level0, summary } = occupancyWords(maxBlocks);
    this.#w = w;
    this.#maxBlocks = maxBlocks;
    this.#words = level0;
    this.#summaryWords = summary;
    this.#l0 = offset >>> 2;
    this.#used = this.#l0 + level0;
    this.#free = this.#used + summary;
  }

  /** The bits of level-0 word `j` that name slots of the table (the last word may be partial). */
  #valid(j: number): number {
    const n = this.#maxBlocks - j * 32;
    return n >= 32 ? -1 : (-1 >>> (32 - n)) | 0;
  }

  /** Level-0 word `j` changed: bring its two summary bits up to date. */
  #summarise(j: number): void {
    const w = this.#w;
    const word = w[this.#l0 + j];
    const bit = 1 << (j & 31);
    const s = j >>> 5;
    crashPoint();
    w[this.#used + s] = word !== 0 ? w[this.#used + s] | bit : w[this.#used + s] & ~bit;
    const valid = this.#valid(j);
    crashPoint();
    w[this.#free + s] = (word & valid) !== valid ? w[this.#free + s] | bit : w[this.#free + s] & ~bit;
  }

  /** Under the lock: slot `slot` now holds a block (`true`) or is EMPTY again (`false`). */
  set(slot: number, occupied: boolean): void {
    const j = slot >>> 5;
    const i = this.#l0 + j;
    crashPoint();
    this.#w[i] = occupied ? this.#w[i] | (1 << (slot & 31)) : this.#w[i] & ~(1 << (slot & 31));
    this.#summarise(j);
  }

  has(slot: number): boolean {
    return (this.#w[this.#l0 + (slot >>> 5)] & (1 << (slot & 31))) !== 0;
  }

  /** The lowest slot the bitmap says is EMPTY, or -1 when every slot is occupied. */
  firstFree(): number {
    const w = this.#w;
    for (let s = 0; s < this.#summaryWords; s++) {
      const summary = w[this.#free + s];
      if (summary === 0) continue;
      const j = s * 32 + lowestBit(summary);
      if (j >= this.#words) return -1; // a forged summary bit past the table: nothing there
      const clear = ~w[this.#l0 + j] & this.#valid(j);
      if (clear === 0) return -1; // the summary disagrees with its word: the caller's state check decides
      return j * 32 + lowestBit(clear);
    }
    return -1;
  }

  /** The lowest occupied slot at or after `from`, or -1 if there is none. */
  nextUsed(from: number): number {
    if (from >= this.#maxBlocks) return -1;
    const w = this.#w;
    let j = from >>> 5;
    const bits = w[this.#l0 + j] & (-1 << (from & 31)) & this.#valid(j);
    if (bits !== 0) return j * 32 + lowestBit(bits);
    // The next level-0 word with a bit set, found through the used summary.
    j++;
    for (let s = j >>> 5; s < this.#summaryWords; s++) {
      let summary = w[this.#used + s];
      if (s === j >>> 5) summary &= -1 << (j & 31);
      while (summary !== 0) {
        const k = s * 32 + lowestBit(summary);
        if (k >= this.#words) return -1;
        const word = w[this.#l0 + k] & this.#valid(k);
        if (word !== 0) return k * 32 + lowestBit(word);
        summary &= summary - 1; // a stale summary bit (only after a forged write): skip it
      }
    }
    return -1;
  }

  /** Rebuild every level from `occupied(slot)` (repair, and formatting a new heap). */
  rebuild(occupied: (slot: number) => boolean): void {
    const w = this.#w;
    for (let j = 0; j < this.#words; j++) {
      let word = 0;
      for (let b = 0; b < 32 && j * 32 + b < this.#maxBlocks; b++) if (occupied(j * 32 + b)) word |= 1 << b;
      w[this.#l0 + j] = word;
    }
    for (let s = 0; s < this.#summaryWords; s++) {
      w[this.#used + s] = 0;
      w[this.#free + s] = 0;
    }
    for (let j = 0; j < this.#words; j++) this.#summarise(j);
  }

  /** Slots where the bitmap and `occupied` disagree, and summary words that disagree with level 0 (tests). */
  disagreements(occupied: (slot: number) => boolean): string[] {
    const out: string[] = [];
    for (let s = 0; s < this.#maxBlocks; s++) if (this.has(s) !== occupied(s)) out.push(`slot ${s} bit ${this.has(s) ? 1 : 0}`);
    const w = this.#w;
    for (let j = 0; j < this.#words; j++) {
      const bit = 1 << (j & 31);
      const used = (w[this.#used + (j >>> 5)] & bit) !== 0;
      const free = (w[this.#free + (j >>> 5)] & bit) !== 0;
      const word = w[this.#l0 + j];
      if (used !== (word !== 0)) out.push(`used summary of word ${j}`);
      if (free !== ((word & this.#valid(j)) !== this.#valid(j))) out.push(`free summary of word ${j}`);
    }
    return out;
  }
}
