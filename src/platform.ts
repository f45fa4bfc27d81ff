/**
 * Facts about where memwire is running: runtime, FFI backend, versions. Descriptive only;
 * nothing in src/ changes behaviour on them.
 */
import { release } from 'node:os';
import { backend } from '../ffi/backend.js';
import { libc } from '../ffi/libc.js';
import { runtimeName, runtimeVersion } from '../ffi/runtime.js';

export const platform = {
  runtime: runtimeName,
  runtimeVersion: runtimeVersion(),
  backend: backend.name,
  libc: `glibc ${libc.gnu_get_libc_version() as string}`,
  arch: process.arch,
  kernel: release(),
} as const;
