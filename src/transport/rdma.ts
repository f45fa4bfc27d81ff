/**
 * RdmaTransport — the start (issue 12): images of targets that live on another node, reached
 * through that node's agent (src/agent/). An image's source is a local buffer registered on the
 * agent connection's protection domain; write() posts RDMA WRITEs of its ranges to the same
 * offsets of the target (remote address = the descriptor's base + offset);
 * publish() is a 4-byte inline RDMA WRITE posted after them on the same RC queue pair, so a
 * reader that sees the word sees the bytes written before it; notify() is the agent's doorbell
 * (a SEND, also after them on that queue pair → FUTEX_WAKE on the target's node).
 *
 * Not here yet (they need the asynchronous interface issue 12 gives the transport): expose on
 * another node through the Transport interface, load/add/compareExchange as RDMA atomics,
 * read() as RDMA READ, and the request engine of seed 002 (src/coalesce/) under write(). These
 * throw UsageError naming what is missing.
 *
 * Memory: the source buffer is pinned (registered) until dispose(); the bytes of a written range
 * must not change until the write completed (`settled()`), as for any DMA. Errors: a failed
 * write (e.g. outside the target, the agent gone) makes every later call on the image throw
 * that error (PeerGoneError, RemoteAccessError …); write() never blocks except when more than
 * MAX_WRITES_IN_FLIGHT are outstanding, then it polls the completion queue (bounded).
 */
import type { AgentClient, TargetDescriptor } from '../agent/client.js';
import { ClosedError, TimeoutError, UsageError } from '../errors.js';
import type { MemoryRegion } from '../verbs/memory-region.js';
import { type Image, PostStatus, type SegmentDescriptor } from './types.js';

/** Writes one image keeps posted at once (the agent link's QP has 128 send slots). */
export const MAX_WRITES_IN_FLIGHT = 96;
/** The longest write() waits for a free send slot. */
const SLOT_WAIT_MS = 10_000;

function checkRange(what: string, offset: number, length: number, size: number): void {
  if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > size) {
    throw new UsageError(`${what}: range [${offset}, ${offset + length}) is outside the image's ${size} bytes`);
  }
}

export class RdmaImage implements Image {
  readonly descriptor: SegmentDescriptor;
  readonly size: number;
  readonly source: Uint8Array;
  readonly #client: AgentClient;
  readonly #target: TargetDescriptor;
  readonly #sourceMr: MemoryRegion;
  readonly #word = new Uint32Array(16);
  readonly #wordMr: MemoryRegion;
  readonly #inFlight = new Set<Promise<void>>();
  #failed: Error | undefined;
  #closed = false;

  private constructor(client: AgentClient, target: TargetDescriptor) {
    this.#client = client;
    this.#target = target;
    this.size = target.size;
    this.descriptor = { transport: 'rdma', node: target.node, name: target.name, size: target.size, key: target.rkey };
    this.source = new Uint8Array(target.size);
    this.#sourceMr = client.registerMemory(this.source);
    try {
      this.#wordMr = client.registerMemory(this.#word);
    } catch (error) {
      this.#sourceMr.dispose();
      throw error;
    }
  }

  /**
   * An image of target `name` held by the agent `client` is connected to (AgentError NOT_FOUND
   * if there is none). The image lives on that connection: it ends when the client does.
   */
  static async attach(client: AgentClient, name: string): Promise<RdmaImage> {
    return new RdmaImage(client, await client.find(name));
  }

  get closed(): boolean {
    return this.#closed;
  }

  #check(what: string): void {
    if (this.#closed) throw new ClosedError(`image of ${JSON.stringify(this.descriptor.name)} (${what})`);
    if (this.#failed) throw this.#failed;
  }

  #post(start: () => Promise<void>): PostStatus {
    const link = this.#client.link;
    if (this.#inFlight.size >= MAX_WRITES_IN_FLIGHT) {
      // Ordering point: only completions free send slots; poll them here (non-blocking calls).
      const deadline = performance.now() + SLOT_WAIT_MS;
      while (this.#inFlight.size >= MAX_WRITES_IN_FLIGHT && !this.#failed) {
        link.progress();
        if (link.lost) break;
        if (performance.now() > deadline) throw new TimeoutError(`image of ${JSON.stringify(this.descriptor.name)}: no write completed within ${SLOT_WAIT_MS} ms`);
      }
      this.#check('write');
    }
    const p = start().then(
      () => {
        this.#inFlight.delete(p);
      },
      (error: Error) => {
        this.#inFlight.delete(p);
        this.#failed ??= error;
      },
    );
    this.#inFlight.add(p);
    return PostStatus.POSTED;
  }

  get failed(): Error | undefined {
    return this.#failed;
  }

  write(offset: number, length: number): PostStatus {
    this.#check('write');
    checkRange('write', offset, length, this.size);
    if (length === 0) return PostStatus.DONE;
    return this.#post(() => this.#client.link.write(this.#sourceMr, offset, length, this.#target.rkey, this.#target.base + offset));
  }

  put(offset: number, data: Uint8Array): PostStatus {
    this.#check('put');
    checkRange('put', offset, data.length, this.size);
    this.source.set(data, offset);
    return this.write(offset, data.length);
  }

  publish(byteOffset: number, value: number): PostStatus {
    this.#check('publish');
    if (byteOffset % 4 !== 0) throw new UsageError(`publish: word offset ${byteOffset} is not 4-aligned`);
    checkRange('publish', byteOffset, 4, this.size);
    this.#word[0] = value >>> 0;
    new DataView(this.source.buffer, this.source.byteOffset).setUint32(byteOffset, value >>> 0, true);
    // Ordering point: an inline RDMA WRITE posted after every earlier write() on the same RC
    // queue pair is placed after them; inline copies the value at post time.
    return this.#post(() => this.#client.link.write(this.#wordMr, 0, 4, this.#target.rkey, this.#target.base + byteOffset, true));
  }

  notify(byteOffset: number, count = 0): PostStatus {
    this.#check('notify');
    if (byteOffset % 4 !== 0) throw new UsageError(`notify: word offset ${byteOffset} is not 4-aligned`);
    checkRange('notify', byteOffset, 4, this.size);
    this.#client.doorbell(this.#target.name, byteOffset, count);
    return PostStatus.POSTED; // woken on the other node
  }

  /** Poll the link's completions; the number of posts still outstanding. */
  progress(): number {
    this.#check('progress');
    if (this.#inFlight.size > 0) this.#client.link.progress();
    return this.#inFlight.size;
  }

  #notYetError(what: string): UsageError {
    return new UsageError(`RdmaImage.${what}: remote ${what === 'read' ? 'reads' : 'atomics'} through the asynchronous transport interface (RDMA READ / atomics) are not implemented yet`);
  }

  #notYet(what: string): never {
    throw this.#notYetError(what);
  }

  load(_byteOffset: number): number {
    return this.#notYet('load');
  }

  add(_byteOffset: number, _delta: number): number {
    return this.#notYet('add');
  }

  compareExchange(_byteOffset: number, _expected: number, _value: number): number {
    return this.#notYet('compareExchange');
  }

  read(_offset: number, _into: Uint8Array): void {
    this.#notYet('read');
  }

  loadAsync(_byteOffset: number): Promise<number> {
    return Promise.reject(this.#notYetError('load'));
  }

  addAsync(_byteOffset: number, _delta: number): Promise<number> {
    return Promise.reject(this.#notYetError('add'));
  }

  compareExchangeAsync(_byteOffset: number, _expected: number, _value: number): Promise<number> {
    return Promise.reject(this.#notYetError('compareExchange'));
  }

  readAsync(_offset: number, _into: Uint8Array): Promise<void> {
    return Promise.reject(this.#notYetError('read'));
  }

  /** Resolves when every write posted so far has completed; rejects with the first failure. */
  async settled(): Promise<void> {
    await Promise.all([...this.#inFlight]);
    if (this.#failed) throw this.#failed;
  }

  /** Deregister the source (after the writes in flight, if the link is up). Idempotent. */
  dispose(): void {
    if (this.#closed) return;
    this.#closed = true;
    const release = () => {
      this.#sourceMr.dispose();
      this.#wordMr.dispose();
    };
    // Memory the NIC may still read stays registered until its writes completed.
    if (this.#inFlight.size === 0) release();
    else void Promise.allSettled([...this.#inFlight]).then(release);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
