/**
 * The public types of a registered heap (seed 004): options, the allocation handle, what a lookup
 * answers for posting, and the counters of stats(). The heap itself: registered-heap.ts.
 */
import type { MemoryRegion } from '../verbs/memory-region.js';
import type { Registrar, Registration } from './registrar.js';

export interface RegisteredHeapOptions {
  /** Who registers blocks: noneRegistrar (default: shared memory only) or a VerbsRegistrar. */
  registrar?: Registrar;
  /** Data bytes of a standard block obtained from the OS: a multiple of 4096, 64 KiB – 1 GiB. Default 4 MiB. */
  blockBytes?: number;
  /** Descriptor table entries: blocks the heap may hold at once (1–4096). Default 256. */
  maxBlocks?: number;
  /** Processes that may have the heap open at once (1–64). Default 16. */
  maxMembers?: number;
  /** Wholly free standard blocks kept before one is given back to the OS. Default 1. */
  keepFreeBlocks?: number;
  /** Permission bits of the shm objects. Default 0o600. */
  mode?: number;
}

export interface RegisteredHeapOpenOptions {
  registrar?: Registrar;
  /** How long to wait for the creator to finish initialising. Default 2000 ms. */
  timeoutMs?: number;
}

/** An allocation: `view` is zero-copy over the block's mapping in this process. */
export class HeapBuffer {
  constructor(
    /** The descriptor-table slot of its block (FIG. 3's location). */
    readonly block: number,
    /** The blockId of its block: if the slot's blockId differs, the block was released. */
    readonly blockId: number,
    /** Byte offset in the block's data area (the same in every process). */
    readonly offset: number,
    readonly length: number,
    readonly view: Uint8Array,
  ) {}

  /** @internal lookup()'s last answer for the whole buffer, and the registration it came from. */
  cachedRange: RegisteredRange | undefined = undefined;
  /** @internal */
  cachedFrom: Registration | undefined = undefined;
}

/** What posting needs for an allocation (or a range of one). */
export interface RegisteredRange {
  readonly lkey: number;
  readonly rkey: number;
  /** This process's address of the first byte (a local SGE's addr). */
  readonly address: number;
  /** What a peer puts in remote_addr to reach the first byte: the registration's iova + offset. */
  readonly remoteAddr: number;
  readonly block: number;
  readonly blockId: number;
  /** Byte offset in the block's data area: with `mr`, an SGE is { mr, offset, length }. */
  readonly offset: number;
  /** The block's memory region in this process (verbs registrar; undefined for "none"). */
  readonly mr: MemoryRegion | undefined;
}

/** Counters of this process's registration table (as Open MPI's grdma prints them), and the heap's. */
export interface RegisteredHeapStats {
  /** Registrations made by this process (each block at most once per blockId). */
  registrations: number;
  deregistrations: number;
  /** Uses that found this process's registration current. */
  hits: number;
  /** Uses that had to register (a block not yet registered here). */
  misses: number;
  /** Entries found stale (the descriptor's blockId differed) and purged. */
  stalePurges: number;
  /** Blocks this process released to the OS. */
  releases: number;
  /** Blocks mapped / registered in this process now, and their bytes. */
  mappedBlocks: number;
  registeredBlocks: number;
  registeredBytes: number;
  /** Heap-wide: live blocks, their bytes, allocations, blocks ever grown / released, repairs after a death. */
  liveBlocks: number;
  liveBytes: number;
  allocations: number;
  blocksGrown: number;
  blocksReleased: number;
  repairs: number;
}

