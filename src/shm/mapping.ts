/**
 * Mapping shared-memory objects into this process, and unmapping them without ever leaving a
 * JavaScript view whose use crashes the process.
 *
 * A view (ArrayBuffer) over mapped memory cannot be detached on Node 20, so it may be touched
 * after the memory is gone. unmapSafely() therefore does not munmap at once: it maps private,
 * anonymous, zero-filled pages over the same addresses (MAP_FIXED), which drops the shared object
 * at once (its pages are freed once no process maps it) and leaves stale views reading zeros and
 * writing into private memory nobody reads. The placeholder itself is unmapped when the
 * ArrayBuffer that covered the mapping is garbage-collected, so no address space leaks.
 */
import { backend } from '../../ffi/backend.js';
import {
  errno,
  libc,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_NORESERVE,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
} from '../../ffi/libc.js';
import { MAX_VIEW_BYTES } from '../../ffi/types.js';
import { errnoError, UsageError } from '../errors.js';

export interface Mapping {
  readonly address: number;
  readonly length: number;
  /** The one ArrayBuffer over the whole mapping; every view of it derives from this. */
  readonly buffer: ArrayBuffer;
}

const placeholders = new FinalizationRegistry<{ address: number; length: number }>(({ address, length }) => {
  libc.munmap(address, length);
});

/** mmap a shared object's first `length` bytes, readable (and writable unless readOnly). */
export function mapShared(fd: number, length: number, readOnly: boolean, what: string): Mapping {
  // Checked before mmap, so a mapping no view can cover is never made (callers check sizes
  // first; this is the last line, never a process abort).
  if (!Number.isInteger(length) || length <= 0 || length > MAX_VIEW_BYTES) {
    throw new UsageError(`cannot map ${length} bytes of ${what}: one mapping is at most ${MAX_VIEW_BYTES} bytes (4 GiB)`);
  }
  const prot = readOnly ? PROT_READ : PROT_READ | PROT_WRITE;
  const address = libc.mmap(0, length, prot, MAP_SHARED, fd, 0) as number;
  if (address === -1) throw errnoError('mmap', errno(), { object: what, length, prot });
  return { address, length, buffer: backend.view(address, length) };
}

/**
 * Replace a mapping with inert private pages, to be unmapped once its ArrayBuffer is collected.
 * Falls back to a plain munmap only if the placeholder cannot be made (then stale views are the
 * caller's promise not to touch).
 */
export function unmapSafely(mapping: Mapping): void {
  const flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE;
  const result = libc.mmap(mapping.address, mapping.length, PROT_READ | PROT_WRITE, flags, -1, 0) as number;
  if (result === mapping.address) {
    placeholders.register(mapping.buffer, { address: mapping.address, length: mapping.length });
  } else {
    libc.munmap(mapping.address, mapping.length);
  }
}

/** munmap a mapping whose views never escaped the caller (e.g. a header peeked at). */
export function unmapPrivate(mapping: Mapping): void {
  libc.munmap(mapping.address, mapping.length);
}
