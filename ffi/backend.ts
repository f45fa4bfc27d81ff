/**
 * The one door to FFI: picks the backend for this runtime once, at start-up, and opens native
 * libraries by their standard sonames (or the path in an environment variable).
 */
import { runtimeName } from './runtime.js';
import type { FfiBackend, NativeLibrary } from './types.js';

if (runtimeName === 'deno') (await import('./deno-permissions.js')).checkDenoPermissions();

export type { AsyncResult, CType, FfiBackend, FnDecl, NativeFn, NativeLibrary } from './types.js';
export { ERRNO_UNKNOWN } from './types.js';

/**
 * Bun: bun:ffi. Deno: Deno's own FFI, unless MEMWIRE_DENO_BACKEND=koffi picks koffi through npm
 * compatibility (read through Deno.env so the check itself needs no permission beyond --allow-env).
 * Node: koffi.
 */
export const backend: FfiBackend =
  runtimeName === 'bun'
    ? (await import('./bun-backend.js')).bunBackend
    : runtimeName === 'deno' && denoBackendChoice() !== 'koffi'
      ? (await import('./deno-backend.js')).denoBackend
      : (await import('./koffi-backend.js')).koffiBackend;

function denoBackendChoice(): string {
  const choice = process.env.MEMWIRE_DENO_BACKEND ?? 'deno';
  if (choice !== 'deno' && choice !== 'koffi') {
    throw new Error(`MEMWIRE_DENO_BACKEND must be "deno" or "koffi", not ${JSON.stringify(choice)}`);
  }
  return choice;
}

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
