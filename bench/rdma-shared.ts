/**
 * What the RDMA benches (`rdma-lat`, `rdma-write-bw`) and their peer process share: choosing the
 * device pair, one side of a connection (context, PD, CQs, RC QP, one registered buffer), the
 * endpoint both sides exchange, the measured loops — written to follow perftest's own loops
 * (perftest 4.5, src/perftest_resources.c: run_iter_lat_write, run_iter_lat_send, run_iter_bw) so
 * that memwire and perftest do the same work per iteration — and running perftest's tools on the
 * same device pair.
 *
 * Roles, as perftest's: the server is a peer process on dev0, pinned to the first CPU; the client
 * is the bench process itself on dev1, pinned to the second CPU. perftest's server runs with
 * `-d dev0 -x gid`, its client with `-d dev1 -x gid <dev0's IPv4>`, under `taskset` on the same
 * CPUs. With one device the benches run in loopback (dev0 = dev1).
 */
import {
  Context,
  listDevices,
  NoDeviceError,
  type CompletionQueue,
  type MemoryRegion,
  type ProtectionDomain,
  type QueuePair,
  type QueuePairEndpoint,
} from '../src/index.js';
import { fileURLToPath } from 'node:url';
import { NativeBlock } from '../src/verbs/native.js';
import { selfCommand } from '../ffi/runtime.js';
import { allowedCpus, findExecutable, FlagError, freePort, isListening, Peer, pinThread, type FlagSpec, type ParsedFlags } from './common.js';
export { cpuSample, cpuSplit, settle, softirqdSplit, type CpuSample } from './rdma-cpu.js';
export { bestRounds, DEFAULT_ROUNDS, median, pairedRow, roundRatios, ROUNDS_FLAG, runRound } from './rdma-rounds.js';

export const DEVICE_FLAGS: FlagSpec = {
  // --dev0/--dev1 take a name: takeDeviceNames() removes them before parseFlags (which has no
  // string kind); listed here for the help text.
  dev0: { kind: 'boolean', help: 'NAME: server device (default MEMWIRE_RXE_DEV0, else the first device)' },
  dev1: { kind: 'boolean', help: 'NAME: client device (default MEMWIRE_RXE_DEV1, else the second; one device: loopback)' },
  'gid-index': { kind: 'count', help: 'GID index on both devices (default: the RoCE v2 IPv4 one)' },
  'no-perftest': { kind: 'boolean', help: 'skip the perftest anchor' },
  'no-pin': { kind: 'boolean', help: 'do not pin the two sides to two CPUs' },
};

/** Pull `--dev0 NAME` / `--dev1 NAME` out of argv (parseFlags knows no string flags). */
export function takeDeviceNames(argv: readonly string[]): { rest: string[]; dev0?: string; dev1?: string } {
  const rest: string[] = [];
  const out: { dev0?: string; dev1?: string } = {};
  for (let i = 0; i < argv.length; i++) {
    const match = /^--(dev0|dev1)(?:=(.*))?$/.exec(argv[i]);
    if (!match) {
      rest.push(argv[i]);
      continue;
    }
    const value = match[2] ?? argv[++i];
    if (!value) throw new FlagError(`--${match[1]} needs a device name`);
    out[match[1] as 'dev0' | 'dev1'] = value;
  }
  return { rest, ...out };
}

export interface DevicePair {
  dev0: string;
  dev1: string;
  gidIndex: number;
  /** dev0's IPv4 address (where perftest's client connects), or 127.0.0.1. */
  serverIp: string;
  loopback: boolean;
}

function noDevice(detail: string): Error {
  const message =
    `${detail.startsWith("no RDMA device") ? detail : `no RDMA device: ${detail}`}. These benches need two RDMA devices (or one, in loopback), e.g. ` +
    'Soft-RoCE: `rdma link add rxe0 type rxe netdev eth0`; on a machine without RDMA in its kernel run them ' +
    'in the project\'s guest: scripts/rxe/run.sh -- node dist/src/cli/main.js bench <name>';
  const error = new Error(message);
  error.stack = message; // a plain statement, not a stack trace
  return error;
}

/** Find the device pair (flags, then MEMWIRE_RXE_DEV0/1, then the first two devices). */
export function pickDevices(names: { dev0?: string; dev1?: string }, flags: ParsedFlags): DevicePair {
  let found: string[];
  try {
    found = listDevices().map((d) => d.name);
  } catch (error) {
    if (error instanceof NoDeviceError) throw noDevice(error.message);
    throw error;
  }
  if (found.length === 0) throw noDevice('ibv_get_device_list found none');
  const dev0 = names.dev0 ?? process.env.MEMWIRE_RXE_DEV0 ?? found[0];
  const dev1 = names.dev1 ?? process.env.MEMWIRE_RXE_DEV1 ?? found[1] ?? dev0;
  for (const dev of [dev0, dev1]) if (!found.includes(dev)) throw noDevice(`no device named ${dev} (found: ${found.join(', ')})`);
  const fixed = flags.count.get('gid-index');
  const ctx = Context.open({ device: dev0, gidIndex: fixed });
  try {
    const gid = ctx.gid();
    return { dev0, dev1, gidIndex: gid.index, serverIp: gid.ipv4 ?? '127.0.0.1', loopback: dev0 === dev1 };
  } finally {
    ctx.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// One side of a connection

/** A QP endpoint plus the buffer the other side writes into. */
export interface BenchEndpoint extends QueuePairEndpoint {
  addr: number;
  rkey: number;
}

/**
 * Context, PD, a send and a receive CQ (no completion channel: the loops busy-poll, as perftest
 * does), an RC QP and one buffer of `bufferBytes`, registered for remote write, whose bytes JS
 * reads directly (`bytes`). The buffer is page-aligned native memory (mmap), as perftest's
 * (memalign to the page size): a JS ArrayBuffer starts anywhere in a page, so a 4 KiB message
 * would span two pages and rxe would copy every packet in more pieces than perftest's.
 */
export class BenchSide {
  readonly ctx: Context;
  readonly pd: ProtectionDomain;
  readonly sendCq: CompletionQueue;
  readonly recvCq: CompletionQueue;
  readonly qp: QueuePair;
  readonly mr: MemoryRegion;
  readonly bytes: Uint8Array;

  /**
   * `recvEvents`: the receive CQ gets a completion channel, for `recvCq.wait()` (an idle server).
   * `maxSendSge`: SGEs per send work request (default 1; the coalescing bench gathers 32).
   * `maxChain`: the longest post list (default 32).
   */
  constructor(device: string, gidIndex: number, bufferBytes: number, depth: number, recvEvents = false, maxSendSge = 1, maxChain = 32) {
    this.ctx = Context.open({ device, gidIndex });
    try {
      this.pd = this.ctx.allocPd();
      this.sendCq = this.ctx.createCompletionQueue({ entries: depth, events: false, batch: 16 });
      this.recvCq = this.ctx.createCompletionQueue({ entries: depth, events: recvEvents, batch: 16 });
      this.qp = this.pd.createQueuePair({ sendCq: this.sendCq, recvCq: this.recvCq, maxSendWr: depth, maxRecvWr: depth, maxSendSge, maxRecvSge: 1, maxChain: Math.min(maxChain, depth) });
      this.#block = new NativeBlock(bufferBytes, 'bench buffer');
      this.bytes = this.#block.bytes.subarray(0, bufferBytes);
      this.mr = this.pd.registerMemory({ address: this.#block.address, length: bufferBytes }, { remoteWrite: true });
    } catch (error) {
      this.ctx.dispose();
      this.#block?.free();
      throw error;
    }
  }

  readonly #block: NativeBlock | undefined;

  endpoint(): BenchEndpoint {
    return { ...this.qp.localEndpoint(), addr: this.mr.addr, rkey: this.mr.rkey };
  }

  connect(remote: BenchEndpoint): void {
    this.qp.connect(remote);
  }

  dispose(): void {
    this.ctx.dispose(); // deregisters the buffer before it is unmapped
    this.#block?.free();
  }
}

export function parseEndpoint(text: string): BenchEndpoint {
  const e = JSON.parse(text) as BenchEndpoint;
  if (typeof e.gid !== 'string' || !Number.isInteger(e.qpn) || !Number.isInteger(e.rkey) || !Number.isSafeInteger(e.addr)) {
    throw new Error(`bad endpoint: ${text}`);
  }
  return e;
}

// ---------------------------------------------------------------------------------------------
// The measured loops (both processes run the same loop; the server waits first)

/**
 * perftest's run_iter_lat_write: each side RDMA-writes `size` bytes whose last byte is the
 * iteration count into the peer's buffer, then spins on the last byte of its own buffer until the
 * peer's write with the same count lands — the CQ is not on the ping-pong path. Every write is
 * signaled, as perftest's. The client reads the clock once per iteration, right after its post
 * (perftest: right before, with its cycle counter): round trip = difference of successive stamps,
 * the same period either way, but a process.hrtime.bigint() (µs under the guest's TCG, vs. ~10 ns
 * for rdtsc) then runs while the message is in flight instead of delaying it.
 *
 * One difference in how completions are reaped: perftest calls ibv_poll_cq(1) after every post;
 * here the completions are reaped REAP_BATCH at a time (one ibv_poll_cq for up to 16), during a
 * turn of the spin (while the peer's write is in flight). Under TCG a call into C from JS costs
 * microseconds (koffi more than bun:ffi), so one call per iteration would be in the measured path.
 *
 * Buffer: [0, size) is written by the peer (polled here); [size, 2 size) is the source.
 */
export function writeLatLoop(side: BenchSide, remote: BenchEndpoint, size: number, total: number, server: boolean, stamps: Float64Array | null, guard: () => void): void {
  const { qp, sendCq, bytes, mr } = side;
  const last = size - 1;
  const inline = size <= qp.maxInlineData;
  // Written into native memory once and posted as is each time (perftest posts one prepared
  // ibv_send_wr the same way); only the source byte changes.
  const wr = qp.prepareSend({ opcode: 'write', sge: { mr, offset: size, length: size }, remoteAddr: remote.addr, rkey: remote.rkey, inline, signaled: true });
  let scnt = 0;
  let rcnt = 0;
  let unreaped = 0;
  let polls = 0;
  try {
    while (scnt < total || rcnt < total) {
      if (rcnt < total && !(scnt < 1 && server)) {
        rcnt++;
        const want = rcnt & 0xff;
        // Atomics.load: the NIC writes this byte behind the JIT's back; never hoisted.
        while (Atomics.load(bytes, last) !== want) {
          if (unreaped >= REAP_BATCH) unreaped -= reapSends(sendCq);
          else if ((++polls & 0xffff) === 0) guard();
        }
      }
      if (scnt < total) {
        if (unreaped >= MAX_UNREAPED) unreaped = reapDownTo(sendCq, unreaped, MAX_UNREAPED - 1, guard); // no call on the common path
        bytes[size + last] = (scnt + 1) & 0xff;
        const rc = qp.postPrepared(wr);
        if (rc !== 0) throw new Error(`postSend failed: errno ${rc}`);
        if (stamps) stamps[scnt] = Number(process.hrtime.bigint());
        scnt++;
        unreaped++;
      }
    }
    reapDownTo(sendCq, unreaped, 0, guard);
  } finally {
    wr.dispose();
  }
}

/** Signaled sends a latency loop reaps with one poll (during the spin), and the most it may owe. */
const REAP_BATCH = 16;
const MAX_UNREAPED = 64;

/** Poll the send CQ once (up to its batch); throws on a failed completion. Returns the count. */
function reapSends(cq: CompletionQueue): number {
  const n = cq.poll();
  for (let i = 0; i < n; i++) {
    const c = cq.completions[i];
    if (!c.ok) throw c.error();
  }
  return n;
}

/** Reap send completions until at most `keep` are owed (guard() every 65536 polls); returns how many still are. */
function reapDownTo(cq: CompletionQueue, unreaped: number, keep: number, guard: () => void): number {
  let polls = 0;
  while (unreaped > keep) {
    unreaped -= reapSends(cq);
    if ((++polls & 0xffff) === 0) guard();
  }
  return unreaped;
}

/**
 * perftest's run_iter_lat_send: each side SENDs `size` bytes and busy-polls its receive CQ for
 * the peer's SEND (receives are posted ahead and re-posted as they complete); every SEND is
 * signaled and its completion reaped (ib_send_lat runs with tx depth 1, so it reaps each one).
 * Buffer: [0, size) receives, [size, 2 size) sends.
 *
 * The same work per message as perftest, batched and in another order: perftest re-posts one
 * receive and reaps one send completion per message in the ping-pong's path (before / right
 * after its SEND); here the receives are re-posted REPOST_BATCH at a time (a prepared chain: one
 * ibv_post_recv, nothing written per message) and the send completions reaped REAP_BATCH at a
 * time, both during turns of the receive-CQ spin that find nothing — while the message is in
 * flight. Under the guest's TCG a call into C from JS costs microseconds (perftest's:
 * nanoseconds), so one or two calls per message would be in the measured path. The clock is read
 * after the post (see writeLatLoop).
 */
export function sendLatLoop(side: BenchSide, size: number, total: number, server: boolean, stamps: Float64Array | null, guard: () => void): void {
  const { qp, sendCq, recvCq, mr } = side;
  const inline = size <= qp.maxInlineData;
  const wr = qp.prepareSend({ opcode: 'send', sge: { mr, offset: size, length: size }, inline, signaled: true });
  const chain = qp.prepareRecv(Array.from({ length: REPOST_BATCH }, () => ({ sge: { mr, offset: 0, length: size } })));
  const repost = () => {
    const rc = qp.postPreparedRecv(chain);
    if (rc !== 0) throw new Error(`postRecv failed: errno ${rc}`);
  };
  let scnt = 0;
  let rcnt = 0;
  let owedReposts = 0;
  let unreaped = 0;
  let polls = 0;
  try {
    while (scnt < total || rcnt < total) {
      if (rcnt < total && !(scnt < 1 && server)) {
        while (recvCq.poll(1) === 0) {
          if (owedReposts >= REPOST_BATCH) {
            repost();
            owedReposts -= REPOST_BATCH;
          } else if (unreaped >= REAP_BATCH) {
            unreaped -= reapSends(sendCq);
          } else if ((++polls & 0xffff) === 0) {
            guard();
          }
        }
        const c = recvCq.completions[0];
        if (!c.ok) throw c.error();
        rcnt++;
        owedReposts++;
      }
      if (scnt < total) {
        // Never let the receive queue run dry, nor the send queue fill (both far from it).
        if (owedReposts >= SEND_LAT_RX_DEPTH - 2) {
          repost();
          owedReposts -= REPOST_BATCH;
        }
        if (unreaped >= MAX_UNREAPED) unreaped = reapDownTo(sendCq, unreaped, MAX_UNREAPED - 1, guard); // no call on the common path
        const rc = qp.postPrepared(wr);
        if (rc !== 0) throw new Error(`postSend failed: errno ${rc}`);
        if (stamps) stamps[scnt] = Number(process.hrtime.bigint());
        scnt++;
        unreaped++;
      }
    }
    reapDownTo(sendCq, unreaped, 0, guard);
  } finally {
    chain.dispose();
    wr.dispose();
  }
}

/** Receives a send-latency loop re-posts with one call (a prepared chain). */
const REPOST_BATCH = 8;

/** Receives a send-latency side keeps posted (perftest's rx depth for latency tests is small). */
export const SEND_LAT_RX_DEPTH = 16;

export function prepostReceives(side: BenchSide, size: number, count: number): void {
  for (let i = 0; i < count; i++) {
    const rc = side.qp.postRecv({ sge: { mr: side.mr, offset: 0, length: size } });
    if (rc !== 0) throw new Error(`postRecv failed: errno ${rc}`);
  }
}

/** A word nobody notifies: Atomics.wait on it is a sleep of the given timeout (a futex wait). */
const IDLE = new Int32Array(new SharedArrayBuffer(4));

/**
 * perftest's run_iter_bw (client side of ib_write_bw): keep up to `txDepth` RDMA WRITEs of
 * `size` bytes in flight, every `cqMod`-th signaled; reap completions in batches. Returns the
 * elapsed ns from the first post to the last completion. `postList` > 1 is perftest's `-l N`:
 * one ibv_post_send hands over a prepared chain of N writes, only the last signaled (perftest then
 * sets cq_mod to N), posted while N more fit under tx depth; `iterations` is a multiple of N.
 * `idleWaitMs` > 0 (not perftest's way): sleep that long (a futex wait) whenever a poll finds
 * nothing, leaving the vCPU to rxe's deferred work (ksoftirqd) instead of competing with it.
 */
export function writeBwLoop(side: BenchSide, remote: BenchEndpoint, size: number, iterations: number, txDepth: number, cqMod: number, guard: () => void, idleWaitMs = 0, postList = 1): number {
  const { qp, sendCq, mr } = side;
  const request = { opcode: 'write' as const, sge: { mr, offset: 0, length: size }, remoteAddr: remote.addr, rkey: remote.rkey };
  const list = postList > 1;
  const perCompletion = list ? postList : cqMod;
  const chain = list ? qp.prepareSend(Array.from({ length: postList }, (_, i) => ({ ...request, signaled: i === postList - 1 }))) : null;
  const unsignaled = qp.prepareSend({ ...request, signaled: false });
  const signaled = qp.prepareSend({ ...request, signaled: true });
  let scnt = 0;
  let ccnt = 0;
  let polls = 0;
  try {
    const start = process.hrtime.bigint();
    while (scnt < iterations || ccnt < iterations) {
      if (chain) {
        while (scnt < iterations && scnt - ccnt + postList <= txDepth) {
          const rc = qp.postPrepared(chain);
          if (rc !== 0) throw new Error(`postSend (post list ${postList}) failed: errno ${rc}`);
          scnt += postList;
        }
      } else {
        while (scnt < iterations && scnt - ccnt < txDepth) {
          const last = (scnt + 1) % cqMod === 0 || scnt + 1 === iterations;
          const rc = qp.postPrepared(last ? signaled : unsignaled);
          if (rc !== 0) throw new Error(`postSend failed: errno ${rc}`);
          scnt++;
        }
      }
      if (ccnt < iterations) {
        const n = sendCq.poll();
        for (let i = 0; i < n; i++) {
          const c = sendCq.completions[i];
          if (!c.ok) throw c.error();
          ccnt = Math.min(iterations, ccnt + perCompletion);
        }
        if (n === 0) {
          if (idleWaitMs > 0) Atomics.wait(IDLE, 0, 0, idleWaitMs);
          if ((++polls & 0xffff) === 0) guard();
        }
      }
    }
    return Number(process.hrtime.bigint() - start);
  } finally {
    chain?.dispose();
    unsignaled.dispose();
    signaled.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// perftest

export interface PerftestResult {
  /** The columns of perftest's result line, by header name. */
  columns: Record<string, number>;
  clientOutput: string;
}

/**
 * Run one perftest tool: server on dev0 (pinned to cpus[0]), then, once it listens on its TCP
 * port, the client on dev1 (cpus[1]) connecting to dev0's address. Both under `timeout -s KILL`.
 * Returns the client's result line split by its header.
 */
export async function runPerftest(tool: string, args: readonly string[], pair: DevicePair, cpus: [number, number] | null, timeoutMs: number): Promise<PerftestResult> {
  const exe = findExecutable(tool);
  if (!exe) throw new Error(`${tool} is not installed (Debian package perftest)`);
  const taskset = cpus ? findExecutable('taskset') : null;
  const pin = (cpu: number) => (taskset ? [taskset, '-c', String(cpu)] : []);
  const port = await freePort();
  const common = ['-x', String(pair.gidIndex), '-F', '-p', String(port), ...args];
  const lifetime = Math.ceil(timeoutMs / 1000) + 5;
  const server = Peer.start(`${tool} server`, [...pin(cpus?.[0] ?? 0), exe, '-d', pair.dev0, ...common], { captureStderr: true, lifetimeSeconds: lifetime });
  let client: Peer | undefined;
  try {
    await server.waitFor(`${tool} listening on port ${port}`, () => isListening(port), 15_000);
    client = Peer.start(`${tool} client`, [...pin(cpus?.[1] ?? 0), exe, '-d', pair.dev1, ...common, pair.serverIp], { captureStderr: true, lifetimeSeconds: lifetime });
    const out = await client.finish(timeoutMs);
    await server.finish(10_000);
    return { columns: parsePerftest(out, tool), clientOutput: out };
  } finally {
    await client?.stop();
    await server.stop();
  }
}

/**
 * perftest prints a header line starting with " #bytes" and one result line below it. Some
 * header names have spaces ("BW average[MB/sec]", "99% percentile[usec]") and the columns are not
 * always two spaces apart, so names are rebuilt from tokens; the numbers split on any space.
 */
export function parsePerftest(output: string, tool: string): Record<string, number> {
  const lines = output.split('\n');
  const h = lines.findIndex((l) => l.trim().startsWith('#bytes'));
  if (h < 0) throw new Error(`${tool}: no result header in its output: ${output.trim().split('\n').slice(-5).join(' | ')}`);
  // A name ends at a token starting with '#' or holding ']' ("BW average[MB/sec]" is two tokens).
  const names: string[] = [];
  let pending: string[] = [];
  for (const token of lines[h].trim().split(/\s+/)) {
    pending.push(token);
    if (token.startsWith('#') || token.includes(']')) {
      names.push(pending.join(' '));
      pending = [];
    }
  }
  const valueLine = lines.slice(h + 1).find((l) => /^\s*\d/.test(l));
  if (!valueLine) throw new Error(`${tool}: no result line under its header`);
  const values = valueLine.trim().split(/\s+/).map(Number);
  const columns: Record<string, number> = {};
  names.forEach((name, i) => {
    if (i < values.length) columns[name] = values[i];
  });
  return columns;
}

/** The first column whose name starts with `prefix` (e.g. "t_typical", "BW average"). */
export function column(columns: Record<string, number>, prefix: string): number {
  const key = Object.keys(columns).find((k) => k.startsWith(prefix));
  if (key === undefined) throw new Error(`perftest output has no column ${prefix} (columns: ${Object.keys(columns).join(', ')})`);
  return columns[key];
}

// ---------------------------------------------------------------------------------------------
// The server process

export type PeerMode = 'write-lat' | 'send-lat' | 'bw';

/**
 * Start the server process (rdma-peer.js, same runtime) on dev0 with `client`'s endpoint, pin it
 * to `cpu`, wait for its endpoint and connect `client` to it. The caller stops the peer.
 */
export async function startServerPeer(mode: PeerMode, pair: DevicePair, size: number, total: number, client: BenchSide, cpu: number | null): Promise<{ peer: Peer; remote: BenchEndpoint }> {
  const script = fileURLToPath(new URL('./rdma-peer.js', import.meta.url));
  const argv = [mode, pair.dev0, String(pair.gidIndex), String(size), String(total), String(process.pid), JSON.stringify(client.endpoint())];
  const peer = Peer.start(`rdma ${mode} server`, selfCommand(script, argv));
  try {
    if (cpu !== null) pinThread(peer.pid, [cpu]);
    await peer.waitFor('its endpoint (READY line)', () => /^READY .*\n/m.test(peer.stdout), 30_000);
    const remote = parseEndpoint(/^READY (.*)$/m.exec(peer.stdout)![1]);
    client.connect(remote);
    return { peer, remote };
  } catch (error) {
    await peer.stop();
    throw error;
  }
}

/** The CPUs the two sides run on (server, client), or null with the reason in `notes`. */
export function pickCpus(noPin: boolean, notes: string[]): [number, number] | null {
  if (noPin) {
    notes.push('not pinned (--no-pin): the scheduler places both sides');
    return null;
  }
  const cpus = allowedCpus();
  if (cpus.length >= 2) return [cpus[0], cpus[1]];
  notes.push(`only ${cpus.length} CPU available: both busy-polling sides share it, so latency is scheduler time slices`);
  return null;
}
