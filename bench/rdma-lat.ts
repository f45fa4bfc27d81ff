/**
 * Bench `rdma-lat`: one-way latency of RDMA WRITEs and of SENDs of 2 B to 16 KiB between two RC
 * queue pairs on two RDMA devices (or one, in loopback), against perftest's `ib_write_lat` and
 * `ib_send_lat` run on the same device pair in the same run (cases `write-2B`, `send-1KiB` …;
 * `memwire bench report` draws them as latency against size, the perftest tools on the same axes).
 * The target is the 2 B one (the issue's); the other sizes show where copying and rxe's packets
 * (active MTU 1024 in the guest) take over.
 *
 * The ping-pong is perftest's own protocol, so both do the same work per iteration
 * (perftest 4.5 run_iter_lat_write / run_iter_lat_send; see lib/rdma-loops.ts):
 *  - WRITE: each side RDMA-writes the message (inline) whose last byte is the iteration count
 *    into the other's buffer and spins on the last byte of its own buffer until the other's
 *    write lands — the completion queue is not on the ping-pong path; each write is signaled,
 *    as perftest's.
 *  - SEND: each side SENDs (inline) and busy-polls its receive CQ for the other's SEND; every
 *    SEND is signaled and one receive re-posted per message, as perftest's.
 * Where memwire differs, in order only: perftest reaps each send completion right after its post
 * and re-posts each receive before its SEND (C calls of nanoseconds); memwire reaps send
 * completions 16 per poll and re-posts receives 8 per call (a prepared chain, qp.prepareRecv),
 * in the turns of its spin that find nothing, i.e. while the message is in flight — under the
 * guest's TCG each call from JS into C costs microseconds and would otherwise sit in every
 * measured one-way time.
 * The server is a second process of the same runtime on dev0, pinned to the first CPU; this
 * process is the client on dev1, pinned to the second. perftest runs the same way: server
 * `-d dev0 -x <gid>` under `taskset -c <first>`, client `-d dev1 -x <gid> <dev0's IPv4>` under
 * `taskset -c <second>`, `-F -s 2 -n <iterations>`.
 *
 * Timing as perftest's: the client reads the clock once per iteration; round trip = difference
 * of successive reads; one-way = round trip / 2. perftest reads its cycle counter (rdtsc, ~10 ns)
 * right before each post; memwire reads process.hrtime.bigint() (4.5–8 µs in the TCG guest) right
 * after it, while the message is in flight, so the clock is off the ping-pong path — successive
 * differences are the same period either way. p50 is compared with perftest's t_typical (its
 * median), p99 with its "99% percentile". memwire runs warm-up iterations first (not measured);
 * perftest's latency tools have none. The guest's figures swing ±30 % between runs, so memwire
 * and perftest alternate `--rounds` times (default 5) and the medians of the rounds are compared.
 *
 * No device (e.g. a kernel without RDMA): the bench fails with a plain "no RDMA device" message.
 */
import { platform } from '../src/index.js';
import { pinAlone, allowedCpus } from './lib/cpu.js';
import { COMMON_FLAGS, FlagError, parseFlags, sizeLabel, type FlagSpec } from './lib/flags.js';
import { judgeTargets, makeRow, newReport, type BenchReport, type Row, type Target } from './lib/report.js';
import { percentiles, progress, timerCostNs } from './lib/timing.js';
import { bestRounds, column, DEFAULT_ROUNDS, median, ROUNDS_FLAG, runPerftest, runRound } from './lib/perftest.js';
import { DEVICE_FLAGS, pickCpus, pickDevices, takeDeviceNames, type DevicePair } from './lib/rdma-devices.js';
import { prepostReceives, SEND_LAT_RX_DEPTH, sendLatLoop, writeLatLoop } from './lib/rdma-loops.js';
import { BenchSide, startServerPeer, type PeerMode } from './lib/rdma-side.js';

const DEFAULT_SIZES = [2, 64, 1024, 4096, 16384];

export const FLAGS: FlagSpec = {
  ...COMMON_FLAGS,
  iterations: { kind: 'count', help: 'measured round trips per test (default 10000, --quick 2000); perftest gets the same -n' },
  warmup: { kind: 'count', help: 'warm-up round trips before memwire measures (default 3000, --quick 1000)' },
  sizes: { kind: 'sizes', help: `message sizes (default ${DEFAULT_SIZES.map(sizeLabel).join(',')})` },
  size: { kind: 'sizes', help: 'the same as --sizes' },
  timeout: { kind: 'seconds', help: 'limit for each measurement (default 120, --quick 40)' },
  'post-list': { kind: 'count', help: 'only 1: a ping-pong posts one work request per message, and perftest\'s latency tools refuse -l ("Post list is supported in BW tests only"); see rdma-write-bw --post-list' },
  ...DEVICE_FLAGS,
  ...ROUNDS_FLAG,
};

const allowedCpusBefore = allowedCpus();

interface Latency {
  p50: number;
  p99: number;
}

async function measureMemwire(mode: PeerMode, pair: DevicePair, size: number, iterations: number, warmup: number, cpus: [number, number] | null, timeoutMs: number): Promise<Latency> {
  const total = warmup + iterations + 1;
  const client = new BenchSide(pair.dev1, pair.gidIndex, 2 * size, 128);
  let peer: Awaited<ReturnType<typeof startServerPeer>>['peer'] | undefined;
  try {
    const started = await startServerPeer(mode, pair, size, total, client, cpus?.[0] ?? null);
    peer = started.peer;
    // After connecting (not in RESET); the server sends only once our first message came.
    if (mode === 'send-lat') prepostReceives(client, size, SEND_LAT_RX_DEPTH);
    const p = peer;
    const deadline = Date.now() + timeoutMs;
    const guard = () => {
      if (!p.isRunningNow()) throw new Error(`${p.label} died${p.stderr ? `: ${p.stderr.trim()}` : ''}`);
      if (Date.now() > deadline) throw new Error(`memwire ${mode} did not finish within ${timeoutMs} ms`);
    };
    const stamps = new Float64Array(total);
    if (mode === 'write-lat') writeLatLoop(client, started.remote, size, total, false, stamps, guard);
    else sendLatLoop(client, size, total, false, stamps, guard);
    await peer.finish(10_000);
    const samples = new Float64Array(iterations);
    for (let i = 0; i < iterations; i++) samples[i] = (stamps[warmup + i + 1] - stamps[warmup + i]) / 2;
    const [p50, p99] = percentiles(samples, [50, 99]);
    return { p50: p50 / 1000, p99: p99 / 1000 };
  } finally {
    await peer?.stop();
    client.dispose();
  }
}

export async function run(argv: readonly string[]): Promise<{ report: BenchReport; json: boolean }> {
  const report = newReport('rdma-lat');
  const names = takeDeviceNames(argv);
  const flags = parseFlags(names.rest, FLAGS);
  const quick = flags.boolean.has('quick');
  const iterations = flags.count.get('iterations') ?? (quick ? 2000 : 10_000);
  const warmup = flags.count.get('warmup') ?? (quick ? 1000 : 3000);
  const sizes = [...new Set(flags.sizes.get('sizes') ?? flags.sizes.get('size') ?? DEFAULT_SIZES)];
  // perftest_parameters.c refuses a post list outside BW tests, and each message of the
  // ping-pong is one work request posted when the peer's arrives: there is no list to post.
  const postList = flags.count.get('post-list') ?? 1;
  if (postList !== 1) throw new FlagError('--post-list: latency is a ping-pong of one work request per message, and ib_write_lat / ib_send_lat refuse -l ("Post list is supported in BW tests only"); measure post lists with rdma-write-bw --post-list N');
  const timeoutMs = (flags.seconds.get('timeout') ?? (quick ? 40 : 120)) * 1000;
  const rounds = Math.max(1, flags.count.get('rounds') ?? (quick ? 1 : DEFAULT_ROUNDS));
  const pair = pickDevices(names, flags);
  const cpus = pickCpus(flags.boolean.has('no-pin'), report.notes);
  const usePerftest = !flags.boolean.has('no-perftest');
  const timerNs = timerCostNs();
  progress(`rdma-lat on ${platform.runtime}: server ${pair.dev0}, client ${pair.dev1}${pair.loopback ? ' (loopback)' : ''}, GID index ${pair.gidIndex}, ${sizes.map(sizeLabel).join(', ')} × ${iterations}; ${cpus ? `CPUs ${cpus.join(' and ')}` : 'not pinned'}`);

  const tests = sizes.flatMap((size) => [
    { mode: 'write-lat' as PeerMode, size, label: `write-${sizeLabel(size)}`, tool: 'ib_write_lat' },
    { mode: 'send-lat' as PeerMode, size, label: `send-${sizeLabel(size)}`, tool: 'ib_send_lat' },
  ]);
  const rows: Row[] = [];
  const targets: Target[] = [];
  // The measuring thread alone on the client CPU (the runtime's other threads on the other), as perftest under taskset.
  const unpin = cpus ? pinAlone(cpus[1], allowedCpusBefore) : null;
  try {
    for (const test of tests) {
      const { size } = test;
      const oursAll: Latency[] = [];
      const theirsAll: Latency[] = [];
      for (let round = 1; round <= rounds; round++) {
        const tag = rounds > 1 ? ` (round ${round}/${rounds})` : '';
        const ours = async () => {
          const started = Date.now();
          const one = await measureMemwire(test.mode, pair, size, iterations, warmup, cpus, timeoutMs);
          oursAll.push(one);
          progress(`${test.label}: memwire p50 ${one.p50.toFixed(2)} µs, p99 ${one.p99.toFixed(2)} µs (${Date.now() - started} ms)${tag}`);
        };
        const theirs = async () => {
          const started = Date.now();
          try {
            const result = await runPerftest(test.tool, ['-s', String(size), '-n', String(iterations)], pair, cpus, timeoutMs);
            const t = { p50: column(result.columns, 't_typical'), p99: column(result.columns, '99% percentile') };
            theirsAll.push(t);
            progress(`${test.label}: ${test.tool} typical ${t.p50} µs, 99% ${t.p99} µs (${Date.now() - started} ms)${tag}`);
          } catch (error) {
            const message = `${test.tool} failed${tag}: ${(error as Error).message}`;
            progress(message);
            report.notes.push(message);
          }
        };
        await runRound(round, ours, usePerftest ? theirs : null);
      }
      const ours: Latency = { p50: median(oursAll.map((l) => l.p50)), p99: median(oursAll.map((l) => l.p99)) };
      const theirs: Latency | null = theirsAll.length ? { p50: median(theirsAll.map((l) => l.p50)), p99: median(theirsAll.map((l) => l.p99)) } : null;
      if (rounds > 1) {
        const best = bestRounds(oursAll.map((l) => l.p50), theirsAll.map((l) => l.p50), 'lower');
        report.notes.push(`${test.label} p50 rounds (µs): memwire ${oursAll.map((l) => l.p50.toFixed(1)).join(', ')}; ${test.tool} ${theirsAll.map((l) => l.p50.toFixed(1)).join(', ') || 'none'}${best}`);
      }
      rows.push(makeRow(test.label, 'p50', 'us', 'lower', ours.p50, theirs?.p50 ?? null, test.tool));
      rows.push(makeRow(test.label, 'p99', 'us', 'lower', ours.p99, theirs?.p99 ?? null, test.tool));
      // The issue's target is the 2-byte ping-pong; the other sizes are shown, not judged.
      if (size === 2) targets.push({ case: test.label, metric: 'p50', anchorName: test.tool, maxRatio: 1.25, text: `${test.label} p50 within 1.25× of ${test.tool}'s typical latency` });
    }
  } finally {
    unpin?.();
  }
  report.rows = rows;
  report.targets = judgeTargets(rows, usePerftest ? targets : []);
  report.notes.unshift(
    `devices: server ${pair.dev0}, client ${pair.dev1}${pair.loopback ? ' (one device: loopback)' : ''}, GID index ${pair.gidIndex}; RC, inline, busy-polling, perftest's ping-pong protocol (WRITE: spin on the last byte of the receive buffer; SEND: spin on the receive CQ)`,
    `one-way latency = round trip / 2 over ${iterations} round trips (memwire after ${warmup} warm-up ones); p50 vs perftest's t_typical, p99 vs its 99% percentile`,
    `timer: one process.hrtime.bigint() per round trip (${timerNs.toFixed(0)} ns here), read right after the post, while the message is in flight (perftest reads its cycle counter right before the post)`,
    `${rounds} round${rounds > 1 ? 's' : ''}, memwire and perftest alternating (A B, B A, ...); each figure is the median of its rounds`,
  );
  return { report, json: flags.boolean.has('json') };
}
