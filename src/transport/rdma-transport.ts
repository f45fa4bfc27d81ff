/**
 * RdmaTransport — the transport whose targets may live on other nodes (issue 12). Each node runs
 * an agent (src/agent/); this transport keeps one connection per node it talks to (made on first
 * use, made again after it was lost) and, on each, one data plane (rdma-channel.ts) that every
 * image of that node's targets shares.
 *
 *  - exposeAsync(name, size): a target on this node, allocated by this node's agent (so remote
 *    writers can reach it) and mapped here to be read in place (a Target). With `node` another
 *    node: allocated there by its agent for this process (a sender's memory space on a receiving
 *    node, seed 001), an Exposed (the name's ownership, no bytes). Either lives while this
 *    process's connection to that agent does; dispose() removes it.
 *  - attachAsync(descriptor) → RdmaImage; findAsync / isAliveAsync / removeAsync go through the
 *    node's agent.
 *
 * Keys: the rkey in a descriptor is valid only on the connection that obtained it, so attachAsync
 * asks the node's agent again (FIND) on this transport's own connection and checks the size.
 *
 * The shape is the async half of the reworked Transport interface (rdma-types.ts's
 * AsyncTransport, a local copy until types.ts has it); the synchronous forms (this node only) are
 * not implemented here: every call of this transport may need its agent.
 */
import { AgentClient, AgentError } from '../agent/client.js';
import { targetRegionName } from '../agent/agent.js';
import { ClosedError, CorruptionError, UsageError } from '../errors.js';
import { isProcessAlive, selfPid, selfStartTime } from '../shm/process-identity.js';
import { RdmaChannel } from './rdma-channel.js';
import { RdmaImage } from './rdma-image.js';
import type { AsyncTransport, Exposed } from './rdma-types.js';
import { ShmTransport } from './shm.js';
import type { ProcessIdentity, SegmentDescriptor, Target, WaitOptions, WaitResult } from './types.js';

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
}

function notFound(error: unknown): boolean {
  return error instanceof AgentError && error.reason === 'NOT_FOUND';
}

/** A target of this node allocated through its agent and mapped here (the shm object the agent made). */
class RdmaLocalTarget implements Target {
  readonly descriptor: SegmentDescriptor;
  readonly size: number;
  readonly isOwner = true;
  readonly #inner: Target;
  readonly #remove: () => void;

  constructor(descriptor: SegmentDescriptor, inner: Target, remove: () => void) {
    this.descriptor = descriptor;
    this.size = inner.size;
    this.#inner = inner;
    this.#remove = remove;
  }

  get bytes(): Uint8Array {
    return this.#inner.bytes;
  }
  get int32(): Int32Array {
    return this.#inner.int32;
  }
  get closed(): boolean {
    return this.#inner.closed;
  }
  wait(byteOffset: number, expected: number, options?: WaitOptions): WaitResult {
    return this.#inner.wait(byteOffset, expected, options);
  }
  waitAsync(byteOffset: number, expected: number, options?: WaitOptions): Promise<WaitResult> {
    return this.#inner.waitAsync(byteOffset, expected, options);
  }
  wake(byteOffset: number, count?: number): number {
    return this.#inner.wake(byteOffset, count);
  }
  /** Unmap, and have the agent remove the target (deregistered everywhere). Idempotent. */
  dispose(): void {
    if (this.#inner.closed) return;
    this.#inner.dispose();
    this.#remove();
  }
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

export class RdmaTransport implements AsyncTransport {
  readonly kind = 'rdma';
  readonly node: string;
  readonly self: ProcessIdentity = { pid: selfPid, start: selfStartTime };
  readonly #options: RdmaTransportOptions;
  readonly #clients = new Map<string, Promise<AgentClient>>();
  readonly #images = new Set<RdmaImage>();
  readonly #targets = new Set<Target>();
  readonly #shm: ShmTransport;
  #disposed = false;

  constructor(options: RdmaTransportOptions) {
    if (!options || typeof options.node !== 'string' || !options.node) throw new UsageError('RdmaTransport needs { node, agents }');
    if (!options.agents || typeof options.agents !== 'object') throw new UsageError('RdmaTransport needs agents: { [node]: { address, port? } }');
    this.node = options.node;
    this.#options = options;
    this.#shm = new ShmTransport({ node: options.node });
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
   * A zero-filled target of `size` bytes named `name`: on this node (default) a Target mapped
   * here; on `options.node` an Exposed. UsageError for a bad name/size or an unknown node;
   * AgentError EXISTS if the name is taken there.
   */
  async exposeAsync(name: string, size: number, options: { node?: string } = {}): Promise<Exposed | Target> {
    const node = options.node ?? this.node;
    const client = await this.client(node);
    const d = await client.allocate(name, size);
    const descriptor = this.#describe(node, d);
    const remove = () => {
      if (!client.lost) void client.remove(name).catch(() => undefined);
    };
    if (node !== this.node) return new RdmaExposed(descriptor, remove);
    let inner: Target;
    try {
      inner = this.#shm.openLocal({ transport: 'shm', node: this.node, name: targetRegionName(name), size: d.size, key: 0 });
    } catch (error) {
      await client.remove(name).catch(() => undefined);
      throw error;
    }
    const target = new RdmaLocalTarget(descriptor, inner, () => {
      this.#targets.delete(target);
      remove();
    });
    this.#targets.add(target);
    return target;
  }

  /**
   * An image of the target `descriptor` names. UsageError for another transport's descriptor or
   * an unknown node; AgentError NOT_FOUND if the target is gone; CorruptionError if its size
   * differs from the descriptor's.
   */
  async attachAsync(descriptor: SegmentDescriptor): Promise<RdmaImage> {
    if (!descriptor || descriptor.transport !== this.kind) throw new UsageError(`descriptor of transport ${JSON.stringify(descriptor?.transport)} given to the rdma transport`);
    const client = await this.client(descriptor.node);
    const target = await client.find(descriptor.name);
    if (target.size !== descriptor.size) throw new CorruptionError(descriptor.name, `descriptor says ${descriptor.size} bytes, the agent of ${descriptor.node} has ${target.size}`);
    const image = RdmaImage.open(RdmaChannel.of(client), { ...target, node: descriptor.node });
    this.#images.add(image);
    return image;
  }

  async findAsync(name: string, node = this.node): Promise<SegmentDescriptor | undefined> {
    const client = await this.client(node);
    try {
      return this.#describe(node, await client.find(name));
    } catch (error) {
      if (notFound(error)) return undefined;
      throw error;
    }
  }

  async isAliveAsync(who: ProcessIdentity, node = this.node): Promise<boolean> {
    if (node === this.node) return isProcessAlive(who.pid, who.start);
    return (await this.client(node)).isAlive(who.pid, who.start);
  }

  async removeAsync(name: string, node = this.node): Promise<void> {
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
    for (const target of [...this.#targets]) target.dispose();
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
