/**
 * The header at the start of every memwire shared-memory object.
 *
 *   offset  size  field
 *   ------  ----  ---------------------------------------------------------------
 *        0     4  magic           0x4D575247 ("MWRG" read as a big-endian word)
 *        4     4  layoutVersion   REGION_LAYOUT_VERSION
 *        8     4  initState       0 while the creator builds it, 1 when ready (stored last)
 *       12     4  creatorPid
 *       16     8  creatorStart    the creator's start time (clock ticks after boot, from
 *                                 /proc/<pid>/stat), so a recycled pid is not taken for it
 *       24     8  mappedSize      bytes of the whole object, header included
 *       32     4  dataOffset      where the caller's bytes start (= REGION_HEADER_SIZE)
 *       36     4  contentTag      what layout lives in the data (0: none); set by the creator
 *       40     4  contentVersion  that layout's version
 *       44    84  reserved, zero
 *      128     …  data: the caller's bytes (64-byte aligned, so hot words get their own line)
 *
 * Everything is little-endian, as on the only architecture memwire supports (x86_64).
 * Offsets, never addresses, are stored in shared memory.
 */
import { MAX_VIEW_BYTES } from '../../ffi/types.js';
export const REGION_MAGIC = 0x4d575247;
export const REGION_LAYOUT_VERSION = 1;
export const REGION_HEADER_SIZE = 128;

export const H_MAGIC = 0;
export const H_VERSION = 4;
export const H_INIT_STATE = 8;
export const H_CREATOR_PID = 12;
export const H_CREATOR_START = 16;
export const H_MAPPED_SIZE = 24;
export const H_DATA_OFFSET = 32;
export const H_CONTENT_TAG = 36;
export const H_CONTENT_VERSION = 40;

export const INIT_BUILDING = 0;
export const INIT_READY = 1;

/**
 * The largest data size a region may have: 4 GiB less the header (4,294,967,168 bytes). A region
 * is mapped and seen through one ArrayBuffer, header included, and no runtime memwire supports
 * can make a view longer than MAX_VIEW_BYTES (ffi/types.ts). Layouts built on regions (postbox,
 * segments, shmem pools) check their sizes against this.
 */
export const MAX_REGION_DATA_SIZE = MAX_VIEW_BYTES - REGION_HEADER_SIZE;
