/**
 * A Bun Worker that runs one blocking C call at a time for bun-backend's callAsync (bun:ffi has
 * no async calls). It reports the result and the errno the call left on this thread.
 */
import { dlopen, FFIType, toArrayBuffer } from 'bun:ffi';
import type { CType, FnDecl } from './types.js';

const TYPE: Record<CType, number> = {
  void: FFIType.void,
  i32: FFIType.i32,
  u32: FFIType.u32,
  i64: FFIType.i64_fast,
  u64: FFIType.u64_fast,
  f64: FFIType.f64,
  ptr: FFIType.u64_fast,
  cstr: FFIType.ptr,
  buf: FFIType.ptr,
};

const bound = new Map<string, (...args: unknown[]) => unknown>();
const errnoLib = dlopen('libc.so.6', { __errno_location: { args: [], returns: FFIType.u64_fast } });
const errnoCell = new Int32Array(toArrayBuffer(errnoLib.symbols.__errno_location() as number, 0, 4));

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const scope = globalThis as any;
scope.onmessage = (event: MessageEvent) => {
  const { path, decl, args } = event.data as { path: string; decl: FnDecl; args: (number | null)[] };
  try {
    const key = `${path}\0${decl.name}`;
    let fn = bound.get(key);
    if (!fn) {
      const lib = dlopen(path, {
        [decl.name]: { args: decl.args.map((a) => TYPE[a]), returns: TYPE[decl.returns] },
      });
      fn = lib.symbols[decl.name];
      bound.set(key, fn);
    }
    const value = Number(fn(...args));
    scope.postMessage({ value, errno: errnoCell[0] });
  } catch (error) {
    scope.postMessage({ error: String(error) });
  }
};
