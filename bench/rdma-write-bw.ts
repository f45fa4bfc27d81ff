/**
 * Bench `rdma-write-bw`: RDMA WRITE bandwidth of one RC queue pair at 4 KiB and 64 KiB (cases
 * `4KiB`, `64KiB`) between two RDMA devices (or one, in loopback), against perftest's
 * `ib_write_bw` run on the same device pair in the same run.
 *
 * The loop is perftest's run_iter_bw (see rdma-shared.ts): up to tx-depth 128 writes in flight,
 * one post per work request, every 100th signaled (perftest's cq_mod), completions reaped in
 * batches; bandwidth = bytes / time from the first post to the last completion, in MB/s as
 * perftest counts them (2^20 bytes; its "BW average" column). The client is this process on dev1
 * (second CPU), the server a process of the same runtime on dev0 (first CPU) that only keeps its
 * buffer registered; perftest runs as server `-d dev0` / client `-d dev1 <dev0's IPv4>` under
 * `taskset` on the same CPUs, `-x <gid> -F -s <size> -n <iterations>`. memwire first runs a
 * tenth of the iterations unmeasured (JIT warm-up).
 *
 * No device (e.g. a kernel without RDMA): the bench fails with a plain "no RDMA device" message.
 */
import { runtimeName } from '../ffi/runtime.js';
import {
  allowedCpus,
  COMMON_FLAGS,
  judgeTargets,
  makeRow,
  newReport,
  parseFlags,
  pinThread,
  progress,
  sizeLabel,
  type BenchReport,
  type FlagSpec,
  type Row,
  type Target,
} from './common.js';
import { BenchSide, column, DEVICE_FLAGS, pickCpus, pickDevices, runPerftest, startServerPeer, takeDeviceNames, writeBwLoop, type DevicePair } from './rdma-shared.js';

export const FLAGS: FlagSpec = {
  ...COMMON_FLAGS,
  iterations: { kind: 'count', help: 'writes per size (default 4 KiB: 10000, 64 KiB: 2000; --quick a quarter); perftest gets the same -n' },
  sizes: { kind: 'sizes', help: 'write sizes (default 4KiB,64KiB)' },
  timeout: { kind: 'seconds', help: 'limit for each measurement (default 180, --quick 60)' },
  ...DEVICE_FLAGS,
};

const TX_DEPTH = 128;
const CQ_MOD = 100;
const MIB = 1 << 20;
const allowedCpusBefore = allowedCpus();

async function measureMemwire(pair: DevicePair, size: number, iterations: number, cpus: [number, number] | null, timeoutMs: number): Promise<number> {
  const client = new BenchSide(pair.dev1, pair.gidIndex, size, TX_DEPTH);
  let peer: Awaited<ReturnType<typeof startServerPeer>>['peer'] | undefined;
  try {
    const started = await startServerPeer('bw', pair, size, iterations, client, cpus?.[0] ?? null);
    peer = started.peer;
    const p = peer;
    const deadline = Date.now() + timeoutMs;
    const guard = () => {
      if (!p.isRunningNow()) throw new Error(`${p.label} died${p.stderr ? `: ${p.stderr.trim()}` : ''}`);
      if (Date.now() > deadline) throw new Error(`memwire ${sizeLabel(size)} writes did not finish within ${timeoutMs} ms`);
    };
    writeBwLoop(client, started.remote, size, Math.max(CQ_MOD, Math.round(iterations / 10)), TX_DEPTH, CQ_MOD, guard);
    const ns = writeBwLoop(client, started.remote, size, iterations, TX_DEPTH, CQ_MOD, guard);
    // Tell the server it may leave: a zero-byte SEND into its one posted receive.
    if (client.qp.postSend({ opcode: 'send', signaled: true }) !== 0) throw new Error('posting "done" failed');
    let polls = 0;
    while (client.sendCq.poll(1) === 0) if ((++polls & 0xffff) === 0) guard();
    await peer.finish(10_000);
    return (size * iterations) / MIB / (ns / 1e9);
  } finally {
    await peer?.stop();
    client.dispose();
  }
}

export async function run(argv: readonly string[]): Promise<{ report: BenchReport; json: boolean }> {
  const report = newReport('rdma-write-bw');
  const names = takeDeviceNames(argv);
  const flags = parseFlags(names.rest, FLAGS);
  const quick = flags.boolean.has('quick');
  const sizes = [...new Set(flags.sizes.get('sizes') ?? [4096, 65536])];
  const fixed = flags.count.get('iterations');
  const iterationsFor = (size: number) => {
    const n = fixed ?? Math.round((size <= 4096 ? 10_000 : 2000) / (quick ? 4 : 1));
    return Math.max(CQ_MOD, Math.ceil(n / CQ_MOD) * CQ_MOD); // whole cq_mod batches, as perftest
  };
  const timeoutMs = (flags.seconds.get('timeout') ?? (quick ? 60 : 180)) * 1000;
  const pair = pickDevices(names, flags);
  const cpus = pickCpus(flags.boolean.has('no-pin'), report.notes);
  const usePerftest = !flags.boolean.has('no-perftest');
  progress(`rdma-write-bw on ${runtimeName}: server ${pair.dev0}, client ${pair.dev1}${pair.loopback ? ' (loopback)' : ''}, GID index ${pair.gidIndex}; ${cpus ? `CPUs ${cpus.join(' and ')}` : 'not pinned'}`);

  const rows: Row[] = [];
  const targets: Target[] = [];
  if (cpus) pinThread(0, [cpus[1]]);
  try {
    for (const size of sizes) {
      const label = sizeLabel(size);
      const n = iterationsFor(size);
      let started = Date.now();
      const ours = await measureMemwire(pair, size, n, cpus, timeoutMs);
      progress(`${label}: memwire ${ours.toFixed(2)} MB/s over ${n} writes (${Date.now() - started} ms)`);
      let theirs: number | null = null;
      if (usePerftest) {
        started = Date.now();
        try {
          const result = await runPerftest('ib_write_bw', ['-s', String(size), '-n', String(n)], pair, cpus, timeoutMs);
          theirs = column(result.columns, 'BW average');
          progress(`${label}: ib_write_bw ${theirs} MB/s (${Date.now() - started} ms)`);
        } catch (error) {
          const message = `ib_write_bw ${label} failed, its anchor is null: ${(error as Error).message}`;
          progress(message);
          report.notes.push(message);
        }
      }
      rows.push(makeRow(label, 'bandwidth', 'MB/s', 'higher', ours, theirs, 'ib_write_bw'));
      targets.push({ case: label, metric: 'bandwidth', anchorName: 'ib_write_bw', maxRatio: Infinity, minRatio: 0.9, text: `${label} WRITE bandwidth at least 0.9× ib_write_bw's` });
    }
  } finally {
    if (cpus) pinThread(0, allowedCpusBefore);
  }
  report.rows = rows;
  report.targets = judgeTargets(rows, usePerftest ? targets : []);
  report.notes.unshift(
    `devices: server ${pair.dev0}, client ${pair.dev1}${pair.loopback ? ' (one device: loopback)' : ''}, GID index ${pair.gidIndex}; RC, tx depth ${TX_DEPTH}, every ${CQ_MOD}th write signaled (perftest's defaults)`,
    'MB/s = 2^20 bytes per second (perftest\'s "BW average [MB/sec]"); ratio = memwire / ib_write_bw, higher is better',
  );
  return { report, json: flags.boolean.has('json') };
}
