/**
 * What every part of a pool (members, locks, heap, signals, messages) shares: the region, one
 * Int32Array over its data, the geometry read from the pool header (and checked), and who this
 * process is in the member table. Internal: the public surface is ShmemPool (pool.ts).
 */
import { CorruptionError, UsageError } from '../errors.js';
import type { FutexWord } from '../shm/futex.js';
import type { SharedRegion } from '../shm/region.js';
import {
  BLOCK_HEADER_SIZE,
  FIRST_BLOCK,
  GEN_MASK,
  GRANULE,
  LOCK_ENTRY_SIZE,
  MEMBER_LIVE,
  MEMBER_SLOT_SIZE,
  MEMBER_TABLE_OFFSET,
  M_GEN,
  M_STATE,
} from './layout.js';

/**
 * A process in a pool, as the API names it: (generation << 6) | slot. The generation makes an
 * id of a member that left (or died and was reaped) useless instead of pointing at a newcomer.
 */
export type MemberId = number;

export class PoolContext {
  readonly region: SharedRegion;
  readonly name: string;
  /** The whole data area as 32-bit words (Atomics work across processes on it). */
  readonly w: Int32Array;
  readonly maxMembers: number;
  readonly maxLocks: number;
  readonly lockTableOffset: number;
  readonly heapOffset: number;
  readonly heapGranules: number;
  /** Word index of heap granule 0. */
  readonly heapBase: number;
  /** This process's slot, generation, lock-word tag and MemberId (set by join). */
  slot = -1;
  gen = 0;
  lockTag = 0;
  me: MemberId = -1;
  readonly #futexes = new Map<number, FutexWord>();

  constructor(
    region: SharedRegion,
    geometry: { maxMembers: number; maxLocks: number; lockTableOffset: number; heapOffset: number; heapGranules: number },
  ) {
    this.region = region;
    this.name = region.name;
    this.w = region.int32;
    this.maxMembers = geometry.maxMembers;
    this.maxLocks = geometry.maxLocks;
    this.lockTableOffset = geometry.lockTableOffset;
    this.heapOffset = geometry.heapOffset;
    this.heapGranules = geometry.heapGranules;
    this.heapBase = geometry.heapOffset >>> 2;
  }

  corrupt(detail: string): CorruptionError {
    return new CorruptionError(this.name, detail);
  }

  /** A cached FutexWord for a fixed control word (member and lock words). */
  futex(byteOffset: number): FutexWord {
    let word = this.#futexes.get(byteOffset);
    if (!word) {
      word = this.region.futex(byteOffset);
      this.#futexes.set(byteOffset, word);
    }
    return word;
  }

  memberOffset(slot: number): number {
    return MEMBER_TABLE_OFFSET + slot * MEMBER_SLOT_SIZE;
  }

  /** Word index of a member slot's first word. */
  memberBase(slot: number): number {
    return (MEMBER_TABLE_OFFSET + slot * MEMBER_SLOT_SIZE) >>> 2;
  }

  lockOffset(id: number): number {
    return this.lockTableOffset + id * LOCK_ENTRY_SIZE;
  }

  /** Word index of block `index`'s header. */
  blockBase(index: number): number {
    return this.heapBase + index * (GRANULE / 4);
  }

  /** The offset callers see for block `index` (its payload, in region data bytes). */
  payloadOffset(index: number): number {
    return this.heapOffset + index * GRANULE + BLOCK_HEADER_SIZE;
  }

  /** The block index of a caller's offset, or -1 if it cannot be one (not checked further). */
  indexOf(offset: number): number {
    if (typeof offset !== 'number' || !Number.isInteger(offset)) return -1;
    const rel = offset - this.heapOffset - BLOCK_HEADER_SIZE;
    if (rel < FIRST_BLOCK * GRANULE || rel % GRANULE !== 0) return -1;
    const index = rel / GRANULE;
    return index < this.heapGranules ? index : -1;
  }

  /** The slot of a MemberId naming a live member, or a UsageError (ERR_MEMWIRE_BAD_MEMBER). */
  slotOf(id: MemberId): number {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > 0x7fffffff) {
      throw new UsageError(`member id must be a MemberId from this pool, got ${String(id)}`, 'ERR_MEMWIRE_BAD_MEMBER');
    }
    const slot = id & 63;
    if (slot >= this.maxMembers) throw new UsageError(`member id ${id} names slot ${slot}; this pool has ${this.maxMembers}`, 'ERR_MEMWIRE_BAD_MEMBER');
    const base = this.memberBase(slot);
    if (Atomics.load(this.w, base + M_STATE / 4) !== MEMBER_LIVE || (Atomics.load(this.w, base + M_GEN / 4) & GEN_MASK) !== id >>> 6) {
      throw new UsageError(`member ${id} is not a live member of pool ${JSON.stringify(this.name)} (it left, or never joined)`, 'ERR_MEMWIRE_BAD_MEMBER');
    }
    return slot;
  }

  /** The MemberId of a slot as its current generation names it. */
  idOfSlot(slot: number): MemberId {
    return ((Atomics.load(this.w, this.memberBase(slot) + M_GEN / 4) & GEN_MASK) << 6) | slot;
  }
}
