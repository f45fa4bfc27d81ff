/**
 * The shm transport: targets are SharedRegions on this machine, and an image is the same region
 * mapped into the writer (seed 000 claim 3: "the source segment is an image of the target segment
 * memory-mapped into the memory address space of the sending machine"). So write() moves nothing,
 * publish() is one Atomics.store, notify() one futex wake: no FFI call per message except a wake.
 *
 * Every call completes at once (the node is this machine): posts return PostStatus.DONE, the
 * async forms resolve with what the synchronous ones return, and another node is refused.
 *
 * A target this ShmTransport exposed is mapped once and its handles are counted (a process that
 * both exposes and attaches a target maps it once); others' targets are mapped per handle. The handle returned by expose() owns the name:
 * its dispose() unlinks it; the mapping goes when the last handle is disposed.
 */
import { statSync } from 'node:fs';
import { hostname } from 'node:os';
import { ClosedError, CorruptionError, SystemError, UsageError } from '../errors.js';
import type { FutexWord, WaitOptions, WaitResult } from '../shm/futex.js';
import { SHM_DIRECTORY, userPrefix, validateName } from '../shm/names.js';
import { isProcessAlive, selfPid, selfStartTime } from '../shm/process-identity.js';
import { REGION_HEADER_SIZE } from '../shm/region-layout.js';
import { SharedRegion } from '../shm/region.js';
import { type Exposed, type ExposeOptions, type Image, type OpenTargetOptions, PostStatus, type ProcessIdentity, type SegmentDescriptor, type Target, type Transport } from './types.js';

/** Alignment required of atomic words (types.ts, contract 4). */
const ATOMIC_ALIGNMENT: 4 | 8 = 8;

/** This machine's node name for descriptors: the hostname, reduced to descriptor characters. */
export function localNodeName(): string {
  const name = hostname().replace(/[^A-Za-z0-9._:-]/g, '-').slice(0, 64);
  return name || 'localhost';
}

/** How long openLocal()/attach() wait for another process to finish initialising a target. */
const DEFAULT_OPEN_TIMEOUT_MS = 2000;

interface Mapped {
  readonly region: SharedRegion;
  refs: number;
  readonly words: Map<number, FutexWord>;
}

function futexOf(mapped: Mapped, byteOffset: number): FutexWord {
  let word = mapped.words.get(byteOffset);
  if (!word) {
    word = mapped.region.futex(byteOffset);
    mapped.words.set(byteOffset, word);
  }
  return word;
}

function checkRange(what: string, offset: number, length: number, size: number): void {
  if (!(offset >= 0 && length >= 0 && offset + length <= size) || !Number.isInteger(offset) || !Number.isInteger(length)) {
    throw new UsageError(`${what} of ${length} bytes at ${offset} is outside the segment's ${size} bytes`);
  }
}

export class ShmTransport implements Transport {
  readonly kind = 'shm';
  readonly node: string;
  readonly self: ProcessIdentity = { pid: selfPid, start: selfStartTime };
  readonly #mapped = new Map<string, Mapped>();

  constructor(options: { node?: string } = {}) {
    this.node = options.node ?? localNodeName();
  }

  expose(name: string, size: number, options: ExposeOptions = {}): Target {
    validateName(name);
    if (options.node !== undefined && options.node !== this.node) {
      throw new UsageError(`the shm transport allocates on this node (${this.node}) only, not on ${JSON.stringify(options.node)}`);
    }
    if (this.#mapped.has(name)) throw new UsageError(`target ${JSON.stringify(name)} is already open in this process`);
    let region: SharedRegion;
    try {
      region = SharedRegion.create(name, size);
    } catch (error) {
      if (!(error instanceof SystemError) || error.errnoName !== 'EEXIST') throw error;
      const stale = options.replaceStale ? SharedRegion.listStale().find((s) => s.name === name) : undefined;
      if (!stale) throw new UsageError(`target name ${JSON.stringify(name)} is in use by a live process`);
      this.remove(name);
      region = SharedRegion.create(name, size);
    }
    const mapped: Mapped = { region, refs: 1, words: new Map() };
    this.#mapped.set(name, mapped);
    return new ShmTarget(this, mapped, this.#describe(region), true);
  }

  async exposeAsync(name: string, size: number, options: ExposeOptions = {}): Promise<Exposed> {
    return this.expose(name, size, options);
  }

  async attachAsync(descriptor: SegmentDescriptor, options: OpenTargetOptions = {}): Promise<Image> {
    return this.attach(descriptor, options);
  }

  async findAsync(name: string, node?: string): Promise<SegmentDescriptor | undefined> {
    return this.find(name, node);
  }

  async isAliveAsync(who: ProcessIdentity, node?: string): Promise<boolean> {
    return this.isAlive(who, node);
  }

  async removeAsync(name: string, node?: string): Promise<void> {
    this.remove(name, node);
  }

  openLocal(descriptor: SegmentDescriptor, options: OpenTargetOptions = {}): Target {
    const mapped = this.#acquire(descriptor, options);
    return new ShmTarget(this, mapped, this.#describe(mapped.region), false);
  }

  attach(descriptor: SegmentDescriptor, options: OpenTargetOptions = {}): Image {
    const mapped = this.#acquire(descriptor, options);
    return new ShmImage(this, mapped, this.#describe(mapped.region));
  }

  find(name: string, node?: string): SegmentDescriptor | undefined {
    if (node !== undefined && node !== this.node) return undefined;
    try {
      validateName(name);
      const size = statSync(`${SHM_DIRECTORY}/${userPrefix()}${name}`).size - REGION_HEADER_SIZE;
      return size > 0 ? { transport: this.kind, node: this.node, name, size, key: 0 } : undefined;
    } catch {
      return undefined;
    }
  }

  isAlive(who: ProcessIdentity, node?: string): boolean {
    if (node !== undefined && node !== this.node) return false;
    return isProcessAlive(who.pid, who.start);
  }

  remove(name: string, node?: string): void {
    if (node !== undefined && node !== this.node) return;
    try {
      SharedRegion.unlink(name);
    } catch (error) {
      if (!(error instanceof SystemError) || error.errnoName !== 'ENOENT') throw error;
    }
  }

  #describe(region: SharedRegion): SegmentDescriptor {
    return { transport: this.kind, node: this.node, name: region.name, size: region.size, key: 0 };
  }

  #acquire(descriptor: SegmentDescriptor, options: OpenTargetOptions): Mapped {
    const { transport, node, name, size } = descriptor;
    if (transport !== this.kind) throw new UsageError(`descriptor of transport ${JSON.stringify(transport)} given to the shm transport`);
    if (node !== this.node) throw new UsageError(`target ${JSON.stringify(name)} lives on node ${JSON.stringify(node)}, not on ${this.node}`);
    // Only a target this transport exposed is shared: another process's name may be removed and
    // re-created meanwhile, so each handle on it maps whatever the name holds now.
    let mapped = this.#mapped.get(name);
    if (!mapped) {
      let region: SharedRegion;
      try {
        region = SharedRegion.open(name, { timeoutMs: options.timeoutMs ?? DEFAULT_OPEN_TIMEOUT_MS });
      } catch (error) {
        if (error instanceof SystemError && error.errnoName === 'ENOENT') throw new UsageError(`no target named ${JSON.stringify(name)} on ${node}`);
        throw error;
      }
      mapped = { region, refs: 0, words: new Map() };
    }
    if (mapped.region.size !== size) {
      if (mapped.refs === 0) this.#drop(mapped);
      throw new CorruptionError(name, `descriptor says ${size} bytes, the target has ${mapped.region.size}`);
    }
    mapped.refs++;
    return mapped;
  }

  /** A handle is done with `mapped`; the owner's handle also removes the name. */
  release(mapped: Mapped, owner: boolean): void {
    if (owner) mapped.region.unlink();
    if (--mapped.refs <= 0) this.#drop(mapped);
  }

  #drop(mapped: Mapped): void {
    if (this.#mapped.get(mapped.region.name) === mapped) this.#mapped.delete(mapped.region.name);
    mapped.region.close();
  }
}

class ShmTarget implements Target {
  readonly descriptor: SegmentDescriptor;
  readonly size: number;
  readonly bytes: Uint8Array;
  readonly int32: Int32Array;
  readonly isOwner: boolean;
  readonly #transport: ShmTransport;
  readonly #mapped: Mapped;
  #closed = false;

  constructor(transport: ShmTransport, mapped: Mapped, descriptor: SegmentDescriptor, isOwner: boolean) {
    this.#transport = transport;
    this.#mapped = mapped;
    this.descriptor = descriptor;
    this.size = descriptor.size;
    this.bytes = mapped.region.bytes;
    this.int32 = mapped.region.int32;
    this.isOwner = isOwner;
  }

  get closed(): boolean {
    return this.#closed;
  }

  #live(): Mapped {
    if (this.#closed) throw new ClosedError(`target ${JSON.stringify(this.descriptor.name)}`);
    return this.#mapped;
  }

  wait(byteOffset: number, expected: number, options?: WaitOptions): WaitResult {
    return futexOf(this.#live(), byteOffset).wait(expected, options);
  }

  waitAsync(byteOffset: number, expected: number, options?: WaitOptions): Promise<WaitResult> {
    return futexOf(this.#live(), byteOffset).waitAsync(expected, options);
  }

  wake(byteOffset: number, count?: number): number {
    return futexOf(this.#live(), byteOffset).wake(count);
  }

  dispose(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#transport.release(this.#mapped, this.isOwner);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

class ShmImage implements Image {
  readonly descriptor: SegmentDescriptor;
  readonly size: number;
  readonly source: Uint8Array;
  readonly #int32: Int32Array;
  readonly #transport: ShmTransport;
  readonly #mapped: Mapped;
  #closed = false;

  constructor(transport: ShmTransport, mapped: Mapped, descriptor: SegmentDescriptor) {
    this.#transport = transport;
    this.#mapped = mapped;
    this.descriptor = descriptor;
    this.size = descriptor.size;
    this.source = mapped.region.bytes;
    this.#int32 = mapped.region.int32;
  }

  get closed(): boolean {
    return this.#closed;
  }

  #check(): void {
    if (this.#closed) throw new ClosedError(`image of ${JSON.stringify(this.descriptor.name)}`);
  }

  get failed(): Error | undefined {
    return undefined; // nothing is ever in flight
  }

  write(offset: number, length: number): PostStatus {
    // The source is the target's memory: the bytes are there already.
    if (this.#closed) this.#check();
    if (!(offset >= 0 && offset + length <= this.size)) checkRange('write', offset, length, this.size);
    return PostStatus.DONE;
  }

  put(offset: number, data: Uint8Array): PostStatus {
    if (this.#closed) this.#check();
    if (!(offset >= 0 && offset + data.length <= this.size)) checkRange('put', offset, data.length, this.size);
    this.source.set(data, offset);
    return PostStatus.DONE;
  }

  publish(byteOffset: number, value: number): PostStatus {
    // Ordering point: Atomics.store is sequentially consistent; every earlier plain store to the
    // mapping is visible to a reader that loads this word with Atomics.load and sees `value`.
    if (this.#closed || (byteOffset & 3) !== 0 || !(byteOffset >= 0 && byteOffset + 4 <= this.size)) this.#checkWord(byteOffset, 4);
    Atomics.store(this.#int32, byteOffset >> 2, value);
    return PostStatus.DONE;
  }

  notify(byteOffset: number, count?: number): PostStatus {
    this.#check();
    futexOf(this.#mapped, byteOffset).wake(count);
    return PostStatus.DONE;
  }

  progress(): number {
    this.#check();
    return 0;
  }

  async settled(): Promise<void> {
    this.#check();
  }

  /** Contract 4: atomic words are 8-aligned; publish words 4-aligned. */
  #checkWord(byteOffset: number, alignment: 4 | 8): void {
    this.#check();
    if (!Number.isInteger(byteOffset) || byteOffset < 0 || byteOffset % alignment !== 0 || byteOffset + alignment > this.size) {
      throw new UsageError(`word offset ${byteOffset} must be a multiple of ${alignment} within the segment's ${this.size} bytes`);
    }
  }

  load(byteOffset: number): number {
    this.#checkWord(byteOffset, ATOMIC_ALIGNMENT);
    return Atomics.load(this.#int32, byteOffset >> 2);
  }

  add(byteOffset: number, delta: number): number {
    this.#checkWord(byteOffset, ATOMIC_ALIGNMENT);
    return Atomics.add(this.#int32, byteOffset >> 2, delta);
  }

  compareExchange(byteOffset: number, expected: number, value: number): number {
    this.#checkWord(byteOffset, ATOMIC_ALIGNMENT);
    return Atomics.compareExchange(this.#int32, byteOffset >> 2, expected, value);
  }

  read(offset: number, into: Uint8Array): void {
    this.#check();
    checkRange('read', offset, into.length, this.size);
    into.set(this.source.subarray(offset, offset + into.length));
  }

  async loadAsync(byteOffset: number): Promise<number> {
    return this.load(byteOffset);
  }

  async addAsync(byteOffset: number, delta: number): Promise<number> {
    return this.add(byteOffset, delta);
  }

  async compareExchangeAsync(byteOffset: number, expected: number, value: number): Promise<number> {
    return this.compareExchange(byteOffset, expected, value);
  }

  async readAsync(offset: number, into: Uint8Array): Promise<void> {
    this.read(offset, into);
  }

  dispose(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#transport.release(this.#mapped, false);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
