/**
 * Bench `shmem-signal`: one-way latency of ShmemPool's signal() / waitSignal() (seed 003,
 * claims 27–28) between two processes, against a C futex ping-pong measured in the same run
 * (bench/c/futex-pingpong.c, built with gcc into .cache/bench/ by this bench).
 *
 * This process signals the peer and waits for its answer; the peer waits and signals back. Each
 * round trip is timed here; one-way = round trip / 2. Two memwire cases:
 *
 *  - `one-way signal, waiter sleeps (spin 0)`: waitSignal({ spin: 0 }): every wait goes to the
 *    kernel, as every wait of the C anchor does — the like-for-like comparison, and the target.
 *  - `one-way signal, default wait (spin, then sleep)`: waitSignal() as users call it; with both
 *    sides busy, most answers arrive while the waiter still spins.
 *  - `one-way signal, async waiter sleeps (spin 0)`: waitSignalAsync({ spin: 0 }) on both sides:
 *    the futex wait runs off the main thread (libuv's pool under koffi, a Worker under Bun), so
 *    this is the wake latency of FutexWord.waitAsync, the event-loop-friendly path.
 *
 * Both sides are pinned to two different CPUs when there are two. Target: the spin-0 p50 ≤ 2×
 * the C futex ping-pong.
 */
import { ShmemPool } from '../src/index.js';
import { allowedCpus, pinThread } from './lib/cpu.js';
import { COMMON_FLAGS, parseFlags, type FlagSpec } from './lib/flags.js';
import type { Peer } from './lib/peer.js';
import { judgeTargets, makeRow, newReport, type BenchReport } from './lib/report.js';
import { nowNs, percentiles, progress } from './lib/timing.js';
import { withState } from './lib/machine-state.js';
import { NO_WARMUP, ORDER_CHECK_FLAG, orderCheckNote, warmUntilStable, warmupNote, type OrderCheck, type WarmupResult } from './lib/warmup.js';
import { CONTROL_BYTES, CONTROL_READY, CONTROL_STOP } from './shmem-control.js';
import { benchPoolName, buildC, runC, startPoolPeer } from './shmem-bench-util.js';

export const FLAGS: FlagSpec = {
  ...COMMON_FLAGS,
  iterations: { kind: 'count', help: 'round trips measured per case (default 50000; --quick 5000)' },
  warmup: { kind: 'count', help: 'round trips per warm-up round (default 5000; --quick 1000); rounds repeat until p50 holds; 0: none' },
  'no-pin': { kind: 'boolean', help: 'do not pin the two processes to two CPUs' },
  ...ORDER_CHECK_FLAG,
};

const ANCHOR = 'c-futex-pingpong';
const SLEEPING = 'one-way signal, waiter sleeps (spin 0)';
const DEFAULT = 'one-way signal, default wait (spin, then sleep)';
const ASYNC = 'one-way signal, async waiter sleeps (spin 0)';

/**
 * One memwire case: warm-up rounds of `warmup` round trips until their p50 holds
 * (lib/warmup.ts), then `iterations` measured ones; the peer answers until told to stop.
 */
async function measure(spin: number, iterations: number, warmup: number, cpus: [number, number] | null, useAsync = false): Promise<{ p50: number; p99: number; warm: WarmupResult }> {
  const pool = ShmemPool.create(benchPoolName('shmem-signal'), { heapBytes: 64 << 10, maxMembers: 4, maxLocks: 2 });
  let peer: Peer | undefined;
  try {
    const controlOffset = pool.malloc(CONTROL_BYTES, { owners: [] });
    const control = pool.region.view('int32', controlOffset, CONTROL_BYTES / 4);
    control.fill(0);
    peer = startPoolPeer('signal-b', pool.name, [controlOffset, pool.me, spin, useAsync ? 1 : 0], cpus ? cpus[1] : null);
    const live = peer;
    await peer.waitFor('joining the pool', () => Atomics.load(control, CONTROL_READY) === 1, 15_000);
    const other = pool.members().find((m) => !m.self);
    if (!other) throw new Error('the peer is not a member');
    const options = { spin, timeoutMs: 10_000 };
    /** `n` one-way latencies in µs (round trip / 2). */
    const roundTrips = async (n: number): Promise<Float64Array> => {
      const samples = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const t0 = nowNs();
        pool.signal(other.id);
        const answers = useAsync ? await pool.waitSignalAsync(options) : pool.waitSignal(options);
        if (answers !== 1) throw new Error(`round trip ${i}: no single answer from ${live.label}${live.stderr ? `: ${live.stderr}` : ''}`);
        samples[i] = Number(nowNs() - t0) / 2000;
      }
      return samples;
    };
    const warm = warmup > 0 ? await warmUntilStable(async (count) => percentiles(await roundTrips(count), [50])[0], warmup) : NO_WARMUP;
    const [p50, p99] = percentiles(await roundTrips(iterations), [50, 99]);
    Atomics.store(control, CONTROL_STOP, 1);
    pool.signal(other.id); // wakes the peer, which sees the stop
    await peer.finish(15_000);
    return { p50, p99, warm };
  } finally {
    await peer?.stop();
    pool.dispose();
  }
}

export async function run(argv: readonly string[]): Promise<{ report: BenchReport; json: boolean }> {
  const flags = parseFlags(argv, FLAGS);
  const quick = flags.boolean.has('quick');
  const iterations = Math.max(1, flags.count.get('iterations') ?? (quick ? 5000 : 50_000));
  const warmup = flags.count.get('warmup') ?? (quick ? 1000 : 5000);
  // An async wake costs tens of µs (a helper thread wakes, then the event loop runs): fewer rounds.
  const asyncIterations = Math.max(1, Math.floor(iterations / 5));
  const report = newReport('shmem-signal');
  const before = allowedCpus();
  const cpus: [number, number] | null = !flags.boolean.has('no-pin') && before.length >= 2 ? [before[0], before[1]] : null;
  if (!cpus) report.notes.push('not pinned: the scheduler places both processes');

  let sleeping: Awaited<ReturnType<typeof measure>>;
  let spinning: Awaited<ReturnType<typeof measure>>;
  let asynchronous: Awaited<ReturnType<typeof measure>>;
  let orderCheck: OrderCheck | null = null;
  try {
    if (cpus) pinThread(0, [cpus[0]]);
    progress(`shmem-signal: ${iterations} round trips (after warm-up rounds of ${warmup}) with spin 0`);
    const first = await withState(cpus, () => measure(0, iterations, warmup, cpus));
    sleeping = first.value;
    progress(`shmem-signal: ${iterations} round trips (after warm-up rounds of ${warmup}) with the default spin`);
    spinning = await measure(2000, iterations, warmup, cpus);
    progress(`shmem-signal: ${asyncIterations} round trips with async waits, spin 0`);
    asynchronous = await measure(0, asyncIterations, Math.min(warmup, asyncIterations), cpus, true);
    if (!flags.boolean.has('no-order-check')) {
      // The first case once more, the same way, after the other two (bench/lib/warmup.ts).
      progress(`shmem-signal: spin 0 again, after the other cases`);
      const again = await withState(cpus, () => measure(0, iterations, warmup, cpus));
      orderCheck = { label: SLEEPING, first: sleeping.p50, again: again.value.p50, unit: 'µs', stateFirst: first.state, stateAgain: again.state };
    }
  } finally {
    if (cpus) pinThread(0, before);
  }

  let anchor: { p50: number; p99: number } | null = null;
  const built = buildC('futex-pingpong');
  if ('error' in built) {
    report.notes.push(`the C anchor could not be built (${built.error}): anchor and ratio are null`);
  } else {
    try {
      progress('shmem-signal: the C futex ping-pong');
      const c = await runC<{ p50us: number; p99us: number }>(
        'futex-pingpong',
        [built.path, String(iterations), String(warmup), String(cpus?.[0] ?? -1), String(cpus?.[1] ?? -1)],
        120_000,
      );
      anchor = { p50: c.p50us, p99: c.p99us };
    } catch (error) {
      report.notes.push(`the C anchor failed (${(error as Error).message}): anchor and ratio are null`);
    }
  }

  for (const [name, ours] of [[SLEEPING, sleeping], [DEFAULT, spinning], [ASYNC, asynchronous]] as const) {
    report.rows.push(makeRow(name, 'p50', 'us', 'lower', ours.p50, anchor?.p50 ?? null, ANCHOR));
    report.rows.push(makeRow(name, 'p99', 'us', 'lower', ours.p99, anchor?.p99 ?? null, ANCHOR));
  }
  report.targets = judgeTargets(report.rows, [
    { case: SLEEPING, metric: 'p50', anchorName: ANCHOR, maxRatio: 2, text: 'one-way signal latency (waiter asleep in the kernel) within 2× of a C futex ping-pong' },
  ]);
  report.notes.unshift(
    `one-way = round trip / 2, ${iterations} round trips per case (${asyncIterations} async) after warm-up; signal() adds 1 to the receiver's counter and calls FUTEX_WAKE only if it sleeps${cpus ? `; CPUs ${cpus.join(' and ')}` : ''}`,
    warmupNote('memwire', `${warmup} round trips (async: ${Math.min(warmup, asyncIterations)})`, new Map([[SLEEPING, sleeping.warm], [DEFAULT, spinning.warm], [ASYNC, asynchronous.warm]])),
    ...(orderCheck ? [orderCheckNote(orderCheck)] : []),
    `${ANCHOR}: two processes (fork), atomic increment + FUTEX_WAKE, FUTEX_WAIT with no spin, words in MAP_SHARED memory (bench/c/futex-pingpong.c, gcc -O2), ${warmup} warm-up round trips`,
  );
  return { report, json: flags.boolean.has('json') };
}
