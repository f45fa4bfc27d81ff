/**
 * RdmaTransport — the transport whose targets may live on other nodes (issue 12). Each node runs
 * an agent (src/agent/); this transport keeps one connection per node it talks to (made on first
 * use, made again after it was lost) and, on each, one data plane (rdma-channel.ts) that every
 * image of that node's targets shares.
 *
 *  - THIS node (the synchronous forms, and the async ones when the node is this one): a target is
 *    the shm object `agent.<name>` of the node's /dev/shm, made and mapped here without the agent
 *    (rdma-local.ts); the agent adopts it when a remote writer FINDs it. attach() gives an shm
 *    image (the source is the target), find/isAlive/remove are local.
 *  - ANOTHER node (the *Async forms): exposeAsync(name, size, { node }) allocates there through
 *    its agent for this process (a sender's memory space on a receiving node, seed 001): an
 *    Exposed (the name's ownership, no bytes) that lives while this process's connection to that
 *    agent does; dispose() removes it. attachAsync → RdmaImage (RDMA WRITE/READ/atomics, the
 *    agent's doorbell); findAsync / isAliveAsync / removeAsync ask that node's agent.
 *
 * Keys: the rkey in a descriptor is valid only on the connection that obtained it, so attachAsync
 * asks the node's agent again (FIND) on this transport's own connection and checks the size.
 */
import { AgentClient, AgentError } from '../agent/client.js';
import { ClosedError, CorruptionError, UsageError } from '../errors.js';
import { selfPid, selfStartTime } from '../shm/process-identity.js';
import { RdmaChannel } from './rdma-channel.js';
import { RdmaImage } from './rdma-image.js';
import { RdmaLocalNode } from './rdma-local.js';
import type { Exposed, ExposeOptions, Image, OpenTargetOptions, ProcessIdentity, SegmentDescriptor, Target, Transport } from './types.js';

export interface RdmaTransportOptions {
  /** This process's node: its agent is `agents[node]`. */
  readonly node: string;
  /** Where each node's agent listens (IPv4 address, port: default DEFAULT_AGENT_PORT). */
  readonly agents: Readonly<Record<string, { readonly address: string; readonly port?: number }>>;
  /** The local IPv4 address to connect from, or the RDMA device whose address to use. */
  readonly source?: string;
  readonly device?: string;
  /** Bound for connecting and for each control call. Default 5000 ms. */
  readonly timeoutMs?: number;
  /**
   * What a poll of an image (progress(), and the Postbox's polls through it) does when it reaps
   * nothing while the connection's work requests are in flight: 'spin' (default) returns at
   * once; 'yield' calls sched_yield so the kernel's share of the transfer (rxe: ksoftirqd on this
   * CPU) runs first. See rdma-channel.ts.
   */
  readonly idle?: 'yield' | 'spin';
}

/**
 * How long a process of another node that its agent said is alive is taken to be alive without
 * asking again — unless the agent's GONE notice for it comes first (it pushes one when a process
 * of its node ends), or the connection to that agent is lost. The Postbox checks each remote
 * channel every LIVENESS_INTERVAL_MS (100 ms) in both directions: without this every check was a
 * control round trip, ~20 IS_ALIVE per second to each agent of a two-process ping-pong, and each
 * costs the agent milliseconds of CPU under the rxe guest's TCG (issue 12: the agents, always
 * behind, took scheduler ticks from the busy-polling processes). A death that the agent does not
 * push (it missed the process's disconnect) is seen at most this much later.
 */
export const REMOTE_ALIVE_TRUST_MS = 1000;

function notFound(error: unknown): boolean {
  return error instanceof AgentError && error.reason === 'NOT_FOUND';
}

/** A target on another node, allocated there for this process: its name's ownership. */
class RdmaExposed implements Exposed {
  readonly descriptor: SegmentDescriptor;
  readonly size: number;
  #closed = false;
  readonly #remove: () => void;

  constructor(descriptor: SegmentDescriptor, remove: () => void) {
    this.descriptor = descriptor;
    this.size = descriptor.size;
    this.#remove = remove;
  }
  get closed(): boolean {
    return this.#closed;
  }
  /** Have the node's agent remove it (in the background; a vanished agent is no error). Idempotent. */
  dispose(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#remove();
  }
}

export class RdmaTransport implements Transport {
  readonly kind = 'rdma';
  readonly node: string;
  readonly self: ProcessIdentity = { pid: selfPid, start: selfStartTime };
  readonly #options: RdmaTransportOptions;
  readonly #clients = new Map<string, Promise<AgentClient>>();
  /** `node pid start` → until when (performance.now()) a positive IS_ALIVE answer is trusted. */
  readonly #aliveUntil = new Map<string, number>();
  readonly #images = new Set<RdmaImage>();
  readonly #local: RdmaLocalNode;
  #disposed = false;

  constructor(options: RdmaTransportOptions) {
    if (!options || typeof options.node !== 'string' || !options.node) throw new UsageError('RdmaTransport needs { node, agents }');
    if (!options.agents || typeof options.agents !== 'object') throw new UsageError('RdmaTransport needs agents: { [node]: { address, port? } }');
    if (options.idle !== undefined && options.idle !== 'yield' && options.idle !== 'spin') throw new UsageError(`RdmaTransport idle must be 'yield' or 'spin', got ${JSON.stringify(options.idle)}`);
    this.node = options.node;
    this.#options = options;
    this.#local = new RdmaLocalNode(options.node);
  }

  /** The connection to `node`'s agent (made now if there is none or it was lost). */
  async client(node: string): Promise<AgentClient> {
    if (this.#disposed) throw new ClosedError('RdmaTransport');
    const agent = this.#options.agents[node];
    if (!agent) throw new UsageError(`RdmaTransport knows no agent of node ${JSON.stringify(node)} (agents: ${Object.keys(this.#options.agents).join(', ')})`);
    const existing = this.#clients.get(node);
    if (existing) {
      const c = await existing.catch(() => undefined);
      if (c && !c.lost) return c;
      if (this.#clients.get(node) === existing) this.#clients.delete(node);
      else return this.client(node);
    }
    const o = this.#options;
    const connecting = AgentClient.connect({ address: agent.address, port: agent.port, source: o.source, device: o.device, local: node === this.node, node: this.node, timeoutMs: o.timeoutMs });
    this.#clients.set(node, connecting);
    try {
      const c = await connecting;
      if (this.#disposed) {
        c.close();
        throw new ClosedError('RdmaTransport');
      }
      if (c.node !== node) {
        c.close();
        throw new UsageError(`the agent at ${agent.address} is node ${JSON.stringify(c.node)}, not ${JSON.stringify(node)}`);
      }
      // A trusted "alive" ends with the process's GONE notice, or with the connection to its agent.
      c.onGone((pid, start) => this.#aliveUntil.delete(aliveKey(node, pid, start)));
      void c.closed.then(() => {
        for (const key of [...this.#aliveUntil.keys()]) if (key.startsWith(`${node} `)) this.#aliveUntil.delete(key);
      });
      return c;
    } catch (error) {
      if (this.#clients.get(node) === connecting) this.#clients.delete(node);
      throw error;
    }
  }

  #describe(node: string, d: { name: string; size: number; rkey: number }): SegmentDescriptor {
    return { transport: this.kind, node, name: d.name, size: d.size, key: d.rkey };
  }

  /**
   * A zero-filled target of `size` bytes named `name` on THIS node, mapped here (this handle owns
   * the name; remote writers reach it through the node's agent). UsageError for a bad name or
   * size, a name in use by a live process, or another node.
   */
  expose(name: string, size: number, options: ExposeOptions = {}): Target {
    this.#open();
    return this.#local.expose(name, size, options);
  }

  /** Open a target of this node to read it in place (ShmTransport's openLocal errors). */
  openLocal(descriptor: SegmentDescriptor, options?: OpenTargetOptions): Target {
    this.#open();
    return this.#local.openLocal(descriptor, options);
  }

  /** An image of a target of THIS node: the same object mapped here (UsageError for another node: attachAsync). */
  attach(descriptor: SegmentDescriptor, options?: OpenTargetOptions): Image {
    this.#open();
    return this.#local.attach(descriptor, options);
  }

  find(name: string, node?: string): SegmentDescriptor | undefined {
    if (node !== undefined && node !== this.node) return undefined;
    return this.#local.find(name);
  }

  isAlive(who: ProcessIdentity, node?: string): boolean {
    if (node !== undefined && node !== this.node) return false;
    return this.#local.isAlive(who);
  }

  remove(name: string, node?: string): void {
    if (node !== undefined && node !== this.node) return;
    this.#local.remove(name);
  }

  #open(): void {
    if (this.#disposed) throw new ClosedError('RdmaTransport');
  }

  /**
   * A zero-filled target of `size` bytes named `name`: on this node (default) expose()'s Target;
   * on `options.node` an Exposed allocated there by its agent. UsageError for a bad name/size or
   * an unknown node; AgentError EXISTS if the name is taken there.
   */
  async exposeAsync(name: string, size: number, options: ExposeOptions = {}): Promise<Exposed> {
    const node = options.node ?? this.node;
    if (node === this.node) return this.expose(name, size, options);
    const client = await this.client(node);
    const d = await client.allocate(name, size);
    return new RdmaExposed(this.#describe(node, d), () => {
      if (!client.lost) void client.remove(name).catch(() => undefined);
    });
  }

  /**
   * An image of the target `descriptor` names: attach()'s on this node, an RdmaImage on another.
   * UsageError for another transport's descriptor or an unknown node; AgentError NOT_FOUND if the
   * target is gone; CorruptionError if its size differs from the descriptor's.
   */
  async attachAsync(descriptor: SegmentDescriptor, options?: OpenTargetOptions): Promise<Image> {
    if (!descriptor || descriptor.transport !== this.kind) throw new UsageError(`descriptor of transport ${JSON.stringify(descriptor?.transport)} given to the rdma transport`);
    if (descriptor.node === this.node) return this.attach(descriptor, options);
    const client = await this.client(descriptor.node);
    const target = await client.find(descriptor.name);
    if (target.size !== descriptor.size) throw new CorruptionError(descriptor.name, `descriptor says ${descriptor.size} bytes, the agent of ${descriptor.node} has ${target.size}`);
    const image = RdmaImage.open(RdmaChannel.of(client, this.#options.idle ?? 'spin'), { ...target, node: descriptor.node });
    this.#images.add(image);
    return image;
  }

  async findAsync(name: string, node = this.node): Promise<SegmentDescriptor | undefined> {
    if (node === this.node) return this.find(name);
    const client = await this.client(node);
    try {
      return this.#describe(node, await client.find(name));
    } catch (error) {
      if (notFound(error)) return undefined;
      throw error;
    }
  }

  /**
   * Whether process `who` of `node` runs. On another node its agent is asked — at most once per
   * REMOTE_ALIVE_TRUST_MS while it keeps answering "alive" and sends no GONE notice for it.
   */
  async isAliveAsync(who: ProcessIdentity, node = this.node): Promise<boolean> {
    if (node === this.node) return this.isAlive(who);
    const client = await this.client(node); // throws when that agent is unreachable: never "alive" from memory then
    const key = aliveKey(node, who.pid, who.start);
    const until = this.#aliveUntil.get(key);
    if (until !== undefined && performance.now() < until) return true;
    const alive = await client.isAlive(who.pid, who.start);
    if (alive && !client.lost) {
      if (this.#aliveUntil.size >= 4096) this.#aliveUntil.clear(); // bounded: only a cache
      this.#aliveUntil.set(key, performance.now() + REMOTE_ALIVE_TRUST_MS);
    } else this.#aliveUntil.delete(key);
    return alive;
  }

  async removeAsync(name: string, node = this.node): Promise<void> {
    if (node === this.node) return this.remove(name);
    const client = await this.client(node);
    try {
      await client.remove(name);
    } catch (error) {
      if (!notFound(error)) throw error;
    }
  }

  /**
   * Close every image, local target, data plane and agent connection (idempotent). Posts in
   * flight are flushed and settle with ClosedError; targets this process owned on other nodes
   * are reclaimed by their agents when the connection ends.
   */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const image of this.#images) image.dispose();
    this.#images.clear();
    this.#local.dispose();
    for (const p of this.#clients.values()) {
      void p.then(
        (client) => {
          RdmaChannel.closeOf(client);
          client.close();
        },
        () => undefined,
      );
    }
    this.#clients.clear();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

function aliveKey(node: string, pid: number, start: bigint): string {
  return `${node} ${pid} ${start}`;
}
