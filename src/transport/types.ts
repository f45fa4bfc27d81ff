/**
 * The transport interface the messaging mechanisms (segments/, postbox/) ride on.
 *
 * A mechanism never assumes that writer and reader share addresses. Its model is the one of seed
 * 000 (claims 3, 4, 20–23) and of RDMA:
 *
 *   - a *target* is a buffer allocated on some node ("expose"); its owner reads it in place and
 *     waits on its words. A target is named by a *descriptor* (transport, node, name, size, key)
 *     that holds no address: descriptors travel through shared memory and the network.
 *   - an *image* is what a writer gets by attaching a descriptor: a *source* buffer of the same
 *     size, laid out like the target, which the writer fills and then makes visible at the target
 *     with write(offset, length) — under shm the source IS the target (the same object mapped
 *     twice, claim 3) and write() does nothing; under RDMA a registered local buffer RDMA-written
 *     at the same offsets; in-process a separate buffer copied on write(), so a mechanism that
 *     forgets a write() fails its tests there.
 *
 * THE CONTRACT (what every implementation, RDMA's included, must do; docs/messaging.md
 * "Transport contract" says the same for readers of the docs):
 *
 *   1. Posts — write, put, publish, notify — never block and never wait for the target. Each
 *      returns a PostStatus: DONE (already visible at the target: shm, in-process) or POSTED
 *      (queued in order behind the image's earlier posts; it completes later — call progress()
 *      to poll completions, or await settled()). A post never fails for want of queue slots: the
 *      image keeps the rest of a request and continues it from progress() (seed 002).
 *   2. Order: publish(word) is a 32-bit store at the target, visible only after every write()/
 *      put() posted before it on the same image. notify() is delivered after the posts before it.
 *   3. Errors are typed and sticky: a failed post (target gone, peer gone, access error) makes
 *      the image `failed`, and every later call on it throws that error (PeerGoneError,
 *      RemoteAccessError, ClosedError after dispose, …). Caller mistakes (range, alignment) throw
 *      UsageError at once. Nothing blocks a thread to report an error.
 *   4. Atomic words — the targets of load/add/compareExchange — are 8-ALIGNED and own their 8
 *      bytes (RDMA atomics are 64-bit on 8-aligned addresses). The value is the low 32 bits
 *      (little-endian, bytes 0..3); bytes 4..7 are reserved: add() may carry into them (a reader
 *      looks at the low 32 bits only), compareExchange() compares the whole 8 bytes with the high
 *      half 0, so a word that is compareExchange()d is never add()ed. Readers on the target's
 *      node use Atomics on the low 32 bits; a futex may wait on them.
 *   5. Remote reads and atomics are for set-up and recovery, never per message: a writer's
 *      per-message decisions read only its OWN memory (words the reader pushes to it, as the
 *      ack segment does). They come in two forms: the synchronous load/add/compareExchange/read,
 *      valid for a target on this node only (an image of another node's target throws
 *      UsageError), and loadAsync/addAsync/compareExchangeAsync/readAsync, valid for any node
 *      (RDMA atomics and READs, completed by polling, resolved with the result).
 *   6. Control calls likewise: expose/find/isAlive/remove/attach are synchronous and serve THIS
 *      node (another node → UsageError, or undefined/false where a question is asked);
 *      exposeAsync/findAsync/isAliveAsync/removeAsync/attachAsync serve any node (RDMA: through
 *      that node's agent) and reject with typed errors. On this node they give the same answers
 *      as the synchronous forms.
 *   7. A descriptor carries no address of the target's node: transport, node, name, size and a key
 *      (RDMA: the rkey; the agent registers the target so that target offset x is remote address
 *      base + x with a base below 4096 — docs/across-machines.md). Target handles exist only on the
 *      node that holds the memory; exposeAsync on another node returns an Exposed (descriptor and
 *      the name's ownership, no bytes).
 *
 * Offsets are bytes from the start of the target; little-endian. Every value read from a target
 * other processes can write is untrusted (see DESIGN.md).
 */
import type { WaitOptions, WaitResult } from '../shm/futex.js';

export type { WaitOptions, WaitResult };

/** Who a process is, in a form that survives pid reuse (pid + start time; 0n = unknown). */
export interface ProcessIdentity {
  readonly pid: number;
  readonly start: bigint;
}

/** Names a target without an address: it can be stored in shared memory and sent over a wire. */
export interface SegmentDescriptor {
  /** The transport that exposed it ('shm', 'inproc', 'rdma'). */
  readonly transport: string;
  /** The node (machine) the target lives on. */
  readonly node: string;
  /** Its name on that node (shm: the SharedRegion name). */
  readonly name: string;
  /** Bytes. */
  readonly size: number;
  /** A remote access key (RDMA rkey); 0 where none is needed. */
  readonly key: number;
}

/** What exposeAsync returns: the ownership of a name, possibly on another node (no bytes there). */
export interface Exposed {
  readonly descriptor: SegmentDescriptor;
  readonly size: number;
  readonly closed: boolean;
  /** Release the name (remove it on its node). Idempotent; never throws for a vanished node. */
  dispose(): void;
}

/** What a post did (contract 1). */
export const PostStatus = {
  /** Visible at the target already. */
  DONE: 0,
  /** Queued in order; completes by progress() / settled(). */
  POSTED: 1,
} as const;
export type PostStatus = (typeof PostStatus)[keyof typeof PostStatus];

/** A buffer on this node, read in place by its owner (or any local process that opened it). */
export interface Target extends Exposed {
  readonly descriptor: SegmentDescriptor;
  readonly size: number;
  /** The target's bytes, zero-copy. */
  readonly bytes: Uint8Array;
  /** The target's bytes as 32-bit words, for Atomics (index = byteOffset / 4). */
  readonly int32: Int32Array;
  /** Whether this handle created the target (and so owns its name). */
  readonly isOwner: boolean;
  readonly closed: boolean;
  /** Block this thread while the word at `byteOffset` equals `expected` (spin, then futex). */
  wait(byteOffset: number, expected: number, options?: WaitOptions): WaitResult;
  /** The same without blocking the thread. */
  waitAsync(byteOffset: number, expected: number, options?: WaitOptions): Promise<WaitResult>;
  /** Wake waiters on the word at `byteOffset`; returns how many were woken where known. */
  wake(byteOffset: number, count?: number): number;
  /** Release this handle; the owner's dispose also removes the name. Idempotent. */
  dispose(): void;
}

/** A writer's image of a (possibly remote) target. */
export interface Image {
  readonly descriptor: SegmentDescriptor;
  readonly size: number;
  /**
   * The source segment: fill it, then write() the range. Under shm it is the target's memory
   * itself; elsewhere a local buffer whose written ranges must not change until they completed.
   * Reading it back tells nothing about the target: use read() or load().
   */
  readonly source: Uint8Array;
  readonly closed: boolean;
  /** The error that failed this image (contract 3), or undefined. */
  readonly failed: Error | undefined;
  /** Make source[offset, offset + length) visible at the target. */
  write(offset: number, length: number): PostStatus;
  /** Copy `data` into the source at `offset` and write() it. */
  put(offset: number, data: Uint8Array): PostStatus;
  /** Store a 32-bit word (4-aligned) at the target, ordered after every earlier write()/put(). */
  publish(byteOffset: number, value: number): PostStatus;
  /** Wake waiters of the target's word at `byteOffset` (the reader's doorbell), after the posts before it. */
  notify(byteOffset: number, count?: number): PostStatus;
  /**
   * Optional (RDMA): hold the posts made until the matching uncork(), then post them together —
   * fewer system calls for a message and its indicator. Calls pair and nest; order is unchanged.
   * Transports whose posts cost no call (shm, in-process) leave both out.
   */
  cork?(): void;
  uncork?(): void;
  /** Poll completions of earlier posts; returns how many are still outstanding (0: all done). Throws `failed`. */
  progress(): number;
  /** Resolves when every post so far has completed; rejects with the image's error. */
  settled(): Promise<void>;
  /** Atomically read the target's atomic word (8-aligned; contract 4). This node only (contract 5). */
  load(byteOffset: number): number;
  /** Atomically add `delta` (0 ≤ delta < 2^31) to the target's atomic word; returns the old value. This node only. */
  add(byteOffset: number, delta: number): number;
  /** Atomically replace the target's atomic word if it equals `expected`; returns the old value. This node only. */
  compareExchange(byteOffset: number, expected: number, value: number): number;
  /** Copy target bytes from `offset` into `into`. This node only. */
  read(offset: number, into: Uint8Array): void;
  /** The same four for a target on any node (RDMA atomics / READ, completed by polling). */
  loadAsync(byteOffset: number): Promise<number>;
  addAsync(byteOffset: number, delta: number): Promise<number>;
  compareExchangeAsync(byteOffset: number, expected: number, value: number): Promise<number>;
  readAsync(offset: number, into: Uint8Array): Promise<void>;
  /** Release the image (memory the NIC may still read stays registered until its posts completed). Idempotent. */
  dispose(): void;
}

export interface ExposeOptions {
  /**
   * If a target of that name exists and its creator is dead, remove it and create anew (a
   * restarted process taking its name back). Default false: the name is taken → UsageError.
   */
  replaceStale?: boolean;
  /** The node to allocate on; default this one. Transports that cannot reach it refuse. */
  node?: string;
}

/** How openLocal() and attach() treat a target whose creator has not finished initialising it. */
export interface OpenTargetOptions {
  /**
   * How long to wait for the creator, in ms; the transport's default if absent (shm: 2000).
   * 0: do not wait — a target not initialised yet is a TimeoutError at once, so a caller that must
   * not block (a receiver's poll()) can look again later. A target that is there and wrong is a
   * CorruptionError whatever this says.
   */
  timeoutMs?: number;
}

export interface Transport {
  /** 'shm', 'inproc', 'rdma' (the descriptor's `transport`). */
  readonly kind: string;
  /** This process's node. */
  readonly node: string;
  /** This process. */
  readonly self: ProcessIdentity;
  /**
   * Allocate a zero-filled target of `size` bytes named `name` on THIS node and return it (this
   * handle owns the name). UsageError for a bad name or size, a name in use, or another node.
   */
  expose(name: string, size: number, options?: ExposeOptions): Target;
  /** The same on any node (options.node; default this one): a Target here, an Exposed elsewhere. */
  exposeAsync(name: string, size: number, options?: ExposeOptions): Promise<Exposed>;
  /**
   * Open a target on this node created by another handle (any local process) to read it in
   * place. CorruptionError if the descriptor does not match what exists; UsageError if none does;
   * TimeoutError if its creator has not initialised it within `options.timeoutMs`.
   */
  openLocal(descriptor: SegmentDescriptor, options?: OpenTargetOptions): Target;
  /** Form an image of a target on THIS node (claim 3/4 of seed 000). Options and errors as for openLocal. */
  attach(descriptor: SegmentDescriptor, options?: OpenTargetOptions): Image;
  /** Form an image of a target on any node. Options and errors as for openLocal. */
  attachAsync(descriptor: SegmentDescriptor, options?: OpenTargetOptions): Promise<Image>;
  /** The descriptor of the target named `name` on this node, or undefined (also for another node). */
  find(name: string, node?: string): SegmentDescriptor | undefined;
  /** The descriptor of the target named `name` on `node` (default this one), or undefined. */
  findAsync(name: string, node?: string): Promise<SegmentDescriptor | undefined>;
  /** Whether the process `who` on this node still runs (false for another node: ask isAliveAsync). */
  isAlive(who: ProcessIdentity, node?: string): boolean;
  /** Whether the process `who` on `node` (default this one) still runs. */
  isAliveAsync(who: ProcessIdentity, node?: string): Promise<boolean>;
  /** Remove a target's name on this node if it exists. Never throws for a missing one; another node: nothing. */
  remove(name: string, node?: string): void;
  /** The same on any node. */
  removeAsync(name: string, node?: string): Promise<void>;
}
