/**
 * Zero-copy sends (Aeron's tryClaim, iceoryx2's loan): claim → fill → commit, or abort. The claim
 * holds the next indicator of its channel and, for a message above the inline limit, its blocks.
 */
import { UsageError } from '../errors.js';
import type { OutChannel } from './channels.js';
import type { PostboxSender } from './sender.js';

/**
 * A zero-copy send (claim → fill → commit): `buffer` is the message's place in the source
 * segment. Fill it, then commit() publishes it; abort() gives the space back. Exactly one of them
 * must be called; Postbox.close() aborts a claim left open.
 */
export class Claim {
  #endpoint: PostboxSender | undefined;
  readonly #channel: OutChannel;
  readonly buffer: Uint8Array;
  readonly #slot: number;
  readonly #first: number;
  readonly #count: number;

  /** @internal */
  constructor(endpoint: PostboxSender, channel: OutChannel, buffer: Uint8Array, slot: number, first: number, count: number) {
    this.#endpoint = endpoint;
    this.#channel = channel;
    this.buffer = buffer;
    this.#slot = slot;
    this.#first = first;
    this.#count = count;
  }

  /** Publish the message. Returns SendStatus.OK, or PEER_GONE if the receiver went away meanwhile. */
  commit(): number {
    const endpoint = this.#take();
    return endpoint.commitClaim(this, this.#channel, this.buffer.length, this.#slot, this.#first, this.#count);
  }

  /** Give the space back unpublished. */
  abort(): void {
    const endpoint = this.#endpoint;
    if (!endpoint) return;
    this.#endpoint = undefined;
    endpoint.abortClaim(this, this.#channel, this.#first, this.#count);
  }

  #take(): PostboxSender {
    const endpoint = this.#endpoint;
    if (!endpoint) throw new UsageError('this claim was already committed or aborted');
    this.#endpoint = undefined;
    return endpoint;
  }
}
