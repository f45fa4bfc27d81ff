/**
 * A NUL-terminated copy of a JS string, for `const char *` arguments of the backends that do not
 * encode strings themselves (bun:ffi, Deno's FFI). null and undefined stay NULL.
 */
const encoder = new TextEncoder();

export function cString(value: unknown): Uint8Array | null {
  if (value === null || value === undefined) return null;
  const bytes = encoder.encode(String(value));
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}
