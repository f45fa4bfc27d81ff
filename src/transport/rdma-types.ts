/**
 * What an image of the RDMA transport offers beyond the transport interface's Image (types.ts),
 * for callers that know they hold one (RdmaImage; tests and tools of the rxe tier):
 *
 *  - `pending`: its posts not yet completed;
 *  - `writev`: several source ranges as one request (they coalesce into work requests of several
 *    SGEs where the target ranges are contiguous, seed 002);
 *  - the 64-bit atomics the 32-bit forms of Image are built on (RDMA atomics are 64-bit words at
 *    8-aligned offsets and nothing else): fetchAdd / compareSwap / load64, as bigint.
 */
import type { Image } from './types.js';

export { PostStatus, type Exposed } from './types.js';

/** An image of a target on any node, with the RDMA extras (see the file comment). */
export interface AsyncImage extends Image {
  /** Posts not yet completed. */
  readonly pending: number;
  /** Several source ranges as one request: `ranges` is [offset0, length0, offset1, length1, …]. */
  writev(ranges: readonly number[]): import('./types.js').PostStatus;
  /** Atomic fetch-and-add on the target's 64-bit word at `byteOffset` (8-aligned); resolves with the old value. */
  fetchAdd(byteOffset: number, delta: bigint): Promise<bigint>;
  /** Atomic compare-and-swap on the 64-bit word; resolves with the old value (swapped iff it equals `expected`). */
  compareSwap(byteOffset: number, expected: bigint, value: bigint): Promise<bigint>;
  /** Atomic read of the 64-bit word. */
  load64(byteOffset: number): Promise<bigint>;
}
