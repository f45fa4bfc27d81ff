/**
 * Private native memory for FFI calls to read and write: out-parameters, work requests, a
 * timespec a helper thread reads. Used by src/shm (futex timeouts) and src/verbs.
 */
import { backend } from '../ffi/backend.js';
import { errno as lastErrno, libc, MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../ffi/libc.js';
import { errnoError } from './errors.js';

const PAGE = 4096;

/** A block of zeroed native memory (anonymous mmap) with a DataView over it. Internal. */
export class NativeBlock {
  readonly address: number;
  readonly size: number;
  readonly view: DataView;
  readonly bytes: Uint8Array;
  #mapped: boolean;

  constructor(size: number, what: string) {
    const length = Math.max(PAGE, Math.ceil(size / PAGE) * PAGE);
    const address = libc.mmap(0, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) as number;
    if (address === -1) throw errnoError('mmap', lastErrno(), { length, for: what });
    this.address = address;
    this.size = length;
    const buffer = backend.view(address, length);
    this.view = new DataView(buffer);
    this.bytes = new Uint8Array(buffer);
    this.#mapped = true;
  }

  /**
   * Unmap. Only called once nothing native can touch the block (its object is destroyed) and the
   * views above never escaped the owning object.
   */
  free(): void {
    if (!this.#mapped) return;
    this.#mapped = false;
    libc.munmap(this.address, this.size);
  }
}
