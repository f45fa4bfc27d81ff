/**
 * `--transport rdma` of the postbox benches: two nodes on two RDMA devices (lib/two-node.ts —
 * node A on dev0, node B on dev1, each its own mount namespace and /dev/shm, an agent each), a
 * Postbox peer on node A (postbox-peer.ts: echo or sink, pinned to the first CPU) and the
 * measuring side on node B (postbox-rdma-side.ts, pinned to the second), both over RdmaTransport.
 * The roles are perftest's: its server on dev0 / first CPU, its client — which measures — on
 * dev1 / second CPU, so that perftest's figures (lib/perftest.ts, run by the caller in the same
 * rounds) come from the same devices and CPUs. The two processes stay up for every size and
 * round; each request is one stdin line to the measuring side and one RESULT line back.
 */
import { DEFAULT_AGENT_PORT, type PostboxOptions, type RdmaTransportOptions } from '../../src/index.js';
import { FlagError, type FlagSpec } from './flags.js';
import type { DevicePair } from './rdma-devices.js';
import { distFile, twoNodes, type Proc, type TwoNodeNode } from './two-node.js';
import type { SchedRow } from './sched-probe.js';

export type BenchTransport = 'shm' | 'rdma';

/** For the help text only: takeTransport() removes `--transport NAME` before parseFlags (which has no string kind). */
export const TRANSPORT_FLAG: FlagSpec = {
  transport: { kind: 'boolean', help: 'NAME: shm (default; two processes of this machine) or rdma (two nodes on two RDMA devices, e.g. in the rxe guest; perftest is the anchor)' },
};

/** Pull `--transport NAME` out of argv. */
export function takeTransport(argv: readonly string[]): { rest: string[]; transport: BenchTransport } {
  const rest: string[] = [];
  let transport: BenchTransport = 'shm';
  for (let i = 0; i < argv.length; i++) {
    const match = /^--transport(?:=(.*))?$/.exec(argv[i]);
    if (!match) {
      rest.push(argv[i]);
      continue;
    }
    const value = match[1] ?? argv[++i];
    if (value !== 'shm' && value !== 'rdma') throw new FlagError(`--transport takes shm or rdma, not ${JSON.stringify(value ?? '')}`);
    transport = value;
  }
  return { rest, transport };
}

/** An override of node `i`'s address applies only to the device MEMWIRE_RXE_DEV<i> names (or to any, when unset). */
function addressOverride(i: 0 | 1, device: string): string {
  const ip = process.env[`MEMWIRE_RXE_IP${i}`] ?? '';
  const dev = process.env[`MEMWIRE_RXE_DEV${i}`];
  return ip && (!dev || dev === device) ? ip : '';
}

/** A ping-pong's one-way p50 and p99 (µs), and the measuring side's own share of a round trip. */
export interface LatencyResult {
  p50: number;
  p99: number;
  /** Median µs spent in trySend (copy, posts: the system calls that run rxe's work inline). */
  sendP50: number;
  /** Median empty polls per round trip, and event-loop turns per round trip (mean). */
  pollsP50: number;
  turnsMean: number;
  /** Every process's CPU, run-queue wait and context switches, and packets per round trip, over the measured round trips (lib/sched-probe.ts). */
  sched?: { rows: SchedRow[]; packetsPer: Record<string, number> };
}

export interface StreamResult {
  seconds: number;
  count: number;
  size: number;
}

export class PostboxRdmaRig {
  readonly #nodes: [TwoNodeNode, TwoNodeNode];
  readonly #side: Proc;
  readonly description: string;

  private constructor(nodes: [TwoNodeNode, TwoNodeNode], side: Proc, description: string) {
    this.#nodes = nodes;
    this.#side = side;
    this.description = description;
  }

  /**
   * Nodes, agents, the peer (`mode`) on A and the measuring side on B, each with a Postbox of
   * `options` in one fresh domain; `transport` adds RdmaTransport options (e.g. `idle`) on both
   * sides. Throws (everything it started stopped) if a part fails.
   */
  static async start(
    mode: 'echo' | 'sink',
    options: PostboxOptions,
    pair: DevicePair,
    cpus: [number, number] | null,
    transport: Partial<Pick<RdmaTransportOptions, 'idle'>> = {},
  ): Promise<PostboxRdmaRig> {
    if (pair.loopback) throw new Error(`--transport rdma needs two RDMA devices (a node each); found only ${pair.dev0}`);
    const nodes = await twoNodes({ dev0: pair.dev0, dev1: pair.dev1, ip0: addressOverride(0, pair.dev0), ip1: addressOverride(1, pair.dev1) });
    const [a, b] = nodes;
    try {
      const port = DEFAULT_AGENT_PORT;
      await Promise.all([a.startAgent(port), b.startAgent(port)]);
      const agents = { A: { address: a.address, port }, B: { address: b.address, port } };
      const domain = `bench${process.pid}${Math.random().toString(36).slice(2, 8)}`;
      const peer = a.run([domain, mode, mode, process.pid, JSON.stringify(options), JSON.stringify({ ...transport, node: 'A', agents, device: a.device })], {
        script: distFile('bench/postbox-peer.js'),
        cpu: cpus?.[0] ?? null,
      });
      await peer.line(/^ready$/, 60_000);
      const side = b.run([domain, 'side', `${mode}@A`, JSON.stringify({ ...transport, node: 'B', agents, device: b.device }), JSON.stringify(options)], {
        script: distFile('bench/postbox-rdma-side.js'),
        cpu: cpus?.[1] ?? null,
        stdin: true,
      });
      await side.line(/^ready$/, 60_000);
      const description =
        `node A: ${a.device} (${a.address}), its agent and the ${mode} peer${cpus ? ` on CPU ${cpus[0]}` : ''}; ` +
        `node B: ${b.device} (${b.address}), its agent and the measuring side${cpus ? ` on CPU ${cpus[1]}` : ''}; ` +
        'each node its own mount namespace and /dev/shm, agents on port ' + port +
        ` (pids: agent A ${a.agents[0]?.child.pid}, agent B ${b.agents[0]?.child.pid}, ${mode} ${peer.child.pid}, measuring side ${side.child.pid})`;
      return new PostboxRdmaRig(nodes, side, description);
    } catch (error) {
      await Promise.all(nodes.map((n) => n.dispose()));
      throw error;
    }
  }

  async #request(line: string, timeoutMs: number): Promise<unknown> {
    this.#side.send(`${line}\n`);
    const m = await this.#side.take(/^(RESULT|ERROR) (.*)$/, timeoutMs + 30_000);
    if (m[1] === 'ERROR') throw new Error(`postbox over RDMA: ${m[2]}`);
    return JSON.parse(m[2]);
  }

  /**
   * One-way latency (µs) of `iterations` round trips of `size` bytes after `warmup` ones; with
   * where the measuring side's time went (see LatencyResult).
   */
  async latency(size: number, iterations: number, warmup: number, timeoutMs: number): Promise<LatencyResult> {
    return (await this.#request(`lat ${size} ${iterations} ${warmup} ${timeoutMs}`, timeoutMs)) as LatencyResult;
  }

  /** `count` messages of `size` bytes, clock stopped when the sink acknowledged the last. */
  async stream(size: number, count: number, timeoutMs: number): Promise<StreamResult> {
    return (await this.#request(`bw ${size} ${count} ${timeoutMs}`, timeoutMs)) as StreamResult;
  }

  /** Ask the side to end the peer and leave, then stop everything of both nodes. */
  async close(): Promise<void> {
    try {
      this.#side.send('quit\n');
      await Promise.race([this.#side.exit, new Promise((r) => setTimeout(r, 15_000))]);
    } catch {
      // already gone: dispose() below stops the rest
    } finally {
      await Promise.all(this.#nodes.map((n) => n.dispose()));
    }
  }
}
