/**
 * `memwire demo`: the main job on the embedded default. Starts a second process, exchanges
 * messages with it through one shared-memory region, and prints what happened.
 */
import { spawn } from 'node:child_process';
import { selfCommand } from '../../ffi/runtime.js';
import { platform } from '../platform.js';
import { SharedRegion } from '../shm/region.js';
import { BULK_SIZE, checksum, mailboxes, REGION_SIZE, SMALL_SIZE } from './demo-protocol.js';

export interface DemoOptions {
  rounds: number;
  bulk: number;
  out: (line: string) => void;
  progress: (line: string) => void;
}

export interface DemoResult {
  ok: boolean;
  rounds: number;
  bulk: number;
  latencyUs: { p50: number; p99: number; max: number };
  throughputGBps: number;
  badStamps: number;
  intactBulk: number;
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

function fmtCount(n: number): string {
  return n.toLocaleString('en-US');
}

/** Prints progress at most every 250 ms, and only once the phase has run for a second. */
function progressReporter(label: string, total: number, report: (line: string) => void): (done: number) => void {
  const start = performance.now();
  let last = start;
  return (done) => {
    const now = performance.now();
    if (now - start < 1000 || now - last < 250) return;
    last = now;
    report(`  ${label}: ${fmtCount(done)} / ${fmtCount(total)} (${Math.round((100 * done) / total)} %)`);
  };
}

export async function runDemo(options: DemoOptions): Promise<DemoResult> {
  const { rounds, bulk, out, progress } = options;
  const name = `demo.${process.pid}.${Date.now().toString(36)}`;
  const region = SharedRegion.create(name, REGION_SIZE);
  const { toPeer, toDemo } = mailboxes(region);
  out(`memwire demo: two processes, one shared-memory region (${platform.runtime} ${platform.runtimeVersion}, FFI: ${platform.backend})`);
  out(`  region   ${region.shmName} (${(REGION_SIZE / 1048576).toFixed(1)} MiB: two one-slot mailboxes of 1 MiB)`);
  const started = performance.now();
  const [exe, ...args] = selfCommand(new URL('./demo-peer.js', import.meta.url).pathname, [name, String(rounds), String(bulk)]);
  const peer = spawn(exe, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  let peerExit: number | null | undefined;
  const exited = new Promise<void>((resolve) => peer.on('exit', (code, signal) => { peerExit = code ?? (signal ? -1 : 0); resolve(); }));
  try {
    const spin = { spin: 1 << 20, timeoutMs: 30_000 };
    const small = new Uint8Array(SMALL_SIZE);
    const smallWords = new Int32Array(small.buffer);
    const reply = new Uint8Array(SMALL_SIZE);
    const replyWords = new Int32Array(reply.buffer);
    // The first message also waits for the peer to start (the runtime takes tens of ms).
    smallWords[0] = -1;
    const roundTrips = new Float64Array(rounds);
    let echoErrors = 0;
    const tick = progressReporter('latency', rounds, progress);
    for (let i = 0; i < rounds; i++) {
      smallWords[0] = i;
      const t0 = process.hrtime.bigint();
      if (!toPeer.put(small, spin)) throw new Error('the peer stopped taking messages (timeout)');
      if (toDemo.take(reply, spin) !== SMALL_SIZE) throw new Error('the peer stopped answering (timeout)');
      roundTrips[i] = Number(process.hrtime.bigint() - t0) / 1000;
      if (replyWords[0] !== i) echoErrors++;
      if ((i & 1023) === 0) tick(i);
      if (i === 0) out(`  peer     pid ${peer.pid}, answered its first message ${Math.round(performance.now() - started)} ms after start`);
    }
    // Skip the first 1 % (start-up, page faults) when taking percentiles.
    const sorted = roundTrips.subarray(Math.floor(rounds / 100)).slice().sort();
    const latencyUs = { p50: percentile(sorted, 0.5) / 2, p99: percentile(sorted, 0.99) / 2, max: sorted[sorted.length - 1] / 2 };
    out(`  latency     ${fmtCount(rounds)} round trips of ${SMALL_SIZE} B   one-way p50 ${latencyUs.p50.toFixed(2)} µs, p99 ${latencyUs.p99.toFixed(2)} µs`);

    // Eight distinct 1 MiB messages, checksummed before the clock starts; each send stamps its
    // number into word 0 (outside the checksum), and the peer verifies every byte.
    const messages = Array.from({ length: 8 }, (_, k) => {
      const words = new Int32Array(BULK_SIZE / 4);
      for (let i = 2; i < words.length; i++) words[i] = Math.imul(i + k * 7919, 0x9e3779b1);
      words[1] = checksum(words, words.length);
      return { words, bytes: new Uint8Array(words.buffer) };
    });
    const bulkTick = progressReporter('throughput', bulk, progress);
    const t0 = performance.now();
    for (let i = 0; i < bulk; i++) {
      const message = messages[i & 7];
      message.words[0] = i;
      if (!toPeer.put(message.bytes, spin)) throw new Error('the peer stopped taking messages (timeout)');
      if ((i & 63) === 0) bulkTick(i);
    }
    const summary = new Uint8Array(BULK_SIZE);
    if (toDemo.take(summary, spin) !== 8) throw new Error('the peer did not report its tally');
    const seconds = (performance.now() - t0) / 1000;
    const [badStamps, intactBulk] = new Int32Array(summary.buffer, 0, 2);
    const throughputGBps = (bulk * BULK_SIZE) / seconds / 1e9;
    out(`  throughput  ${fmtCount(bulk)} messages of 1 MiB    ${throughputGBps.toFixed(2)} GB/s (the peer verifies a checksum of every message)`);
    await exited;
    const ok = peerExit === 0 && echoErrors === 0 && badStamps === 0 && intactBulk === bulk;
    out(
      ok
        ? `  result      all ${fmtCount(rounds + bulk)} messages arrived intact and in order; peer exited cleanly`
        : `  result      PROBLEM: ${echoErrors + badStamps} bad echoes, ${bulk - intactBulk} bad bulk messages, peer exit ${peerExit}`,
    );
    return { ok, rounds, bulk, latencyUs, throughputGBps, badStamps: badStamps + echoErrors, intactBulk };
  } finally {
    if (peerExit === undefined) peer.kill('SIGKILL');
    region.dispose();
    out(`  cleanup     region removed from /dev/shm`);
  }
}
