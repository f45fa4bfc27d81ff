/**
 * Anchors shared by the benchmarks, measured in the same run as memwire (moved here from
 * region-pingpong.ts so postbox-pingpong and postbox-stream use the same runners):
 *
 *  - UdsPingPong: a Unix-domain-socket echo between this process and a plain JS child of the same
 *    runtime (Node's, or Bun's, own IPC); one-way latency = round trip / 2.
 *  - ucxPercentile: UCX's `ucx_perftest -t tag_lat` over POSIX shared memory (UCX_TLS=posix,self,
 *    server and client on 127.0.0.1), one percentile column of its one-way latency.
 *  - ucxStream: `ucx_perftest -t tag_bw` (one-directional tag messages), its overall message rate
 *    and bandwidth.
 */
import { unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { platform } from '../src/index.js';
import { selfCommand } from './lib/environment.js';
import { pinThread } from './lib/cpu.js';
import { COMMON_FLAGS, sizeLabel, type FlagSpec } from './lib/flags.js';
import { freePort, isListening, Peer } from './lib/peer.js';
import { makeRow, type Row } from './lib/report.js';
import { percentiles, withTimeout } from './lib/timing.js';
import { ORDER_CHECK_FLAG } from './lib/warmup.js';

export const UCX_TLS = 'posix,self';
/** UCX computes its percentiles over this many last iterations; ask it for more than that. */
export const UCX_TIMING_QUEUE = 2048;
export const ANCHOR_UCX_LAT = 'ucx-posix';
export const ANCHOR_UDS = `${platform.runtime}-uds`;

/** One-way latency percentiles of one case, in µs. */
export interface Latency {
  p50: number;
  p99: number;
  /** memwire's (latencyLikeUcx): the same percentiles over every measured round trip, and over the last window alone. */
  all?: { p50: number; p99: number };
  last?: { p50: number; p99: number };
  /** How many windows of UCX_TIMING_QUEUE round trips p50/p99 are the upper median of. */
  windows?: number;
}

/**
 * memwire's latency of one case taken the way ucx_perftest takes its own, so the two compare the
 * same statistic: libperf keeps only the last UCX_TIMING_QUEUE iterations in its timing queue and
 * computes its percentiles over them — one window of 2048 round trips (1–3 ms at ≤ 4 KiB, ~0.2 s
 * at 1 MiB). We cut our measured round trips into consecutive windows of that length, take p50
 * and p99 in each, and report the upper median over the windows (upper: with two windows, the
 * worse one): the typical value of the very statistic UCX reports one draw of. Beside it, in
 * `all`, the same percentiles over every measured round trip (what this bench judged before
 * 2026-12-07: over 200 000 round trips a p99 always spans a few preemptions on a loaded machine,
 * UCX's one window mostly none — two different statistics), and in `last` over the last window
 * alone, exactly UCX's. `samplesNs` is in the order measured (sorted here, in place).
 */
export function latencyLikeUcx(samplesNs: Float64Array): Latency {
  const n = samplesNs.length;
  const windows = Math.max(1, Math.floor(n / UCX_TIMING_QUEUE));
  const length = Math.min(n, UCX_TIMING_QUEUE);
  const p50s = new Float64Array(windows);
  const p99s = new Float64Array(windows);
  let last: number[] = [];
  for (let w = 0; w < windows; w++) {
    // Windows end at the last sample, as UCX's does; a remainder at the start is in `all` only.
    const end = n - (windows - 1 - w) * length;
    [p50s[w], p99s[w]] = percentiles(samplesNs.slice(end - length, end), [50, 99]);
    if (w === windows - 1) last = [p50s[w], p99s[w]];
  }
  const upperMedian = (v: Float64Array) => v.sort()[Math.floor(v.length / 2)];
  const [allP50, allP99] = percentiles(samplesNs, [50, 99]);
  return {
    p50: upperMedian(p50s) / 1000,
    p99: upperMedian(p99s) / 1000,
    all: { p50: allP50 / 1000, p99: allP99 / 1000 },
    last: { p50: last[0] / 1000, p99: last[1] / 1000 },
    windows,
  };
}

/** A note: memwire's judged percentiles (median window), its last window's, and all round trips'. */
export function allIterationsNote(sizes: readonly number[], memwire: Map<number, Latency>): string {
  const f = (v: number) => v.toPrecision(3);
  const parts = sizes.flatMap((size) => {
    const l = memwire.get(size);
    return l?.all && l.last ? [`${sizeLabel(size)} ${f(l.p50)}/${f(l.p99)} (${l.windows} windows; last ${f(l.last.p50)}/${f(l.last.p99)}; all ${f(l.all.p50)}/${f(l.all.p99)})`] : [];
  });
  return `memwire p50/p99 µs judged: the upper median over windows of ${UCX_TIMING_QUEUE} round trips, each taken as UCX takes its one window; beside it the last window alone (exactly UCX's) and every measured round trip: ${parts.join(', ')}`;
}

/**
 * Rows of a one-way latency bench: for each anchor (name → its latency per size, null where it
 * failed), p50 and p99 of every size memwire measured. With no anchor, one row set anchored on
 * nothing ('none').
 */
export function latencyRows(sizes: readonly number[], memwire: Map<number, Latency>, anchors: [string, Map<number, Latency | null>][]): Row[] {
  const rows: Row[] = [];
  for (const [anchorName, results] of anchors.length ? anchors : [['none', new Map()] as [string, Map<number, Latency | null>]]) {
    for (const size of sizes) {
      const ours = memwire.get(size);
      if (!ours) continue;
      const theirs = results.get(size) ?? null;
      rows.push(makeRow(sizeLabel(size), 'p50', 'us', 'lower', ours.p50, theirs?.p50 ?? null, anchorName));
      rows.push(makeRow(sizeLabel(size), 'p99', 'us', 'lower', ours.p99, theirs?.p99 ?? null, anchorName));
    }
  }
  return rows;
}

/** The flags of a one-way latency bench against UCX tag_lat and the UDS echo. */
export function latencyFlags(defaultSizes: string, quickTimeoutS: number): FlagSpec {
  return {
    ...COMMON_FLAGS,
    iterations: { kind: 'count', help: 'measured round trips per size (default 200000, --quick 20000; fewer above 4 KiB)' },
    warmup: { kind: 'count', help: 'round trips per warm-up round (default a tenth of the iterations, at least 500); rounds repeat until p50 holds; 0: none' },
    sizes: { kind: 'sizes', help: `message sizes (default ${defaultSizes})` },
    timeout: { kind: 'seconds', help: `limit for each measurement (default 120, --quick ${quickTimeoutS})` },
    'no-ucx': { kind: 'boolean', help: 'skip the UCX anchor' },
    'no-uds': { kind: 'boolean', help: 'skip the Unix-domain-socket anchor' },
    'no-pin': { kind: 'boolean', help: 'do not pin the two sides to two CPUs' },
    ...ORDER_CHECK_FLAG,
  };
}

// ---------------------------------------------------------------------------------------------
// Anchor: Unix-domain-socket echo in the same runtime

export const UDS_MAX_ROUND_TRIPS = 5000;

export class UdsPingPong {
  readonly #socket: Socket;
  readonly #peer: Peer;

  private constructor(socket: Socket, peer: Peer) {
    this.#socket = socket;
    this.#peer = peer;
  }

  static async start(cpus: [number, number] | null): Promise<UdsPingPong> {
    const path = join(tmpdir(), `memwire-bench-${process.pid}-${Math.random().toString(36).slice(2, 10)}.sock`);
    const server: Server = createServer();
    let peer: Peer | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(path, resolve);
      });
      const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
      const script = fileURLToPath(new URL('./uds-pingpong-peer.js', import.meta.url));
      peer = Peer.start('uds-pingpong peer', selfCommand(script, [path]));
      if (cpus) pinThread(peer.pid, [cpus[1]]);
      const exited = peer.exited.then((exit) => {
        throw new Error(`uds-pingpong peer exited before connecting (code ${exit.code}, signal ${exit.signal})`);
      });
      const socket = await withTimeout(Promise.race([accepted, exited]), 15_000, 'uds-pingpong peer connecting');
      socket.setNoDelay(true);
      return new UdsPingPong(socket, peer);
    } catch (error) {
      if (peer) await peer.stop();
      throw error;
    } finally {
      // The connection is made (or failed): the listening socket and its path go now.
      server.close();
      try {
        unlinkSync(path);
      } catch {
        // never created, or already gone
      }
    }
  }

  /**
   * One-way latencies in ns (round trip / 2), each round trip one `size`-byte write echoed whole.
   * At most UDS_MAX_ROUND_TRIPS are measured: a socket round trip costs 10–100× a shared-memory one
   * (and under Deno's node:net ~0.1 ms with 30 ms tails), and 5 000 samples already fix its p50 and
   * p99, so the anchor neither dominates the run time nor runs out of it.
   */
  measure(size: number, requested: number, requestedWarmup: number, timeoutMs: number): Promise<Float64Array> {
    const iterations = Math.min(requested, UDS_MAX_ROUND_TRIPS);
    const warmup = Math.min(requestedWarmup, Math.ceil(UDS_MAX_ROUND_TRIPS / 10));
    const socket = this.#socket;
    const message = Buffer.alloc(size, 0x5a);
    const samples = new Float64Array(iterations);
    return new Promise<Float64Array>((resolve, reject) => {
      let i = -warmup;
      let received = 0;
      let prev = process.hrtime.bigint();
      const finish = (error?: Error) => {
        clearTimeout(timer);
        socket.off('data', onData);
        socket.off('close', onClose);
        if (error) reject(error);
        else resolve(samples);
      };
      const onData = (chunk: Buffer) => {
        received += chunk.length;
        if (received < size) return;
        if (received > size) return finish(new Error(`uds echo overran: ${received} bytes for ${size}`));
        received = 0;
        const now = process.hrtime.bigint();
        if (i >= 0) samples[i] = Number(now - prev) / 2;
        prev = now;
        if (++i >= iterations) return finish();
        socket.write(message);
      };
      const onClose = () => finish(new Error('uds-pingpong peer closed the connection'));
      const timer = setTimeout(() => finish(new Error(`uds ${sizeLabel(size)} round trips did not finish within ${timeoutMs} ms`)), timeoutMs);
      socket.on('data', onData);
      socket.once('close', onClose);
      socket.write(message);
    });
  }

  /** Close the connection (the peer leaves on it), wait boundedly, kill if need be. Never throws. */
  async close(): Promise<void> {
    try {
      this.#socket.end();
      await this.#peer.waitExit(5000).catch(() => undefined); // a stuck peer is killed below
    } finally {
      this.#socket.destroy();
      await this.#peer.stop();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Anchor: UCX ucx_perftest tag_lat over POSIX shared memory

/** The percentile (µs, one-way) from `ucx_perftest -f` output run with -R `rank`. */
export function parseUcxPercentile(output: string, rank: number, iterations: number): number {
  const column = `${rank.toFixed(1)}%ile`;
  if (!output.includes(column)) throw new Error(`ucx_perftest printed no "${column}" column: ${output.trim().split('\n').slice(-3).join(' | ')}`);
  // "   <iterations>   <percentile>   <average>   <overall>   <MB/s avg> ..." (Final: prefix without -f)
  let found: number | undefined;
  for (const line of output.split('\n')) {
    const match = /^\s*(?:Final:)?\s*(\d+)\s+(\d+(?:\.\d+)?)\s+\d+(?:\.\d+)?\s+\d+(?:\.\d+)?/.exec(line);
    if (match && Number(match[1]) === iterations) found = Number(match[2]);
  }
  if (found === undefined) throw new Error(`no result line for ${iterations} iterations in ucx_perftest's output`);
  return found;
}

/**
 * One ucx_perftest measurement on 127.0.0.1: a server on the second CPU, a client with `test`
 * arguments on the first; returns the client's output. Both lives are bounded (the server would
 * wait for a client for ever) and both are killed on any failure.
 */
async function runUcxPerftest(exe: string, testArgs: readonly string[], cpus: [number, number] | null, timeoutMs: number): Promise<string> {
  const env = { ...process.env, UCX_TLS };
  const port = await freePort();
  const lifetimeSeconds = timeoutMs / 1000 + 15;
  const server = Peer.start('ucx_perftest server', [exe, '-p', String(port), ...(cpus ? ['-c', String(cpus[1])] : [])], {
    env,
    captureStderr: true,
    lifetimeSeconds,
  });
  try {
    await server.waitFor(`listening on port ${port}`, () => isListening(port), 10_000);
    const client = Peer.start(
      'ucx_perftest client',
      [exe, '127.0.0.1', '-p', String(port), ...testArgs, '-f', ...(cpus ? ['-c', String(cpus[0])] : [])],
      { env, captureStderr: true, lifetimeSeconds },
    );
    try {
      const output = await client.finish(timeoutMs);
      await server.waitExit(5000);
      return output;
    } finally {
      await client.stop();
    }
  } finally {
    await server.stop();
  }
}

/** One percentile (`rank`) of `ucx_perftest -t tag_lat` one-way latency, in µs. */
export async function ucxPercentile(
  exe: string,
  size: number,
  iterations: number,
  warmup: number,
  rank: number,
  cpus: [number, number] | null,
  timeoutMs: number,
): Promise<number> {
  const args = ['-t', 'tag_lat', '-s', String(size), '-n', String(iterations), '-w', String(warmup), '-R', String(rank)];
  return parseUcxPercentile(await runUcxPerftest(exe, args, cpus, timeoutMs), rank, iterations);
}

/** UCX tag_lat p50 and p99, with enough iterations to fill its percentile window with measured ones. */
export async function ucxLatency(
  exe: string,
  size: number,
  iterations: number,
  warmup: number,
  cpus: [number, number] | null,
  timeoutMs: number,
): Promise<Latency> {
  const n = Math.max(iterations, 2 * UCX_TIMING_QUEUE);
  const p50 = await ucxPercentile(exe, size, n, warmup, 50, cpus, timeoutMs);
  const p99 = await ucxPercentile(exe, size, n, warmup, 99, cpus, timeoutMs);
  return { p50, p99 };
}

/** Overall message rate (msg/s) and bandwidth (MB/s, 10^6 bytes) from `ucx_perftest -t tag_bw -f` output. */
export function parseUcxStream(output: string, iterations: number): { messagesPerSecond: number; megabytesPerSecond: number } {
  // "<iterations> <p50> <avg> <overall> <MB/s avg> <MB/s overall> <msg/s avg> <msg/s overall>" (Final: prefix without -f)
  let found: { messagesPerSecond: number; megabytesPerSecond: number } | undefined;
  for (const line of output.split('\n')) {
    const m = /^\s*(?:Final:)?\s*(\d+)\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+([\d.]+)\s+[\d.]+\s+([\d.]+)\s*$/.exec(line);
    if (m && Number(m[1]) === iterations) found = { megabytesPerSecond: Number(m[2]), messagesPerSecond: Number(m[3]) };
  }
  if (!found) throw new Error(`no tag_bw result line for ${iterations} iterations in ucx_perftest's output: ${output.trim().split('\n').slice(-3).join(' | ')}`);
  return found;
}

/** Run `ucx_perftest -t tag_bw` (client → server, one direction) for `iterations` messages of `size` bytes. */
export async function ucxStream(
  exe: string,
  size: number,
  iterations: number,
  warmup: number,
  cpus: [number, number] | null,
  timeoutMs: number,
): Promise<{ messagesPerSecond: number; megabytesPerSecond: number }> {
  const args = ['-t', 'tag_bw', '-s', String(size), '-n', String(iterations), '-w', String(warmup)];
  return parseUcxStream(await runUcxPerftest(exe, args, cpus, timeoutMs), iterations);
}
