/**
 * Bench `shmem-alloc`: malloc + free pairs per second of ShmemPool's allocator (seed 003,
 * claims 8–12), in 1 and in 2 processes sharing one pool, for block sizes 64 B–64 KiB.
 *
 * Each process keeps a window of `--window` live blocks and, in a loop, frees the oldest and
 * mallocs a new one (a FIFO churn, so blocks are split and merged, not one block reused). With
 * 2 processes both run at once on one pool (the allocator's lock inside the region is then
 * contended) and the row is the sum of both.
 *
 * Anchor, measured in the same run right after each case: glibc malloc + free pairs in C with the
 * same churn, sizes, window, duration and process count (bench/c/malloc-churn.c). It is a ceiling,
 * not a like-for-like allocator: glibc's heap is private to each process, so its two processes
 * neither share nor contend for anything, while memwire's share one pool and its lock.
 */
import { ShmemPool } from '../src/index.js';
import { allowedCpus, pinThread } from './lib/cpu.js';
import { COMMON_FLAGS, parseFlags, sizeLabel, type FlagSpec } from './lib/flags.js';
import type { Peer } from './lib/peer.js';
import { makeRow, newReport, type BenchReport } from './lib/report.js';
import { progress } from './lib/timing.js';
import { CONTROL_BYTES, CONTROL_COUNT, CONTROL_READY, CONTROL_STOP } from './shmem-control.js';
import { benchPoolName, buildC, runC, startPoolPeer } from './shmem-bench-util.js';

export const ANCHOR_MALLOC = 'glibc-malloc';

export const FLAGS: FlagSpec = {
  ...COMMON_FLAGS,
  sizes: { kind: 'sizes', help: 'block sizes (default 64,1KiB,4KiB,64KiB)' },
  duration: { kind: 'seconds', help: 'seconds measured per case (default 1; --quick 0.25)' },
  window: { kind: 'count', help: 'live blocks per process (default 64)' },
  'no-pin': { kind: 'boolean', help: 'do not pin the two processes to two CPUs' },
};

const DEFAULT_SIZES = [64, 1024, 4096, 65536];

function churn(pool: ShmemPool, size: number, window: number, until: number, stop: () => boolean): number {
  const ring = new Array<number>(window).fill(-1);
  let at = 0;
  let pairs = 0;
  while (!stop() && performance.now() < until) {
    for (let k = 0; k < 64; k++) {
      if (ring[at] >= 0) pool.free(ring[at]);
      ring[at] = pool.malloc(size);
      at = at + 1 === window ? 0 : at + 1;
    }
    pairs += 64;
  }
  for (const offset of ring) if (offset >= 0) pool.free(offset);
  return pairs;
}

async function measure(processes: 1 | 2, size: number, window: number, seconds: number, cpus: [number, number] | null): Promise<number> {
  // Room for both windows at the largest size, with slack for fragmentation.
  const heapBytes = Math.max(1 << 20, 4 * window * (size + 64));
  const pool = ShmemPool.create(benchPoolName('shmem-alloc'), { heapBytes, maxMembers: 4, maxLocks: 2 });
  let peer: Peer | undefined;
  try {
    churn(pool, size, window, performance.now() + 50, () => false); // warm up this process's JIT
    const controlOffset = pool.malloc(CONTROL_BYTES, { owners: [] });
    const control = pool.region.view('int32', controlOffset, CONTROL_BYTES / 4);
    control.fill(0);
    if (processes === 2) {
      peer = startPoolPeer('alloc', pool.name, [controlOffset, size, window], cpus ? cpus[1] : null);
      await peer.waitFor('joining the pool', () => Atomics.load(control, CONTROL_READY) === 1, 15_000);
      Atomics.store(control, CONTROL_READY, 2); // go
    }
    const started = performance.now();
    const ours = churn(pool, size, window, started + seconds * 1000, () => false);
    const elapsed = (performance.now() - started) / 1000;
    Atomics.store(control, CONTROL_STOP, 1);
    let theirs = 0;
    if (peer) {
      await peer.finish(15_000);
      theirs = Atomics.load(control, CONTROL_COUNT);
    }
    const stats = pool.stats();
    if (stats.usedBlocks !== 1) throw new Error(`after the churn ${stats.usedBlocks} blocks are in use, expected 1 (the control block)`);
    // The peer ran at most as long as we did (it started first and stopped when told): count
    // its pairs over our interval, a slight under-estimate of the total rate if anything.
    return (ours + theirs) / elapsed;
  } finally {
    await peer?.stop();
    pool.dispose();
  }
}

export async function run(argv: readonly string[]): Promise<{ report: BenchReport; json: boolean }> {
  const flags = parseFlags(argv, FLAGS);
  const quick = flags.boolean.has('quick');
  const sizes = [...new Set(flags.sizes.get('sizes') ?? DEFAULT_SIZES)];
  const seconds = flags.seconds.get('duration') ?? (quick ? 0.25 : 1);
  const window = Math.max(1, flags.count.get('window') ?? 64);
  const report = newReport('shmem-alloc');
  const before = allowedCpus();
  const cpus: [number, number] | null = !flags.boolean.has('no-pin') && before.length >= 2 ? [before[0], before[1]] : null;
  const built = buildC('malloc-churn');
  let anchorFailure: string | null = 'error' in built ? `the C anchor could not be built (${built.error})` : null;
  try {
    if (cpus) pinThread(0, [cpus[0]]);
    for (const processes of [1, 2] as const) {
      for (const size of sizes) {
        const label = `${sizeLabel(size)} × ${processes} process${processes > 1 ? 'es' : ''}`;
        progress(`shmem-alloc: ${label}, ${seconds} s`);
        const rate = await measure(processes, size, window, seconds, cpus);
        let anchor: number | null = null;
        if ('path' in built && anchorFailure === null) {
          try {
            const args = [String(size), String(window), String(seconds), String(processes), String(cpus?.[0] ?? -1), String(cpus?.[1] ?? -1)];
            anchor = (await runC<{ pairsPerSecond: number }>(`malloc-churn ${label}`, [built.path, ...args], 60_000)).pairsPerSecond;
          } catch (error) {
            anchorFailure = `the C anchor failed at ${label} (${(error as Error).message})`;
          }
        }
        report.rows.push(makeRow(label, 'pairs/s', 'ops/s', 'higher', rate, anchor, ANCHOR_MALLOC));
      }
    }
  } finally {
    if (cpus) pinThread(0, before);
  }
  report.notes.push(
    `malloc + free pairs per second (all processes together), FIFO churn over a window of ${window} live blocks per process, ${seconds} s per case${cpus ? `; CPUs ${cpus.join(' and ')}` : ''}`,
    `${ANCHOR_MALLOC}: the same churn with glibc malloc/free in C (bench/c/malloc-churn.c, gcc -O2), run right after each case; a ceiling: private memory per process, nothing shared or contended`,
  );
  if (anchorFailure) report.notes.push(`${anchorFailure}: anchor and ratio are null from there on`);
  return { report, json: flags.boolean.has('json') };
}
