/**
 * The control header of a registered heap (layout.ts, "Control header"): the creator's options
 * checked and written, and an opener's check of what it finds there (the region is shared memory:
 * untrusted, so every parameter is validated before any table is laid over it).
 */
import { CorruptionError, UsageError } from '../errors.js';
import { MAX_MEMBERS } from '../shmem/layout.js';
import { selfPid } from '../shm/process-identity.js';
import {
  C_BLOCK_BYTES, C_CREATOR_PID, C_DESCRIPTOR_OFFSET, C_INIT, C_KEEP_FREE, C_LOCK_TABLE, C_MAGIC, C_MAX_BLOCKS, C_MAX_MEMBERS,
  C_NEXT_ID_LO, C_VERSION, controlGeometry, MAX_BLOCK_BYTES, MAX_BLOCKS, MIN_BLOCK_BYTES, PAGE, RC_LAYOUT_VERSION, RC_MAGIC, READY,
} from './layout.js';
import { Occupancy } from './occupancy.js';
import type { RegisteredHeapOptions } from './types.js';

const DEFAULTS = { blockBytes: 4 << 20, maxBlocks: 256, maxMembers: 16, keepFreeBlocks: 1 };

export interface HeapParameters {
  readonly blockBytes: number;
  readonly maxBlocks: number;
  readonly maxMembers: number;
  readonly keepFree: number;
}

export function checkInt(what: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new UsageError(`${what} must be a whole number within ${min}..${max}, got ${String(value)}`);
  }
  return value;
}

/** The creator's options, defaulted and checked (UsageError). */
export function heapParameters(options: RegisteredHeapOptions): HeapParameters {
  const blockBytes = checkInt('blockBytes', options.blockBytes ?? DEFAULTS.blockBytes, MIN_BLOCK_BYTES, MAX_BLOCK_BYTES);
  if (blockBytes % PAGE !== 0) throw new UsageError(`blockBytes must be a multiple of ${PAGE}, got ${blockBytes}`);
  const maxBlocks = checkInt('maxBlocks', options.maxBlocks ?? DEFAULTS.maxBlocks, 1, MAX_BLOCKS);
  const maxMembers = checkInt('maxMembers', options.maxMembers ?? DEFAULTS.maxMembers, 1, MAX_MEMBERS);
  const keepFree = checkInt('keepFreeBlocks', options.keepFreeBlocks ?? DEFAULTS.keepFreeBlocks, 0, maxBlocks);
  return { blockBytes, maxBlocks, maxMembers, keepFree };
}

/** Write a new heap's control header; READY is stored last. */
export function formatControl(w: Int32Array, p: HeapParameters): void {
  const { lockTableOffset, occupancyOffset, descriptorOffset } = controlGeometry(p.maxMembers, p.maxBlocks);
  w[C_MAGIC / 4] = RC_MAGIC;
  w[C_VERSION / 4] = RC_LAYOUT_VERSION;
  w[C_MAX_BLOCKS / 4] = p.maxBlocks;
  w[C_MAX_MEMBERS / 4] = p.maxMembers;
  w[C_BLOCK_BYTES / 4] = p.blockBytes;
  w[C_KEEP_FREE / 4] = p.keepFree;
  w[C_DESCRIPTOR_OFFSET / 4] = descriptorOffset;
  w[C_LOCK_TABLE / 4] = lockTableOffset;
  w[C_CREATOR_PID / 4] = selfPid;
  w[C_NEXT_ID_LO / 4] = 1; // blockIds start at 1: 0 in a private table means "none" ([0039])
  new Occupancy(w, occupancyOffset, p.maxBlocks).rebuild(() => false); // every slot free (its summary bits set)
  // Ordering point: every field above is visible before initState says READY.
  Atomics.store(w, C_INIT / 4, READY);
}

/**
 * Wait up to `timeoutMs` for the creator's READY, then check the header of a control region of
 * `size` bytes: CorruptionError naming `name` for anything that is not a heap of this version.
 */
export function checkControl(name: string, w: Int32Array, size: number, timeoutMs: number): HeapParameters {
  const deadline = Date.now() + timeoutMs;
  while (Atomics.load(w, C_INIT / 4) !== READY && Date.now() < deadline) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
  // Ordering point: READY was loaded before the parameters below are read.
  if (Atomics.load(w, C_INIT / 4) !== READY) throw new CorruptionError(name, `registered heap not initialised within ${timeoutMs} ms`);
  if (w[C_MAGIC / 4] !== RC_MAGIC || w[C_VERSION / 4] !== RC_LAYOUT_VERSION) throw new CorruptionError(name, 'not a registered heap of this version');
  const maxBlocks = w[C_MAX_BLOCKS / 4];
  const maxMembers = w[C_MAX_MEMBERS / 4];
  const blockBytes = w[C_BLOCK_BYTES / 4];
  if (maxBlocks < 1 || maxBlocks > MAX_BLOCKS || maxMembers < 1 || maxMembers > MAX_MEMBERS) {
    throw new CorruptionError(name, `maxBlocks ${maxBlocks}, maxMembers ${maxMembers}`);
  }
  if (blockBytes < MIN_BLOCK_BYTES || blockBytes > MAX_BLOCK_BYTES || blockBytes % PAGE !== 0) throw new CorruptionError(name, `blockBytes ${blockBytes}`);
  const keepFree = w[C_KEEP_FREE / 4];
  if (keepFree < 0 || keepFree > maxBlocks) throw new CorruptionError(name, `keepFreeBlocks ${keepFree}`);
  const geometry = controlGeometry(maxMembers, maxBlocks);
  if (w[C_DESCRIPTOR_OFFSET / 4] !== geometry.descriptorOffset || w[C_LOCK_TABLE / 4] !== geometry.lockTableOffset || geometry.controlBytes > size) {
    throw new CorruptionError(name, 'table offsets do not match the heap parameters');
  }
  return { blockBytes, maxBlocks, maxMembers, keepFree };
}
