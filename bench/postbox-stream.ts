/**
 * Bench `postbox-stream`: one-directional Postbox streaming between two processes — message rate
 * at 64 B and throughput at 1 MiB — against UCX `ucx_perftest -t tag_bw` over POSIX shared memory
 * (UCX_TLS=posix,self) measured in the same run (runner in anchors.ts).
 *
 * memwire's side: this process trySend()s N messages as fast as the postbox takes them (spinning
 * on FULL, i.e. on back-pressure) and stops the clock when the receiver has acknowledged the last
 * one (flush()). The receiver busy-polls and reads each message in place (first and last byte),
 * as the issue allows. Median of the runs. Rates are reported higher-is-better; the targets are
 * stated on time per message (lower is better), so that they read as ratio ≤ bound: 64 B ≥ 0.5×
 * UCX's rate ⇔ time per message ≤ 2×; 1 MiB ≥ 1.0× UCX's throughput ⇔ time per message ≤ 1×.
 *
 * It also reports, in the notes, the shared memory a Postbox uses per sender–receiver pair and
 * how it grows with the number of processes per node (computed, for 2, 8 and 64 processes).
 * Those sizes come from memwire's internal postbox layout (src/postbox/layout.ts) on purpose: the
 * public API does not say how many bytes a postbox maps.
 *
 * `--transport rdma`: the same stream between two nodes on two RDMA devices (lib/postbox-rdma.ts:
 * node B on dev1 sends, node A on dev0 sinks and reads in place; a mount namespace, a /dev/shm
 * and an agent each), each Postbox over an RdmaTransport, against perftest's `ib_write_bw` at the
 * same message size and count on the same devices and CPUs (its client on dev1 writes to its
 * server on dev0, as our sender does), in MB/s (2^20 bytes/s, perftest's "BW average"), alternating
 * in `--rounds` (default 5); the ratio is the median of the per-round ratios. Target (issue 12):
 * 64 KiB ≥ 0.8× ib_write_bw.
 */
import { fileURLToPath } from 'node:url';
import { findExecutable, selfCommand } from './lib/environment.js';
import { platform, Postbox, SendStatus } from '../src/index.js';
import { ackBytes, dataBytes, endpointBytes } from '../src/postbox/layout.js';
import { UCX_TLS, ucxStream } from './anchors.js';
import { allowedCpus, pinThread } from './lib/cpu.js';
import { COMMON_FLAGS, parseFlags, sizeLabel, type FlagSpec } from './lib/flags.js';
import { Peer } from './lib/peer.js';
import { judgeTargets, makeRow, newReport, type BenchReport, type Row, type Target } from './lib/report.js';
import { nowNs, progress } from './lib/timing.js';
import { column, DEFAULT_ROUNDS, pairedRow, roundRatios, ROUNDS_FLAG, runPerftest, runRound } from './lib/perftest.js';
import { PostboxRdmaRig, takeTransport, TRANSPORT_FLAG } from './lib/postbox-rdma.js';
import { DEVICE_FLAGS, pickCpus, pickDevices, takeDeviceNames } from './lib/rdma-devices.js';

const SHM_FLAGS: FlagSpec = {
  ...COMMON_FLAGS,
  iterations: { kind: 'count', help: 'messages per run for 64 B (default 2000000, --quick 300000); 1 MiB runs send 1/400 of that (at least 500)' },
  runs: { kind: 'count', help: 'runs per size, the median is reported (default 3, --quick 1)' },
  timeout: { kind: 'seconds', help: 'limit for each measurement (default 120, --quick 30)' },
  'no-ucx': { kind: 'boolean', help: 'skip the UCX anchor' },
  'no-pin': { kind: 'boolean', help: 'do not pin the two sides to two CPUs' },
};

const RDMA_FLAGS: FlagSpec = {
  ...COMMON_FLAGS,
  iterations: { kind: 'count', help: 'messages per size and round (default 64 B: 20000, 64 KiB: 2000; --quick a quarter); ib_write_bw gets the same -n' },
  sizes: { kind: 'sizes', help: 'message sizes (default 64,64KiB)' },
  timeout: { kind: 'seconds', help: 'limit for each measurement (default 180, --quick 60)' },
  ...DEVICE_FLAGS,
  ...ROUNDS_FLAG,
};

/** Every flag, for the help text: `--transport rdma` takes RDMA_FLAGS, shm (the default) SHM_FLAGS. */
export const FLAGS: FlagSpec = {
  ...TRANSPORT_FLAG,
  ...SHM_FLAGS,
  ...RDMA_FLAGS,
  iterations: { kind: 'count', help: `${SHM_FLAGS.iterations.help}; rdma: ${RDMA_FLAGS.iterations.help}` },
  timeout: { kind: 'seconds', help: `${SHM_FLAGS.timeout.help}; rdma: ${RDMA_FLAGS.timeout.help}` },
  sizes: { kind: 'sizes', help: `rdma only: ${RDMA_FLAGS.sizes.help}` },
};

/** A pool of 16 MiB: 16 messages of 1 MiB in flight. Everything else default. */
export const STREAM_OPTIONS = { poolBytes: 16 << 20 };
const ANCHOR_UCX = 'ucx-tag_bw';

interface Rate {
  messagesPerSecond: number;
  bytesPerSecond: number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function streamOnce(box: Postbox, peer: Peer, message: Uint8Array, count: number, timeoutMs: number): Promise<Rate> {
  const deadline = nowNs() + BigInt(Math.round(timeoutMs * 1e6));
  let spins = 0;
  const start = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    message[0] = i & 0xff;
    while (box.trySend('sink', message) !== SendStatus.OK) {
      if ((++spins & 0xfffff) === 0) {
        if (!peer.isRunningNow()) throw new Error('the sink died');
        if (nowNs() > deadline) throw new Error(`${count} messages of ${sizeLabel(message.length)} did not go within ${timeoutMs} ms`);
      }
    }
  }
  await box.flush({ timeoutMs });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return { messagesPerSecond: count / seconds, bytesPerSecond: (count * message.length) / seconds };
}

/** Shared memory of postbox messaging for `p` processes per node, all-to-all, with default geometry. */
export function memoryReport(p: number, postboxes = 64): { perPairKiB: number; perProcessMiB: number; perNodeMiB: number } {
  const g = { postboxes, slots: 64, slotBytes: 256, blockSize: 4096, blocks: (4 << 20) / 4096 };
  const perProcess = dataBytes(g) + ackBytes(postboxes) + endpointBytes(64) + 3 * 128; // + region headers
  const perNode = p * perProcess;
  return { perPairKiB: perNode / (p * (p - 1)) / 1024, perProcessMiB: perProcess / 2 ** 20, perNodeMiB: perNode / 2 ** 20 };
}

export async function run(argv: readonly string[]): Promise<{ report: BenchReport; json: boolean }> {
  const { rest, transport } = takeTransport(argv);
  return transport === 'rdma' ? runRdma(rest) : runShm(rest);
}

async function runShm(argv: readonly string[]): Promise<{ report: BenchReport; json: boolean }> {
  const report = newReport('postbox-stream');
  const flags = parseFlags(argv, SHM_FLAGS);
  const quick = flags.boolean.has('quick');
  const small = flags.count.get('iterations') ?? (quick ? 300_000 : 2_000_000);
  const counts = new Map([[64, small], [1 << 20, Math.max(500, Math.round(small / 400))]]);
  const runs = Math.max(1, flags.count.get('runs') ?? (quick ? 1 : 3));
  const timeoutMs = (flags.seconds.get('timeout') ?? (quick ? 30 : 120)) * 1000;
  const cpusBefore = allowedCpus();
  const cpus: [number, number] | null = !flags.boolean.has('no-pin') && cpusBefore.length >= 2 ? [cpusBefore[0], cpusBefore[1]] : null;
  let ucxExe: string | null = null;
  if (!flags.boolean.has('no-ucx')) {
    ucxExe = findExecutable('ucx_perftest');
    if (!ucxExe) report.notes.push('ucx_perftest is not installed (Debian package ucx-utils): the anchor is null');
  }
  const ours = new Map<number, Rate>();
  const theirs = new Map<number, Rate | null>();
  const domain = `bench${process.pid}${Math.random().toString(36).slice(2, 8)}`;
  if (cpus) pinThread(0, [cpus[0]]);
  const box = Postbox.open('source', { ...STREAM_OPTIONS, domain });
  let peer: Peer | undefined;
  try {
    const script = fileURLToPath(new URL('./postbox-peer.js', import.meta.url));
    peer = Peer.start('postbox sink', selfCommand(script, [domain, 'sink', 'sink', String(process.pid), JSON.stringify(STREAM_OPTIONS)]), { ownSession: true });
    if (cpus) pinThread(peer.pid, [cpus[1]]);
    await peer.waitFor('its postbox', () => peer!.stdout.includes('ready'), 15_000);
    for (const [size, count] of counts) {
      const message = new Uint8Array(size).fill(0x5a);
      // Warm-up: long enough for every JIT tier of both runtimes (Bun's takes longer to settle).
      await streamOnce(box, peer, message, Math.max(1000, Math.round(count / 2)), timeoutMs);
      const results: Rate[] = [];
      for (let r = 0; r < runs; r++) results.push(await streamOnce(box, peer, message, count, timeoutMs));
      const rate = { messagesPerSecond: median(results.map((x) => x.messagesPerSecond)), bytesPerSecond: median(results.map((x) => x.bytesPerSecond)) };
      ours.set(size, rate);
      progress(`${sizeLabel(size)}: memwire ${(rate.messagesPerSecond / 1e6).toFixed(2)} M msg/s, ${(rate.bytesPerSecond / 1e9).toFixed(2)} GB/s`);
      if (ucxExe) {
        try {
          const results: Rate[] = [];
          for (let r = 0; r < runs; r++) {
            const u = await ucxStream(ucxExe, size, count, Math.max(100, Math.round(count / 10)), cpus, timeoutMs);
            results.push({ messagesPerSecond: u.messagesPerSecond, bytesPerSecond: u.megabytesPerSecond * 2 ** 20 });
          }
          const u = { messagesPerSecond: median(results.map((x) => x.messagesPerSecond)), bytesPerSecond: median(results.map((x) => x.bytesPerSecond)) };
          theirs.set(size, u);
          progress(`${sizeLabel(size)}: ${ANCHOR_UCX} ${(u.messagesPerSecond / 1e6).toFixed(2)} M msg/s, ${(u.bytesPerSecond / 1e9).toFixed(2)} GB/s`);
        } catch (error) {
          report.notes.push(`ucx_perftest failed for ${sizeLabel(size)}, its anchor is null: ${(error as Error).message}`);
          theirs.set(size, null);
        }
      }
    }
  } finally {
    try {
      if (peer && !peer.hasExited && peer.isRunningNow()) {
        const deadline = Date.now() + 2000;
        while (box.trySend('sink', new Uint8Array(0)) !== SendStatus.OK && Date.now() < deadline) await new Promise((r) => setTimeout(r, 1));
        await peer.waitExit(5000).catch(() => undefined);
      }
    } finally {
      await peer?.stop();
      box.close();
      if (cpus) pinThread(0, cpusBefore);
    }
  }
  const anchorName = flags.boolean.has('no-ucx') ? 'none' : ANCHOR_UCX;
  const rows: Row[] = [];
  const small64 = ours.get(64);
  const u64 = theirs.get(64) ?? null;
  if (small64) {
    rows.push(makeRow('64B', 'rate', 'Mmsg/s', 'higher', small64.messagesPerSecond / 1e6, u64 ? u64.messagesPerSecond / 1e6 : null, anchorName));
    rows.push(makeRow('64B', 'time/msg', 'ns', 'lower', 1e9 / small64.messagesPerSecond, u64 ? 1e9 / u64.messagesPerSecond : null, anchorName));
  }
  const big = ours.get(1 << 20);
  const uBig = theirs.get(1 << 20) ?? null;
  if (big) {
    rows.push(makeRow('1MiB', 'throughput', 'GB/s', 'higher', big.bytesPerSecond / 1e9, uBig ? uBig.bytesPerSecond / 1e9 : null, anchorName));
    rows.push(makeRow('1MiB', 'time/msg', 'us', 'lower', 1e6 / big.messagesPerSecond, uBig ? 1e6 / uBig.messagesPerSecond : null, anchorName));
  }
  report.rows = rows;
  const targets: Target[] = anchorName === 'none' ? [] : [
    { case: '64B', metric: 'time/msg', anchorName, maxRatio: 2, text: '64 B message rate at least 0.5× UCX tag_bw (time per message ≤ 2×)' },
    { case: '1MiB', metric: 'time/msg', anchorName, maxRatio: 1, text: '1 MiB throughput at least 1.0× UCX tag_bw (time per message ≤ 1×)' },
  ];
  report.targets = judgeTargets(rows, targets);
  const mem = [2, 8, 64].map((p) => ({ p, ...memoryReport(p) }));
  report.notes.unshift(
    `memwire: trySend as fast as the postbox takes messages, clock stopped when the receiver acknowledged the last (flush); the receiver polls and reads in place; median of ${runs} run(s) of ${[...counts].map(([s, c]) => `${c} × ${sizeLabel(s)}`).join(', ')}; pool ${STREAM_OPTIONS.poolBytes >> 20} MiB, 64 slots${cpus ? `; pinned to CPUs ${cpus.join(' and ')}` : ''}`,
    ...(ucxExe ? [`${ANCHOR_UCX}: ucx_perftest -t tag_bw, UCX_TLS=${UCX_TLS}, 127.0.0.1, its overall message rate and bandwidth (MB/s read as MiB/s)`] : []),
    `shared memory, default geometry (64 postboxes × 64 slots × 256 B, 4 KiB blocks, 4 MiB pool): a sender owns one data segment per receiving node (${(dataBytes({ postboxes: 64, slots: 64, slotBytes: 256, blockSize: 4096, blocks: 1024 }) / 2 ** 20).toFixed(2)} MiB) and one ack section (${(ackBytes(64) / 1024).toFixed(1)} KiB); a receiver one endpoint segment (${(endpointBytes(64) / 1024).toFixed(1)} KiB). All-to-all on one node: ${mem.map((m) => `${m.p} processes → ${m.perNodeMiB.toFixed(0)} MiB per node, ${m.perPairKiB.toFixed(0)} KiB per sender–receiver pair`).join('; ')}. Per node it grows linearly with the processes (${mem[2].perProcessMiB.toFixed(2)} MiB each), so per pair it falls as 1/(p−1): a pair's own memory is its postbox (64 × 256 B = 16 KiB), one 64 B ack block and one 384 B registration entry; the rest is its share of the sender's block pool, which all its receivers share`,
  );
  return { report, json: flags.boolean.has('json') };
}

const MIB = 1 << 20;

/** `--transport rdma`: see the top of this file and lib/postbox-rdma.ts. */
async function runRdma(argv: readonly string[]): Promise<{ report: BenchReport; json: boolean }> {
  const report = newReport('postbox-stream');
  const names = takeDeviceNames(argv);
  const flags = parseFlags(names.rest, RDMA_FLAGS);
  const quick = flags.boolean.has('quick');
  const sizes = [...new Set(flags.sizes.get('sizes') ?? [64, 65536])];
  const fixed = flags.count.get('iterations');
  const countFor = (size: number) => Math.max(1, fixed ?? Math.round((size <= 4096 ? 20_000 : 2000) / (quick ? 4 : 1)));
  const timeoutMs = (flags.seconds.get('timeout') ?? (quick ? 60 : 180)) * 1000;
  const rounds = Math.max(1, flags.count.get('rounds') ?? (quick ? 1 : DEFAULT_ROUNDS));
  const pair = pickDevices(names, flags);
  const cpus = pickCpus(flags.boolean.has('no-pin'), report.notes);
  const usePerftest = !flags.boolean.has('no-perftest');
  const rows: Row[] = [];
  const targets: Target[] = [];
  progress(`postbox-stream --transport rdma on ${platform.runtime}: node B ${pair.dev1} sends to node A ${pair.dev0}, sizes ${sizes.map(sizeLabel).join(', ')}, ${rounds} round(s)`);
  const rig = await PostboxRdmaRig.start('sink', STREAM_OPTIONS, pair, cpus);
  try {
    for (const size of sizes) {
      const label = sizeLabel(size);
      const n = countFor(size);
      const ours: number[] = [];
      const theirs: number[] = [];
      // Warm-up, not measured: the JIT of both processes, and every block of the pool registered once.
      await rig.stream(size, Math.max(100, Math.round(n / 4)), timeoutMs);
      for (let round = 1; round <= rounds; round++) {
        const tag = rounds > 1 ? ` (round ${round}/${rounds})` : '';
        await runRound(
          round,
          async () => {
            const r = await rig.stream(size, n, timeoutMs);
            const mbs = (r.size * r.count) / MIB / r.seconds;
            ours.push(mbs);
            progress(`${label}: memwire ${mbs.toFixed(2)} MB/s, ${(r.count / r.seconds / 1e3).toFixed(1)} k msg/s over ${n} messages (${(r.seconds * 1000).toFixed(0)} ms)${tag}`);
          },
          usePerftest
            ? async () => {
                const started = Date.now();
                try {
                  const result = await runPerftest('ib_write_bw', ['-s', String(size), '-n', String(n)], pair, cpus, timeoutMs);
                  const mbs = column(result.columns, 'BW average');
                  theirs.push(mbs);
                  progress(`${label}: ib_write_bw ${mbs} MB/s (${Date.now() - started} ms)${tag}`);
                } catch (error) {
                  theirs.push(NaN); // keeps the rounds paired
                  report.notes.push(`ib_write_bw ${label} failed${tag}: ${(error as Error).message}`);
                }
              }
            : null,
        );
      }
      if (rounds > 1) report.notes.push(`${label} rounds (MB/s): memwire ${ours.map((x) => x.toFixed(2)).join(', ')}; ib_write_bw ${theirs.map((x) => x.toFixed(2)).join(', ') || 'none'}${roundRatios(ours, theirs)}`);
      rows.push(pairedRow(label, 'bandwidth', 'MB/s', ours, theirs, usePerftest ? 'ib_write_bw' : 'none', 'higher'));
      const issue = size === 65536;
      targets.push({ case: label, metric: 'bandwidth', anchorName: 'ib_write_bw', maxRatio: Infinity, minRatio: 0.8, text: `${label} stream at least 0.8× ib_write_bw's bandwidth${issue ? ' (issue 12)' : ' (the same bound at this size; not required)'}` });
    }
  } finally {
    await rig.close();
  }
  report.rows = rows;
  report.targets = judgeTargets(rows, usePerftest ? targets : []);
  report.notes.unshift(
    `transport rdma: ${rig.description}; each Postbox over an RdmaTransport (pool ${STREAM_OPTIONS.poolBytes >> 20} MiB, 64 slots); trySend as fast as the postbox takes messages (a turn of the event loop every 1024 refusals), clock stopped when the sink acknowledged the last (flush); the sink polls and reads each message in place`,
    `MB/s = 2^20 bytes per second (perftest's "BW average [MB/sec]") over ${sizes.map((s) => `${sizeLabel(s)}: ${countFor(s)}`).join(', ')} messages per round, after one unmeasured run of a quarter of that; ratio = memwire / ib_write_bw, higher is better`,
    `ib_write_bw: server -d ${pair.dev0}, client -d ${pair.dev1} ${pair.serverIp}, -x ${pair.gidIndex} -F -s <size> -n <messages> (tx depth 128, every 100th write signaled)${cpus ? `, under taskset on CPUs ${cpus.join(' and ')}` : ''}`,
    `${rounds} round${rounds > 1 ? 's' : ''}, memwire and ib_write_bw alternating (A B, B A, ...); each figure is the median of its rounds, the ratio the median of the per-round ratios`,
  );
  return { report, json: flags.boolean.has('json') };
}
