/**
 * The in-process transport, for tests: a Fabric holds nodes, each a table of named targets
 * (SharedArrayBuffers), and the simulated processes that use them. Several InProcessTransports on
 * one Fabric stand for several processes, possibly on several nodes.
 *
 * It deliberately does NOT share addresses the way shm does: an image's source is a separate
 * buffer, copied to the target on write() — the way an RDMA image behaves — so a mechanism that
 * fills its source and forgets write() loses its bytes here, and its tests fail. Targets may be
 * allocated on another node (exposeAsync({ node })), standing for the remote-allocation request an
 * RDMA transport makes through the remote node's manager. As the contract says (types.ts), the
 * synchronous calls serve this node only; the async forms reach any node, answering after a
 * macrotask as a remote reply would.
 *
 * Counting: every load/add/compareExchange/read an image makes (sync or async) — each one a
 * remote round trip under RDMA — is counted per target name (Fabric.operations), so tests can
 * check that a mechanism's per-message path makes none (the transport contract, types.ts).
 *
 * Waiting: notify() resolves waitAsync() promises at once; a 1 ms timer re-checks the word too.
 * A synchronous wait() in a single thread can only time out (nobody else runs): it returns
 * 'not-equal' or 'timed-out' after at most `timeoutMs` (default 0, not for ever).
 */
import { ClosedError, CorruptionError, UsageError } from '../errors.js';
import type { WaitOptions, WaitResult } from '../shm/futex.js';
import { validateName } from '../shm/names.js';
import { type Exposed, type ExposeOptions, type Image, PostStatus, type ProcessIdentity, type SegmentDescriptor, type Target, type Transport } from './types.js';

/** Alignment required of atomic words (types.ts, contract 4). */
const ATOMIC_ALIGNMENT: 4 | 8 = 8;

/** Remote operations images made on one target (each a round trip under RDMA). */
export interface RemoteOperations {
  load: number;
  add: number;
  compareExchange: number;
  read: number;
}

export type RemoteOperation = keyof RemoteOperations;

interface Slot {
  readonly descriptor: SegmentDescriptor;
  readonly buffer: SharedArrayBuffer;
  readonly waiters: Set<Waiter>;
}

interface Waiter {
  byteOffset: number;
  check(): boolean;
}

/** The simulated machines and processes of an in-process test. */
export class Fabric {
  readonly #nodes = new Map<string, Map<string, Slot>>();
  readonly #alive = new Map<number, boolean>();
  #nextPid = 1;
  #timer: ReturnType<typeof setInterval> | undefined;
  readonly #waiting = new Set<{ slot: Slot; waiter: Waiter }>();
  readonly #operations = new Map<string, RemoteOperations>();

  /** Count one remote operation an image made on the target `node`/`name`. */
  count(node: string, name: string, operation: RemoteOperation): void {
    const key = `${name}@${node}`;
    let ops = this.#operations.get(key);
    if (!ops) {
      ops = { load: 0, add: 0, compareExchange: 0, read: 0 };
      this.#operations.set(key, ops);
    }
    ops[operation]++;
  }

  /**
   * Remote operations images made so far, per target ("name@node"), with their sum under
   * "total". A copy: take one before and one after a workload and compare.
   */
  operations(): Map<string, RemoteOperations> & { total: number } {
    const copy = new Map<string, RemoteOperations>() as Map<string, RemoteOperations> & { total: number };
    let total = 0;
    for (const [key, ops] of this.#operations) {
      copy.set(key, { ...ops });
      total += ops.load + ops.add + ops.compareExchange + ops.read;
    }
    copy.total = total;
    return copy;
  }

  readonly #reachable = new Set<string>();

  /** A new transport: one simulated process on `node`. */
  transport(node = 'node0'): InProcessTransport {
    this.#reachable.add(node);
    const pid = this.#nextPid++;
    this.#alive.set(pid, true);
    return new InProcessTransport(this, node, { pid, start: 0n });
  }

  /** Simulate the death of a process (its targets stay, as a killed process's shm does). */
  kill(pid: number): void {
    this.#alive.set(pid, false);
  }

  /** A node some process of this fabric runs on (UsageError otherwise: nothing answers there). */
  reach(node: string): void {
    if (!this.#reachable.has(node)) throw new UsageError(`node ${JSON.stringify(node)} is not reachable: no process of this fabric runs there`);
  }

  isAlive(pid: number): boolean {
    return this.#alive.get(pid) === true;
  }

  /** Names of the targets on `node` (for leak checks). */
  names(node = 'node0'): string[] {
    return [...(this.#nodes.get(node)?.keys() ?? [])];
  }

  table(node: string): Map<string, Slot> {
    let table = this.#nodes.get(node);
    if (!table) {
      table = new Map();
      this.#nodes.set(node, table);
    }
    return table;
  }

  /** Register a pending async waiter; a 1 ms timer re-checks all of them. */
  park(slot: Slot, waiter: Waiter): void {
    const entry = { slot, waiter };
    slot.waiters.add(waiter);
    this.#waiting.add(entry);
    if (!this.#timer) {
      this.#timer = setInterval(() => {
        for (const e of this.#waiting) {
          if (e.waiter.check()) {
            this.#waiting.delete(e);
            e.slot.waiters.delete(e.waiter);
          }
        }
        if (this.#waiting.size === 0) {
          clearInterval(this.#timer);
          this.#timer = undefined;
        }
      }, 1);
    }
  }

  unpark(slot: Slot, waiter: Waiter): void {
    slot.waiters.delete(waiter);
    for (const e of this.#waiting) if (e.waiter === waiter) this.#waiting.delete(e);
  }
}

export class InProcessTransport implements Transport {
  readonly kind = 'inproc';
  readonly node: string;
  readonly self: ProcessIdentity;
  readonly fabric: Fabric;

  constructor(fabric: Fabric, node: string, self: ProcessIdentity) {
    this.fabric = fabric;
    this.node = node;
    this.self = self;
  }

  expose(name: string, size: number, options: ExposeOptions = {}): Target {
    if (options.node !== undefined && options.node !== this.node) {
      throw new UsageError(`expose on node ${JSON.stringify(options.node)} from ${this.node}: another node is reached with exposeAsync (transport contract 6)`);
    }
    return this.#expose(name, size, options);
  }

  #expose(name: string, size: number, options: ExposeOptions): Target {
    validateName(name);
    if (!Number.isSafeInteger(size) || size <= 0) throw new UsageError(`target size must be a positive whole number, got ${String(size)}`);
    const node = options.node ?? this.node;
    const table = this.fabric.table(node);
    const existing = table.get(name);
    if (existing) {
      if (!options.replaceStale || this.fabric.isAlive(ownerOf(existing))) {
        throw new UsageError(`target name ${JSON.stringify(name)} is in use by a live process`);
      }
      table.delete(name);
    }
    const descriptor: SegmentDescriptor = { transport: this.kind, node, name, size, key: this.self.pid };
    const slot: Slot = { descriptor, buffer: new SharedArrayBuffer(Math.ceil(size / 4) * 4), waiters: new Set() };
    table.set(name, slot);
    return new InProcessTarget(this, slot, true);
  }

  // The async forms serve any node — a simulated remote call: each answers after a macrotask, as
  // a reply over a network would — while the synchronous ones refuse another node (contract 6).
  async exposeAsync(name: string, size: number, options: ExposeOptions = {}): Promise<Exposed> {
    await remoteHop();
    this.fabric.reach(options.node ?? this.node);
    return this.#expose(name, size, options);
  }

  async attachAsync(descriptor: SegmentDescriptor): Promise<Image> {
    await remoteHop();
    this.fabric.reach(descriptor.node);
    return new InProcessImage(this, this.#slot(descriptor));
  }

  async findAsync(name: string, node?: string): Promise<SegmentDescriptor | undefined> {
    await remoteHop();
    this.fabric.reach(node ?? this.node);
    return this.fabric.table(node ?? this.node).get(name)?.descriptor;
  }

  async isAliveAsync(who: ProcessIdentity, node?: string): Promise<boolean> {
    await remoteHop();
    this.fabric.reach(node ?? this.node);
    return this.fabric.isAlive(who.pid);
  }

  async removeAsync(name: string, node?: string): Promise<void> {
    await remoteHop();
    this.fabric.reach(node ?? this.node);
    this.fabric.table(node ?? this.node).delete(name);
  }

  #slot(descriptor: SegmentDescriptor): Slot {
    if (descriptor.transport !== this.kind) throw new UsageError(`descriptor of transport ${JSON.stringify(descriptor.transport)} given to the inproc transport`);
    const slot = this.fabric.table(descriptor.node).get(descriptor.name);
    if (!slot) throw new UsageError(`no target named ${JSON.stringify(descriptor.name)} on ${descriptor.node}`);
    if (slot.descriptor.size !== descriptor.size) {
      throw new CorruptionError(descriptor.name, `descriptor says ${descriptor.size} bytes, the target has ${slot.descriptor.size}`);
    }
    return slot;
  }

  openLocal(descriptor: SegmentDescriptor): Target {
    if (descriptor.node !== this.node) {
      throw new UsageError(`target ${JSON.stringify(descriptor.name)} lives on node ${JSON.stringify(descriptor.node)}, not on ${this.node}`);
    }
    return new InProcessTarget(this, this.#slot(descriptor), false);
  }

  attach(descriptor: SegmentDescriptor): Image {
    if (descriptor.node !== this.node) {
      throw new UsageError(`attach of ${JSON.stringify(descriptor.name)} on node ${JSON.stringify(descriptor.node)} from ${this.node}: another node is reached with attachAsync (transport contract 6)`);
    }
    return new InProcessImage(this, this.#slot(descriptor));
  }

  find(name: string, node?: string): SegmentDescriptor | undefined {
    if (node !== undefined && node !== this.node) return undefined; // another node: findAsync
    return this.fabric.table(this.node).get(name)?.descriptor;
  }

  isAlive(who: ProcessIdentity, node?: string): boolean {
    if (node !== undefined && node !== this.node) return false; // another node: isAliveAsync
    return this.fabric.isAlive(who.pid);
  }

  remove(name: string, node?: string): void {
    if (node !== undefined && node !== this.node) return; // another node: removeAsync
    this.fabric.table(this.node).delete(name);
  }

  /** Wake async waiters of `slot`'s word at `byteOffset`. */
  notify(slot: Slot, byteOffset: number): number {
    let woken = 0;
    for (const waiter of slot.waiters) {
      if (waiter.byteOffset === byteOffset && waiter.check()) {
        this.fabric.unpark(slot, waiter);
        woken++;
      }
    }
    return woken;
  }
}

function ownerOf(slot: Slot): number {
  return slot.descriptor.key; // the exposing pid, kept in the key field
}

function checkRange(what: string, offset: number, length: number, size: number): void {
  if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > size) {
    throw new UsageError(`${what} of ${length} bytes at ${offset} is outside the segment's ${size} bytes`);
  }
}

/** A simulated network hop: the answer of a remote call comes in a later macrotask. */
function remoteHop(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** A word's index for Int32Array Atomics; atomic words are 8-aligned and own 8 bytes (types.ts, contract 4). */
function checkWord(byteOffset: number, size: number, alignment: 4 | 8 = 4): number {
  if (!Number.isInteger(byteOffset) || byteOffset < 0 || byteOffset % alignment !== 0 || byteOffset + alignment > size) {
    throw new UsageError(`word offset ${byteOffset} must be a multiple of ${alignment} within the segment's ${size} bytes`);
  }
  return byteOffset >> 2;
}

class InProcessTarget implements Target {
  readonly descriptor: SegmentDescriptor;
  readonly size: number;
  readonly bytes: Uint8Array;
  readonly int32: Int32Array;
  readonly isOwner: boolean;
  readonly #transport: InProcessTransport;
  readonly #slot: Slot;
  #closed = false;

  constructor(transport: InProcessTransport, slot: Slot, isOwner: boolean) {
    this.#transport = transport;
    this.#slot = slot;
    this.descriptor = slot.descriptor;
    this.size = slot.descriptor.size;
    this.bytes = new Uint8Array(slot.buffer, 0, this.size);
    this.int32 = new Int32Array(slot.buffer);
    this.isOwner = isOwner;
  }

  get closed(): boolean {
    return this.#closed;
  }

  #check(): void {
    if (this.#closed) throw new ClosedError(`target ${JSON.stringify(this.descriptor.name)}`);
  }

  wait(byteOffset: number, expected: number, options: WaitOptions = {}): WaitResult {
    this.#check();
    const index = checkWord(byteOffset, this.size);
    if (Atomics.load(this.int32, index) !== (expected | 0)) return 'not-equal';
    const timeoutMs = options.timeoutMs ?? 0;
    const result = Atomics.wait(this.int32, index, expected | 0, Math.min(timeoutMs, 1000));
    return result === 'timed-out' ? 'timed-out' : 'ok';
  }

  waitAsync(byteOffset: number, expected: number, options: WaitOptions = {}): Promise<WaitResult> {
    this.#check();
    const index = checkWord(byteOffset, this.size);
    if (Atomics.load(this.int32, index) !== (expected | 0)) return Promise.resolve('not-equal');
    const deadline = options.timeoutMs === undefined ? Infinity : performance.now() + options.timeoutMs;
    return new Promise<WaitResult>((resolve, reject) => {
      this.#transport.fabric.park(this.#slot, {
        byteOffset,
        check: () => {
          if (this.#closed) {
            reject(new ClosedError(`target ${JSON.stringify(this.descriptor.name)}`));
            return true;
          }
          if (Atomics.load(this.int32, index) !== (expected | 0)) {
            resolve('ok');
            return true;
          }
          if (performance.now() >= deadline) {
            resolve('timed-out');
            return true;
          }
          return false;
        },
      });
    });
  }

  wake(byteOffset: number): number {
    this.#check();
    checkWord(byteOffset, this.size);
    return this.#transport.notify(this.#slot, byteOffset);
  }

  dispose(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.isOwner) {
      const table = this.#transport.fabric.table(this.descriptor.node);
      if (table.get(this.descriptor.name) === this.#slot) table.delete(this.descriptor.name);
    }
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

class InProcessImage implements Image {
  readonly descriptor: SegmentDescriptor;
  readonly size: number;
  /** A private buffer: the target sees nothing of it until write(). */
  readonly source: Uint8Array;
  readonly #target: Uint8Array;
  readonly #int32: Int32Array;
  readonly #transport: InProcessTransport;
  readonly #slot: Slot;
  #closed = false;

  constructor(transport: InProcessTransport, slot: Slot) {
    this.#transport = transport;
    this.#slot = slot;
    this.descriptor = slot.descriptor;
    this.size = slot.descriptor.size;
    this.source = new Uint8Array(this.size);
    this.#target = new Uint8Array(slot.buffer, 0, this.size);
    this.#int32 = new Int32Array(slot.buffer);
  }

  get closed(): boolean {
    return this.#closed;
  }

  #check(): void {
    if (this.#closed) throw new ClosedError(`image of ${JSON.stringify(this.descriptor.name)}`);
  }

  get failed(): Error | undefined {
    return undefined;
  }

  write(offset: number, length: number): PostStatus {
    this.#check();
    checkRange('write', offset, length, this.size);
    this.#target.set(this.source.subarray(offset, offset + length), offset);
    return PostStatus.DONE;
  }

  put(offset: number, data: Uint8Array): PostStatus {
    this.#check();
    checkRange('put', offset, data.length, this.size);
    this.source.set(data, offset);
    return this.write(offset, data.length);
  }

  publish(byteOffset: number, value: number): PostStatus {
    this.#check();
    Atomics.store(this.#int32, checkWord(byteOffset, this.size), value);
    return PostStatus.DONE;
  }

  notify(byteOffset: number): PostStatus {
    this.#check();
    checkWord(byteOffset, this.size);
    this.#transport.notify(this.#slot, byteOffset);
    return PostStatus.DONE;
  }

  progress(): number {
    this.#check();
    return 0;
  }

  async settled(): Promise<void> {
    this.#check();
  }

  /** The synchronous atomics and read serve a target on this node only (contract 5). */
  #local(what: string): void {
    if (this.descriptor.node !== this.#transport.node) {
      throw new UsageError(`${what} on ${JSON.stringify(this.descriptor.name)} of node ${this.descriptor.node} from ${this.#transport.node}: use ${what}Async (transport contract 5)`);
    }
  }

  #atomic(byteOffset: number, operation: RemoteOperation): number {
    this.#check();
    this.#transport.fabric.count(this.descriptor.node, this.descriptor.name, operation);
    return checkWord(byteOffset, this.size, ATOMIC_ALIGNMENT);
  }

  load(byteOffset: number): number {
    this.#local('load');
    return Atomics.load(this.#int32, this.#atomic(byteOffset, 'load'));
  }

  add(byteOffset: number, delta: number): number {
    this.#local('add');
    return Atomics.add(this.#int32, this.#atomic(byteOffset, 'add'), delta);
  }

  compareExchange(byteOffset: number, expected: number, value: number): number {
    this.#local('compareExchange');
    return Atomics.compareExchange(this.#int32, this.#atomic(byteOffset, 'compareExchange'), expected, value);
  }

  read(offset: number, into: Uint8Array): void {
    this.#local('read');
    this.#readAt(offset, into);
  }

  #readAt(offset: number, into: Uint8Array): void {
    this.#check();
    checkRange('read', offset, into.length, this.size);
    this.#transport.fabric.count(this.descriptor.node, this.descriptor.name, 'read');
    into.set(this.#target.subarray(offset, offset + into.length));
  }

  async loadAsync(byteOffset: number): Promise<number> {
    const index = this.#atomic(byteOffset, 'load');
    await remoteHop();
    return Atomics.load(this.#int32, index);
  }

  async addAsync(byteOffset: number, delta: number): Promise<number> {
    const index = this.#atomic(byteOffset, 'add');
    await remoteHop();
    return Atomics.add(this.#int32, index, delta);
  }

  async compareExchangeAsync(byteOffset: number, expected: number, value: number): Promise<number> {
    const index = this.#atomic(byteOffset, 'compareExchange');
    await remoteHop();
    return Atomics.compareExchange(this.#int32, index, expected, value);
  }

  async readAsync(offset: number, into: Uint8Array): Promise<void> {
    this.#check();
    checkRange('read', offset, into.length, this.size);
    await remoteHop();
    this.#readAt(offset, into);
  }

  dispose(): void {
    this.#closed = true;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
