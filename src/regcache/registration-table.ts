/**
 * One process's private registration table of a registered heap (seed 004, FIG. 4): index-aligned
 * with the shared descriptor table, each row the block this process has mapped at that slot and,
 * once used, its registration. A row is current while its blockId equals the descriptor's; a
 * mismatch (or a slot no longer live) is stale and is purged — deregistered and unmapped — before
 * the current block is mapped (claims 2 and 3, FIG. 7). Only this process ever touches its table:
 * releasing a block elsewhere leaves this row in place until its next use finds it stale.
 *
 * current() and adopt() are called under the heap's lock (they read the descriptor table's
 * locked view); entries is read without it by the lookup hit path.
 */
import { UsageError } from '../errors.js';
import { BlockMapping } from './block.js';
import type { DescriptorTable } from './descriptors.js';
import { D_LIVE } from './layout.js';
import type { Registrar, Registration } from './registrar.js';

/** Per-process counters of the table (stats(), as Open MPI's grdma prints them). */
export interface RegistrationCounts {
  registrations: number;
  deregistrations: number;
  hits: number;
  misses: number;
  stalePurges: number;
  releases: number;
}

export class RegistrationTable {
  /** The rows, by descriptor slot: undefined where this process has nothing mapped. */
  readonly entries: (BlockMapping | undefined)[];
  readonly counts: RegistrationCounts = { registrations: 0, deregistrations: 0, hits: 0, misses: 0, stalePurges: 0, releases: 0 };
  readonly #heapName: string;
  readonly #table: DescriptorTable;
  readonly #registrar: Registrar;
  /** Which row maps each blockId (so a miss checks for a duplicate without scanning the rows). */
  readonly #slotOf = new Map<number, number>();

  constructor(heapName: string, table: DescriptorTable, registrar: Registrar) {
    this.#heapName = heapName;
    this.#table = table;
    this.#registrar = registrar;
    this.entries = new Array<BlockMapping | undefined>(table.maxBlocks).fill(undefined);
  }

  /**
   * This process's row for the block descriptor `slot` names now: the descriptor is checked
   * (shared memory is untrusted), a stale row is purged, the current block mapped. undefined when
   * the slot holds no live block. Under the lock.
   */
  current(slot: number): BlockMapping | undefined {
    const table = this.#table;
    if (!Number.isInteger(slot) || slot < 0 || slot >= table.maxBlocks) throw new UsageError(`block slot ${String(slot)} is outside 0..${table.maxBlocks - 1}`);
    const state = table.state(slot);
    const mine = this.entries[slot];
    if (state !== D_LIVE) {
      table.checkState(slot, state);
      if (mine) this.purgeStale(slot);
      return undefined;
    }
    if (mine && mine.idLo === table.idLo(slot) && mine.idHi === table.idHi(slot)) return mine;
    const live = table.checkedLive(slot, mine?.blockId);
    const other = this.#slotOf.get(live.blockId);
    if (other !== undefined && other !== slot && table.state(other) === D_LIVE && table.blockId(other) === live.blockId) {
      throw table.corrupt(`descriptors ${other} and ${slot} both name block ${live.blockId}`);
    }
    if (mine) this.purgeStale(slot);
    const block = BlockMapping.open(this.#heapName, slot, live.idLo, live.idHi, live.bytes);
    this.#set(block);
    return block;
  }

  /** A block this process just obtained from the OS takes row `slot` (claim 3: a different row there is stale). */
  adopt(block: BlockMapping): void {
    if (this.entries[block.slot]) this.purgeStale(block.slot);
    this.#set(block);
  }

  #set(block: BlockMapping): void {
    this.entries[block.slot] = block;
    this.#slotOf.set(block.blockId, block.slot);
  }

  /** Register `block` in this process if it is not yet (a miss), else count a hit. */
  use(block: BlockMapping): Registration {
    if (block.registration) {
      this.counts.hits++;
      return block.registration;
    }
    this.counts.misses++;
    const registration = this.#registrar.register({ region: block.region, blockId: block.blockId, slot: block.slot });
    block.registration = registration;
    this.counts.registrations++;
    return registration;
  }

  /** Drop row `slot` (deregister, unmap): released, or leaving. */
  purge(slot: number): void {
    const block = this.entries[slot];
    if (!block) return;
    this.entries[slot] = undefined;
    if (this.#slotOf.get(block.blockId) === slot) this.#slotOf.delete(block.blockId);
    const registration = block.registration;
    block.registration = undefined;
    try {
      if (registration) {
        this.counts.deregistrations++;
        this.#registrar.deregister(registration);
      }
    } finally {
      block.close();
    }
  }

  /** Drop a row found stale (its block was released by someone, maybe replaced). */
  purgeStale(slot: number): void {
    this.counts.stalePurges++;
    this.purge(slot);
  }

  /** Drop row `slot` because this process released its block to the OS (counted as a release). */
  purgeReleased(slot: number): void {
    if (!this.entries[slot]) return;
    this.counts.releases++;
    this.purge(slot);
  }

  /** Blocks mapped here, registered here, and the registered bytes. */
  footprint(): { mappedBlocks: number; registeredBlocks: number; registeredBytes: number } {
    let mappedBlocks = 0;
    let registeredBlocks = 0;
    let registeredBytes = 0;
    for (const block of this.entries) {
      if (!block) continue;
      mappedBlocks++;
      if (block.registration) {
        registeredBlocks++;
        registeredBytes += block.region.size;
      }
    }
    return { mappedBlocks, registeredBlocks, registeredBytes };
  }
}
