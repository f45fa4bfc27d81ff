/**
 * Bench `postbox-pingpong`: one-way latency (round trip / 2) of a message bounced between two
 * processes through Postboxes (seed 001: each side writes into its own data segment's postbox for
 * the other; the other polls it and acknowledges), 64 B to 1 MiB, against two anchors measured in
 * the same run (runners in anchors.ts):
 *
 *  - `ucx-posix`: `ucx_perftest -t tag_lat` over POSIX shared memory (UCX_TLS=posix,self), its
 *    50.0%ile column against our p50 and its 99.0%ile column against our p99, ours taken like its
 *    own in windows of 2048 measured round trips, upper median over the windows (anchors.ts
 *    latencyLikeUcx; the last window's and all round trips' beside); from 64 KiB on memwire and
 *    UCX alternate in `--rounds` (default 3) and the ratio is the median of the per-round ratios;
 *  - `<runtime>-uds`: a Unix-domain-socket echo with a plain JS child of the same runtime.
 *
 * memwire's side: this process trySend()s to the peer and poll()s for the echo; the peer polls,
 * reads the message in place and trySend()s the same bytes back. Both busy-poll (no FFI call per
 * message) on two different CPUs, as UCX does. Sizes are interleaved (per size memwire and UCX, in rounds from 64 KiB, then UDS).
 *
 * `--transport rdma`: the same ping-pong between two nodes on two RDMA devices (lib/postbox-rdma.ts:
 * node A on dev0 echoes, node B on dev1 measures; a mount namespace, a /dev/shm and an agent each),
 * each Postbox over an RdmaTransport, against perftest's `ib_write_lat` on the same devices and
 * CPUs (its typical latency against our p50, its 99% percentile against our p99), alternating in
 * `--rounds` (default 5) as the other RDMA benches do; the ratio is the median of the per-round
 * ratios. Target (issue 12): 64 B one-way p50 ≤ 1.5× ib_write_lat.
 */
import { fileURLToPath } from 'node:url';
import { findExecutable, selfCommand } from './lib/environment.js';
import { Postbox, SendStatus, platform } from '../src/index.js';
import { allIterationsNote, latencyLikeUcx, ANCHOR_UCX_LAT, ANCHOR_UDS, latencyFlags, latencyRows, ucxLatency, UCX_TIMING_QUEUE, UCX_TLS, UdsPingPong, type Latency } from './anchors.js';
import { allowedCpus, pinThread } from './lib/cpu.js';
import { leadsSession } from './lib/session.js';
import { COMMON_FLAGS, parseFlags, sizeLabel, type FlagSpec } from './lib/flags.js';
import { DEFAULT_ROUNDS, median, pairedRow, roundRatios, ROUNDS_FLAG, runPerftest, runRound, column } from './lib/perftest.js';
import { PostboxRdmaRig, takeTransport, TRANSPORT_FLAG } from './lib/postbox-rdma.js';
import { formatSched } from './lib/sched-probe.js';
import { DEVICE_FLAGS, pickCpus, pickDevices, takeDeviceNames } from './lib/rdma-devices.js';
import { Peer } from './lib/peer.js';
import { judgeTargets, newReport, type BenchReport, type Row, type Target } from './lib/report.js';
import { nowNs, percentiles, progress, timerCostNs } from './lib/timing.js';
import { statesNote, withState, type StateAround } from './lib/machine-state.js';
import { measureAgain, NO_WARMUP, orderCheckNote, warmUntilStable, warmupNote, type OrderCheck, type WarmupResult } from './lib/warmup.js';

const SHM_FLAGS: FlagSpec = {
  ...latencyFlags('64,256,1KiB,4KiB,64KiB,1MiB', 30),
  rounds: { kind: 'count', help: 'sizes ≥ 64 KiB: alternate memwire and UCX this many times; medians, ratio = median of per-round ratios (default 3, --quick 1)' },
};
/** Sizes from which memwire and UCX alternate in rounds (below, 6–100 windows of 2048 round trips each take milliseconds). */
const ROUNDS_FROM = 64 << 10;
const DEFAULT_SHM_ROUNDS = 3;
const RDMA_FLAGS: FlagSpec = {
  ...COMMON_FLAGS,
  iterations: { kind: 'count', help: 'measured round trips per size (default 2000, --quick 300; fewer above 4 KiB); ib_write_lat gets the same -n' },
  warmup: { kind: 'count', help: 'warm-up round trips per size and round (default half the iterations)' },
  sizes: { kind: 'sizes', help: 'message sizes (default 64,4KiB,64KiB)' },
  timeout: { kind: 'seconds', help: 'limit for each measurement (default 120, --quick 60)' },
  ...DEVICE_FLAGS,
  ...ROUNDS_FLAG,
};
/** Every flag, for the help text: `--transport rdma` takes RDMA_FLAGS, shm (the default) SHM_FLAGS. */
export const FLAGS: FlagSpec = { ...TRANSPORT_FLAG, ...SHM_FLAGS, ...RDMA_FLAGS, iterations: { kind: 'count', help: `${SHM_FLAGS.iterations.help}; rdma: ${RDMA_FLAGS.iterations.help}` }, sizes: { kind: 'sizes', help: `${SHM_FLAGS.sizes.help}; rdma: ${RDMA_FLAGS.sizes.help}` }, rounds: { kind: 'count', help: `${SHM_FLAGS.rounds.help}; rdma: ${RDMA_FLAGS.rounds.help}` } };

const DEFAULT_SIZES = [64, 256, 1024, 4096, 65536, 1 << 20];
const ANCHOR_UCX = ANCHOR_UCX_LAT;
/** A pool that holds a 1 MiB message with room to spare; everything else default. */
export const BENCH_OPTIONS = { poolBytes: 4 << 20 };


class PostboxPingPong {
  readonly #box: Postbox;
  readonly #peer: Peer;
  #replyLength = -1;
  #replyFirst = 0;
  readonly #onReply = (buffer: Uint8Array, offset: number, length: number) => {
    this.#replyLength = length;
    this.#replyFirst = length > 0 ? buffer[offset] : 0;
  };

  private constructor(box: Postbox, peer: Peer) {
    this.#box = box;
    this.#peer = peer;
  }

  static async start(cpus: [number, number] | null): Promise<PostboxPingPong> {
    const domain = `bench${process.pid}${Math.random().toString(36).slice(2, 8)}`;
    const box = Postbox.open('ping', { ...BENCH_OPTIONS, domain });
    let peer: Peer | undefined;
    try {
      const script = fileURLToPath(new URL('./postbox-peer.js', import.meta.url));
      // Its own session, as UCX's two processes have (lib/peer.ts: autogroup scheduling); it
      // watches our pid and exits when we die.
      peer = Peer.start('postbox peer', selfCommand(script, [domain, 'pong', 'echo', String(process.pid), JSON.stringify(BENCH_OPTIONS)]), { ownSession: true });
      if (cpus) pinThread(peer.pid, [cpus[1]]);
      await peer.waitFor('its postbox', () => peer!.stdout.includes('ready'), 15_000);
      return new PostboxPingPong(box, peer);
    } catch (error) {
      if (peer) await peer.stop();
      box.close();
      throw error;
    }
  }

  /** One-way latencies in ns of `iterations` round trips of `size` bytes. */
  measure(size: number, iterations: number, warmup: number, timeoutMs: number): Float64Array {
    const box = this.#box;
    const message = new Uint8Array(size).fill(0x5a);
    const samples = new Float64Array(iterations);
    const deadline = nowNs() + BigInt(Math.round(timeoutMs * 1e6));
    const peer = this.#peer;
    let polls = 0;
    const guard = () => {
      if (!peer.isRunningNow()) throw new Error(`${peer.label} died during the ${sizeLabel(size)} round trips${peer.stderr ? `: ${peer.stderr.trim()}` : ''}`);
      if (nowNs() > deadline) throw new Error(`memwire ${sizeLabel(size)} round trips did not finish within ${timeoutMs} ms`);
    };
    const onReply = this.#onReply;
    let prev = process.hrtime.bigint();
    for (let i = -warmup; i < iterations; i++) {
      message[0] = i & 0xff;
      while (box.trySend('pong', message) !== SendStatus.OK) if ((++polls & 0xffff) === 0) guard();
      this.#replyLength = -1;
      while (box.poll(onReply, 1) === 0) if ((++polls & 0xffff) === 0) guard();
      const now = process.hrtime.bigint();
      if (i >= 0) samples[i] = Number(now - prev) / 2;
      prev = now;
      if (this.#replyLength !== size || this.#replyFirst !== (i & 0xff)) {
        throw new Error(`echo mismatch at iteration ${i}: ${this.#replyLength} bytes back for ${size}`);
      }
    }
    return samples;
  }

  async close(): Promise<void> {
    try {
      if (!this.#peer.hasExited && this.#peer.isRunningNow()) {
        const deadline = Date.now() + 2000;
        while (this.#box.trySend('pong', new Uint8Array(0)) !== SendStatus.OK && Date.now() < deadline) await new Promise((r) => setTimeout(r, 1));
        await this.#peer.waitExit(5000);
      }
    } finally {
      await this.#peer.stop();
      this.#box.close();
    }
  }
}

/** Component-wise medians of several rounds' latencies (null if none). */
function medianLatency(list: readonly Latency[]): Latency | null {
  if (list.length === 0) return null;
  if (list.length === 1) return list[0];
  const pick = (f: (l: Latency) => number | undefined) => median(list.map((l) => f(l) ?? NaN));
  const withAll = list.every((l) => l.all && l.last);
  return {
    p50: pick((l) => l.p50),
    p99: pick((l) => l.p99),
    ...(withAll ? { all: { p50: pick((l) => l.all!.p50), p99: pick((l) => l.all!.p99) }, last: { p50: pick((l) => l.last!.p50), p99: pick((l) => l.last!.p99) }, windows: list[0].windows } : {}),
  };
}

function toLatency(samplesNs: Float64Array): Latency {
  const [p50, p99] = percentiles(samplesNs, [50, 99]);
  return { p50: p50 / 1000, p99: p99 / 1000 };
}

export async function run(argv: readonly string[]): Promise<{ report: BenchReport; json: boolean }> {
  const { rest, transport } = takeTransport(argv);
  return transport === 'rdma' ? runRdma(rest) : runShm(rest);
}

async function runShm(argv: readonly string[]): Promise<{ report: BenchReport; json: boolean }> {
  const report = newReport('postbox-pingpong');
  const flags = parseFlags(argv, SHM_FLAGS);
  const quick = flags.boolean.has('quick');
  const base = quick ? 20_000 : 200_000;
  const fixedIterations = flags.count.get('iterations');
  const fixedWarmup = flags.count.get('warmup');
  const iterations = (size: number) => Math.max(1, fixedIterations ?? Math.max(2 * UCX_TIMING_QUEUE, Math.round(base * Math.min(1, 4096 / size))));
  const warmup = (size: number) => fixedWarmup ?? Math.max(500, Math.round(iterations(size) / 10));
  const timeoutMs = (flags.seconds.get('timeout') ?? (quick ? 30 : 120)) * 1000;
  const sizes = [...new Set(flags.sizes.get('sizes') ?? DEFAULT_SIZES)];
  const useUds = !flags.boolean.has('no-uds');
  const cpusBefore = allowedCpus();
  let cpus: [number, number] | null = null;
  report.notes.push(leadsSession() ? 'measured from a process leading a session of its own (autogroup scheduling), as UCX\'s client and server and the echo peer each are' : 'measured from a process in the caller\'s session (not a session of its own as UCX\'s processes are): autogroup scheduling shares its weight with whatever else that session runs');
  if (!flags.boolean.has('no-pin') && cpusBefore.length >= 2) cpus = [cpusBefore[0], cpusBefore[1]];
  else report.notes.push(flags.boolean.has('no-pin') ? 'not pinned (--no-pin)' : `only ${cpusBefore.length} CPU: both sides share it`);
  let ucxExe: string | null = null;
  if (!flags.boolean.has('no-ucx')) {
    ucxExe = findExecutable('ucx_perftest');
    if (!ucxExe) report.notes.push('ucx_perftest is not installed (Debian package ucx-utils): the ucx-posix anchor is null');
  }
  const timerNs = timerCostNs();
  const memwire = new Map<number, Latency>();
  const uds = new Map<number, Latency | null>();
  const ucx = new Map<number, Latency | null>();
  const warmups = new Map<string, WarmupResult>();
  let orderCheck: OrderCheck | null = null;
  const states = new Map<string, { memwire?: StateAround; anchor?: StateAround }>();
  const shmRounds = Math.max(1, flags.count.get('rounds') ?? (quick ? 1 : DEFAULT_SHM_ROUNDS));
  const perRound = new Map<number, { ours: Latency[]; theirs: (Latency | null)[] }>();
  if (cpus) pinThread(0, [cpus[0]]);
  let pp: PostboxPingPong | undefined;
  let socket: UdsPingPong | undefined;
  try {
    progress(`postbox-pingpong: sizes ${sizes.map(sizeLabel).join(', ')}; ${cpus ? `CPUs ${cpus.join(' and ')}` : 'not pinned'}`);
    pp = await PostboxPingPong.start(cpus);
    if (useUds) socket = await UdsPingPong.start(cpus);
    const prime = quick ? 50_000 : 200_000;
    pp.measure(Math.min(...sizes), prime, 0, timeoutMs);
    if (socket) {
      try {
        await socket.measure(Math.min(...sizes), Math.ceil(prime / 20), 0, timeoutMs);
      } catch (error) {
        // On a loaded machine the socket can miss its deadline already here: the anchor is then null, memwire still measured.
        report.notes.push(`the ${ANCHOR_UDS} anchor failed while priming and is null: ${(error as Error).message}`);
        await socket.close();
        socket = undefined;
      }
    }
    for (const size of sizes) {
      const n = iterations(size);
      const w = warmup(size);
      const label = sizeLabel(size);
      let started = Date.now();
      const live = pp;
      // Large sizes alternate memwire and UCX in rounds (A B, B A, ...), as the RDMA benches
      // alternate with perftest: a window of 2048 round trips lasts 0.1–1 s there, and which
      // side met the host's busy seconds decided the p99 ratio (UCX's own 1 MiB p99 moved 71 µs –
      // 4.2 ms between runs). The ratio judged is the median of the per-round ratios.
      const sizeRounds = size >= ROUNDS_FROM ? shmRounds : 1;
      const ours: Latency[] = [];
      const theirs: (Latency | null)[] = [];
      for (let round = 1; round <= sizeRounds; round++) {
        const tag = sizeRounds > 1 ? ` (round ${round}/${sizeRounds})` : '';
        const key = sizeRounds > 1 ? `${label}#${round}` : label;
        const measureOurs = async () => {
          started = Date.now();
          const warm = w > 0 ? await warmUntilStable((count) => toLatency(live.measure(size, count, 0, timeoutMs)).p50, w) : NO_WARMUP;
          if (round === 1) warmups.set(label, warm);
          const measured = await withState(cpus, () => latencyLikeUcx(live.measure(size, n, 0, timeoutMs)));
          ours.push(measured.value);
          states.set(key, { ...states.get(key), memwire: measured.state });
          progress(`${label}: memwire, ${warm.p50s.length} warm-up rounds of ${w} (p50 ${warm.p50s.map((p) => p.toFixed(3)).join(' → ')} µs${warm.stable ? '' : ', not stable'}), then ${n} round trips, ${Date.now() - started} ms${tag}`);
        };
        const exe = ucxExe;
        const measureUcx = exe
          ? async () => {
              started = Date.now();
              try {
                const measured = await withState(cpus, () => ucxLatency(exe, size, n, w, cpus, timeoutMs));
                theirs.push(measured.value);
                states.set(key, { ...states.get(key), anchor: measured.state });
                progress(`${label}: ${ANCHOR_UCX}, ${Date.now() - started} ms${tag}`);
              } catch (error) {
                report.notes.push(`ucx_perftest failed for ${label}${tag}, its anchor is null${sizeRounds > 1 ? ' in that round' : ''}: ${(error as Error).message}`);
                theirs.push(null);
              }
            }
          : null;
        await runRound(round, measureOurs, measureUcx);
      }
      memwire.set(size, medianLatency(ours)!);
      if (ucxExe) ucx.set(size, medianLatency(theirs.filter((l): l is Latency => l !== null)));
      if (sizeRounds > 1) perRound.set(size, { ours, theirs });
      if (socket) {
        started = Date.now();
        try {
          uds.set(size, toLatency(await socket.measure(size, n, w, timeoutMs)));
          progress(`${sizeLabel(size)}: ${ANCHOR_UDS}, ${Date.now() - started} ms`);
        } catch (error) {
          // A socket that missed its deadline may still hold bytes in flight: it measures nothing more.
          report.notes.push(`the ${ANCHOR_UDS} anchor failed at ${sizeLabel(size)} and is null from there on: ${(error as Error).message}`);
          uds.set(size, null);
          await socket.close();
          socket = undefined;
        }
      }
    }
    if (sizes.length > 1 && !flags.boolean.has('no-order-check')) {
      // The first size once more, exactly as before, after every other size (bench/lib/warmup.ts).
      const size = sizes[0];
      const live = pp;
      orderCheck = await measureAgain(sizeLabel(size), { p50: memwire.get(size)!.p50, state: states.get(sizeLabel(size))?.memwire }, cpus, warmup(size), (count) => toLatency(live.measure(size, count, 0, timeoutMs)).p50, () => latencyLikeUcx(live.measure(size, iterations(size), 0, timeoutMs)));
    }
  } finally {
    try {
      await socket?.close();
    } finally {
      try {
        await pp?.close();
      } finally {
        if (cpus) pinThread(0, cpusBefore);
      }
    }
  }
  const anchors: [string, Map<number, Latency | null>][] = [];
  if (!flags.boolean.has('no-ucx')) anchors.push([ANCHOR_UCX, ucx]);
  if (useUds) anchors.push([ANCHOR_UDS, uds]);
  const rows = latencyRows(sizes, memwire, anchors);
  for (const [size, { ours, theirs }] of perRound) {
    // Rounds: each figure the median of its rounds, the ratio the median of the per-round ratios.
    const label = sizeLabel(size);
    for (const metric of ['p50', 'p99'] as const) {
      const at = rows.findIndex((r) => r.case === label && r.metric === metric && r.anchorName === ANCHOR_UCX);
      if (at < 0) continue;
      const a = ours.map((l) => l[metric]);
      const b = theirs.map((l) => l?.[metric] ?? NaN);
      rows[at] = pairedRow(label, metric, 'us', a, b, ANCHOR_UCX, 'lower');
      report.notes.push(`${label} ${metric} rounds (µs): memwire ${a.map((x) => x.toPrecision(3)).join(', ')}; ${ANCHOR_UCX} ${b.map((x) => x.toPrecision(3)).join(', ')}${roundRatios(a, b)}`);
    }
  }
  report.rows = rows;
  const targets: Target[] = [];
  if (sizes.includes(64)) {
    if (!flags.boolean.has('no-ucx')) targets.push({ case: '64B', metric: 'p50', anchorName: ANCHOR_UCX, maxRatio: 1.5, text: '64 B p50 within 1.5× of UCX over POSIX shared memory' });
    if (useUds) targets.push({ case: '64B', metric: 'p50', anchorName: ANCHOR_UDS, maxRatio: 0.1, text: `64 B p50 at least 10× faster than ${ANCHOR_UDS}` });
  }
  if (!flags.boolean.has('no-ucx')) {
    // Issue 12: the tails too, at every size.
    for (const size of sizes) {
      const label = sizeLabel(size);
      targets.push({ case: label, metric: 'p50', anchorName: ANCHOR_UCX, maxRatio: 1.2, text: `${label} p50 within 1.2× of UCX (issue 12)` });
      targets.push({ case: label, metric: 'p99', anchorName: ANCHOR_UCX, maxRatio: 2, text: `${label} p99 within 2× of UCX (issue 12)` });
    }
  }
  report.targets = judgeTargets(rows, targets);
  report.notes.unshift(
    `one-way latency = round trip / 2; p50/p99 in windows of ${UCX_TIMING_QUEUE} measured round trips after warm-up, as UCX takes its one window, upper median over the windows (${sizes.map((s) => `${sizeLabel(s)}: ${iterations(s)}`).join(', ')})${sizes.some((s) => s >= ROUNDS_FROM) && shmRounds > 1 ? `; from ${sizeLabel(ROUNDS_FROM)} on, ${shmRounds} rounds alternating memwire and UCX (A B, B A, ...): each figure the median of its rounds, the ratio the median of the per-round ratios` : ''}`,
    warmupNote('memwire', `${sizes.map((s) => warmup(s)).join('/')} round trips`, warmups),
    ...(orderCheck ? [orderCheckNote(orderCheck)] : []),
    allIterationsNote(sizes, memwire),
    ...[statesNote(ANCHOR_UCX, states)].filter((n): n is string => n !== null),
    `memwire: two processes, a Postbox each (slots 64, inline ≤ 240 B, 4 KiB blocks, pool ${BENCH_OPTIONS.poolBytes >> 20} MiB, cyclic transaction size 1 MiB); trySend + busy poll; the peer reads in place and trySends the bytes back${cpus ? `; pinned to CPUs ${cpus.join(' and ')}` : ''}`,
    ...(ucxExe ? [`${ANCHOR_UCX}: ucx_perftest -t tag_lat, UCX_TLS=${UCX_TLS}, 127.0.0.1; p50 vs its 50.0%ile column, p99 vs its 99.0%ile column (its last ${UCX_TIMING_QUEUE} iterations)`] : []),
    ...(useUds ? [`${ANCHOR_UDS}: ${platform.runtime} net socket echo over a Unix domain socket with a ${platform.runtime} child process`] : []),
    `timer: one process.hrtime.bigint() per round trip costs ${timerNs.toFixed(0)} ns here (≈${(timerNs / 2).toFixed(0)} ns of each one-way number)`,
  );
  return { report, json: flags.boolean.has('json') };
}

/** `--transport rdma`: see the top of this file and lib/postbox-rdma.ts. */
async function runRdma(argv: readonly string[]): Promise<{ report: BenchReport; json: boolean }> {
  const report = newReport('postbox-pingpong');
  const names = takeDeviceNames(argv);
  const flags = parseFlags(names.rest, RDMA_FLAGS);
  const quick = flags.boolean.has('quick');
  const base = flags.count.get('iterations') ?? (quick ? 300 : 2000);
  const fixed = flags.count.has('iterations');
  const iterations = (size: number) => Math.max(1, fixed ? base : Math.max(100, Math.round(base * Math.min(1, 4096 / size))));
  const warmup = (size: number) => flags.count.get('warmup') ?? Math.max(50, Math.round(iterations(size) / 2));
  const timeoutMs = (flags.seconds.get('timeout') ?? (quick ? 60 : 120)) * 1000;
  const rounds = Math.max(1, flags.count.get('rounds') ?? (quick ? 1 : DEFAULT_ROUNDS));
  const sizes = [...new Set(flags.sizes.get('sizes') ?? [64, 4096, 65536])];
  const pair = pickDevices(names, flags);
  const cpus = pickCpus(flags.boolean.has('no-pin'), report.notes);
  const usePerftest = !flags.boolean.has('no-perftest');
  const rows: Row[] = [];
  const targets: Target[] = [];
  progress(`postbox-pingpong --transport rdma on ${platform.runtime}: node A ${pair.dev0}, node B ${pair.dev1}, sizes ${sizes.map(sizeLabel).join(', ')}, ${rounds} round(s)`);
  const rig = await PostboxRdmaRig.start('echo', BENCH_OPTIONS, pair, cpus);
  try {
    for (const size of sizes) {
      const label = sizeLabel(size);
      const n = iterations(size);
      const ours: { p50: number; p99: number }[] = [];
      const theirs: { p50: number; p99: number }[] = [];
      for (let round = 1; round <= rounds; round++) {
        const tag = rounds > 1 ? ` (round ${round}/${rounds})` : '';
        await runRound(
          round,
          async () => {
            const started = Date.now();
            const one = await rig.latency(size, n, warmup(size), timeoutMs);
            ours.push(one);
            progress(
              `${label}: memwire p50 ${one.p50.toFixed(2)} µs, p99 ${one.p99.toFixed(2)} µs over ${n} round trips (${Date.now() - started} ms)${tag}; ` +
                `measuring side per round trip: trySend p50 ${one.sendP50.toFixed(1)} µs, empty polls p50 ${one.pollsP50}, event-loop turns ${one.turnsMean.toFixed(2)}`,
            );
            if (one.sched) progress(`${label}: where the CPUs went${tag}: ${formatSched(one.sched)}`);
          },
          usePerftest
            ? async () => {
                const started = Date.now();
                try {
                  const result = await runPerftest('ib_write_lat', ['-s', String(size), '-n', String(n)], pair, cpus, timeoutMs);
                  const t = { p50: column(result.columns, 't_typical'), p99: column(result.columns, '99% percentile') };
                  theirs.push(t);
                  progress(`${label}: ib_write_lat typical ${t.p50} µs, 99% ${t.p99} µs (${Date.now() - started} ms)${tag}`);
                } catch (error) {
                  theirs.push({ p50: NaN, p99: NaN }); // keeps the rounds paired
                  report.notes.push(`ib_write_lat ${label} failed${tag}: ${(error as Error).message}`);
                }
              }
            : null,
        );
      }
      const anchor = usePerftest ? 'ib_write_lat' : 'none';
      const p50s = ours.map((l) => l.p50);
      const t50s = theirs.map((l) => l.p50);
      if (rounds > 1) report.notes.push(`${label} p50 rounds (µs): memwire ${p50s.map((x) => x.toFixed(1)).join(', ')}; ib_write_lat ${t50s.map((x) => x.toFixed(1)).join(', ') || 'none'}${roundRatios(p50s, t50s)}`);
      rows.push(pairedRow(label, 'p50', 'us', p50s, t50s, anchor, 'lower'));
      rows.push(pairedRow(label, 'p99', 'us', ours.map((l) => l.p99), theirs.map((l) => l.p99), anchor, 'lower'));
      const issue = size === 64;
      targets.push({ case: label, metric: 'p50', anchorName: 'ib_write_lat', maxRatio: 1.5, text: `${label} one-way p50 within 1.5× of ib_write_lat's typical latency${issue ? ' (issue 12)' : ' (the same bound at this size; not required)'}` });
    }
  } finally {
    await rig.close();
  }
  report.rows = rows;
  report.targets = judgeTargets(rows, usePerftest ? targets : []);
  report.notes.unshift(
    `transport rdma: ${rig.description}; each Postbox over an RdmaTransport (pool ${BENCH_OPTIONS.poolBytes >> 20} MiB); trySend + busy poll, a turn of the event loop every 32 empty polls; the peer reads in place and trySends the bytes back`,
    `one-way latency = round trip / 2 over ${sizes.map((s) => `${sizeLabel(s)}: ${iterations(s)}`).join(', ')} round trips after ${sizes.map((s) => warmup(s)).join('/')} warm-up ones per round; p50 vs ib_write_lat's t_typical, p99 vs its 99% percentile`,
    `ib_write_lat: server -d ${pair.dev0}, client -d ${pair.dev1} ${pair.serverIp}, -x ${pair.gidIndex} -F -s <size> -n <iterations>${cpus ? `, under taskset on CPUs ${cpus.join(' and ')}` : ''}`,
    `${rounds} round${rounds > 1 ? 's' : ''}, memwire and ib_write_lat alternating (A B, B A, ...); each figure is the median of its rounds, the ratio the median of the per-round ratios`,
  );
  return { report, json: flags.boolean.has('json') };
}
