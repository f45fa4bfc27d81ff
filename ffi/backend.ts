/**
 * The one door to FFI: picks the backend for this runtime once, at start-up, and opens native
 * libraries by their standard sonames (or the path in an environment variable).
 */
import { runtimeName } from './runtime.js';
import type { FfiBackend, NativeLibrary } from './types.js';

export type { AsyncResult, CType, FfiBackend, FnDecl, NativeFn, NativeLibrary } from './types.js';

export const backend: FfiBackend =
  runtimeName === 'bun'
    ? (await import('./bun-backend.js')).bunBackend
    : (await import('./koffi-backend.js')).koffiBackend;

/** The native libraries memwire uses: standard soname, and the variable that overrides it. */
export const NATIVE_LIBRARIES = {
  libc: { soname: 'libc.so.6', env: 'MEMWIRE_LIBC' },
  ibverbs: { soname: 'libibverbs.so.1', env: 'MEMWIRE_LIBIBVERBS' },
  rdmacm: { soname: 'librdmacm.so.1', env: 'MEMWIRE_LIBRDMACM' },
} as const;

export type LibraryKey = keyof typeof NATIVE_LIBRARIES;

/** The soname or path a library will be opened by. */
export function libraryPath(key: LibraryKey): string {
  const spec = NATIVE_LIBRARIES[key];
  return process.env[spec.env] || spec.soname;
}

const opened = new Map<LibraryKey, NativeLibrary>();

/** Open a native library once; a failure throws an Error naming the path and the override. */
export function openLibrary(key: LibraryKey): NativeLibrary {
  let lib = opened.get(key);
  if (!lib) {
    const path = libraryPath(key);
    try {
      lib = backend.open(path);
    } catch (cause) {
      const spec = NATIVE_LIBRARIES[key];
      throw new Error(`cannot load ${path} (set ${spec.env} to its path): ${(cause as Error).message}`, { cause });
    }
    opened.set(key, lib);
  }
  return lib;
}
