/**
 * The vocabulary every FFI declaration in memwire is written in, and the one interface both
 * backends (koffi, bun:ffi, Deno's FFI) implement. Nothing here imports a runtime-specific module.
 *
 * Pointers cross the FFI boundary as plain numbers (x86_64 user addresses fit in 47 bits, so a
 * double holds them exactly); 0 is NULL. Numbers are cheaper than BigInt on every runtime.
 */

/**
 * The largest zero-copy view (one ArrayBuffer over native memory) that every runtime memwire
 * supports can make: 4 GiB. Measured on Node 20.20 / koffi 3.3 (koffi.view of 2^32 + 1 bytes
 * aborts the whole process, "FATAL ERROR: Error::New napi_get_last_error_info") and Bun 1.4.5
 * (toArrayBuffer of 2^32 + 1 bytes throws "RangeError: Out of memory"); Deno 2.9 through koffi
 * takes more, but a region made under one runtime must open under the others. Both backends
 * refuse a longer view with a RangeError instead of reaching the runtime's limit.
 */
export const MAX_VIEW_BYTES = 2 ** 32;

/** Throw a RangeError for a view no runtime can make (past MAX_VIEW_BYTES, negative, fractional). */
export function checkViewLength(length: number): void {
  if (!Number.isInteger(length) || length < 0 || length > MAX_VIEW_BYTES) {
    throw new RangeError(`a view of ${length} bytes is not possible: at most ${MAX_VIEW_BYTES} bytes (4 GiB) on every runtime`);
  }
}

/** C types as memwire declares them. */
export type CType =
  | 'void'
  | 'i32'
  | 'u32'
  | 'i64' // returned as a number while it is a safe integer (always, for sizes and -1)
  | 'u64'
  | 'f64'
  | 'ptr' // an address held as a number (uintptr_t)
  | 'cstr' // argument: a JS string (the backend NUL-terminates it); result: a JS string or null
  | 'buf'; // argument: an ArrayBuffer / TypedArray / Buffer passed by reference, or null

/** One C function: its name, the C prototype it mirrors (documentation), result and arguments. */
export interface FnDecl {
  readonly name: string;
  readonly c: string;
  readonly returns: CType;
  readonly args: readonly CType[];
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type NativeFn = (...args: any[]) => any;

/** The outcome of a call run off the calling thread: its result and the errno it left. */
export interface AsyncResult {
  readonly value: number;
  /** errno the call left, or ERRNO_UNKNOWN where the runtime cannot tell (Deno's pool threads). */
  readonly errno: number;
}

/** An off-thread call failed but its thread's errno is out of reach: the caller must classify it. */
export const ERRNO_UNKNOWN = -1;

export interface NativeLibrary {
  /** The path or soname the library was opened by. */
  readonly path: string;
  /** Bind a declared function; throws if the symbol is missing. */
  bind(decl: FnDecl): NativeFn;
  /**
   * Run a declared function on a helper thread and resolve with its result and errno.
   * Arguments must be numbers or null (no buffers: they could move or die meanwhile).
   */
  callAsync(decl: FnDecl, args: readonly (number | null)[]): Promise<AsyncResult>;
}

export interface FfiBackend {
  readonly name: 'koffi' | 'bun:ffi' | 'deno';
  /** Open a shared library by soname or path; throws a plain Error with the loader's message. */
  open(path: string): NativeLibrary;
  /** A callable for a C function pointer (e.g. an entry of a provider's ops table). */
  fnFromPointer(address: number, returns: CType, args: readonly CType[]): NativeFn;
  /**
   * A zero-copy ArrayBuffer over native memory. Costs ~0.2–1.4 µs: make views once. At most
   * MAX_VIEW_BYTES long (a RangeError beyond).
   */
  view(address: number, length: number): ArrayBuffer;
  /** The address of the first byte of a JS buffer (valid while the buffer is reachable). */
  addressOf(buffer: ArrayBuffer | ArrayBufferView): number;
  /** Read a NUL-terminated string at an address (null for address 0). */
  readCString(address: number): string | null;
  /** errno as the last FFI call on this thread left it. Read it at once after the call. */
  errno(): number;
}
