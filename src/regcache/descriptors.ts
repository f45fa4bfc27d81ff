/**
 * The shared descriptor table of a registered heap (seed 004, FIG. 2), over the control region:
 * one entry per slot naming the block obtained from the OS that lives there (blockId, size,
 * state), the heap-wide blockId counter, and the heap-wide counters. Layout: layout.ts.
 *
 * Changes happen only under the heap's lock; reads may happen without it (the lookup hit path
 * reads state and blockId). Every value is checked before it is trusted (checkedLive): the table
 * is writable by every process of the heap, so a bad one is a CorruptionError naming the heap.
 *
 * Two derived things are kept beside the states so that malloc and free cost the same whatever
 * the table's size: the occupancy bitmap (occupancy.ts: which slots hold a block) and the count
 * of wholly free LIVE blocks (the release policy's question). Each is updated right beside the
 * state or count it mirrors, under the lock; a process killed in between leaves the lock
 * 'owner-died', and the repair rebuilds both from the states and counts (rebuildDerived).
 */
import { CorruptionError } from '../errors.js';
import { crashPoint } from '../shmem/crash-points.js';
import { Occupancy } from './occupancy.js';
import {
  C_GROWN, C_NEXT_ID_HI, C_NEXT_ID_LO, C_RELEASED, C_REPAIRS, C_WHOLLY_FREE, D_ALLOCS, D_CHECK, D_EMPTY, D_GROWING, D_ID_HI, D_ID_LO, D_LIVE,
  D_RELEASING, D_SIZE_HI, D_SIZE_LO, D_STATE, D_USED_GRANULES, descriptorCheck, DESCRIPTOR_SIZE, joinId, MAX_BLOCK_BYTES,
  MIN_BLOCK_BYTES, PAGE,
} from './layout.js';

export interface LiveDescriptor {
  readonly idLo: number;
  readonly idHi: number;
  readonly blockId: number;
  readonly bytes: number;
}

const lo32 = (n: number) => n % 2 ** 32 | 0;
const hi32 = (n: number) => Math.floor(n / 2 ** 32) | 0;

export class DescriptorTable {
  readonly heapName: string;
  /** The control region's words (Atomics work across processes on them). */
  readonly w: Int32Array;
  /** Word index of entry 0. */
  readonly base: number;
  readonly maxBlocks: number;
  /** Which slots hold a block (derived from the states). */
  readonly occupancy: Occupancy;

  constructor(heapName: string, w: Int32Array, occupancyOffset: number, descriptorOffset: number, maxBlocks: number) {
    this.heapName = heapName;
    this.w = w;
    this.base = descriptorOffset >>> 2;
    this.maxBlocks = maxBlocks;
    this.occupancy = new Occupancy(w, occupancyOffset, maxBlocks);
  }

  /** Word index of field `field` (a byte offset) of entry `slot`. */
  at(slot: number, field: number): number {
    return this.base + slot * (DESCRIPTOR_SIZE / 4) + field / 4;
  }

  state(slot: number): number {
    return Atomics.load(this.w, this.at(slot, D_STATE));
  }

  /**
   * The state read with a plain load: only under the heap's lock, where every writer also holds
   * it (the lock's acquire orders its writes before this read), and scans stay cheap.
   */
  stateLocked(slot: number): number {
    return this.w[this.at(slot, D_STATE)];
  }

  #setState(slot: number, state: number): void {
    // Ordering point: the fields written before are visible before the new state.
    Atomics.store(this.w, this.at(slot, D_STATE), state);
  }

  idLo(slot: number): number {
    return this.w[this.at(slot, D_ID_LO)];
  }

  idHi(slot: number): number {
    return this.w[this.at(slot, D_ID_HI)];
  }

  blockId(slot: number): number {
    return joinId(this.idLo(slot), this.idHi(slot));
  }

  bytes(slot: number): number {
    return joinId(this.w[this.at(slot, D_SIZE_LO)], this.w[this.at(slot, D_SIZE_HI)]);
  }

  allocs(slot: number): number {
    return this.w[this.at(slot, D_ALLOCS)];
  }

  usedGranules(slot: number): number {
    return this.w[this.at(slot, D_USED_GRANULES)];
  }

  /** Under the lock: an allocation of `granules` was made (+1) or freed (−1) in the (LIVE) block. */
  count(slot: number, sign: 1 | -1, granules: number): void {
    const allocs = this.w[this.at(slot, D_ALLOCS)] + sign;
    this.w[this.at(slot, D_ALLOCS)] = allocs;
    // The block stopped (0 → 1) or started (1 → 0) being wholly free.
    if (sign === -1 && allocs === 0) this.#whollyFreeBy(1);
    else if (sign === 1 && allocs === 1) this.#whollyFreeBy(-1);
    crashPoint();
    this.w[this.at(slot, D_USED_GRANULES)] += sign * granules;
  }

  #whollyFreeBy(delta: 1 | -1): void {
    crashPoint();
    this.w[C_WHOLLY_FREE / 4] += delta;
  }

  /** Under the lock, after a repair: the counts recomputed from the block. */
  setCounts(slot: number, allocs: number, granules: number): void {
    this.w[this.at(slot, D_ALLOCS)] = allocs;
    this.w[this.at(slot, D_USED_GRANULES)] = granules;
  }

  /** LIVE entries with no allocation (under the lock): the count kept beside every change, not a scan. */
  whollyFree(): number {
    return this.w[C_WHOLLY_FREE / 4];
  }

  /**
   * Under the lock, after a process died holding it: rebuild the occupancy bitmap and recount the
   * wholly free blocks from the states and allocation counts (which the repair has just made right).
   */
  rebuildDerived(): void {
    this.occupancy.rebuild((s) => this.stateLocked(s) !== D_EMPTY);
    let n = 0;
    for (let s = 0; s < this.maxBlocks; s++) if (this.stateLocked(s) === D_LIVE && this.allocs(s) === 0) n++;
    crashPoint();
    this.w[C_WHOLLY_FREE / 4] = n;
  }

  /** Where the derived words disagree with the states and counts (tests; [] when whole). */
  audit(): string[] {
    const out = this.occupancy.disagreements((s) => this.stateLocked(s) !== D_EMPTY);
    let n = 0;
    for (let s = 0; s < this.maxBlocks; s++) if (this.stateLocked(s) === D_LIVE && this.allocs(s) === 0) n++;
    if (n !== this.whollyFree()) out.push(`whollyFree ${this.whollyFree()}, counted ${n}`);
    return out;
  }

  /** The lowest occupied slot at or after `from`, or -1 (under the lock; check its state). */
  nextUsed(from: number): number {
    return this.occupancy.nextUsed(from);
  }

  /**
   * The LIVE entry at `slot`, checked: its check word, a blockId handed out by the counter and not
   * below `seen` (the id this process last saw there), a page-multiple size within the limits.
   */
  checkedLive(slot: number, seen: number | undefined): LiveDescriptor {
    const w = this.w;
    const idLo = w[this.at(slot, D_ID_LO)];
    const idHi = w[this.at(slot, D_ID_HI)];
    const sizeLo = w[this.at(slot, D_SIZE_LO)];
    const sizeHi = w[this.at(slot, D_SIZE_HI)];
    if (w[this.at(slot, D_CHECK)] !== descriptorCheck(slot, idLo, idHi, sizeLo, sizeHi, D_LIVE)) {
      throw this.corrupt(`descriptor ${slot} fails its check word (torn or forged)`);
    }
    const blockId = joinId(idLo, idHi);
    const bytes = joinId(sizeLo, sizeHi);
    const next = this.#nextId();
    if (blockId < 1 || blockId >= next) throw this.corrupt(`descriptor ${slot} names blockId ${blockId}; only ids below ${next} were ever handed out`);
    if (seen !== undefined && blockId < seen) throw this.corrupt(`descriptor ${slot}'s blockId went backwards from ${seen} to ${blockId}`);
    if (bytes < MIN_BLOCK_BYTES || bytes > MAX_BLOCK_BYTES || bytes % PAGE !== 0) throw this.corrupt(`descriptor ${slot} has block size ${bytes}`);
    return { idLo, idHi, blockId, bytes };
  }

  /** A state that is none of the four is corruption. */
  checkState(slot: number, state: number): void {
    if (state !== D_EMPTY && state !== D_GROWING && state !== D_LIVE && state !== D_RELEASING) throw this.corrupt(`descriptor ${slot} has state ${state}`);
  }

  /** The lowest EMPTY slot, or -1 when the table is full (under the lock; from the bitmap, no scan). */
  emptySlot(): number {
    const s = this.occupancy.firstFree();
    if (s >= 0 && this.stateLocked(s) !== D_EMPTY) throw this.corrupt(`the occupancy bitmap says slot ${s} is empty, its descriptor's state is ${this.stateLocked(s)}`);
    return s;
  }

  #nextId(): number {
    return joinId(this.w[C_NEXT_ID_LO / 4], this.w[C_NEXT_ID_HI / 4]);
  }

  /**
   * Under the lock, FIG. 6 step one: take a new blockId (never handed out before) and mark `slot`
   * GROWING with it, so a grower that dies leaves a name the repair can remove.
   */
  beginGrow(slot: number): { idLo: number; idHi: number } {
    const id = this.#nextId();
    this.w[C_NEXT_ID_LO / 4] = lo32(id + 1);
    this.w[C_NEXT_ID_HI / 4] = hi32(id + 1);
    const w = this.w;
    w[this.at(slot, D_ID_LO)] = lo32(id);
    w[this.at(slot, D_ID_HI)] = hi32(id);
    w[this.at(slot, D_SIZE_LO)] = 0;
    w[this.at(slot, D_SIZE_HI)] = 0;
    this.#setState(slot, D_GROWING);
    this.occupancy.set(slot, true);
    return { idLo: lo32(id), idHi: hi32(id) };
  }

  /** Under the lock: the block exists and is formatted; the entry goes LIVE (state written last). */
  finishGrow(slot: number, bytes: number): void {
    const w = this.w;
    w[this.at(slot, D_SIZE_LO)] = lo32(bytes);
    w[this.at(slot, D_SIZE_HI)] = hi32(bytes);
    this.setCounts(slot, 0, 0);
    w[this.at(slot, D_CHECK)] = descriptorCheck(slot, this.idLo(slot), this.idHi(slot), lo32(bytes), hi32(bytes), D_LIVE);
    this.#setState(slot, D_LIVE);
    this.#whollyFreeBy(1); // LIVE with no allocation yet
    w[C_GROWN / 4]++;
  }

  /** Under the lock: the block is being given back (a releaser that dies leaves it to the repair). */
  beginRelease(slot: number): void {
    const whollyFree = this.allocs(slot) === 0; // always, by the policy: a released block has none
    this.#setState(slot, D_RELEASING);
    if (whollyFree) this.#whollyFreeBy(-1);
  }

  /**
   * Under the lock: the slot is empty again ([0028]: size 0). The blockId stays; the next block in
   * the slot gets a new, larger one from the counter.
   */
  empty(slot: number, released: boolean): void {
    const w = this.w;
    // Only GROWING or RELEASING entries are emptied; a LIVE one would leave the wholly free count.
    if (this.stateLocked(slot) === D_LIVE && this.allocs(slot) === 0) this.#whollyFreeBy(-1);
    w[this.at(slot, D_SIZE_LO)] = 0;
    w[this.at(slot, D_SIZE_HI)] = 0;
    this.setCounts(slot, 0, 0);
    w[this.at(slot, D_CHECK)] = 0;
    this.#setState(slot, D_EMPTY);
    this.occupancy.set(slot, false);
    if (released) w[C_RELEASED / 4]++;
  }

  countRepair(): void {
    this.w[C_REPAIRS / 4]++;
  }

  counters(): { blocksGrown: number; blocksReleased: number; repairs: number } {
    return { blocksGrown: this.w[C_GROWN / 4], blocksReleased: this.w[C_RELEASED / 4], repairs: this.w[C_REPAIRS / 4] };
  }

  corrupt(detail: string): CorruptionError {
    return new CorruptionError(this.heapName, detail);
  }
}
