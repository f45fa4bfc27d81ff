/**
 * The transport interface the messaging mechanisms (segments/, postbox/) ride on.
 *
 * A mechanism never assumes that writer and reader share addresses. Its model is the one of seed
 * 000 (claims 3, 4, 20–23) and of RDMA:
 *
 *   - a *target* is a buffer allocated on some node ("expose"); its owner reads it in place and
 *     waits on its words. A target is named by a *descriptor* (transport, node, name, size, key)
 *     that holds no address: descriptors travel through shared memory and, later, the network.
 *   - an *image* is what a writer gets by attaching a descriptor: a *source* buffer of the same
 *     size, laid out like the target, which the writer fills and then makes visible at the target
 *     with write(offset, length) — under shm the source IS the target (the same object mapped
 *     twice, claim 3: "an image memory-mapped into the sender's address space") and write() does
 *     nothing; under RDMA it will be a registered local buffer RDMA-written at the same offsets;
 *     in-process it is a separate buffer copied on write(), so a mechanism that forgets a write()
 *     fails its tests there.
 *   - publication is publish(wordOffset, value): a 32-bit store ordered after every write()
 *     before it (shm: Atomics.store); notify() wakes a waiter of the target's word; load/add/
 *     compareExchange are atomic operations on a target word; read() copies target bytes back.
 *
 * Offsets are bytes from the start of the target; words are 4-byte aligned, little-endian.
 * Every value read from a target other processes can write is untrusted (see DESIGN.md).
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
  /** The transport that exposed it ('shm', 'inproc'; later 'rdma'). */
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

/** A buffer on this node, read in place by its owner (or any local process that opened it). */
export interface Target {
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
   * itself; elsewhere a local buffer. Reading it back tells nothing about the target: use read()
   * or load().
   */
  readonly source: Uint8Array;
  readonly closed: boolean;
  /** Make source[offset, offset + length) visible at the target. */
  write(offset: number, length: number): void;
  /** Copy `data` into the source at `offset` and write() it. */
  put(offset: number, data: Uint8Array): void;
  /** Store a 32-bit word at the target, ordered after every earlier write()/put(). */
  publish(byteOffset: number, value: number): void;
  /** Wake waiters of the target's word at `byteOffset` (the reader's doorbell). */
  notify(byteOffset: number, count?: number): number;
  /** Atomically read the target's word. */
  load(byteOffset: number): number;
  /** Atomically add to the target's word; returns the old value. */
  add(byteOffset: number, delta: number): number;
  /** Atomically replace the target's word if it equals `expected`; returns the old value. */
  compareExchange(byteOffset: number, expected: number, value: number): number;
  /** Copy target bytes from `offset` into `into`. */
  read(offset: number, into: Uint8Array): void;
  /** Release the image. Idempotent. */
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
  /** 'shm', 'inproc', … (the descriptor's `transport`). */
  readonly kind: string;
  /** This process's node. */
  readonly node: string;
  /** This process. */
  readonly self: ProcessIdentity;
  /**
   * Allocate a zero-filled target of `size` bytes named `name` and return it (this handle owns
   * the name). Throws UsageError for a bad name or size or a name in use.
   */
  expose(name: string, size: number, options?: ExposeOptions): Target;
  /**
   * Open a target on this node created by another handle (any local process) to read it in
   * place. CorruptionError if the descriptor does not match what exists; UsageError if none does;
   * TimeoutError if its creator has not initialised it within `options.timeoutMs`.
   */
  openLocal(descriptor: SegmentDescriptor, options?: OpenTargetOptions): Target;
  /** Form an image of a target (claim 3/4 of seed 000). Options and errors as for openLocal. */
  attach(descriptor: SegmentDescriptor, options?: OpenTargetOptions): Image;
  /** The descriptor of the target named `name` on `node` (default this one), or undefined. */
  find(name: string, node?: string): SegmentDescriptor | undefined;
  /** Whether the process `who` (on `node`, default this one) still runs. */
  isAlive(who: ProcessIdentity, node?: string): boolean;
  /** Remove a target's name if it exists (another process's stale target). Never throws for a missing one. */
  remove(name: string, node?: string): void;
}
