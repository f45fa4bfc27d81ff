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
 */
import { fileURLToPath } from 'node:url';
import { findExecutable, selfCommand } from './lib/environment.js';
import { Postbox, SendStatus } from '../src/index.js';
import { ackBytes, dataBytes, endpointBytes } from '../src/postbox/layout.js';
import { UCX_TLS, ucxStream } from './anchors.js';
import { allowedCpus, pinThread } from './lib/cpu.js';
import { COMMON_FLAGS, parseFlags, sizeLabel, type FlagSpec } from './lib/flags.js';
import { Peer } from './lib/peer.js';
import { judgeTargets, makeRow, newReport, type BenchReport, type Row, type Target } from './lib/report.js';
import { nowNs, progress } from './lib/timing.js';

export const FLAGS: FlagSpec = {
  ...COMMON_FLAGS,
  iterations: { kind: 'count', help: 'messages per run for 64 B (default 2000000, --quick 300000); 1 MiB runs send 1/400 of that (at least 500)' },
  runs: { kind: 'count', help: 'runs per size, the median is reported (default 3, --quick 1)' },
  timeout: { kind: 'seconds', help: 'limit for each measurement (default 120, --quick 30)' },
  'no-ucx': { kind: 'boolean', help: 'skip the UCX anchor' },
  'no-pin': { kind: 'boolean', help: 'do not pin the two sides to two CPUs' },
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
  const report = newReport('postbox-stream');
  const flags = parseFlags(argv, FLAGS);
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
    peer = Peer.start('postbox sink', selfCommand(script, [domain, 'sink', 'sink', String(process.pid), JSON.stringify(STREAM_OPTIONS)]));
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
