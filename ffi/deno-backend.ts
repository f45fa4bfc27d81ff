/**
 * The Deno implementation of the FFI backend, on Deno's own FFI (`Deno.dlopen`,
 * `Deno.UnsafePointerView`, `Deno.UnsafePointer`, `Deno.UnsafeFnPointer`). Picked once at start-up
 * under Deno; `MEMWIRE_DENO_BACKEND=koffi` selects koffi through npm compatibility instead.
 *
 * Measured on this project's machines (ffi-facts.md and the ffi-call bench): a call with 32-bit
 * results ~8 ns (Deno's fast calls), but every 64-bit result arrives as a BigInt (~0.2 µs to make
 * and convert), and a call through `UnsafeFnPointer` costs ~1–2 µs — so the static-inline verbs are
 * slower here than under koffi, while the shared-memory paths make no FFI call per message.
 *
 * Off-thread calls (`callAsync`, used for futex and poll waits) are `nonblocking: true` symbols:
 * Deno runs them on its blocking thread pool, so no Worker is needed. errno is thread-local and Deno
 * does not hand back the pool thread's errno, so callAsync reports ERRNO_UNKNOWN with a failed result
 * and ffi/libc.ts classifies the failure by a zero-timeout probe on the calling thread.
 */
import type { AsyncResult, CType, FfiBackend, FnDecl, NativeFn, NativeLibrary } from './types.js';
import { checkViewLength, ERRNO_UNKNOWN } from './types.js';
import { cString } from './c-string.js';

// The part of Deno's FFI namespace memwire uses (the project type-checks without Deno's types).
interface DenoPointerStatics {
  create(value: bigint): object | null;
  of(buffer: ArrayBuffer | ArrayBufferView): object | null;
  value(pointer: object | null): bigint | number;
}
interface DenoFfi {
  dlopen(path: string, symbols: Record<string, DenoSymbol>): { symbols: Record<string, NativeFn>; close(): void };
  UnsafePointer: DenoPointerStatics;
  UnsafePointerView: {
    getArrayBuffer(pointer: object, byteLength: number, offset?: number): ArrayBuffer;
    getCString(pointer: object, offset?: number): string;
  };
  UnsafeFnPointer: new (pointer: object, definition: DenoSymbol) => { call: NativeFn };
}
interface DenoSymbol {
  parameters: string[];
  result: string;
  nonblocking?: boolean;
  name?: string;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const Deno = (globalThis as any).Deno as DenoFfi;

const DENO_TYPE: Record<CType, string> = {
  void: 'void',
  i32: 'i32',
  u32: 'u32',
  i64: 'i64',
  u64: 'u64',
  f64: 'f64',
  ptr: 'usize',
  cstr: 'buffer',
  buf: 'buffer',
};
// Results: a C string comes back as a pointer object to read; 64-bit integers as BigInt.
const DENO_RESULT: Record<CType, string> = { ...DENO_TYPE, cstr: 'pointer' };

function pointerOf(address: number): object | null {
  return address ? Deno.UnsafePointer.create(BigInt(address)) : null;
}

function readCStringAt(pointer: object | null): string | null {
  return pointer === null ? null : Deno.UnsafePointerView.getCString(pointer);
}

function definition(decl: { returns: CType; args: readonly CType[] }, nonblocking = false): DenoSymbol {
  return { parameters: decl.args.map((a) => DENO_TYPE[a]), result: DENO_RESULT[decl.returns], nonblocking };
}

/**
 * A 64-bit result as the other backends give it (koffi's uint64_t, bun:ffi's *_fast types): a number
 * while it is a safe integer (sizes, -1, addresses), else the BigInt itself (a GUID, a 64-bit key).
 */
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);
function narrow(value: bigint | number): bigint | number {
  if (typeof value === 'number') return value;
  return value <= MAX_SAFE && value >= MIN_SAFE ? Number(value) : value;
}

/** Adapt what Deno represents differently from memwire's declaration: strings and 64-bit results. */
function adapt(fn: NativeFn, returns: CType, args: readonly CType[]): NativeFn {
  const hasCStrArg = args.includes('cstr');
  const wide = returns === 'i64' || returns === 'u64' || returns === 'ptr';
  if (!hasCStrArg && !wide && returns !== 'cstr') return fn; // the fast path: no wrapper at all
  return (...values: unknown[]) => {
    if (hasCStrArg) values = values.map((v, i) => (args[i] === 'cstr' ? cString(v) : v));
    const result = fn(...values);
    if (returns === 'cstr') return readCStringAt(result as object | null);
    return wide ? narrow(result as bigint | number) : result;
  };
}

class DenoLibrary implements NativeLibrary {
  private readonly asyncFns = new Map<string, NativeFn>();

  constructor(readonly path: string) {}

  bind(decl: FnDecl): NativeFn {
    const lib = Deno.dlopen(this.path, { [decl.name]: definition(decl) });
    return adapt(lib.symbols[decl.name], decl.returns, decl.args);
  }

  async callAsync(decl: FnDecl, args: readonly (number | null)[]): Promise<AsyncResult> {
    let fn = this.asyncFns.get(decl.name);
    if (!fn) {
      fn = Deno.dlopen(this.path, { [decl.name]: definition(decl, true) }).symbols[decl.name];
      this.asyncFns.set(decl.name, fn);
    }
    const value = Number(await fn(...args)); // poll's int, futex's long: small values
    // The call ran on one of Deno's pool threads, whose errno this thread cannot see.
    return { value, errno: value < 0 ? ERRNO_UNKNOWN : 0 };
  }
}

let errnoCell: Int32Array | undefined;
let errnoLocation: NativeFn | undefined;

export const denoBackend: FfiBackend = {
  name: 'deno',
  open(path: string): NativeLibrary {
    // dlopen with no symbols: a library that does not load fails here, with the loader's message.
    Deno.dlopen(path, {});
    return new DenoLibrary(path);
  },
  fnFromPointer(address: number, returns: CType, args: readonly CType[]): NativeFn {
    const pointer = pointerOf(address);
    if (pointer === null) throw new Error('fnFromPointer: NULL function pointer');
    const fn = new Deno.UnsafeFnPointer(pointer, definition({ returns, args }));
    return adapt((...values: unknown[]) => fn.call(...values), returns, args);
  },
  view(address: number, length: number): ArrayBuffer {
    checkViewLength(length); // Deno could view more; regions must stay viewable by Node and Bun
    if (length === 0) return new ArrayBuffer(0);
    const pointer = pointerOf(address);
    if (pointer === null) throw new Error('view: NULL address');
    return Deno.UnsafePointerView.getArrayBuffer(pointer, length);
  },
  addressOf(buffer: ArrayBuffer | ArrayBufferView): number {
    // UnsafePointer.of a view already includes its byteOffset.
    return Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buffer)));
  },
  readCString(address: number): string | null {
    return readCStringAt(pointerOf(address));
  },
  errno(): number {
    if (!errnoCell) {
      errnoLocation ??= Deno.dlopen('libc.so.6', { __errno_location: { parameters: [], result: 'usize' } }).symbols.__errno_location;
      errnoCell = new Int32Array(denoBackend.view(Number(errnoLocation()), 4)); // an address: always safe
    }
    return errnoCell[0];
  },
};
