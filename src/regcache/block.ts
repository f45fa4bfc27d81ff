/**
 * One block of a registered heap as this process sees it: the block's own shm object (obtained
 * from the OS when the heap grows, given back when it shrinks), mapped here, with FIG. 3's header
 * checked, and src/shmem/heap.ts's allocator running inside it unchanged (through a PoolContext
 * whose heap starts at BLOCK_HEAP_OFFSET). The private registration of the block (FIG. 4) lives
 * on the same object: a BlockMapping is one row of this process's registration table.
 */
import { CorruptionError, UsageError } from '../errors.js';
import { declareOwnedRegions, SharedRegion } from '../shm/region.js';
import { PoolContext } from '../shmem/context.js';
import { Heap } from '../shmem/heap.js';
import { FIRST_BLOCK, GRANULE, HEADER_GRANULES } from '../shmem/layout.js';
import {
  BLOCK_CONTENT_TAG,
  BLOCK_HEAP_OFFSET,
  BLOCK_LAYOUT_VERSION,
  BLOCK_MAGIC,
  blockRegionName,
  joinId,
  K_HEAP_GRANULES,
  K_ID_HI,
  K_ID_LO,
  K_INIT,
  K_MAGIC,
  K_SLOT,
  K_VERSION,
  MAX_BLOCK_BYTES,
  PAGE,
  READY,
} from './layout.js';
import type { Registration } from './registrar.js';

// A block belongs to its heap, not to the process that grew it: SharedRegion.listStale() must not
// call it 'creator-dead' while the heap's control region lives (other processes allocate in it).
declareOwnedRegions(BLOCK_CONTENT_TAG, (name) => /^(.+)\.b\d+$/.exec(name)?.[1]);

/** Granules of the heap inside a block of `dataBytes`. */
export function heapGranulesOf(dataBytes: number): number {
  return Math.floor((dataBytes - BLOCK_HEAP_OFFSET) / GRANULE);
}

/** The largest malloc a block of `dataBytes` can ever satisfy. */
export function maxRequestOf(dataBytes: number): number {
  return (heapGranulesOf(dataBytes) - FIRST_BLOCK - HEADER_GRANULES) * GRANULE;
}

/** The data bytes of a block that holds one allocation of `size` (at least `standard`). */
export function blockBytesFor(size: number, standard: number): number {
  const need = BLOCK_HEAP_OFFSET + (FIRST_BLOCK + Heap.granulesFor(size)) * GRANULE;
  return Math.max(standard, Math.ceil(need / PAGE) * PAGE);
}

/** The largest malloc any block can satisfy. */
export const MAX_REQUEST = maxRequestOf(MAX_BLOCK_BYTES);

export class BlockMapping {
  readonly slot: number;
  readonly blockId: number;
  readonly idLo: number;
  readonly idHi: number;
  readonly region: SharedRegion;
  readonly heap: Heap;
  readonly ctx: PoolContext;
  /** This process's registration of the block, made on first use (undefined until then). */
  registration: Registration | undefined;

  private constructor(slot: number, idLo: number, idHi: number, region: SharedRegion) {
    this.slot = slot;
    this.idLo = idLo;
    this.idHi = idHi;
    this.blockId = joinId(idLo, idHi);
    this.region = region;
    const heapGranules = heapGranulesOf(region.size);
    this.ctx = new PoolContext(region, { maxMembers: 0, maxLocks: 0, lockTableOffset: 0, heapOffset: BLOCK_HEAP_OFFSET, heapGranules });
    this.heap = new Heap(this.ctx);
  }

  /** Under the heap's lock: obtain a new block from the OS (its own shm object) and format it. */
  static create(heapName: string, slot: number, idLo: number, idHi: number, dataBytes: number, mode: number): BlockMapping {
    const name = blockRegionName(heapName, joinId(idLo, idHi));
    const region = SharedRegion.create(name, dataBytes, { contentTag: BLOCK_CONTENT_TAG, contentVersion: BLOCK_LAYOUT_VERSION, mode });
    try {
      const w = region.int32;
      w[K_MAGIC / 4] = BLOCK_MAGIC;
      w[K_VERSION / 4] = BLOCK_LAYOUT_VERSION;
      w[K_SLOT / 4] = slot;
      w[K_ID_LO / 4] = idLo;
      w[K_ID_HI / 4] = idHi;
      w[K_HEAP_GRANULES / 4] = heapGranulesOf(dataBytes);
      const block = new BlockMapping(slot, idLo, idHi, region);
      block.heap.init();
      // Ordering point: the header and the heap's first free block are visible before READY.
      Atomics.store(w, K_INIT / 4, READY);
      return block;
    } catch (error) {
      region.dispose();
      throw error;
    }
  }

  /**
   * Map the block a LIVE descriptor names and check it is that block: its size and FIG. 3's
   * header (slot, blockId) must agree with the descriptor, else CorruptionError.
   */
  static open(heapName: string, slot: number, idLo: number, idHi: number, dataBytes: number): BlockMapping {
    const name = blockRegionName(heapName, joinId(idLo, idHi));
    const region = SharedRegion.open(name, { contentTag: BLOCK_CONTENT_TAG, contentVersion: BLOCK_LAYOUT_VERSION });
    try {
      const w = region.int32;
      if (region.size !== dataBytes) {
        throw new CorruptionError(heapName, `descriptor ${slot} says block ${name} has ${dataBytes} bytes, the object has ${region.size}`);
      }
      if (Atomics.load(w, K_INIT / 4) !== READY || w[K_MAGIC / 4] !== BLOCK_MAGIC || w[K_VERSION / 4] !== BLOCK_LAYOUT_VERSION) {
        throw new CorruptionError(name, 'not an initialised registered-heap block');
      }
      if (w[K_SLOT / 4] !== slot || w[K_ID_LO / 4] !== idLo || w[K_ID_HI / 4] !== idHi) {
        throw new CorruptionError(
          name,
          `its header names slot ${w[K_SLOT / 4]} blockId ${joinId(w[K_ID_LO / 4], w[K_ID_HI / 4])}; descriptor ${slot} names blockId ${joinId(idLo, idHi)}`,
        );
      }
      if (w[K_HEAP_GRANULES / 4] !== heapGranulesOf(dataBytes)) throw new CorruptionError(name, `heap of ${w[K_HEAP_GRANULES / 4]} granules`);
      return new BlockMapping(slot, idLo, idHi, region);
    } catch (error) {
      region.close();
      throw error;
    }
  }

  /** The block's whole data area, after checking `length` bytes at `offset` lie in its heap. */
  data(offset: number, length: number): Uint8Array {
    if (offset < BLOCK_HEAP_OFFSET || offset + length > this.region.size) {
      throw new UsageError(`bytes ${offset}..${offset + length} are outside block ${this.blockId}'s heap`);
    }
    return this.region.bytes;
  }

  /** Unmap (stale views then read zeros: see shm/mapping.ts). The name is not touched. */
  close(): void {
    this.region.close();
  }
}
