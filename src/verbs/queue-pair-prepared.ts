/**
 * Work requests a queue pair wrote into native memory once, to post many times (perftest's way):
 * PreparedSend (QueuePair.prepareSend) and PreparedRecv (QueuePair.prepareRecv).
 */
import { IBV_SEND_WR, IBV_SGE } from '../../ffi/verbs-layout.js';
import type { AddressHandle } from './address-handle.js';
import type { MemoryRegion } from './memory-region.js';
import { NativeBlock, setU64 } from './native.js';
import { PostedRing } from './queue-pair-posting.js';
import type { QueuePair } from './queue-pair.js';
import type { SendRequest } from './queue-pair-types.js';

/** @internal writeSendWr of a queue pair (queue-pair-transitions.ts), bound to it. */
type WriteSendWr = (wr: SendRequest, dv: DataView, at: number, sgeAt: number, next: number, ring: PostedRing, slot: number) => void;

/**
 * @internal Write `list` (1..maxChain requests, checked by `write`) into a new NativeBlock as a
 * chain of struct ibv_send_wr followed by their SGEs: QueuePair.prepareSend.
 */
export function writeSendChain(qp: QueuePair, list: readonly SendRequest[], write: WriteSendWr): PreparedSend {
  const count = list.length;
  const sgeBytes = qp.maxSendSge * IBV_SGE.size;
  const block = new NativeBlock(count * (IBV_SEND_WR.size + sgeBytes), 'prepared send work requests');
  try {
    const ring = new PostedRing(count, qp.maxSendSge);
    const refs: MemoryRegion[] = [];
    for (let i = 0; i < count; i++) {
      const at = i * IBV_SEND_WR.size;
      const sgeAt = count * IBV_SEND_WR.size + i * sgeBytes;
      setU64(block.view, at + IBV_SEND_WR.fields.sg_list, block.address + sgeAt);
      write(list[i], block.view, at, sgeAt, i + 1 < count ? block.address + at + IBV_SEND_WR.size : 0, ring, i);
      for (let j = 0; j < ring.counts[i]; j++) refs.push(ring.refs[i * qp.maxSendSge + j]!);
    }
    return new PreparedSend(qp, block, refs, ring.counts.slice(), ring.wrIds.slice(), ring.signaled.slice(), ring.ahs.slice());
  } catch (error) {
    block.free();
    throw error;
  }
}


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
 * A send work request — or a chain of them (a post list) — written once into native memory by
 * `QueuePair.prepareSend()`, posted with `qp.postPrepared(prepared)` (or `prepared.post()`).
 */
export class PreparedSend extends PreparedRequests {
  /** How many send work requests one post adds (the chain's length). */
  readonly count: number;
  /** @internal the regions of every request, in order (refCounts[i] for request i) */
  readonly refs: readonly MemoryRegion[];
  /** @internal */
  readonly refCounts: Uint8Array;
  /** @internal */
  readonly wrIds: Float64Array;
  /** @internal 1 where the request is signaled */
  readonly signaledFlags: Uint8Array;
  /** @internal */
  readonly ahs: readonly (AddressHandle | undefined)[];

  /** @internal use qp.prepareSend(). */
  constructor(qp: QueuePair, block: NativeBlock, refs: readonly MemoryRegion[], refCounts: Uint8Array, wrIds: Float64Array, signaledFlags: Uint8Array, ahs: readonly (AddressHandle | undefined)[]) {
    super(qp, block);
    this.refs = refs;
    this.refCounts = refCounts;
    this.wrIds = wrIds;
    this.signaledFlags = signaledFlags;
    this.ahs = ahs;
    this.count = wrIds.length;
  }

  /** The first request's wrId. */
  get wrId(): number {
    return this.wrIds[0];
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
