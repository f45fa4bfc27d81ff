/**
 * Making and opening a ShmemPool's region (seed 003, claim 7): the creator sizes the region and
 * writes the pool header, the lock table's reserved allocator lock and the first free block, then
 * stores initState last; an opener waits (boundedly) for that and checks every header value
 * before building a context on it — the header is untrusted input. The pool's API is pool.ts.
 */
import { CorruptionError, TimeoutError, UsageError } from '../errors.js';
import { selfPid } from '../shm/process-identity.js';
import { SharedRegion } from '../shm/region.js';
import { PoolContext } from './context.js';
import { Heap } from './heap.js';
import { DEFAULT_ALLOCATOR_TIMEOUT_MS } from './heap-lock.js';
import {
  FIRST_BLOCK,
  GRANULE,
  L_RESERVED,
  MAX_HEAP_BYTES,
  MAX_LOCKS,
  MAX_MEMBERS,
  MIN_BLOCK_GRANULES,
  POOL_CONTENT_TAG,
  POOL_HEADER_SIZE,
  POOL_LAYOUT_VERSION,
  POOL_READY,
  P_CREATOR_PID,
  P_HEAP_GRANULES,
  P_HEAP_OFFSET,
  P_INIT_STATE,
  P_LOCK_TABLE,
  P_MAX_LOCKS,
  P_MAX_MEMBERS,
  P_VERSION,
  poolGeometry,
} from './layout.js';

export interface PoolCreateOptions {
  /** Bytes of heap for malloc and messages; default 4 MiB, at most 2 GiB. */
  heapBytes?: number;
  /** Processes that may be members at once; default and maximum 64. */
  maxMembers?: number;
  /** Lock ids (one is the pool's own); default 128. */
  maxLocks?: number;
  /** Permission bits of the region; default 0o600. */
  mode?: number;
  /** See PoolOpenOptions.allocatorTimeoutMs. */
  allocatorTimeoutMs?: number;
}

export interface PoolOpenOptions {
  /** How long to wait for the creator to finish building the pool; default 2000 ms. */
  timeoutMs?: number;
  /**
   * How long this process's pool methods (malloc, free, own, transfer, send, stats, reap,
   * dispose …) wait for the pool's allocator lock before a TimeoutError; default 10 000 ms. It
   * is only ever held for one allocator step, so a long wait means a hung or hostile member.
   */
  allocatorTimeoutMs?: number;
}

const DEFAULT_HEAP_BYTES = 4 << 20;
const DEFAULT_MAX_LOCKS = 128;
const DEFAULT_OPEN_TIMEOUT_MS = 2000;

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function checkAllocatorTimeout(value: unknown): number {
  if (value === undefined) return DEFAULT_ALLOCATOR_TIMEOUT_MS;
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0) {
    throw new UsageError(`allocatorTimeoutMs must be a non-negative number of milliseconds, got ${String(value)}`);
  }
  return value;
}

function wholeNumber(what: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new UsageError(`${what} must be a whole number within ${min}..${max}, got ${String(value)}`);
  }
  return value;
}

/** Create the region of a new pool and build the pool in it (ShmemPool.create). */
export function createPoolRegion(name: string, options: PoolCreateOptions): { ctx: PoolContext; allocatorTimeoutMs: number } {
  const heapBytes = wholeNumber('heapBytes', options.heapBytes ?? DEFAULT_HEAP_BYTES, 1024, MAX_HEAP_BYTES);
  const maxMembers = wholeNumber('maxMembers', options.maxMembers ?? MAX_MEMBERS, 1, MAX_MEMBERS);
  const maxLocks = wholeNumber('maxLocks', options.maxLocks ?? DEFAULT_MAX_LOCKS, 1, MAX_LOCKS);
  const allocatorTimeoutMs = checkAllocatorTimeout(options.allocatorTimeoutMs);
  const geometry = poolGeometry(maxMembers, maxLocks, heapBytes);
  const region = SharedRegion.create(name, geometry.regionBytes, {
    contentTag: POOL_CONTENT_TAG,
    contentVersion: POOL_LAYOUT_VERSION,
    mode: options.mode,
  });
  try {
    const w = region.int32;
    w[P_VERSION / 4] = POOL_LAYOUT_VERSION;
    w[P_MAX_MEMBERS / 4] = maxMembers;
    w[P_MAX_LOCKS / 4] = maxLocks;
    w[P_LOCK_TABLE / 4] = geometry.lockTableOffset;
    w[P_HEAP_OFFSET / 4] = geometry.heapOffset;
    w[P_HEAP_GRANULES / 4] = geometry.heapGranules;
    w[P_CREATOR_PID / 4] = selfPid;
    w[(geometry.lockTableOffset + L_RESERVED) / 4] = 1; // lock 0: the allocator's
    const ctx = new PoolContext(region, { maxMembers, maxLocks, ...geometry });
    new Heap(ctx).init();
    // Ordering point: the whole pool is built before initState says ready.
    Atomics.store(w, P_INIT_STATE / 4, POOL_READY);
    return { ctx, allocatorTimeoutMs };
  } catch (error) {
    region.dispose();
    throw error;
  }
}

/** Open an existing pool's region and check its header (ShmemPool.open). */
export function openPoolRegion(name: string, options: PoolOpenOptions): { ctx: PoolContext; allocatorTimeoutMs: number } {
  const timeoutMs = options.timeoutMs ?? DEFAULT_OPEN_TIMEOUT_MS;
  const allocatorTimeoutMs = checkAllocatorTimeout(options.allocatorTimeoutMs);
  const deadline = Date.now() + timeoutMs;
  const region = SharedRegion.open(name, { timeoutMs, contentTag: POOL_CONTENT_TAG, contentVersion: POOL_LAYOUT_VERSION });
  try {
    if (region.size < POOL_HEADER_SIZE) throw new CorruptionError(name, `a pool region of ${region.size} bytes cannot hold the pool header`);
    const w = region.int32;
    while (Atomics.load(w, P_INIT_STATE / 4) !== POOL_READY) {
      if (Date.now() > deadline) throw new TimeoutError(`pool ${JSON.stringify(name)} was not ready within ${timeoutMs} ms`);
      sleepMs(1);
    }
    // Ordering point: initState READY was loaded before the parameters are read.
    const version = w[P_VERSION / 4];
    if (version !== POOL_LAYOUT_VERSION) throw new CorruptionError(name, `pool layout version ${version}, expected ${POOL_LAYOUT_VERSION}`);
    const maxMembers = w[P_MAX_MEMBERS / 4];
    const maxLocks = w[P_MAX_LOCKS / 4];
    if (maxMembers < 1 || maxMembers > MAX_MEMBERS) throw new CorruptionError(name, `maxMembers ${maxMembers}`);
    if (maxLocks < 1 || maxLocks > MAX_LOCKS) throw new CorruptionError(name, `maxLocks ${maxLocks}`);
    const heapGranules = w[P_HEAP_GRANULES / 4];
    if (heapGranules < FIRST_BLOCK + MIN_BLOCK_GRANULES || heapGranules > MAX_HEAP_BYTES / GRANULE) {
      throw new CorruptionError(name, `heap of ${heapGranules} granules`);
    }
    const geometry = poolGeometry(maxMembers, maxLocks, heapGranules * GRANULE);
    if (w[P_LOCK_TABLE / 4] !== geometry.lockTableOffset || w[P_HEAP_OFFSET / 4] !== geometry.heapOffset) {
      throw new CorruptionError(name, `table offsets ${w[P_LOCK_TABLE / 4]}/${w[P_HEAP_OFFSET / 4]} do not match the pool's parameters`);
    }
    if (geometry.regionBytes > region.size) {
      throw new CorruptionError(name, `the pool needs ${geometry.regionBytes} bytes, the region has ${region.size}`);
    }
    return { ctx: new PoolContext(region, { maxMembers, maxLocks, ...geometry }), allocatorTimeoutMs };
  } catch (error) {
    region.close();
    throw error;
  }
}
