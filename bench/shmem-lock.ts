/**
 * Bench `shmem-lock`: ShmemPool's global locks (seed 003) against a C anchor measured in the same
 * run, a PTHREAD_PROCESS_SHARED + PTHREAD_MUTEX_ROBUST mutex in shared memory
 * (bench/c/robust-mutex.c, built with gcc into .cache/bench/ by this bench).
 *
 *  - `uncontended acquire+release`: one process, setLock + clearLock pairs in batches; ns per
 *    pair, p50 over batches (C: pthread_mutex_lock + unlock).
 *  - `contended hand-off`: two processes. Per iteration this process holds the lock; the peer
 *    announces it is about to acquire and blocks in setLock; we keep holding for `--hold` µs
 *    (so it really sleeps in the kernel, past its spin), read the clock, release, and spin until
 *    the peer, now the holder, stores an acknowledgment. The sample is that interval: release →
 *    the waiter running as holder. The C program runs the very same protocol with fork().
 *
 * Both sides are pinned to two different CPUs when there are two. Target: contended hand-off
 * p50 ≤ 2× the C robust mutex.
 */
import { ShmemPool } from '../src/index.js';
import { allowedCpus, pinThread } from './lib/cpu.js';
import { COMMON_FLAGS, parseFlags, type FlagSpec } from './lib/flags.js';
import type { Peer } from './lib/peer.js';
import { judgeTargets, makeRow, newReport, type BenchReport } from './lib/report.js';
import { nowNs, percentiles, progress } from './lib/timing.js';
import { NO_WARMUP, ORDER_CHECK_FLAG, orderCheckNote, warmUntilStable, warmupNote, type OrderCheck, type WarmupResult } from './lib/warmup.js';
import { CONTROL_ACK, CONTROL_BYTES, CONTROL_HELD, CONTROL_READY, CONTROL_STOP, CONTROL_WAITING } from './shmem-control.js';
import { benchPoolName, buildC, runC, startPoolPeer } from './shmem-bench-util.js';

export const FLAGS: FlagSpec = {
  ...COMMON_FLAGS,
  iterations: { kind: 'count', help: 'contended hand-offs measured (default 20000; --quick 3000)' },
  warmup: { kind: 'count', help: 'contended hand-offs per warm-up round (default 2000; --quick 500); rounds repeat until p50 holds; 0: none' },
  pairs: { kind: 'count', help: 'uncontended pairs per batch (default 1000000; --quick 200000); warm-up rounds of a tenth, growing, until the figure holds' },
  batches: { kind: 'count', help: 'uncontended batches (default 21; --quick 7)' },
  hold: { kind: 'count', help: 'µs the holder keeps the lock after the waiter announced itself (default 50)' },
  'no-pin': { kind: 'boolean', help: 'do not pin the two processes to two CPUs' },
  ...ORDER_CHECK_FLAG,
};

const ANCHOR = 'c-robust-mutex';
const CONTENDED = 'contended hand-off (2 processes)';
const UNCONTENDED = 'uncontended acquire+release';

/** ns per setLock + clearLock pair over `pairs` pairs. */
function pairBatch(pool: ShmemPool, id: number, pairs: number): number {
  const start = nowNs();
  for (let i = 0; i < pairs; i++) {
    pool.setLock(id);
    pool.clearLock(id);
  }
  return Number(nowNs() - start) / pairs;
}

/**
 * Uncontended pairs: warm-up rounds (of a tenth of a batch, growing) until their figure holds
 * (lib/warmup.ts; a fixed two batches left Bun's first figure 2× the later one), then the p50 of
 * `batches` batches.
 */
async function uncontended(pool: ShmemPool, id: number, pairs: number, batches: number): Promise<{ ns: number; warm: WarmupResult }> {
  const warm = await warmUntilStable((count) => pairBatch(pool, id, count), Math.max(1, Math.round(pairs / 10)));
  const perPair = new Float64Array(batches);
  for (let b = 0; b < batches; b++) perPair[b] = pairBatch(pool, id, pairs);
  return { ns: percentiles(perPair, [50])[0], warm };
}

/**
 * Contended hand-offs number `start` to `start + count - 1` (the peer follows the numbers), each
 * sample in µs: release → the waiter running as holder.
 */
function contended(pool: ShmemPool, id: number, control: Int32Array, peer: Peer, start: number, count: number, holdUs: number): Float64Array {
  const samples = new Float64Array(count);
  const holdNs = BigInt(holdUs * 1000);
  let spins = 0;
  const guard = () => {
    if ((++spins & 0xfffff) === 0 && !peer.isRunningNow()) throw new Error(`${peer.label} died${peer.stderr ? `: ${peer.stderr}` : ''}`);
  };
  for (let i = start; i < start + count; i++) {
    if (i > 0) {
      pool.setLock(id);
      Atomics.store(control, CONTROL_HELD, i);
    }
    while (Atomics.load(control, CONTROL_WAITING) !== i) guard();
    const until = nowNs() + holdNs;
    while (nowNs() < until);
    const t0 = nowNs();
    pool.clearLock(id);
    while (Atomics.load(control, CONTROL_ACK) !== i) guard();
    const t1 = nowNs();
    samples[i - start] = Number(t1 - t0) / 1000;
  }
  return samples;
}

export async function run(argv: readonly string[]): Promise<{ report: BenchReport; json: boolean }> {
  const flags = parseFlags(argv, FLAGS);
  const quick = flags.boolean.has('quick');
  const iterations = Math.max(1, flags.count.get('iterations') ?? (quick ? 3000 : 20_000));
  const warmup = flags.count.get('warmup') ?? (quick ? 500 : 2000);
  const pairs = Math.max(1, flags.count.get('pairs') ?? (quick ? 200_000 : 1_000_000));
  const batches = Math.max(1, flags.count.get('batches') ?? (quick ? 7 : 21));
  const holdUs = flags.count.get('hold') ?? 50;
  const report = newReport('shmem-lock');
  const available = allowedCpus();
  const before = available;
  const cpus: [number, number] | null = !flags.boolean.has('no-pin') && available.length >= 2 ? [available[0], available[1]] : null;
  if (!cpus) report.notes.push('not pinned: the scheduler places both processes');

  // memwire
  const pool = ShmemPool.create(benchPoolName('shmem-lock'), { heapBytes: 64 << 10, maxMembers: 4, maxLocks: 4 });
  let ours: { uncontendedNs: number; p50: number; p99: number };
  let warm: WarmupResult = NO_WARMUP;
  let orderCheck: OrderCheck | null = null;
  let uncontendedWarm: WarmupResult = NO_WARMUP;
  let peer: Peer | undefined;
  try {
    if (cpus) pinThread(0, [cpus[0]]);
    const id = pool.reserveLock();
    progress(`shmem-lock: ${batches} batches of ${pairs} uncontended pairs`);
    const first = await uncontended(pool, id, pairs, batches);
    const uncontendedNs = first.ns;
    uncontendedWarm = first.warm;
    const controlOffset = pool.malloc(CONTROL_BYTES, { owners: [] });
    const control = pool.region.view('int32', controlOffset, CONTROL_BYTES / 4);
    control.fill(-1);
    Atomics.store(control, CONTROL_READY, 0);
    pool.setLock(id);
    Atomics.store(control, CONTROL_HELD, 0);
    Atomics.store(control, CONTROL_STOP, 0);
    peer = startPoolPeer('lock-b', pool.name, [controlOffset, id], cpus ? cpus[1] : null);
    const live = peer;
    await peer.waitFor('joining the pool', () => Atomics.load(control, CONTROL_READY) === 1, 15_000);
    progress(`shmem-lock: ${iterations} contended hand-offs (after warm-up rounds of ${warmup}), hold ${holdUs} µs`);
    let next = 0;
    const handOffs = (count: number) => {
      const samples = contended(pool, id, control, live, next, count, holdUs);
      next += count;
      return samples;
    };
    warm = warmup > 0 ? await warmUntilStable((count) => percentiles(handOffs(count), [50])[0], warmup) : NO_WARMUP;
    const [p50, p99] = percentiles(handOffs(iterations), [50, 99]);
    Atomics.store(control, CONTROL_STOP, 1); // the peer, waiting for the next hand-off, leaves
    await peer.finish(15_000);
    ours = { uncontendedNs, p50, p99 };
    if (!flags.boolean.has('no-order-check')) {
      // The first case once more, the same way, after the contended one (bench/lib/warmup.ts).
      orderCheck = { label: UNCONTENDED, first: uncontendedNs, again: (await uncontended(pool, id, pairs, batches)).ns, unit: 'ns' };
    }
  } finally {
    await peer?.stop();
    pool.dispose();
    if (cpus) pinThread(0, before);
  }

  // The C anchor
  let anchor: { uncontendedNs: number; p50: number; p99: number } | null = null;
  const built = buildC('robust-mutex', ['-pthread']);
  if ('error' in built) {
    report.notes.push(`the C anchor could not be built (${built.error}): anchor and ratio are null`);
  } else {
    try {
      progress('shmem-lock: the C robust mutex, same protocol');
      const u = await runC<{ p50ns: number }>('robust-mutex uncontended', [built.path, 'uncontended', String(pairs), String(batches)], 120_000);
      const c = await runC<{ p50us: number; p99us: number }>(
        'robust-mutex contended',
        [built.path, 'contended', String(iterations), String(warmup), String(holdUs), String(cpus?.[0] ?? -1), String(cpus?.[1] ?? -1)],
        120_000,
      );
      anchor = { uncontendedNs: u.p50ns, p50: c.p50us, p99: c.p99us };
    } catch (error) {
      report.notes.push(`the C anchor failed (${(error as Error).message}): anchor and ratio are null`);
    }
  }

  report.rows.push(makeRow(UNCONTENDED, 'p50', 'ns', 'lower', ours.uncontendedNs, anchor?.uncontendedNs ?? null, ANCHOR));
  report.rows.push(makeRow(CONTENDED, 'p50', 'us', 'lower', ours.p50, anchor?.p50 ?? null, ANCHOR));
  report.rows.push(makeRow(CONTENDED, 'p99', 'us', 'lower', ours.p99, anchor?.p99 ?? null, ANCHOR));
  report.targets = judgeTargets(report.rows, [
    { case: CONTENDED, metric: 'p50', anchorName: ANCHOR, maxRatio: 2, text: 'contended hand-off p50 within 2× of a C robust process-shared mutex' },
  ]);
  report.notes.unshift(
    `${UNCONTENDED}: ShmemPool setLock + clearLock (one compareExchange, one exchange, no FFI call), ns per pair, p50 over ${batches} batches of ${pairs}`,
    `${CONTENDED}: release → the waiter (asleep in futex after its spin) running as the new holder, seen through an acknowledgment word; ${iterations} samples after warm-up (memwire: rounds of ${warmup} until p50 holds; C: ${warmup}), holder keeps the lock ${holdUs} µs after the waiter announced itself${cpus ? `; CPUs ${cpus.join(' and ')}` : ''}`,
    warmupNote('memwire uncontended', `${Math.max(1, Math.round(pairs / 10))} pairs`, new Map([[UNCONTENDED, uncontendedWarm]])),
    warmupNote('memwire contended', `${warmup} hand-offs`, new Map([[CONTENDED, warm]])),
    ...(orderCheck ? [orderCheckNote(orderCheck)] : []),
    `${ANCHOR}: pthread_mutex_t with PTHREAD_PROCESS_SHARED and PTHREAD_MUTEX_ROBUST in MAP_SHARED memory, two processes (fork), the same protocol (bench/c/robust-mutex.c, gcc -O2)`,
  );
  return { report, json: flags.boolean.has('json') };
}
