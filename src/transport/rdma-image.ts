/**
 * RdmaImage — a writer's image of a target that lives on another node (issue 12: the transport
 * interface's Image, plus rdma-types.ts's extras), reached
 * through that node's agent (src/agent/). Its source is a block of the connection's registered
 * heap (seed 004, rdma-channel.ts), laid out like the target: write() sends source ranges to the
 * same target offsets as RDMA WRITEs through seed 002's request engine (coalesced, divided,
 * continued as send slots free up); publish() is a 4-byte WRITE posted after them on the same RC
 * queue pair, so a reader that sees the word sees every byte written before it; notify() is the
 * agent's doorbell (a SEND, also after them → FUTEX_WAKE on the target's node); fetchAdd /
 * compareSwap / load64 are RDMA atomics on 8-aligned 64-bit words; read() is an RDMA READ.
 *
 * Posting returns a status (POSTED; DONE for nothing to move) and never blocks nor is refused;
 * completions are reaped by progress() or, between turns of the event loop, by the agent link's
 * pump. A failed completion (RemoteAccessError for a bad key or a range outside the target, the
 * agent gone: PeerGoneError …) becomes this image's error: every later call throws it.
 *
 * Memory: the bytes of a written range must not change until its write completed (`pending`,
 * `settled()`), as for any DMA. The source stays allocated and registered until dispose() and the
 * completion of every post (dispose() with posts in flight releases it when they complete).
 */
import type { AgentClient, TargetDescriptor } from '../agent/client.js';
import type { RemoteRegion, RequestElement } from '../coalesce/types.js';
import { ClosedError, UsageError } from '../errors.js';
import type { HeapBuffer } from '../regcache/types.js';
import { RdmaChannel, type RequestHandler } from './rdma-channel.js';
import type { AsyncImage } from './rdma-types.js';
import { PostStatus, type SegmentDescriptor } from './types.js';

/** publish() words are allocated this many at a time (each is its own 4 bytes of registered memory until its WRITE completed). */
export const PUBLISH_SLOTS = 64;
const WRITE_TAG = -1;

function checkRange(what: string, offset: number, length: number, size: number): void {
  if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > size) {
    throw new UsageError(`${what}: range [${offset}, ${offset + length}) is outside the image's ${size} bytes`);
  }
}

export class RdmaImage implements AsyncImage {
  readonly descriptor: SegmentDescriptor;
  readonly size: number;
  readonly source: Uint8Array;
  readonly #channel: RdmaChannel;
  readonly #target: TargetDescriptor;
  readonly #remote: RemoteRegion;
  readonly #buffer: HeapBuffer;
  readonly #wordChunks: HeapBuffer[] = [];
  readonly #wordViews: DataView[] = [];
  readonly #wordFree: number[] = [];
  readonly #waiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  readonly #handler: RequestHandler = { settled: (tag, error) => this.#settledOne(tag, error) };
  #pending = 0;
  #completed = 0;
  #failed: Error | undefined;
  #closed = false;
  #released = false;

  private constructor(channel: RdmaChannel, target: TargetDescriptor) {
    if (!Number.isSafeInteger(target.size) || target.size < 1) throw new UsageError(`target ${JSON.stringify(target.name)} has no bytes (size ${target.size})`);
    this.#channel = channel;
    this.#target = target;
    this.size = target.size;
    this.descriptor = { transport: 'rdma', node: target.node, name: target.name, size: target.size, key: target.rkey };
    this.#remote = { addr: target.base, rkey: target.rkey, length: target.size };
    const buffer = channel.heap.malloc(target.size);
    if (!buffer) throw new UsageError(`no room for a ${target.size}-byte source in the connection's source heap`);
    this.#buffer = buffer;
    this.source = buffer.view;
    this.source.fill(0); // laid out like a fresh target (a reused heap range holds old bytes)
  }

  /** A free publish word (slot number), allocating PUBLISH_SLOTS more when none is free. */
  #wordSlot(): number {
    const free = this.#wordFree.pop();
    if (free !== undefined) return free;
    const chunk = this.#channel.heap.malloc(PUBLISH_SLOTS * 4);
    if (!chunk) throw new UsageError('no room for publish words in the connection\'s source heap');
    const first = this.#wordChunks.length * PUBLISH_SLOTS;
    this.#wordChunks.push(chunk);
    this.#wordViews.push(new DataView(chunk.view.buffer, chunk.view.byteOffset, PUBLISH_SLOTS * 4));
    for (let i = PUBLISH_SLOTS - 1; i > 0; i--) this.#wordFree.push(first + i);
    return first;
  }

  /**
   * An image of target `name` held by the agent `client` is connected to (AgentError NOT_FOUND
   * if there is none). The image lives on that connection: it ends when the client does.
   */
  static async attach(client: AgentClient, name: string): Promise<RdmaImage> {
    const target = await client.find(name);
    return new RdmaImage(RdmaChannel.of(client), target);
  }

  /** @internal An image of `target` as obtained on `channel`'s connection (RdmaTransport; tests forge descriptors here). */
  static open(channel: RdmaChannel, target: TargetDescriptor): RdmaImage {
    channel.check();
    return new RdmaImage(channel, target);
  }

  get closed(): boolean {
    return this.#closed;
  }

  get pending(): number {
    return this.#pending;
  }

  /** @internal The connection's data plane (its engine's counters, for tests and tools). */
  get channel(): RdmaChannel {
    return this.#channel;
  }

  /** The error that failed this image, if one did. */
  get failed(): Error | undefined {
    return this.#failed;
  }

  #check(what: string): void {
    if (this.#closed) throw new ClosedError(`image of ${JSON.stringify(this.descriptor.name)} (${what})`);
    if (this.#failed) throw this.#failed;
    try {
      this.#channel.check();
    } catch (error) {
      this.#failed = error as Error;
      throw error;
    }
  }

  #done(): void {
    this.#pending--;
    this.#completed++;
    if (this.#pending > 0) return;
    if (this.#closed) this.#release();
    for (const w of this.#waiters.splice(0)) {
      if (this.#failed) w.reject(this.#failed);
      else w.resolve();
    }
  }

  #submit(elements: readonly RequestElement[], tag: number): PostStatus {
    this.#pending++; // before: the request may settle within submit
    try {
      this.#channel.submit('write', this.#remote, elements, this.#handler, tag);
    } catch (error) {
      this.#pending--;
      throw error;
    }
    return PostStatus.POSTED;
  }

  write(offset: number, length: number): PostStatus {
    this.#check('write');
    checkRange('write', offset, length, this.size);
    if (length === 0) return PostStatus.DONE;
    return this.#submit([this.#channel.element(this.#buffer, offset, length, offset)], WRITE_TAG);
  }

  writev(ranges: readonly number[]): PostStatus {
    this.#check('writev');
    if (!Array.isArray(ranges) || ranges.length % 2 !== 0) throw new UsageError('writev: ranges must be [offset0, length0, offset1, length1, …]');
    const elements: RequestElement[] = [];
    for (let i = 0; i < ranges.length; i += 2) {
      checkRange(`writev range ${i / 2}`, ranges[i], ranges[i + 1], this.size);
      if (ranges[i + 1] > 0) elements.push(this.#channel.element(this.#buffer, ranges[i], ranges[i + 1], ranges[i]));
    }
    if (elements.length === 0) return PostStatus.DONE;
    return this.#submit(elements, WRITE_TAG);
  }

  put(offset: number, data: Uint8Array): PostStatus {
    this.#check('put');
    checkRange('put', offset, data?.length, this.size);
    this.source.set(data, offset);
    return this.write(offset, data.length);
  }

  publish(byteOffset: number, value: number): PostStatus {
    this.#check('publish');
    if (byteOffset % 4 !== 0) throw new UsageError(`publish: word offset ${byteOffset} is not 4-aligned`);
    checkRange('publish', byteOffset, 4, this.size);
    const slot = this.#wordSlot();
    const chunk = (slot / PUBLISH_SLOTS) | 0;
    const at = (slot % PUBLISH_SLOTS) * 4;
    this.#wordViews[chunk].setUint32(at, value >>> 0, true);
    new DataView(this.source.buffer, this.source.byteOffset).setUint32(byteOffset, value >>> 0, true);
    // Ordering point: a WRITE request after every earlier one; the engine posts in submission order.
    try {
      return this.#submit([this.#channel.element(this.#wordChunks[chunk], at, 4, byteOffset)], slot);
    } catch (error) {
      this.#wordFree.push(slot);
      throw error;
    }
  }

  notify(byteOffset: number, count = 0): PostStatus {
    this.#check('notify');
    if (byteOffset % 4 !== 0) throw new UsageError(`notify: word offset ${byteOffset} is not 4-aligned`);
    checkRange('notify', byteOffset, 4, this.size);
    if (!Number.isInteger(count) || count < 0) throw new UsageError(`notify: count must be a whole number (0: all), got ${count}`);
    this.#channel.doorbell(this.#target.name, byteOffset, count);
    return PostStatus.POSTED; // woken on the other node
  }

  /**
   * Hold this connection's posts (every image's on it) until uncork(), which posts them together:
   * fewer ibv_post_send calls (rdma-channel.ts, "Batching"). Calls must pair; nested ones count.
   */
  cork(): void {
    this.#channel.cork();
  }

  uncork(): void {
    this.#channel.uncork();
  }

  progress(): number {
    this.#check('progress');
    try {
      this.#channel.poll();
    } catch (error) {
      this.#failed ??= error as Error;
    }
    if (this.#failed) throw this.#failed;
    return this.#pending;
  }

  settled(): Promise<void> {
    if (this.#pending === 0) return this.#failed ? Promise.reject(this.#failed) : Promise.resolve();
    return new Promise<void>((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /** One of this image's WRITE requests settled (tag: WRITE_TAG, or a publish word's slot). */
  #settledOne(tag: number, error: Error | undefined): void {
    if (tag >= 0) this.#wordFree.push(tag);
    if (error) this.#failed ??= error;
    this.#done();
  }

  #wordAddress(what: string, byteOffset: number): number {
    if (!Number.isInteger(byteOffset) || byteOffset % 8 !== 0) throw new UsageError(`${what}: word offset ${byteOffset} is not 8-aligned (RDMA atomics are 64-bit words)`);
    checkRange(what, byteOffset, 8, this.size);
    const address = this.#target.base + byteOffset;
    if (address % 8 !== 0) throw new UsageError(`${what}: the target's word at ${byteOffset} is not 8-aligned in its registration (base ${this.#target.base})`);
    return address;
  }

  #atomic(what: string, opcode: 'fetch-add' | 'compare-swap', byteOffset: number, compareAdd: bigint, swap: bigint): Promise<bigint> {
    try {
      this.#check(what);
      const address = this.#wordAddress(what, byteOffset);
      if (typeof compareAdd !== 'bigint' || typeof swap !== 'bigint') throw new UsageError(`${what}: values must be bigints`);
      this.#pending++;
      const p = this.#channel.atomic(opcode, address, this.#target.rkey, BigInt.asUintN(64, compareAdd), BigInt.asUintN(64, swap));
      return p.then(
        (old) => {
          this.#done();
          return old;
        },
        (error: Error) => {
          this.#failed ??= error;
          this.#done();
          throw error;
        },
      );
    } catch (error) {
      return Promise.reject(error);
    }
  }

  fetchAdd(byteOffset: number, delta: bigint): Promise<bigint> {
    return this.#atomic('fetchAdd', 'fetch-add', byteOffset, delta, 0n);
  }

  compareSwap(byteOffset: number, expected: bigint, value: bigint): Promise<bigint> {
    return this.#atomic('compareSwap', 'compare-swap', byteOffset, expected, value);
  }

  load64(byteOffset: number): Promise<bigint> {
    // A fetch-and-add of 0 is an atomic read of the word.
    return this.#atomic('load64', 'fetch-add', byteOffset, 0n, 0n);
  }

  /** The interface's 32-bit forms: the low half of the 8-aligned word (the high half reserved). */
  async loadAsync(byteOffset: number): Promise<number> {
    return Number(BigInt.asIntN(32, await this.load64(byteOffset)));
  }

  async addAsync(byteOffset: number, delta: number): Promise<number> {
    if (!Number.isInteger(delta)) throw new UsageError(`addAsync: delta must be a whole number, got ${delta}`);
    return Number(BigInt.asIntN(32, await this.fetchAdd(byteOffset, BigInt(delta))));
  }

  /** Compares the whole 8 bytes with (expected, high half 0): a word that is compareExchanged is never added to. */
  async compareExchangeAsync(byteOffset: number, expected: number, value: number): Promise<number> {
    return Number(BigInt.asIntN(32, await this.compareSwap(byteOffset, BigInt(expected >>> 0), BigInt(value >>> 0))));
  }

  #elsewhere(what: string): never {
    throw new UsageError(`RdmaImage.${what}: the target is on node ${JSON.stringify(this.descriptor.node)}, not this one; use ${what}Async`);
  }

  /** Synchronous forms serve targets of this node only: UsageError here (use the *Async forms). */
  load(_byteOffset: number): number {
    return this.#elsewhere('load');
  }

  add(_byteOffset: number, _delta: number): number {
    return this.#elsewhere('add');
  }

  compareExchange(_byteOffset: number, _expected: number, _value: number): number {
    return this.#elsewhere('compareExchange');
  }

  read(_offset: number, _into: Uint8Array): void {
    this.#elsewhere('read');
  }

  /** RDMA READ target bytes from `offset` into `into`, ordered after every earlier post. */
  async readAsync(offset: number, into: Uint8Array): Promise<void> {
    this.#check('readAsync');
    if (!(into instanceof Uint8Array)) throw new UsageError('readAsync: into must be a Uint8Array');
    checkRange('readAsync', offset, into.length, this.size);
    if (into.length === 0) return;
    const channel = this.#channel;
    const heap = channel.heap;
    const scratch = heap.malloc(into.length);
    if (!scratch) throw new UsageError(`readAsync: no room for ${into.length} bytes in the connection's source heap`);
    const free = () => {
      if (!channel.closed) heap.free(scratch);
    };
    return new Promise<void>((resolve, reject) => {
      const handler: RequestHandler = {
        settled: (_tag, error) => {
          if (error) {
            this.#failed ??= error;
            reject(error);
          } else {
            into.set(scratch.view);
            resolve();
          }
          free();
          this.#done();
        },
      };
      this.#pending++;
      try {
        channel.submit('read', this.#remote, [channel.element(scratch, 0, into.length, offset)], handler, 0);
      } catch (error) {
        this.#pending--;
        free();
        reject(error);
      }
    });
  }

  #release(): void {
    if (this.#released) return;
    this.#released = true;
    if (this.#channel.closed) return; // the heap went with the channel
    this.#channel.heap.free(this.#buffer);
    for (const chunk of this.#wordChunks) this.#channel.heap.free(chunk);
  }

  /**
   * Release the image (idempotent): later calls throw ClosedError. Posts in flight still complete
   * (or fail) and settle; the source is freed once the last one has, never while the NIC may read it.
   */
  dispose(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#pending === 0) this.#release();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
