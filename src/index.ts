/**
 * memwire's public surface. Everything a user imports comes from here.
 */
export { SharedRegion } from './shm/region.js';
export type { CreateOptions, OpenOptions, StaleRegion, TypedArrayKind } from './shm/region.js';
export { FutexWord, DEFAULT_SPIN, SLICE_MS } from './shm/futex.js';
export type { WaitOptions, WaitResult } from './shm/futex.js';
export { MAX_NAME_LENGTH } from './shm/names.js';
export { Mailbox } from './shm/mailbox.js';
export { MAX_REGION_DATA_SIZE } from './shm/region-layout.js';
export {
  ClosedError,
  CorruptionError,
  MemwireError,
  NotSupportedError,
  SystemError,
  TimeoutError,
  UsageError,
} from './errors.js';
export { platform } from './platform.js';
// The shared-memory node API (seed 003): see src/shmem/.
export { ShmemPool } from './shmem/pool.js';
export type { MallocOptions, PoolCreateOptions, PoolOpenOptions, PoolStats } from './shmem/pool.js';
export type { MemberId } from './shmem/context.js';
export type { MemberInfo } from './shmem/members.js';
export { Message } from './shmem/messages.js';
export type { LockStatus, LockWaitOptions, SetLockResult, TestLockResult } from './shmem/locks.js';
export type { Comparison, SignalWaitOptions } from './shmem/signals.js';
export type { HeapStats } from './shmem/heap.js';
export { OwnershipError } from './errors.js';
