/**
 * Which JavaScript runtime is running: decided once, here, and nowhere else. src/ asks this
 * module only for descriptive facts (doctor, benchmark records) and for the command that starts
 * another process of the same runtime.
 */
import { dirname } from 'node:path';

export type RuntimeName = 'node' | 'bun' | 'deno';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const g = globalThis as any;

export const runtimeName: RuntimeName =
  typeof g.Bun !== 'undefined' ? 'bun' : typeof g.Deno !== 'undefined' ? 'deno' : 'node';

export function runtimeVersion(): string {
  if (runtimeName === 'bun') return String(g.Bun.version);
  if (runtimeName === 'deno') return String(g.Deno.version.deno);
  return process.versions.node;
}

/** Deno runs memwire with --allow-all (why: ffi/deno-permissions.ts). */
const DENO_FLAGS = ['run', '--allow-all'];

/**
 * argv that runs `script` (a .js file) in a new process of the same runtime, e.g. a peer of a
 * demo, a benchmark or a test.
 */
export function selfCommand(script: string, args: readonly string[] = []): string[] {
  const exe = process.execPath;
  if (runtimeName === 'deno') return [exe, ...DENO_FLAGS, script, ...args];
  return [exe, script, ...args];
}

/** The directory holding a module, from its import.meta.url. */
export function moduleDir(importMetaUrl: string): string {
  return dirname(new URL(importMetaUrl).pathname);
}

