/**
 * Work requests a queue pair wrote into native memory once, to post many times (perftest's way):
 * PreparedSend (QueuePair.prepareSend) and PreparedRecv (QueuePair.prepareRecv).
 */
import type { AddressHandle } from './address-handle.js';
import type { MemoryRegion } from './memory-region.js';
import type { NativeBlock } from './native.js';
import type { QueuePair } from './queue-pair.js';


/**
 * Work requests written once into native memory by a queue pair, for posting many times: owns
 * that block (freed by dispose(), idempotent, or with the queue pair). The provider copies the
 * requests at each post, so the block is only read during the call.
 */
/** @internal */
export abstract class PreparedRequests {
  readonly qp: QueuePair;
  #block: NativeBlock | undefined;

  constructor(qp: QueuePair, block: NativeBlock) {
    this.qp = qp;
    this.#block = block;
  }

  /** @internal the first work request's address (0 once disposed). */
  get address(): number {
    return this.#block ? this.#block.address : 0;
  }

  dispose(): void {
    const block = this.#block;
    if (!block) return;
    this.#block = undefined;
    block.free();
    this.qp.forgetPrepared(this);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/**
 * A send work request written once into native memory by `QueuePair.prepareSend()`, posted with
 * `qp.postPrepared(prepared)` (or `prepared.post()`).
 */
export class PreparedSend extends PreparedRequests {
  /** @internal */
  readonly refs: readonly MemoryRegion[];
  readonly wrId: number;
  /** @internal 1 when signaled */
  readonly signaled: number;
  /** @internal */
  readonly ah: AddressHandle | undefined;

  /** @internal use qp.prepareSend(). */
  constructor(qp: QueuePair, block: NativeBlock, refs: readonly MemoryRegion[], wrId: number, signaled: number, ah: AddressHandle | undefined) {
    super(qp, block);
    this.refs = refs;
    this.wrId = wrId;
    this.signaled = signaled;
    this.ah = ah;
  }

  /** Post it on its queue pair: see QueuePair.postPrepared. */
  post(): number {
    return this.qp.postPrepared(this);
  }
}

/**
 * Receive work requests (one, or a chain) written once into native memory by
 * `QueuePair.prepareRecv()`, posted with `qp.postPreparedRecv(prepared)` (or `prepared.post()`).
 */
export class PreparedRecv extends PreparedRequests {
  /** How many receive work requests one post adds (the chain's length). */
  readonly count: number;
  /** @internal the regions of every request, in order (refCounts[i] for request i) */
  readonly refs: readonly MemoryRegion[];
  /** @internal */
  readonly refCounts: Uint8Array;
  /** @internal */
  readonly wrIds: Float64Array;

  /** @internal use qp.prepareRecv(). */
  constructor(qp: QueuePair, block: NativeBlock, refs: readonly MemoryRegion[], refCounts: Uint8Array, wrIds: Float64Array) {
    super(qp, block);
    this.refs = refs;
    this.refCounts = refCounts;
    this.wrIds = wrIds;
    this.count = wrIds.length;
  }

  /** The first request's wrId. */
  get wrId(): number {
    return this.wrIds[0];
  }

  /** Post it on its queue pair: see QueuePair.postPreparedRecv. */
  post(): number {
    return this.qp.postPreparedRecv(this);
  }
}
