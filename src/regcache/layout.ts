/**
 * The one layout of a registered heap (seed 004): a control region shared by the processes of a
 * node, and one shm object per block of memory obtained from the OS. Offsets are bytes from a
 * region's data start; nothing stored here is an address. Little-endian (x86_64 only).
 *
 * Control region `<name>` (contentTag RC_CONTENT_TAG, contentVersion RC_LAYOUT_VERSION):
 *
 *   data offset          size              what
 *   -------------------  ----------------  ---------------------------------------------------
 *   0                    320               control header (below)
 *   MEMBER_TABLE_OFFSET  maxMembers × 128  member table: the same slots as a shmem pool's
 *                                          (src/shmem/members.ts: pid, start time, generation)
 *   lockTableOffset      64                one robust lock (src/shmem/locks.ts): the heap's
 *   occupancyOffset      64 × ⌈…⌉          which slots hold a block: a two-level bitmap
 *                                          (occupancy.ts): ⌈maxBlocks/32⌉ level-0 words, then two
 *                                          summaries of ⌈level-0 words/32⌉ words each (used, free)
 *   descriptorOffset     maxBlocks × 64    the shared descriptor table (FIG. 2), one entry per slot
 *
 * Control header (64-byte lines; the shmem member and lock code never reads it):
 *
 *   line 0   0 magic "MWRC"    4 version    8 initState (0 building, 1 ready: stored last)
 *           12 maxBlocks      16 maxMembers 20 blockBytes (data bytes of a standard block)
 *           24 keepFree        wholly free standard blocks kept mapped before one is released
 *           28 descriptorOffset  32 lockTableOffset  36 creatorPid
 *   line 1  64 nextBlockIdLo  68 nextBlockIdHi   the next blockId to hand out (under the lock;
 *                                                 starts at 1, only ever grows: never reused)
 *           72 blocksGrown    76 blocksReleased   80 repairs (a lock holder died mid-change)
 *           84 whollyFree     LIVE descriptors with no allocation, kept beside every change of a
 *                             state or an allocation count (so the release policy reads one word
 *                             instead of scanning the table); derived: a repair recounts it
 *
 * Descriptor entry (64 bytes, FIG. 2; written only under the lock, read by anyone):
 *
 *    0 state       D_EMPTY / D_GROWING / D_LIVE / D_RELEASING
 *    4 allocs      allocations live in the block (the block is wholly free at 0)
 *    8 blockIdLo  12 blockIdHi   the block's id, never reused (FIG. 2 "blockId"); the block's shm
 *                                object is named `<name>.b<blockId>` (FIG. 2 "blockPtr": a name
 *                                and offset 0, never an address)
 *   16 sizeLo     20 sizeHi      data bytes of the block's object (FIG. 2 "blockSz"), 0 when empty
 *   24 usedGranules              granules (16 B) allocated, headers included
 *   28 check      descriptorCheck(slot, blockId, size, state) of a LIVE entry: a torn or forged
 *                 entry fails it
 *
 * Block object `<name>.b<blockId>` (its own SharedRegion; header FIG. 3):
 *
 *    0 magic "MWRB"   4 version   8 slot (the descriptor's index: FIG. 3's "location")
 *   12 reserved      16 blockIdLo 20 blockIdHi   24 heapGranules   28 initState (stored last)
 *   64..319   the allocator's counters and bins, exactly where src/shmem/heap.ts keeps them in a
 *             pool (P_USED_BLOCKS … P_BINS + 32 words), so heap.ts runs unchanged inside a block
 *   BLOCK_HEAP_OFFSET … heapGranules × 16: the blocks heap.ts carves (32-byte headers)
 */
import { occupancyWords } from './occupancy.js';
import { LOCK_ENTRY_SIZE, MAX_MEMBERS, MEMBER_SLOT_SIZE, MEMBER_TABLE_OFFSET, POOL_HEADER_SIZE } from '../shmem/layout.js';

export const RC_CONTENT_TAG = 0x4d575243; // "MWRC"
/** 2: the occupancy bitmap and the whollyFree count (2026-12-07). */
export const RC_LAYOUT_VERSION = 2;
export const RC_MAGIC = 0x4d575243;
export const BLOCK_CONTENT_TAG = 0x4d575242; // "MWRB"
export const BLOCK_MAGIC = 0x4d575242;
export const BLOCK_LAYOUT_VERSION = 1;
export const READY = 1;

// Control header (byte offsets).
export const C_MAGIC = 0;
export const C_VERSION = 4;
export const C_INIT = 8;
export const C_MAX_BLOCKS = 12;
export const C_MAX_MEMBERS = 16;
export const C_BLOCK_BYTES = 20;
export const C_KEEP_FREE = 24;
export const C_DESCRIPTOR_OFFSET = 28;
export const C_LOCK_TABLE = 32;
export const C_CREATOR_PID = 36;
export const C_NEXT_ID_LO = 64;
export const C_NEXT_ID_HI = 68;
export const C_GROWN = 72;
export const C_RELEASED = 76;
export const C_REPAIRS = 80;
export const C_WHOLLY_FREE = 84;
/** The member table starts where a shmem pool's does, so members.ts and locks.ts work on it. */
export const CONTROL_HEADER_SIZE = POOL_HEADER_SIZE;

// Descriptor entries.
export const DESCRIPTOR_SIZE = 64;
export const D_STATE = 0;
export const D_ALLOCS = 4;
export const D_ID_LO = 8;
export const D_ID_HI = 12;
export const D_SIZE_LO = 16;
export const D_SIZE_HI = 20;
export const D_USED_GRANULES = 24;
export const D_CHECK = 28;
export const D_EMPTY = 0;
export const D_GROWING = 1;
export const D_LIVE = 2;
export const D_RELEASING = 3;

// Block header.
export const K_MAGIC = 0;
export const K_VERSION = 4;
export const K_SLOT = 8;
export const K_ID_LO = 16;
export const K_ID_HI = 20;
export const K_HEAP_GRANULES = 24;
export const K_INIT = 28;
/** heap.ts's counters and bins live at data bytes 64..319 of whatever region it runs in. */
export const BLOCK_HEAP_OFFSET = POOL_HEADER_SIZE;

/** Limits. */
export const MAX_BLOCKS = 4096;
export const MIN_BLOCK_BYTES = 64 * 1024;
/** heap.ts indexes granules with int32 words over one Int32Array: 1 GiB per block is plenty. */
export const MAX_BLOCK_BYTES = 2 ** 30;
export const PAGE = 4096;
export { MAX_MEMBERS };

/** Where the member table, the lock, the occupancy bitmap and the descriptor table sit. */
export function controlGeometry(maxMembers: number, maxBlocks: number) {
  const lockTableOffset = MEMBER_TABLE_OFFSET + maxMembers * MEMBER_SLOT_SIZE;
  const occupancyOffset = lockTableOffset + LOCK_ENTRY_SIZE;
  const { level0, summary } = occupancyWords(maxBlocks);
  const descriptorOffset = occupancyOffset + Math.ceil(((level0 + 2 * summary) * 4) / 64) * 64;
  return { lockTableOffset, occupancyOffset, descriptorOffset, controlBytes: descriptorOffset + maxBlocks * DESCRIPTOR_SIZE };
}

/** The check word of a LIVE descriptor: any torn or forged entry fails it. */
export function descriptorCheck(slot: number, idLo: number, idHi: number, sizeLo: number, sizeHi: number, state: number): number {
  let h = Math.imul(slot ^ 0x2545f491, 0x9e3779b1);
  h ^= Math.imul(idLo ^ 0x61c88647, 0x85ebca6b);
  h ^= Math.imul(idHi ^ 0x7feb352d, 0xc2b2ae35);
  h ^= Math.imul(sizeLo ^ 0x846ca68b, 0x27d4eb2f);
  h ^= Math.imul(sizeHi ^ 0x165667b1, 0x9e3779b1);
  h ^= state;
  return (h ^ (h >>> 16)) | 0;
}

/** The shm object name of a block: derived from its blockId, so no name is stored. */
export function blockRegionName(heapName: string, blockId: number): string {
  return `${heapName}.b${blockId}`;
}

/** A 64-bit id kept as two int32 words → a JS number (ids stay far below 2^53). */
export function joinId(lo: number, hi: number): number {
  return (hi >>> 0) * 2 ** 32 + (lo >>> 0);
}
