/**
 * RdmaChannel — the data plane of one agent connection (src/agent/client.ts), shared by every
 * RdmaImage on that connection: the targets' rkeys are valid on that connection's protection
 * domain only, so all of its traffic goes through the connection's one RC queue pair.
 *
 *  - RDMA WRITEs and READs go through seed 002's request engine (src/coalesce/): a request is a
 *    chain of source pieces bound for one target, coalesced and divided into work requests,
 *    continued as send slots free up. The engine keeps ENGINE_SLOTS_RESERVED slots of the send
 *    queue free for the control link's SENDs and for atomics.
 *  - RDMA atomics (fetch-and-add, compare-and-swap on 8-aligned 64-bit words) are posted here,
 *    at most ATOMIC_SLOTS at once, their results landing in 8-byte slots of a registered buffer.
 *  - Sources come from a RegisteredHeap (seed 004) private to this channel, whose blocks are
 *    registered on the connection's protection domain the first time one is used.
 *
 * Batching. Between cork() and uncork() requests are submitted but not posted; uncork() posts
 * them together — up to the engine's postList work requests per ibv_post_send. On rxe each call
 * runs the whole send path in the kernel, so a postbox message (its bytes, then its indicator
 * word) or a receiver's echo and acknowledgment cost one call instead of two or three. A poll or
 * a full request table may post earlier; nothing waits for uncork() beyond the caller's own
 * synchronous code.
 *
 * Order. Every post of the channel is placed on the queue pair in the order it was made, so RC
 * ordering makes the target see them in that order: requests go to the engine, which posts them in
 * submission order; an atomic or a doorbell is held in `#ordered` until the engine has nothing
 * left unposted (`engine.queued === 0`), and any request made while something waits there (or
 * while the engine's request table is full) queues behind it. Nothing is refused for want of
 * room: what waits is posted as completions come.
 *
 * Completions. The control link polls the connection's one completion queue (its pump, or
 * poll()) and hands each batch here (DataPlane). An error completion puts the queue pair in the
 * error state: the link is then lost and every image of the channel fails (the failing request's
 * image with the completion's typed error, RemoteAccessError …; the others with PeerGoneError).
 *
 * Idle polls. With idle 'yield' (default 'spin'), a poll() that reaps nothing while this
 * channel's work requests are in flight yields the CPU (sched_yield) first: on rxe the
 * transfer's work runs in the kernel on the posting CPU, deferred to that CPU's ksoftirqd once it
 * is busy, and a process that busy-polls keeps ksoftirqd off its CPU until the scheduler's tick.
 * With nothing else runnable sched_yield returns at once; a hardware NIC needs no CPU of ours.
 */
import { libc } from '../../ffi/libc.js';
import { ENGINE_WR_ID, RequestEngine } from '../coalesce/engine.js';
import type { RemoteRegion, RequestElement, RequestOp } from '../coalesce/types.js';
import { ClosedError, errnoError, PeerGoneError } from '../errors.js';
import type { AgentClient } from '../agent/client.js';
import { SEND_SLOTS, type DataPlane } from '../agent/link.js';
import { selfPid } from '../shm/process-identity.js';
import { RegisteredHeap } from '../regcache/registered-heap.js';
import { VerbsRegistrar } from '../regcache/registrar.js';
import type { HeapBuffer, RegisteredRange } from '../regcache/types.js';
import type { Completion } from '../verbs/completion-queue.js';
import { completionError } from '../verbs/errors.js';
import type { MemoryRegion } from '../verbs/memory-region.js';

/** wr_id of an atomic: this + its result slot (below ENGINE_WR_ID, above the link's ids). */
export const ATOMIC_WR_ID = 2 ** 51;
/** Atomics in flight at once (they share the initiator depth with the engine's READs). */
export const ATOMIC_SLOTS = 4;
/** Send-queue slots the engine leaves to the control link and the atomics. */
export const ENGINE_SLOTS_RESERVED = SEND_SLOTS + ATOMIC_SLOTS;
/** READs the engine keeps in flight (rdma_cm's initiator depth is 16; the atomics take the rest). */
const ENGINE_READS = 16 - ATOMIC_SLOTS;

let heapCounter = 0;

/** Told when a request it made settles (tag as given; error undefined on success). */
export interface RequestHandler {
  settled(tag: number, error: Error | undefined, bytes: number): void;
}

interface AtomicOp {
  readonly kind: 'atomic';
  readonly opcode: 'fetch-add' | 'compare-swap';
  readonly remoteAddr: number;
  readonly rkey: number;
  readonly compareAdd: bigint;
  readonly swap: bigint;
  readonly resolve: (old: bigint) => void;
  readonly reject: (error: Error) => void;
}
interface RequestOpQueued {
  readonly kind: 'request';
  readonly op: RequestOp;
  readonly remote: RemoteRegion;
  readonly elements: readonly RequestElement[];
  readonly handler: RequestHandler;
  readonly tag: number;
}
interface DoorbellOp {
  readonly kind: 'doorbell';
  readonly name: string;
  readonly offset: number;
  readonly count: number;
}
type Ordered = AtomicOp | RequestOpQueued | DoorbellOp;

const channels = new WeakMap<AgentClient, RdmaChannel>();

/** What poll() does when it reaps nothing while work is in flight (see the file comment). */
export type ChannelIdle = 'yield' | 'spin';

export class RdmaChannel implements DataPlane {
  readonly client: AgentClient;
  readonly engine: RequestEngine;
  /** Where image sources, atomic results and read buffers come from (registered on the connection's PD). */
  readonly heap: RegisteredHeap;
  readonly #handlers: (RequestHandler | undefined)[];
  readonly #ordered: Ordered[] = [];
  readonly #atomicBuffer: HeapBuffer;
  readonly #atomicRange: RegisteredRange;
  readonly #atomicView: DataView;
  readonly #atomicFree: number[] = [];
  readonly #atomicOps: (AtomicOp | undefined)[] = new Array(ATOMIC_SLOTS).fill(undefined);
  #lost: Error | undefined;
  #closed = false;
  /** sched_yield on a poll that reaps nothing while work is in flight. */
  #yieldIdle: boolean;
  /** cork() depth: while above 0, submitted requests wait for uncork() to be posted together. */
  #corked = 0;

  private constructor(client: AgentClient, idle: ChannelIdle) {
    this.client = client;
    this.#yieldIdle = idle === 'yield';
    const qp = client.link.connection.qp;
    this.engine = new RequestEngine(qp, {
      sendSlots: Math.max(1, qp.maxSendWr - ENGINE_SLOTS_RESERVED),
      maxReadsInFlight: ENGINE_READS,
      postOnSubmit: false, // #submitNow posts, unless corked
    });
    try {
      this.heap = RegisteredHeap.create(`rdmasrc.${selfPid}.${++heapCounter}`, { registrar: new VerbsRegistrar(client.pd), maxMembers: 1, blockBytes: 1 << 20 });
    } catch (error) {
      this.engine.dispose();
      throw error;
    }
    try {
      const atomics = this.heap.malloc(ATOMIC_SLOTS * 8);
      if (!atomics) throw new ClosedError('source heap (full)');
      this.#atomicBuffer = atomics;
      this.#atomicRange = this.heap.lookup(atomics);
      this.#atomicView = new DataView(atomics.view.buffer, atomics.view.byteOffset, ATOMIC_SLOTS * 8);
    } catch (error) {
      this.heap.dispose();
      this.engine.dispose();
      throw error;
    }
    for (let i = ATOMIC_SLOTS - 1; i >= 0; i--) this.#atomicFree.push(i);
    this.#handlers = new Array(this.engine.limits.maxRequests).fill(undefined);
    client.link.dataPlane = this;
    void client.closed.then((why) => this.#fail(why));
  }

  /**
   * The channel of `client` (made on first use, with `idle`: default 'spin'). ClosedError /
   * PeerGoneError if the client is gone.
   */
  static of(client: AgentClient, idle: ChannelIdle = 'spin'): RdmaChannel {
    let channel = channels.get(client);
    if (channel && !channel.#closed) return channel;
    if (client.lost) throw client.lost;
    channel = new RdmaChannel(client, idle);
    channels.set(client, channel);
    return channel;
  }

  /** Close `client`'s channel if it has one (none is made). */
  static closeOf(client: AgentClient): void {
    channels.get(client)?.close();
  }

  /** Why the channel can no longer move data (its connection is gone), or undefined. */
  get lost(): Error | undefined {
    return this.#lost;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Throws why the channel is unusable, if it is (noticing a lost connection at once). */
  check(): void {
    if (!this.#closed) {
      const lost = this.client.lost;
      if (lost) this.#fail(lost);
    }
    if (this.#lost) throw this.#lost;
    if (this.#closed) throw new ClosedError('RDMA channel');
  }

  /** The source pieces of a request: `length` bytes at `at` of `buffer`, as an engine element. */
  element(buffer: HeapBuffer, at: number, length: number, remoteOffset: number): RequestElement {
    const range = this.heap.lookup(buffer);
    return { mr: range.mr as MemoryRegion, offset: range.offset + at, length, remoteOffset };
  }

  /**
   * Submit a request, in order with every earlier post: to the engine now, or — while something
   * waits in order, or the engine's request table is full — queued, posted as completions make
   * room (from the link's pump or poll()). UsageError for a malformed request.
   */
  submit(op: RequestOp, remote: RemoteRegion, elements: readonly RequestElement[], handler: RequestHandler, tag: number): void {
    this.check();
    // A writer that posts in a loop without yielding never lets the link's pump reap completions:
    // once the engine's request table is full or its work waits for send slots, reap here first,
    // or every later post would wait for the next turn of the event loop (milliseconds).
    const engine = this.engine;
    if (engine.pending >= engine.limits.maxRequests || (engine.queued > 0 && this.#corked === 0)) this.poll();
    if (this.#ordered.length > 0 || !this.#submitNow(op, remote, elements, handler, tag)) {
      this.#ordered.push({ kind: 'request', op, remote, elements, handler, tag });
    }
  }

  #submitNow(op: RequestOp, remote: RemoteRegion, elements: readonly RequestElement[], handler: RequestHandler, tag: number): boolean {
    const id = this.engine.submit(op, remote, elements, tag);
    if (id >= 0) this.#handlers[id] = handler;
    if (this.#corked === 0) this.engine.post();
    this.#dispatch(); // posting may settle requests (an empty one, or any after a failure)
    return id >= 0;
  }

  /** Hold the posts made from now until the matching uncork() (nested; see the file comment). */
  cork(): void {
    this.#corked++;
  }

  /** End a cork(): at the outermost, post what was held, as few ibv_post_send calls as fit. */
  uncork(): void {
    if (this.#corked === 0 || --this.#corked > 0 || this.#closed || this.#lost) return;
    this.engine.post();
    this.#dispatch();
    this.#drain(); // atomics and doorbells held behind the corked requests
  }

  /** An RDMA atomic on the 8-aligned 64-bit word at `remoteAddr`; resolves with its old value. */
  atomic(opcode: 'fetch-add' | 'compare-swap', remoteAddr: number, rkey: number, compareAdd: bigint, swap: bigint): Promise<bigint> {
    this.check();
    return new Promise<bigint>((resolve, reject) => {
      this.#ordered.push({ kind: 'atomic', opcode, remoteAddr, rkey, compareAdd, swap, resolve, reject });
      this.#drain();
    });
  }

  /** The agent's doorbell for target `name`, sent after every earlier post. */
  doorbell(name: string, offset: number, count: number): void {
    this.check();
    this.#ordered.push({ kind: 'doorbell', name, offset, count });
    this.#drain();
  }

  /** Work requests of this channel posted and not yet completed (the engine's and the atomics'). */
  get inFlight(): number {
    return this.engine.inFlight + ATOMIC_SLOTS - this.#atomicFree.length;
  }

  /**
   * Reap completions now (the control link's poll, which hands them here). When it reaps none of
   * ours while some are in flight, yields the CPU first (idle 'yield'; see the file comment).
   */
  poll(): void {
    if (this.#closed) return;
    const before = this.inFlight;
    this.client.link.progress();
    this.check();
    if (this.#yieldIdle && before > 0 && this.inFlight === before) libc.sched_yield();
  }

  /** Post what waits in order, as far as the engine and the atomic slots allow. */
  #drain(): void {
    const q = this.#ordered;
    let done = 0;
    while (done < q.length && !this.#lost) {
      const op = q[done];
      if (op.kind === 'request') {
        let taken: boolean;
        try {
          taken = this.#submitNow(op.op, op.remote, op.elements, op.handler, op.tag);
        } catch (error) {
          // Refused when its turn came (e.g. a region released meanwhile): that request's error, not the connection's.
          taken = true;
          op.handler.settled(op.tag, error as Error, 0);
        }
        if (!taken) break;
      } else {
        // Ordering point: everything before it is on the queue pair once the engine has nothing unposted.
        if (this.engine.queued > 0) break;
        if (op.kind === 'doorbell') {
          this.client.doorbell(op.name, op.offset, op.count);
        } else {
          const slot = this.#atomicFree.pop();
          if (slot === undefined) break;
          const range = this.#atomicRange;
          const rc = this.engine.qp.postSend({
            wrId: ATOMIC_WR_ID + slot,
            opcode: op.opcode,
            sge: { mr: range.mr as MemoryRegion, offset: range.offset + slot * 8, length: 8 },
            remoteAddr: op.remoteAddr,
            rkey: op.rkey,
            compareAdd: op.compareAdd,
            swap: op.swap,
            signaled: true,
          });
          if (rc !== 0) {
            this.#atomicFree.push(slot);
            op.reject(errnoError('ibv_post_send', rc, { opcode: op.opcode, remote_addr: op.remoteAddr }));
          } else {
            this.#atomicOps[slot] = op;
          }
        }
      }
      done++;
    }
    if (done > 0) q.splice(0, done);
  }

  owns(c: Completion): boolean {
    return c.wrId >= ATOMIC_WR_ID && c.qpNum === this.engine.qp.qpn;
  }

  /** DataPlane: the link polled a batch; take the engine's and the atomics' completions. */
  handleCompletions(completions: readonly Completion[], n: number): void {
    if (this.#closed) return;
    for (let i = 0; i < n; i++) {
      const c = completions[i];
      if (c.wrId < ATOMIC_WR_ID || c.wrId >= ENGINE_WR_ID || c.qpNum !== this.engine.qp.qpn) continue;
      const slot = c.wrId - ATOMIC_WR_ID;
      const op = this.#atomicOps[slot];
      if (!op) continue;
      this.#atomicOps[slot] = undefined;
      this.#atomicFree.push(slot);
      // The responder returns the word's old value into the slot (host order, as the NIC gives it).
      if (c.status === 0) op.resolve(this.#atomicView.getBigUint64(slot * 8, true));
      else op.reject(completionError(c));
    }
    this.engine.handleCompletions(completions, n);
    this.#dispatch();
    this.#drain();
  }

  #dispatch(): void {
    const s = this.engine.settled;
    const count = s.count;
    s.count = 0;
    for (let k = 0; k < count; k++) {
      const id = s.id[k];
      const handler = this.#handlers[id];
      this.#handlers[id] = undefined;
      let error = s.error[k];
      if (error instanceof ClosedError && this.#lost) error = this.#lost;
      try {
        handler?.settled(s.tag[k], error, s.bytes[k]);
      } catch {
        /* a handler's failure is its own */
      }
    }
  }

  /** The connection is gone: settle everything with why (the NIC no longer touches any buffer). */
  #fail(why: Error): void {
    if (this.#lost || this.#closed) return;
    this.#lost = why instanceof PeerGoneError || why instanceof ClosedError ? why : new PeerGoneError(`agent of node ${this.client.node}`, why.message);
    this.#shutdown();
  }

  #shutdown(): void {
    const why = this.#lost ?? new ClosedError('RDMA channel');
    this.engine.dispose(); // with in-flight work: flushes first (bounded); then settles the rest
    this.#dispatch();
    for (const op of this.#ordered.splice(0)) {
      if (op.kind === 'atomic') op.reject(why);
      else if (op.kind === 'request') op.handler.settled(op.tag, why, 0);
    }
    for (let slot = 0; slot < ATOMIC_SLOTS; slot++) {
      const op = this.#atomicOps[slot];
      this.#atomicOps[slot] = undefined;
      op?.reject(why);
    }
    this.#closed = true;
    if (this.client.link.dataPlane === this) this.client.link.dataPlane = undefined;
    channels.delete(this.client);
    this.heap.dispose();
  }

  /**
   * Stop: work in flight is flushed (the engine moves the queue pair to the error state, so the
   * connection ends too) and settles with ClosedError; the source heap is released. Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#shutdown();
  }
}
