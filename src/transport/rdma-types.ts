/**
 * The asynchronous half of the transport interface (types.ts) that the RDMA transport implements.
 * RdmaImage and RdmaTransport do not yet declare `implements Image` / `Transport`: those also ask
 * for the synchronous this-node forms (expose, find, load, …), which the RDMA transport does not
 * offer yet (issue 12). PostStatus and Exposed are types.ts's own.
 *
 *  - posts (write, put, publish, notify) never block and never fail for want of queue slots:
 *    DONE (nothing to move) or POSTED (queued in order behind the image's earlier posts; completes
 *    by progress() or settled()). A failed completion becomes the image's typed error (`failed`),
 *    thrown by every later call;
 *  - atomic words are 64-bit at 8-aligned offsets (RDMA atomics are nothing else): fetchAdd /
 *    compareSwap / load64 on the whole word as bigint, and the 32-bit forms of the interface on its
 *    low half (the high half reserved);
 *  - remote reads and atomics are promises (they are for set-up and recovery, not per message).
 */
import type { Exposed, PostStatus, ProcessIdentity, SegmentDescriptor, Target } from './types.js';

export { PostStatus, type Exposed } from './types.js';

/** A writer's image of a target on any node (see the file comment). */
export interface AsyncImage {
  readonly descriptor: SegmentDescriptor;
  readonly size: number;
  /** The source segment: fill it, then write() the range. Its bytes must not change until the write completed. */
  readonly source: Uint8Array;
  readonly closed: boolean;
  /** The error that failed this image, or undefined. */
  readonly failed: Error | undefined;
  /** Posts not yet completed. */
  readonly pending: number;
  /** Make source[offset, offset + length) visible at the target. */
  write(offset: number, length: number): PostStatus;
  /** Several source ranges as one request: `ranges` is [offset0, length0, offset1, length1, …]. */
  writev(ranges: readonly number[]): PostStatus;
  /** Copy `data` into the source at `offset` and write() it. */
  put(offset: number, data: Uint8Array): PostStatus;
  /** Store a 32-bit word (4-aligned) at the target, ordered after every earlier post of this image. */
  publish(byteOffset: number, value: number): PostStatus;
  /** Wake waiters of the target's word (the reader's doorbell), after every earlier post. */
  notify(byteOffset: number, count?: number): PostStatus;
  /** Reap completions now (never blocks); returns how many posts are still outstanding. Throws `failed`. */
  progress(): number;
  /** Resolves when every post so far completed; rejects with the image's error. */
  settled(): Promise<void>;
  /** Atomic fetch-and-add on the target's 64-bit word at `byteOffset` (8-aligned); resolves with the old value. */
  fetchAdd(byteOffset: number, delta: bigint): Promise<bigint>;
  /** Atomic compare-and-swap on the 64-bit word; resolves with the old value (swapped iff it equals `expected`). */
  compareSwap(byteOffset: number, expected: bigint, value: bigint): Promise<bigint>;
  /** Atomic read of the 64-bit word. */
  load64(byteOffset: number): Promise<bigint>;
  /** The interface's 32-bit forms on the low half of an 8-aligned word (signed, as Atomics on an Int32Array). */
  loadAsync(byteOffset: number): Promise<number>;
  addAsync(byteOffset: number, delta: number): Promise<number>;
  compareExchangeAsync(byteOffset: number, expected: number, value: number): Promise<number>;
  /** Copy target bytes from `offset` into `into` (RDMA READ), ordered after every earlier post. */
  readAsync(offset: number, into: Uint8Array): Promise<void>;
  dispose(): void;
}

/** The control calls of a transport whose targets may live on other nodes (the *Async half of Transport). */
export interface AsyncTransport {
  readonly kind: string;
  readonly node: string;
  readonly self: ProcessIdentity;
  /** A target on this node (a Target, read in place), or the ownership of one on `options.node`. */
  exposeAsync(name: string, size: number, options?: { node?: string }): Promise<Exposed | Target>;
  attachAsync(descriptor: SegmentDescriptor): Promise<AsyncImage>;
  findAsync(name: string, node?: string): Promise<SegmentDescriptor | undefined>;
  isAliveAsync(who: ProcessIdentity, node?: string): Promise<boolean>;
  removeAsync(name: string, node?: string): Promise<void>;
  dispose(): void;
}
