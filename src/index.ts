/**
 * memwire's public surface. Everything a user imports comes from here.
 */
export { SharedRegion } from './shm/region.js';
export type { CreateOptions, OpenOptions, StaleRegion, TypedArrayKind } from './shm/region.js';
export { FutexWord, DEFAULT_SPIN, SLICE_MS } from './shm/futex.js';
export type { WaitOptions, WaitResult } from './shm/futex.js';
export { MAX_NAME_LENGTH } from './shm/names.js';
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
