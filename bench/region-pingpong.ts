/**
 * Bench `region-pingpong`: one-way latency of a message bounced between two processes through a
 * SharedRegion (a ping and a pong Mailbox), against two anchors measured in the same run:
 *
 *  - `ucx-posix`: UCX's `ucx_perftest -t tag_lat` over POSIX shared memory (UCX_TLS=posix,self,
 *    server and client on 127.0.0.1). It prints one-way latency (round trip / 2) as a percentile
 *    column whose rank `-R` sets: we run it with -R 50 and compare our p50 with its "50.0%ile"
 *    column (its "typical" latency), and with -R 99 and compare our p99 with "99.0%ile". UCX
 *    takes that percentile over its last 2048 iterations (TIMING_QUEUE_SIZE in libperf), so it is
 *    always asked for more than 2048; ours are taken the same way in each window of 2048 of as
 *    many measured round trips, and the upper median over the windows is compared (anchors.ts
 *    latencyLikeUcx), with the last window's and the all-iterations figures beside.
 *  - `<runtime>-uds`: a Unix-domain-socket echo between this process and a plain JS child of the
 *    same runtime (Node's, or Bun's, own IPC).
 *
 * Both memwire processes busy-poll (tryPut/tryTake: no FFI call per message, as UCX polls) on
 * different cores: this thread and each peer are pinned to two different CPUs (and ucx_perftest
 * gets the same two with -c). The sizes are interleaved — for each size memwire, then UDS, then
 * UCX — so drifting noise hits all three alike. Each iteration is timed with one
 * process.hrtime.bigint() (its cost, printed in the notes, is inside memwire's and UDS's numbers;
 * UCX times with the TSC).
 *
 * Clean-up: the region's name is unlinked as soon as the peer has mapped it, so nothing stays in
 * /dev/shm even if both processes are killed; peers are killed on any failure and at exit, and
 * leave on their own when this process dies (the JS peers notice; ucx_perftest runs under
 * `timeout -s KILL`, a little longer than the measurement's limit).
 */
import { fileURLToPath } from 'node:url';
import { findExecutable, selfCommand } from './lib/environment.js';
import { Mailbox, SharedRegion, platform } from '../src/index.js';
import { allowedCpus, pinThread } from './lib/cpu.js';
import { parseFlags, sizeLabel, type FlagSpec } from './lib/flags.js';
import { Peer } from './lib/peer.js';
import { judgeTargets, newReport, type BenchReport, type Target } from './lib/report.js';
import { nowNs, percentiles, progress, timerCostNs } from './lib/timing.js';
import { measureAgain, NO_WARMUP, orderCheckNote, warmUntilStable, warmupNote, type OrderCheck, type WarmupResult } from './lib/warmup.js';
import { statesNote, withState, type StateAround } from './lib/machine-state.js';
import { CONTROL_READY, PING_OFFSET, pongOffset, regionBytes } from './region-pingpong-layout.js';
import { allIterationsNote, latencyLikeUcx, ANCHOR_UCX_LAT, ANCHOR_UDS, latencyFlags, latencyRows, ucxLatency, UCX_TIMING_QUEUE, UCX_TLS, UdsPingPong, type Latency } from './anchors.js';

export const FLAGS: FlagSpec = latencyFlags('64,256,1KiB,4KiB,16KiB,64KiB', 20);

const DEFAULT_SIZES = [64, 256, 1024, 4096, 16384, 65536];
const ANCHOR_UCX = ANCHOR_UCX_LAT;

/** This thread's CPUs before any pinning, restored at the end. */
const allowedCpusBefore = allowedCpus();


interface Plan {
  sizes: number[];
  iterations: (size: number) => number;
  warmup: (size: number) => number;
  timeoutMs: number;
  /** Unmeasured round trips before the first size, so neither side is still being compiled. */
  prime: number;
  cpus: [number, number] | null;
}

// ---------------------------------------------------------------------------------------------
// memwire: SharedRegion + two Mailboxes

/**
 * The measured loop, kept small and monomorphic. Per round trip: one put, one take (each a
 * TypedArray.set and an Atomics.store), one timer read. `guard` runs every 2^16 polls (one round
 * trip in ~10^4, and within about a millisecond of a stall): it throws on timeout or a dead peer.
 */
function pingPongLoop(
  ping: Mailbox,
  pong: Mailbox,
  message: Uint8Array,
  reply: Uint8Array,
  warmup: number,
  samples: Float64Array,
  guard: () => void,
): void {
  const last = message.length - 1;
  let polls = 0;
  let prev = process.hrtime.bigint();
  for (let i = -warmup; i < samples.length; i++) {
    // Stamp both ends of the message so the echo is checked to be this one, whole.
    message[0] = i;
    message[last] = ~i;
    while (!ping.tryPut(message)) if ((++polls & 0xffff) === 0) guard();
    let length: number;
    while ((length = pong.tryTake(reply)) < 0) if ((++polls & 0xffff) === 0) guard();
    const now = process.hrtime.bigint();
    if (i >= 0) samples[i] = Number(now - prev) / 2;
    prev = now;
    if (length !== message.length || reply[0] !== message[0] || reply[last] !== message[last]) {
      throw new Error(`echo mismatch at iteration ${i}: ${length} bytes back for ${message.length}, first byte ${reply[0]} for ${message[0]}`);
    }
  }
}

class RegionPingPong {
  readonly #region: SharedRegion;
  readonly #peer: Peer;
  readonly #ping: Mailbox;
  readonly #pong: Mailbox;
  readonly #reply: Uint8Array;

  private constructor(region: SharedRegion, peer: Peer, capacity: number) {
    this.#region = region;
    this.#peer = peer;
    this.#ping = new Mailbox(region, PING_OFFSET, capacity);
    this.#pong = new Mailbox(region, pongOffset(capacity), capacity);
    this.#reply = new Uint8Array(capacity);
  }

  /** Create the region, start the peer, wait until it has attached; then unlink the name. */
  static async start(capacity: number, cpus: [number, number] | null): Promise<RegionPingPong> {
    const name = `bench.pingpong.${process.pid}.${Math.random().toString(36).slice(2, 10)}`;
    const region = SharedRegion.create(name, regionBytes(capacity));
    let peer: Peer | undefined;
    try {
      const script = fileURLToPath(new URL('./region-pingpong-peer.js', import.meta.url));
      peer = Peer.start('region-pingpong peer', selfCommand(script, [name, String(capacity), String(process.pid)]), { ownSession: true });
      if (cpus) pinThread(peer.pid, [cpus[1]]);
      const control = region.view('int32', 0, 16);
      await peer.waitFor('attaching to the region', () => Atomics.load(control, CONTROL_READY) !== 0, 15_000);
      // Both processes have it mapped: the name is no longer needed, and without it nothing
      // can be left in /dev/shm whatever happens next.
      region.unlink();
      return new RegionPingPong(region, peer, capacity);
    } catch (error) {
      if (peer) await peer.stop();
      region.dispose();
      throw error;
    }
  }

  /** One-way latencies in ns (round trip / 2) of `iterations` round trips of `size` bytes. */
  measure(size: number, iterations: number, warmup: number, timeoutMs: number): Float64Array {
    const message = new Uint8Array(size).fill(0x5a);
    const samples = new Float64Array(iterations);
    const peer = this.#peer;
    const deadline = nowNs() + BigInt(Math.round(timeoutMs * 1e6));
    const guard = () => {
      if (!peer.isRunningNow()) throw new Error(`${peer.label} died during the ${sizeLabel(size)} round trips${peer.stderr ? `: ${peer.stderr.trim()}` : ''}`);
      if (nowNs() > deadline) throw new Error(`memwire ${sizeLabel(size)} round trips did not finish within ${timeoutMs} ms`);
    };
    pingPongLoop(this.#ping, this.#pong, message, this.#reply, warmup, samples, guard);
    return samples;
  }

  /**
   * Tell the peer to leave, wait for it (boundedly), kill it if need be; dispose the region.
   * Never throws: it runs in `finally` blocks, where it must not hide the error being handled.
   */
  async close(): Promise<void> {
    try {
      if (this.#peer.isRunningNow()) {
        const stop = new Uint8Array(0);
        const deadline = Date.now() + 2000;
        while (!this.#ping.tryPut(stop) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 1));
        await this.#peer.waitExit(5000).catch(() => undefined); // a stuck peer is killed below
      }
    } finally {
      await this.#peer.stop();
      this.#region.dispose();
    }
  }
}


// ---------------------------------------------------------------------------------------------

function toLatency(samplesNs: Float64Array): Latency {
  const [p50, p99] = percentiles(samplesNs, [50, 99]);
  return { p50: p50 / 1000, p99: p99 / 1000 };
}

function makePlan(argv: readonly string[], report: BenchReport) {
  const flags = parseFlags(argv, FLAGS);
  const quick = flags.boolean.has('quick');
  const fixedIterations = flags.count.get('iterations');
  const fixedWarmup = flags.count.get('warmup');
  const base = quick ? 20_000 : 200_000;
  // Above 4 KiB a round trip costs more, so fewer are run (never fewer than 4096) unless fixed.
  const iterations = (size: number) => Math.max(1, fixedIterations ?? Math.max(2 * UCX_TIMING_QUEUE, Math.round(base * Math.min(1, 4096 / size))));
  const warmup = (size: number) => fixedWarmup ?? Math.max(500, Math.round(iterations(size) / 10));
  const available = allowedCpus();
  let cpus: [number, number] | null = null;
  if (flags.boolean.has('no-pin')) {
    report.notes.push('not pinned (--no-pin): the scheduler places both sides');
  } else if (available.length >= 2) {
    cpus = [available[0], available[1]];
  } else {
    report.notes.push(`only ${available.length} CPU available: both sides spin on one core, so latency is scheduler time slices, not messaging`);
  }
  const plan: Plan = {
    sizes: [...new Set(flags.sizes.get('sizes') ?? DEFAULT_SIZES)],
    iterations,
    warmup,
    timeoutMs: (flags.seconds.get('timeout') ?? (quick ? 20 : 120)) * 1000,
    prime: quick ? 50_000 : 200_000,
    cpus,
  };
  return { plan, flags };
}

export async function run(argv: readonly string[]): Promise<{ report: BenchReport; json: boolean }> {
  const report = newReport('region-pingpong');
  const { plan, flags } = makePlan(argv, report);
  const useUds = !flags.boolean.has('no-uds');
  let ucxExe: string | null = null;
  if (!flags.boolean.has('no-ucx')) {
    ucxExe = findExecutable('ucx_perftest');
    if (!ucxExe) {
      const message = 'ucx_perftest is not installed (Debian package ucx-utils): the ucx-posix anchor is missing, its anchor and ratio are null';
      progress(message);
      report.notes.push(message);
    }
  }

  const timerNs = timerCostNs();
  const capacity = Math.max(...plan.sizes);
  const memwire = new Map<number, Latency>();
  const uds = new Map<number, Latency | null>();
  const ucx = new Map<number, Latency | null>();
  const warmups = new Map<string, WarmupResult>();
  let orderCheck: OrderCheck | null = null;
  const states = new Map<string, { memwire?: StateAround; anchor?: StateAround }>();

  if (plan.cpus) pinThread(0, [plan.cpus[0]]);
  let region: RegionPingPong | undefined;
  let socket: UdsPingPong | undefined;
  try {
    progress(`region-pingpong: sizes ${plan.sizes.map(sizeLabel).join(', ')}; ${plan.cpus ? `CPUs ${plan.cpus.join(' and ')}` : 'not pinned'}`);
    region = await RegionPingPong.start(capacity, plan.cpus);
    if (useUds) socket = await UdsPingPong.start(plan.cpus);
    // Prime both sides' JITs once; each size then warms until its own p50 holds (lib/warmup.ts).
    const primeStarted = Date.now();
    const primeSize = Math.min(64, capacity);
    region.measure(primeSize, plan.prime, 0, plan.timeoutMs);
    if (socket) {
      try {
        await socket.measure(primeSize, Math.ceil(plan.prime / 20), 0, plan.timeoutMs);
      } catch (error) {
        // On a loaded machine the socket can miss its deadline already here: the anchor is then null, memwire still measured.
        report.notes.push(`the ${ANCHOR_UDS} anchor failed while priming and is null: ${(error as Error).message}`);
        await socket.close();
        socket = undefined;
      }
    }
    progress(`primed: ${plan.prime} memwire round trips${socket ? ` and ${Math.ceil(plan.prime / 20)} socket ones` : ''}, ${Date.now() - primeStarted} ms`);
    for (const size of plan.sizes) {
      const n = plan.iterations(size);
      const w = plan.warmup(size);
      const label = sizeLabel(size);
      let started = Date.now();
      const live = region;
      const warm = w > 0 ? await warmUntilStable((count) => toLatency(live.measure(size, count, 0, plan.timeoutMs)).p50, w) : NO_WARMUP;
      warmups.set(label, warm);
      const measured = await withState(plan.cpus, () => latencyLikeUcx(live.measure(size, n, 0, plan.timeoutMs)));
      memwire.set(size, measured.value);
      states.set(label, { memwire: measured.state });
      progress(`${label}: memwire, ${warm.p50s.length} warm-up rounds of ${w} (p50 ${warm.p50s.map((p) => p.toFixed(3)).join(' → ')} µs${warm.stable ? '' : ', not stable'}), then ${n} round trips, ${Date.now() - started} ms`);
      if (socket) {
        started = Date.now();
        try {
          uds.set(size, toLatency(await socket.measure(size, n, w, plan.timeoutMs)));
          progress(`${label}: ${ANCHOR_UDS}, ${Date.now() - started} ms`);
        } catch (error) {
          // A socket that missed its deadline may still hold bytes in flight: it measures nothing more.
          report.notes.push(`the ${ANCHOR_UDS} anchor failed at ${sizeLabel(size)} and is null from there on: ${(error as Error).message}`);
          uds.set(size, null);
          await socket.close();
          socket = undefined;
        }
      }
      if (ucxExe) {
        started = Date.now();
        try {
          const exe = ucxExe;
          const measured = await withState(plan.cpus, () => ucxLatency(exe, size, n, w, plan.cpus, plan.timeoutMs));
          ucx.set(size, measured.value);
          states.set(label, { ...states.get(label), anchor: measured.state });
          progress(`${label}: ${ANCHOR_UCX} (ucx_perftest, UCX_TLS=${UCX_TLS}), ${Date.now() - started} ms`);
        } catch (error) {
          const message = `ucx_perftest failed for ${label}, its anchor is null: ${(error as Error).message}`;
          progress(message);
          report.notes.push(message);
          ucx.set(size, null);
        }
      }
    }
    if (plan.sizes.length > 1 && !flags.boolean.has('no-order-check')) {
      // The first size once more, exactly as before (warm-up rounds, then the measured ones), now
      // that every other size ran: if its first figure paid for warm-up, the two differ.
      const size = plan.sizes[0];
      const live = region;
      orderCheck = await measureAgain(sizeLabel(size), { p50: memwire.get(size)!.p50, state: states.get(sizeLabel(size))?.memwire }, plan.cpus, plan.warmup(size), (count) => toLatency(live.measure(size, count, 0, plan.timeoutMs)).p50, () => latencyLikeUcx(live.measure(size, plan.iterations(size), 0, plan.timeoutMs)));
    }
  } finally {
    // Each step runs even if one before it throws.
    try {
      await socket?.close();
    } finally {
      try {
        await region?.close();
      } finally {
        if (plan.cpus) pinThread(0, allowedCpusBefore);
      }
    }
  }

  const anchors: [string, Map<number, Latency | null>][] = [];
  if (!flags.boolean.has('no-ucx')) anchors.push([ANCHOR_UCX, ucx]);
  if (useUds) anchors.push([ANCHOR_UDS, uds]);
  const rows = latencyRows(plan.sizes, memwire, anchors);
  report.rows = rows;

  const targets: Target[] = [];
  if (plan.sizes.includes(64)) {
    if (!flags.boolean.has('no-ucx')) {
      targets.push({ case: '64B', metric: 'p50', anchorName: ANCHOR_UCX, maxRatio: 1.5, text: '64 B p50 within 1.5× of UCX over POSIX shared memory' });
    }
    if (useUds) {
      targets.push({ case: '64B', metric: 'p50', anchorName: ANCHOR_UDS, maxRatio: 0.2, text: `64 B p50 at least 5× faster than ${ANCHOR_UDS}` });
    }
  }
  report.targets = judgeTargets(rows, targets);
  report.notes.unshift(
    `one-way latency = round trip / 2; p50 and p99 in windows of ${UCX_TIMING_QUEUE} measured round trips after warm-up, as UCX takes its one window, upper median over the windows (${plan.sizes
      .map((s) => `${sizeLabel(s)}: ${plan.iterations(s)}`)
      .join(', ')})`,
    warmupNote('memwire', `${plan.sizes.map((s) => plan.warmup(s)).join('/')} round trips`, warmups),
    ...(orderCheck ? [orderCheckNote(orderCheck)] : []),
    allIterationsNote(plan.sizes, memwire),
    ...[statesNote(ANCHOR_UCX, states)].filter((n): n is string => n !== null),
    `memwire: two processes, one SharedRegion with a ping and a pong Mailbox, both busy-polling tryPut/tryTake${plan.cpus ? `, pinned to CPUs ${plan.cpus.join(' and ')}` : ''}`,
    ...(ucxExe
      ? [`${ANCHOR_UCX}: ucx_perftest -t tag_lat, UCX_TLS=${UCX_TLS}, 127.0.0.1; p50 vs its 50.0%ile column (-R 50, "typical"), p99 vs its 99.0%ile column (-R 99), both over its last ${UCX_TIMING_QUEUE} iterations`]
      : []),
    ...(useUds ? [`${ANCHOR_UDS}: ${platform.runtime} net socket echo over a Unix domain socket with a ${platform.runtime} child process`] : []),
    `timer: one process.hrtime.bigint() per round trip costs ${timerNs.toFixed(0)} ns here (≈${(timerNs / 2).toFixed(0)} ns of each one-way number)`,
  );
  return { report, json: flags.boolean.has('json') };
}
