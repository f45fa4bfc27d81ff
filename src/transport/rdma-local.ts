/**
 * This node's side of the RDMA transport (rdma-transport.ts): the synchronous forms of the
 * transport interface (contract 6 of types.ts) for targets of THIS node.
 *
 * A target of a node is an shm object of that node's /dev/shm named `agent.<name>`
 * (targetRegionName) — the name under which the node's agent (src/agent/agent.ts) serves it to
 * other nodes. Whoever made it — the agent for a remote writer (ALLOCATE), or a process of the
 * node itself through expose() here — local processes map it and read it in place, and remote
 * writers reach it through the agent: on a FIND for a name it did not allocate, the agent adopts
 * the object (maps it, registers it on the finder's connection) and forgets it once its name is
 * gone or its creator died. So expose() needs no agent at all, and neither do a local attach()
 * (an shm image: the same object mapped twice, like ShmTransport's), find, isAlive or remove.
 *
 * The handles here wrap ShmTransport's, only renaming: descriptors say transport 'rdma' and the
 * caller's name (without the `agent.` prefix) and key 0 — an rkey is valid on one connection only,
 * so a remote writer asks the agent for its own (attachAsync does a FIND) whatever key it was given.
 */
import { targetRegionName } from '../agent/agent.js';
import { UsageError } from '../errors.js';
import { ShmTransport } from './shm.js';
import type {
  ExposeOptions, Image, OpenTargetOptions, PostStatus, ProcessIdentity, SegmentDescriptor, Target, WaitOptions, WaitResult,
} from './types.js';

/** A target of this node under the RDMA transport's descriptor (the shm handle beneath). */
export class RdmaLocalTarget implements Target {
  readonly descriptor: SegmentDescriptor;
  readonly size: number;
  readonly isOwner: boolean;
  readonly #inner: Target;
  readonly #disposed: () => void;

  constructor(descriptor: SegmentDescriptor, inner: Target, disposed: () => void) {
    this.descriptor = descriptor;
    this.size = inner.size;
    this.isOwner = inner.isOwner;
    this.#inner = inner;
    this.#disposed = disposed;
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
  /** Unmap; the owner's handle also removes the name (the agent then forgets the target). Idempotent. */
  dispose(): void {
    if (this.#inner.closed) return;
    this.#inner.dispose();
    this.#disposed();
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** An image of a target of this node: ShmTransport's (the source IS the target) under the RDMA descriptor. */
class RdmaLocalImage implements Image {
  readonly descriptor: SegmentDescriptor;
  readonly size: number;
  readonly source: Uint8Array;
  readonly #inner: Image;

  constructor(descriptor: SegmentDescriptor, inner: Image) {
    this.descriptor = descriptor;
    this.size = inner.size;
    this.source = inner.source;
    this.#inner = inner;
  }

  get closed(): boolean {
    return this.#inner.closed;
  }
  get failed(): Error | undefined {
    return this.#inner.failed;
  }
  write(offset: number, length: number): PostStatus {
    return this.#inner.write(offset, length);
  }
  put(offset: number, data: Uint8Array): PostStatus {
    return this.#inner.put(offset, data);
  }
  publish(byteOffset: number, value: number): PostStatus {
    return this.#inner.publish(byteOffset, value);
  }
  notify(byteOffset: number, count?: number): PostStatus {
    return this.#inner.notify(byteOffset, count);
  }
  progress(): number {
    return this.#inner.progress();
  }
  settled(): Promise<void> {
    return this.#inner.settled();
  }
  load(byteOffset: number): number {
    return this.#inner.load(byteOffset);
  }
  add(byteOffset: number, delta: number): number {
    return this.#inner.add(byteOffset, delta);
  }
  compareExchange(byteOffset: number, expected: number, value: number): number {
    return this.#inner.compareExchange(byteOffset, expected, value);
  }
  read(offset: number, into: Uint8Array): void {
    this.#inner.read(offset, into);
  }
  loadAsync(byteOffset: number): Promise<number> {
    return this.#inner.loadAsync(byteOffset);
  }
  addAsync(byteOffset: number, delta: number): Promise<number> {
    return this.#inner.addAsync(byteOffset, delta);
  }
  compareExchangeAsync(byteOffset: number, expected: number, value: number): Promise<number> {
    return this.#inner.compareExchangeAsync(byteOffset, expected, value);
  }
  readAsync(offset: number, into: Uint8Array): Promise<void> {
    return this.#inner.readAsync(offset, into);
  }
  dispose(): void {
    this.#inner.dispose();
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** The synchronous this-node forms, over the node's shm objects `agent.<name>`. */
export class RdmaLocalNode {
  readonly node: string;
  readonly #shm: ShmTransport;
  readonly #targets = new Set<Target>();

  constructor(node: string) {
    this.node = node;
    this.#shm = new ShmTransport({ node });
  }

  #describe(name: string, size: number): SegmentDescriptor {
    return { transport: 'rdma', node: this.node, name, size, key: 0 };
  }

  #shmDescriptor(descriptor: SegmentDescriptor): SegmentDescriptor {
    if (!descriptor || descriptor.transport !== 'rdma') throw new UsageError(`descriptor of transport ${JSON.stringify(descriptor?.transport)} given to the rdma transport`);
    if (descriptor.node !== this.node) {
      throw new UsageError(`target ${JSON.stringify(descriptor.name)} lives on node ${JSON.stringify(descriptor.node)}, not on ${this.node}: use the *Async form`);
    }
    return { transport: 'shm', node: this.node, name: targetRegionName(descriptor.name), size: descriptor.size, key: 0 };
  }

  #track(target: Target): Target {
    const t: RdmaLocalTarget = new RdmaLocalTarget(this.#describe(target.descriptor.name.slice(targetRegionName('').length), target.size), target, () => this.#targets.delete(t));
    this.#targets.add(t);
    return t;
  }

  expose(name: string, size: number, options: ExposeOptions = {}): Target {
    if (options.node !== undefined && options.node !== this.node) {
      throw new UsageError(`expose() allocates on this node (${this.node}); for node ${JSON.stringify(options.node)} use exposeAsync`);
    }
    return this.#track(this.#shm.expose(targetRegionName(name), size, { replaceStale: options.replaceStale }));
  }

  openLocal(descriptor: SegmentDescriptor, options?: OpenTargetOptions): Target {
    return this.#track(this.#shm.openLocal(this.#shmDescriptor(descriptor), options));
  }

  attach(descriptor: SegmentDescriptor, options?: OpenTargetOptions): Image {
    const inner = this.#shm.attach(this.#shmDescriptor(descriptor), options);
    return new RdmaLocalImage(this.#describe(descriptor.name, inner.size), inner);
  }

  find(name: string): SegmentDescriptor | undefined {
    const found = this.#shm.find(targetRegionName(name));
    return found && this.#describe(name, found.size);
  }

  isAlive(who: ProcessIdentity): boolean {
    return this.#shm.isAlive(who);
  }

  remove(name: string): void {
    this.#shm.remove(targetRegionName(name));
  }

  /** Close every handle still open (the owners' remove their names). */
  dispose(): void {
    for (const target of [...this.#targets]) target.dispose();
  }
}
