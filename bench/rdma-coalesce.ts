/**
 * Bench `rdma-coalesce`: seed 002's request engine (src/coalesce/) between two RDMA devices (or
 * one, in loopback), three cases, each against its anchor in the same run:
 *
 *  - `32x64B`: requests of 32 elements of 64 B, gathered from local places 128 B apart (so no
 *    two share an SGE) into contiguous remote memory. Elements per second with coalescing (each
 *    request one work request of 32 SGEs) against the same requests on the same engine with
 *    `maxSge: 1` (32 work requests of 64 B each). Target: at least 8×.
 *  - `32MiB`: one request of a single 32 MiB element, divided at the port's max_msg_sz (rxe: 8 MiB)
 *    into work requests of that size, every one signaled (ib_write_bw at that size runs with
 *    "CQ Moderation 1" and TX depth = its iterations). MB/s against `ib_write_bw -s <max_msg_sz>
 *    --perform_warm_up` moving the same bytes (memwire's first request is an unmeasured warm-up;
 *    a short cold ib_write_bw runs slower, so it is reported beside, not judged). Target: at
 *    least 0.9×.
 *  - `post-list-16 4KiB` / `64KiB`: `rdma-write-bw --post-list 16` (a prepared chain of 16 writes
 *    per ibv_post_send) against `ib_write_bw -l 16`, the same work on both sides. Target: at least
 *    0.95× at both sizes. Run by rdma-write-bw itself; its rows and notes are carried over.
 *
 * The engine runs submitPrepared/progress (no allocation per request; each side's request is
 * prepared once — RequestEngine.prepare, with that side's maxSge — so a submission walks no
 * element; --unprepared: submit() the elements every time, as before 2026-12-07 night) with
 * idle 'yield' (a poll that finds nothing yields the vCPU to rxe's ksoftirqd; --spin: spin as
 * perftest does);
 * up to `IN_FLIGHT` requests are submitted at once and the engine posts them as send-queue slots
 * free up (tx depth 128, chains of up to 16 work requests, a completion every 32 work requests
 * and at the end of each request). MB/s counts 2^20 bytes, as perftest. The server is a process of
 * the same runtime on dev0 that keeps a buffer registered until told "done" (rdma-peer.ts, mode
 * bw); perftest runs as in rdma-write-bw. The guest's figures swing ±30 % between runs, so each
 * case alternates its two sides `--rounds` times and compares the per-round ratios (their median).
 * The engine sides of a round share one server process and one queue pair (measureEngine).
 */
import { RequestEngine, type RequestElement, platform } from '../src/index.js';
import { allowedCpus, pinAlone } from './lib/cpu.js';
import { COMMON_FLAGS, parseFlags, type FlagSpec } from './lib/flags.js';
import { judgeTargets, makeRow, newReport, type BenchReport, type Row, type Target } from './lib/report.js';
import { progress } from './lib/timing.js';
import { bestRounds, column, DEFAULT_ROUNDS, median, pairedRow, roundRatios, ROUNDS_FLAG, runPerftest, runRound } from './lib/perftest.js';
import { cpuSample, cpuSplit, settle, softirqdSplit } from './lib/rdma-cpu-time.js';
import { DEVICE_FLAGS, pickCpus, pickDevices, takeDeviceNames, type DevicePair } from './lib/rdma-devices.js';
import { BenchSide, startServerPeer } from './lib/rdma-side.js';
import { run as runWriteBw } from './rdma-write-bw.js';

export const FLAGS: FlagSpec = {
  ...COMMON_FLAGS,
  requests: { kind: 'count', help: 'requests of 32×64 B per side (default 1000, --quick 250)' },
  'large-requests': { kind: 'count', help: 'requests of 32 MiB (default 4, --quick 2); ib_write_bw moves the same bytes' },
  'no-small': { kind: 'boolean', help: 'skip the 32x64B case' },
  'no-large': { kind: 'boolean', help: 'skip the 32MiB case' },
  sizes: { kind: 'sizes', help: 'post-list case: write sizes (default 4KiB,64KiB), passed on to rdma-write-bw' },
  'no-post-list': { kind: 'boolean', help: 'skip the post-list case (rdma-write-bw --post-list 16; its --sizes pass on)' },
  'no-cold': { kind: 'boolean', help: '32MiB: skip ib_write_bw without warm-up (reported beside, not judged)' },
  spin: { kind: 'boolean', help: "memwire's engine spins on empty polls (idle 'spin') instead of yielding the CPU (idle 'yield', the default here)" },
  'idle-variants': { kind: 'boolean', help: 'also measure, in each round of 32x64B and 32MiB, every memwire side with the other idle mode (diagnostic, not judged)' },
  timeout: { kind: 'seconds', help: 'limit for each measurement (default 180, --quick 60)' },
  'warmup-requests': { kind: 'count', help: '32x64B: unmeasured requests per side before the measured ones, for the JIT (default 400, --quick 100; under TCG a runtime reaches its top tier late)' },
  unprepared: { kind: 'boolean', help: 'every side submits its elements with submit() (checked, planned and formatted at each request) instead of a request prepared once (prepare + submitPrepared)' },
  slices: { kind: 'count', help: '32x64B: the measured requests of a round run in this many slices, the sides taking turns slice by slice (default 10; 1: each side whole, one after the other)' },
  ...DEVICE_FLAGS,
  ...ROUNDS_FLAG,
};

const TX_DEPTH = 128;
const ELEMENTS = 32;
const ELEMENT_BYTES = 64;
const LOCAL_STRIDE = 128;
const LARGE = 32 << 20;
const IN_FLIGHT = 64;
const MIB = 1 << 20;
const allowedCpusBefore = allowedCpus();

interface Measured {
  /** Bytes per second and requests per second over the measured loop. */
  bytesPerSec: number;
  requestsPerSec: number;
  workRequests: number;
  /** Where the client thread's time went, per request (rdma-cpu.ts cpuSplit). */
  split: string;
}

/** One engine side of a comparison: SGEs per work request (1: coalescing off) and how it polls. */
interface EngineSide {
  maxSge: number;
  idle: 'spin' | 'yield';
}

/**
 * Start the server, connect a client with 32 SGEs, and on that one connection measure `sides`
 * interleaved: each side's RequestEngine (per-request `maxSge`) first runs `warmupRequests`
 * unmeasured (for the JIT), then the measured `requests` run in `slices` slices, the sides taking
 * turns slice by slice (A B, B A, A B, ...), each side's time summed over its slices. The sides
 * share the server process and the queue pair, so they differ in nothing but the engine's
 * settings; and since the guest flips between a slow and a fast regime every few seconds
 * (docs/requests.md, "Results"), a side measured whole, after the other, could land in the other
 * regime — slices spread both sides over the same stretch of time, so a regime change weighs on
 * both alike. Every slice settles completely before the next side posts: the engines never have
 * work on the queue pair at the same time.
 */
async function measureEngine(pair: DevicePair, bufferBytes: number, makeElements: (side: BenchSide) => RequestElement[], requests: number, sides: readonly EngineSide[], cpus: [number, number] | null, timeoutMs: number, signalEvery: number, slices: number, warmupRequests: number, prepared: boolean): Promise<Measured[]> {
  const client = new BenchSide(pair.dev1, pair.gidIndex, bufferBytes, TX_DEPTH, false, ELEMENTS);
  let peer: Awaited<ReturnType<typeof startServerPeer>>['peer'] | undefined;
  // Requests submitted together go out together (postOnSubmit false): up to 16 work requests
  // per ibv_post_send, as perftest's -l 16, on every side of the comparison.
  const engines = sides.map((side) => new RequestEngine(client.qp, { signalEvery, postList: 16, postOnSubmit: false, idle: side.idle }));
  try {
    const started = await startServerPeer('bw', pair, bufferBytes, 1, client, cpus?.[0] ?? null);
    peer = started.peer;
    const p = peer;
    const deadline = Date.now() + timeoutMs * sides.length;
    const guard = () => {
      if (!p.isRunningNow()) throw new Error(`${p.label} died${p.stderr ? `: ${p.stderr.trim()}` : ''}`);
      if (Date.now() > deadline) throw new Error(`memwire requests did not finish within ${timeoutMs} ms per side`);
    };
    const remote = { addr: started.remote.addr, rkey: started.remote.rkey, length: bufferBytes };
    const chain = makeElements(client);
    const chainBytes = chain.reduce((s, e) => s + e.length, 0);
    // Each side's request prepared once with its own maxSge (the same call on every side).
    const preparedRequests = engines.map((engine, k) => (prepared ? engine.prepare('write', remote, chain, { maxSge: sides[k].maxSge }) : null));
    // Runs `count` requests on side `k` to completion; returns ns and checks the bytes the engine
    // reports moved (its completion accounting), not only the bytes asked for.
    const loop = (k: number, count: number): number => {
      const engine = engines[k];
      const options = { maxSge: sides[k].maxSge };
      const request = preparedRequests[k];
      let submitted = 0;
      let settled = 0;
      let polls = 0;
      let settledBytes = 0;
      const t0 = process.hrtime.bigint();
      while (settled < count) {
        while (submitted < count && submitted - settled < IN_FLIGHT) {
          const id = request ? engine.submitPrepared(request, submitted) : engine.submit('write', remote, chain, submitted, options);
          if (id < 0) break;
          submitted++;
        }
        const n = engine.progress();
        for (let i = 0; i < n; i++) {
          if (engine.settled.error[i]) throw engine.settled.error[i];
          settledBytes += engine.settled.bytes[i];
        }
        settled += n;
        if (n === 0 && (++polls & 0xffff) === 0) guard();
      }
      const ns = Number(process.hrtime.bigint() - t0);
      if (settledBytes !== chainBytes * count) throw new Error(`the engine settled ${settledBytes} bytes for ${chainBytes * count} submitted`);
      return ns;
    };
    for (let k = 0; k < sides.length; k++) loop(k, Math.max(1, warmupRequests)); // warm-up, unmeasured (the JIT's tiers)
    await settle(p.pid);
    const ns = sides.map(() => 0);
    const wrsBefore = engines.map((e) => e.postedWorkRequests);
    const cpu = sides.map(() => ({ user: 0, system: 0, softirqd: 0 }));
    const sliceCount = Math.max(1, Math.min(slices, requests));
    for (let s = 0; s < sliceCount; s++) {
      // This slice's share of the requests: the totals add up to `requests` exactly.
      const count = Math.floor(((s + 1) * requests) / sliceCount) - Math.floor((s * requests) / sliceCount);
      const order = sides.map((_, k) => k);
      if (s % 2 === 1) order.reverse();
      for (const k of order) {
        const before = cpuSample(cpus?.[1] ?? null);
        ns[k] += loop(k, count);
        const after = cpuSample(cpus?.[1] ?? null);
        if (before && after) for (const key of ['user', 'system', 'softirqd'] as const) cpu[k][key] += after[key] - before[key];
      }
    }
    const zero = { user: 0, system: 0, softirqd: 0 };
    const sampled = cpuSample(null) !== null;
    const results: Measured[] = sides.map((_, k) => ({
      bytesPerSec: (chainBytes * requests) / (ns[k] / 1e9),
      requestsPerSec: requests / (ns[k] / 1e9),
      workRequests: engines[k].postedWorkRequests - wrsBefore[k],
      split: sampled ? cpuSplit(zero, cpu[k], requests).replace(/per write$/, 'per request') : '',
    }));
    // Tell the server it may leave: a zero-byte SEND into its one posted receive.
    if (client.qp.postSend({ opcode: 'send', signaled: true }) !== 0) throw new Error('posting "done" failed');
    let polls = 0;
    while (client.sendCq.poll(1) === 0) if ((++polls & 0xffff) === 0) guard();
    await peer.finish(10_000);
    return results;
  } finally {
    for (const engine of engines) engine.dispose(); // nothing in flight unless a loop threw
    await peer?.stop();
    client.dispose();
  }
}

export async function run(argv: readonly string[]): Promise<{ report: BenchReport; json: boolean }> {
  const report = newReport('rdma-coalesce');
  const names = takeDeviceNames(argv);
  const flags = parseFlags(names.rest, FLAGS);
  const quick = flags.boolean.has('quick');
  const requests = flags.count.get('requests') ?? (quick ? 250 : 1000);
  const largeRequests = flags.count.get('large-requests') ?? (quick ? 2 : 4);
  const timeoutMs = (flags.seconds.get('timeout') ?? (quick ? 60 : 180)) * 1000;
  const rounds = Math.max(1, flags.count.get('rounds') ?? (quick ? 1 : DEFAULT_ROUNDS));
  const slices = Math.max(1, flags.count.get('slices') ?? 10);
  const warmupRequests = flags.count.get('warmup-requests') ?? (quick ? 100 : 400);
  const pair = pickDevices(names, flags);
  const cpus = pickCpus(flags.boolean.has('no-pin'), report.notes);
  const usePerftest = !flags.boolean.has('no-perftest');
  // How the engine polls (RequestEngineOptions.idle): yielding the vCPU on empty polls, unless --spin.
  const idle = flags.boolean.has('spin') ? 'spin' : 'yield';
  const otherIdle = idle === 'spin' ? 'yield' : 'spin';
  const variants = flags.boolean.has('idle-variants');
  const prepared = !flags.boolean.has('unprepared');
  progress(`rdma-coalesce on ${platform.runtime}: server ${pair.dev0}, client ${pair.dev1}${pair.loopback ? ' (loopback)' : ''}, GID index ${pair.gidIndex}; ${cpus ? `CPUs ${cpus.join(' and ')}` : 'not pinned'}`);

  const rows: Row[] = [];
  const targets: Target[] = [];
  // The small elements: 32 × 64 B, 128 B apart locally, contiguous remotely.
  const small = (side: BenchSide): RequestElement[] => Array.from({ length: ELEMENTS }, (_, i) => ({ mr: side.mr, offset: i * LOCAL_STRIDE, length: ELEMENT_BYTES, remoteOffset: i * ELEMENT_BYTES }));
  const large = (side: BenchSide): RequestElement[] => [{ mr: side.mr, offset: 0, length: LARGE, remoteOffset: 0 }];
  let maxMsg = 0;
  // The measuring thread alone on the client CPU (the runtime's other threads on the other), as perftest under taskset.
  const unpin = cpus ? pinAlone(cpus[1], allowedCpusBefore) : null;
  try {
    // Case 1: coalesced vs one work request per element.
    if (!flags.boolean.has('no-small')) {
      const coalesced: number[] = [];
      const single: number[] = [];
      const otherCoalesced: number[] = [];
      const otherSingle: number[] = [];
      for (let round = 1; round <= rounds; round++) {
        const tag = rounds > 1 ? ` (round ${round}/${rounds})` : '';
        // One connection per round, the sides taking turns in `slices` slices (measureEngine):
        // coalesced first in odd rounds, one WR per element first in even ones; with
        // --idle-variants the same two again with the other idle mode.
        const sides: (EngineSide & { name: string; into: number[] })[] = [
          { maxSge: ELEMENTS, idle, name: 'coalesced', into: coalesced },
          { maxSge: 1, idle, name: 'one WR per element', into: single },
        ];
        if (variants) sides.push({ maxSge: ELEMENTS, idle: otherIdle, name: `coalesced, idle ${otherIdle}`, into: otherCoalesced }, { maxSge: 1, idle: otherIdle, name: `one WR per element, idle ${otherIdle}`, into: otherSingle });
        if (round % 2 === 0) for (let i = 0; i + 1 < sides.length; i += 2) [sides[i], sides[i + 1]] = [sides[i + 1], sides[i]];
        const measured = await measureEngine(pair, ELEMENTS * LOCAL_STRIDE, small, requests, sides, cpus, timeoutMs, 32, slices, warmupRequests, prepared);
        sides.forEach((side, i) => {
          const m = measured[i];
          side.into.push(m.requestsPerSec * ELEMENTS);
          progress(`32x64B ${side.name}: ${(m.requestsPerSec * ELEMENTS).toFixed(0)} elements/s (${m.workRequests} work requests for ${requests} requests${m.split ? `; ${m.split}` : ''})${tag}`);
        });
      }
      if (rounds > 1) report.notes.push(`32x64B rounds (elements/s): coalesced ${coalesced.map((x) => x.toFixed(0)).join(', ')}; one WR per element ${single.map((x) => x.toFixed(0)).join(', ')}${roundRatios(coalesced, single)}${bestRounds(coalesced, single, 'higher')}`);
      if (variants) report.notes.push(`32x64B rounds with idle ${otherIdle} (elements/s): coalesced ${otherCoalesced.map((x) => x.toFixed(0)).join(', ')}; one WR per element ${otherSingle.map((x) => x.toFixed(0)).join(', ')}${roundRatios(otherCoalesced, otherSingle)}; coalesced ${otherIdle} / ${idle}${roundRatios(otherCoalesced, coalesced)}; one WR ${otherIdle} / ${idle}${roundRatios(otherSingle, single)}`);
      rows.push(pairedRow('32x64B', 'elements/s', 'elements/s', coalesced, single, 'memwire, one WR per element'));
      targets.push({ case: '32x64B', metric: 'elements/s', anchorName: 'memwire, one WR per element', maxRatio: Infinity, minRatio: 8, text: '32 elements of 64 B to contiguous remote memory: elements/s with coalescing at least 8× one work request per element' });
    }
    // Case 2: one 32 MiB request divided at max_msg_sz vs ib_write_bw at that message size.
    if (!flags.boolean.has('no-large')) {
      const ours: number[] = [];
      const theirs: number[] = [];
      const cold: number[] = [];
      const other: number[] = [];
      const probe = new BenchSide(pair.dev1, pair.gidIndex, 4096, 4);
      try {
        using engine = new RequestEngine(probe.qp);
        maxMsg = engine.limits.maxMessageSize;
      } finally {
        probe.dispose();
      }
      const perftestSize = Math.min(maxMsg, LARGE);
      const perftestIters = Math.max(1, Math.round((largeRequests * LARGE) / perftestSize));
      for (let round = 1; round <= rounds; round++) {
        const tag = rounds > 1 ? ` (round ${round}/${rounds})` : '';
        await runRound(
          round,
          async () => {
            // Every work request signaled: ib_write_bw at this size reports "CQ Moderation 1".
            const sides: EngineSide[] = [{ maxSge: ELEMENTS, idle }];
            if (variants) sides.push({ maxSge: ELEMENTS, idle: otherIdle });
            if (round % 2 === 0) sides.reverse();
            const measured = await measureEngine(pair, LARGE, large, largeRequests, sides, cpus, timeoutMs, 1, 1, 1, prepared);
            sides.forEach((side, i) => {
              const m = measured[i];
              (side.idle === idle ? ours : other).push(m.bytesPerSec / MIB);
              progress(`32MiB: memwire${side.idle === idle ? '' : `, idle ${side.idle}`} ${(m.bytesPerSec / MIB).toFixed(2)} MB/s (${m.workRequests} work requests for ${largeRequests} requests${m.split ? `; ${m.split}` : ''})${tag}`);
            });
          },
          usePerftest
            ? async () => {
                // Warmed up as memwire is (its unmeasured first request), then as perftest runs by default.
                for (const warm of flags.boolean.has('no-cold') ? [true] : [true, false]) {
                  const args = ['-s', String(perftestSize), '-n', String(perftestIters), ...(warm ? ['--perform_warm_up'] : [])];
                  const into = warm ? theirs : cold;
                  try {
                    const before = cpuSample(cpus?.[1] ?? null);
                    const result = await runPerftest('ib_write_bw', args, pair, cpus, timeoutMs);
                    const split = softirqdSplit(before, cpuSample(cpus?.[1] ?? null), perftestIters).replace(/per write$/, 'per work request');
                    const bw = column(result.columns, 'BW average');
                    into.push(bw);
                    progress(`32MiB: ib_write_bw ${args.join(' ')}: ${bw} MB/s${split ? ` (${split})` : ''}${tag}`);
                  } catch (error) {
                    into.push(NaN); // keeps the rounds paired
                    const message = `ib_write_bw ${args.join(' ')} failed${tag}: ${(error as Error).message}`;
                    progress(message);
                    report.notes.push(message);
                  }
                }
              }
            : null,
        );
      }
      if (rounds > 1) {
        report.notes.push(`32MiB rounds (MB/s): memwire ${ours.map((x) => x.toFixed(1)).join(', ')}; ib_write_bw --perform_warm_up ${theirs.map((x) => x.toFixed(1)).join(', ') || 'none'}${roundRatios(ours, theirs)}${bestRounds(ours, theirs, 'higher')}`);
        report.notes.push(`32MiB rounds (MB/s): ib_write_bw without warm-up ${cold.map((x) => x.toFixed(1)).join(', ') || 'none'}${roundRatios(ours, cold)}`);
        if (variants) report.notes.push(`32MiB rounds with idle ${otherIdle} (MB/s): memwire ${other.map((x) => x.toFixed(1)).join(', ')}${roundRatios(other, theirs)}; against idle ${idle}${roundRatios(other, ours)}`);
      }
      rows.push(pairedRow('32MiB', 'bandwidth', 'MB/s', ours, theirs, 'ib_write_bw'));
      rows.push(pairedRow('32MiB', 'bandwidth', 'MB/s', ours, cold, 'ib_write_bw, no warm-up'));
      targets.push({ case: '32MiB', metric: 'bandwidth', anchorName: 'ib_write_bw', maxRatio: Infinity, minRatio: 0.9, text: `one 32 MiB request divided at max_msg_sz (${maxMsg} B): MB/s at least 0.9× ib_write_bw at ${perftestSize}-byte messages` });
    }
  } finally {
    unpin?.();
  }
  // Case 3: rdma-write-bw --post-list 16 vs ib_write_bw -l 16 (4 KiB and 64 KiB).
  if (!flags.boolean.has('no-post-list')) {
    // rdma-write-bw's own flags pass on; this bench's (and their values) do not.
    const passOn: string[] = [];
    for (let i = 0; i < argv.length; i++) {
      if (/^--(requests|large-requests)$/.test(argv[i])) i++;
      else if (!/^--(requests|large-requests)=|^--(no-post-list|json|no-small|no-large|no-cold|spin|idle-variants|unprepared)$/.test(argv[i])) passOn.push(argv[i]);
    }
    passOn.push('--post-list', '16');
    if (idle === 'yield') passOn.push('--idle-yield'); // the same polling as the engine's sides
    const sub = await runWriteBw(passOn);
    for (const row of sub.report.rows) rows.push({ ...row, case: `post-list-16 ${row.case}` });
    for (const t of sub.report.targets) {
      const { pass: _pass, ...target } = t;
      void _pass;
      targets.push({ ...target, case: `post-list-16 ${t.case}` });
    }
    report.notes.push(...sub.report.notes.map((n) => `post-list-16: ${n}`));
  }
  report.rows = rows;
  report.targets = judgeTargets(rows, usePerftest ? targets : targets.filter((t) => t.case === '32x64B'));
  report.notes.unshift(
    `devices: server ${pair.dev0}, client ${pair.dev1}${pair.loopback ? ' (one device: loopback)' : ''}, GID index ${pair.gidIndex}; RC, tx depth ${TX_DEPTH}, up to ${IN_FLIGHT} requests submitted at once, chains of up to 16 work requests, a completion every 32 and at the end of each request`,
    `32x64B: ratio = memwire coalescing (1 WR of 32 SGEs per request) / the same engine with maxSge 1 (32 WRs per request), elements per second, ${prepared ? 'each side a request prepared once (prepare + submitPrepared)' : 'each side submit() of the elements (--unprepared)'}${maxMsg ? `; 32MiB: max_msg_sz ${maxMsg} B, MB/s = 2^20 bytes per second, ratio = memwire / ib_write_bw` : ''}`,
    `${rounds} round${rounds > 1 ? 's' : ''} per case, the two sides alternating (A B, B A, ...)${flags.boolean.has('no-small') ? '' : `; within a 32x64B round the engine sides take turns in ${slices} slice${slices > 1 ? 's' : ''}`}; each figure is the median of its rounds, each ratio the median of the per-round ratios`,
  );
  return { report, json: flags.boolean.has('json') };
}
