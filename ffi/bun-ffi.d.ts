// The part of bun:ffi that memwire uses, declared here so the project type-checks without Bun's
// type package. Only ffi/bun-backend.ts imports it.
declare module 'bun:ffi' {
  export const FFIType: Record<string, number>;
  export function dlopen(
    path: string,
    symbols: Record<string, { args: readonly number[]; returns: number }>,
  ): { symbols: Record<string, (...args: unknown[]) => unknown>; close(): void };
  export function CFunction(def: { ptr: number; args: readonly number[]; returns: number }): (
    ...args: unknown[]
  ) => unknown;
  export function toArrayBuffer(ptr: number, byteOffset: number, byteLength: number): ArrayBuffer;
  export function ptr(view: ArrayBuffer | ArrayBufferView, byteOffset?: number): number;
  export class CString extends String {
    constructor(ptr: number, byteOffset?: number, byteLength?: number);
  }
}
