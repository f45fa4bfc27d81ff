/**
 * What the three shmem benches (shmem-lock, shmem-signal, shmem-alloc) share beyond
 * bench/lib/: building their C anchors with gcc into .cache/bench/, running one, and
 * starting the JS peer (bench/shmem-peer.ts) on a pool.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findExecutable, projectRoot, selfCommand } from './lib/environment.js';
import { pinThread } from './lib/cpu.js';
import { Peer } from './lib/peer.js';
import { progress } from './lib/timing.js';

function mtime(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return -1;
  }
}

/**
 * Build bench/c/<name>.c (unless .cache/bench/<name> is newer) and return the binary's path, or
 * the reason it cannot be built (no gcc, a compile error) as `{ error }`.
 */
export function buildC(name: string, flags: readonly string[] = []): { path: string } | { error: string } {
  const root = projectRoot();
  const source = join(root, 'bench', 'c', `${name}.c`);
  const binary = join(root, '.cache', 'bench', name);
  const header = join(root, 'bench', 'c', 'bench-util.h'); // included by every anchor
  if (mtime(source) < 0) return { error: `${source} is missing` };
  if (mtime(binary) >= Math.max(mtime(source), mtime(header))) return { path: binary };
  const gcc = findExecutable('gcc') ?? findExecutable('cc');
  if (!gcc) return { error: 'no C compiler (gcc) on PATH' };
  mkdirSync(join(root, '.cache', 'bench'), { recursive: true });
  progress(`building ${name} with ${gcc}`);
  const result = spawnSync(gcc, ['-O2', ...flags, '-o', binary, source], { encoding: 'utf8', timeout: 60_000 });
  if (result.status !== 0) return { error: `gcc failed on ${source}: ${(result.stderr || result.error?.message || '').trim()}` };
  return { path: binary };
}

/** Run a C anchor to completion and parse the JSON line it prints last. */
export async function runC<T>(label: string, argv: readonly string[], timeoutMs: number): Promise<T> {
  const peer = Peer.start(label, argv, { captureStderr: true, lifetimeSeconds: timeoutMs / 1000 + 5 });
  try {
    const output = await peer.finish(timeoutMs);
    return JSON.parse(output.trim().split('\n').pop() ?? '') as T;
  } finally {
    await peer.stop();
  }
}

/** Start bench/shmem-peer.js with `role` on pool `pool`, pinned to `cpu` when given. */
export function startPoolPeer(role: string, pool: string, args: readonly (string | number)[], cpu: number | null): Peer {
  const script = fileURLToPath(new URL('./shmem-peer.js', import.meta.url));
  const peer = Peer.start(`shmem-peer ${role}`, selfCommand(script, [role, pool, String(process.pid), ...args.map(String)]), { ownSession: true });
  if (cpu !== null) pinThread(peer.pid, [cpu]);
  return peer;
}

/** A unique pool name for a bench run. */
export function benchPoolName(bench: string): string {
  return `bench.${bench}.${process.pid}.${Math.random().toString(36).slice(2, 10)}`;
}
