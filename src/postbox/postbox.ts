/**
 * Postbox messaging (seed 001) between the processes of a domain: a Postbox is one process’s
 * door — it receives through its postboxes in other processes' memory spaces and sends through
 * postboxes in its own.
 *
 * Who writes what (layouts in layout.ts):
 *   - A sender owns, on each receiving node, one data segment: its "process memory space" on that
 *     node, with one postbox per receiving process and a pool of buffer blocks (claims 1, 14). It
 *     is created on the first message to that node, with the sender's ack segment (claims 31–35).
 *   - Sending = writing the message (inline in the postbox slot up to slotBytes − 16 bytes, else
 *     in buffer blocks: claims 4, 5) and then its indicator — length, flags and location (claim
 *     2) — whose sequence word is published last with one Atomics.store. The receiver polls its
 *     postboxes and reads the message where the indicator says (claim 3); when idle it spins, then
 *     sleeps on its endpoint's bell, which a sender rings only if the receiver said it sleeps.
 *   - The receiver acknowledges by storing, in the sender's ack segment (the sender's section of
 *     the node pair's m × n blocks, claims 36–39), how many messages of that postbox it has taken
 *     (claims 32, 33). Postbox slots and buffer blocks are reused once acknowledged (claim 16).
 *   - The sender keeps per receiver the list of sent messages that hold blocks (claim 7) and its
 *     buffer count (claims 18, 19, 29), and a receiver list in order of use (claim 27). Short of
 *     blocks, it first reclaims the acknowledged memory of the receiver it is sending to (claim
 *     26), then walks the receiver list of the same node (claims 10–13, 28), and drops receivers
 *     whose count reaches zero (claims 20, 21, 30).
 *   - A message above the cyclic transaction size goes in pieces of at most that size (claims
 *     22, 23, 25) that reuse the memory of the pieces before them once acknowledged (claim 24);
 *     the receiver delivers it only when the last piece is in, so a sender that dies mid-message
 *     leaves no half message.
 *   - Every (sender, receiver) pair is a simplex channel (claim 40); a sender reaches receivers on
 *     several nodes through one data segment per node (claim 41; shm has one node, the in-process
 *     transport several).
 *
 * Everything read from shared memory is checked; a bad value breaks only its channel: the
 * receiver raises a CorruptionError for it (once, from poll/receive) and keeps serving the others.
 *
 * Hot paths (trySend, claim, poll) return numbers or null and allocate nothing per message except
 * where noted. A receiver that dies is noticed by its senders within LIVENESS_BOUND_MS (PeerGoneError).
 *
 * This file is the facade; the endpoint's parts live beside it (common.ts lists them).
 */
import { ClosedError, UsageError } from '../errors.js';
import { checkTransport } from '../transport/check.js';
import { ShmTransport } from '../transport/shm.js';
import type { Transport } from '../transport/types.js';
import type { Claim } from './claim.js';
import {
  checkName, EndpointCore, LIVENESS_INTERVAL_MS, MAX_MESSAGE_BYTES, MAX_INCOMING, MAX_POOL_BYTES, MAX_POSTBOX_BYTES, MAX_POSTBOXES, MAX_SLOT_BYTES, MAX_SLOTS, positive, type Message, type MessageHandler, type PostboxOptions,
  type PostboxState, type ReceiveOptions,
} from './common.js';
import {
  endpointBytes, EP_BELL, EP_MAGIC, EP_MAX_INCOMING, EP_STATUS, H_INIT, H_MAGIC, H_PID, H_START_HI, H_START_LO, H_VERSION,
  INIT_READY, LAYOUT_VERSION, MAX_ENDPOINT_NAME, SLOT_HEADER, STATUS_CLOSED, type DataGeometry,
} from './layout.js';
import { checkReceivers, checkSenders } from './liveness.js';
import { PostboxReceiver } from './receiver.js';
import { PostboxSender } from './sender.js';

export { Claim } from './claim.js';
export {
  LIVENESS_BOUND_MS, MAX_INCOMING, MAX_MESSAGE_BYTES, MAX_POOL_BYTES, MAX_POSTBOX_BYTES, MAX_POSTBOXES, MAX_SLOT_BYTES, MAX_SLOTS, SendStatus,
} from './common.js';
export type { Message, MessageHandler, PostboxOptions, PostboxState, ReceiveOptions } from './common.js';

let defaultTransport: ShmTransport | undefined;

export class Postbox {
  readonly name: string;
  readonly domain: string;
  readonly transport: Transport;
  /** Bytes above which a message goes in pieces (the cyclic transaction size). */
  readonly cyclicTransactionSize: number;
  readonly maxMessageBytes: number;
  readonly #core: EndpointCore;
  readonly #sender: PostboxSender;
  readonly #receiver: PostboxReceiver;
  #timer: ReturnType<typeof setInterval> | undefined;

  private constructor(core: EndpointCore, geometry: DataGeometry, options: PostboxOptions) {
    this.name = core.name;
    this.domain = core.domain;
    this.transport = core.transport;
    this.#core = core;
    const pool = geometry.blocks * geometry.blockSize;
    this.cyclicTransactionSize = Math.min(options.cyclicTransactionSize ?? 1 << 20, pool);
    this.maxMessageBytes = options.maxMessageBytes ?? MAX_MESSAGE_BYTES;
    this.#sender = new PostboxSender(core, geometry, this.cyclicTransactionSize, this.maxMessageBytes);
    this.#receiver = new PostboxReceiver(core, options.maxIncoming ?? 64, this.maxMessageBytes);
    this.#timer = setInterval(() => this.#housekeeping(), LIVENESS_INTERVAL_MS);
    (this.#timer as { unref?: () => void }).unref?.();
  }

  static open(name: string, options: PostboxOptions = {}): Postbox {
    checkName('endpoint name', name, MAX_ENDPOINT_NAME);
    if (typeof options !== 'object' || options === null) throw new UsageError(`options must be an object, got ${options === null ? 'null' : typeof options}`);
    const domain = options.domain ?? 'default';
    checkName('domain', domain, 32);
    const slotBytes = positive('slotBytes', options.slotBytes, 256, 64, 64);
    if (slotBytes > MAX_SLOT_BYTES) throw new UsageError(`slotBytes must be ≤ ${MAX_SLOT_BYTES}, got ${slotBytes}`);
    const blockSize = positive('blockSize', options.blockSize, 4096, 64, 64);
    const poolBytes = positive('poolBytes', options.poolBytes, 4 << 20, blockSize);
    if (poolBytes > MAX_POOL_BYTES) throw new UsageError(`poolBytes must be ≤ ${MAX_POOL_BYTES} (1 GiB), got ${poolBytes}`);
    const geometry: DataGeometry = {
      postboxes: positive('postboxes', options.postboxes, 64),
      slots: positive('slots', options.slots, 64, 2),
      slotBytes,
      blockSize,
      blocks: Math.floor(poolBytes / blockSize),
    };
    if (geometry.postboxes > MAX_POSTBOXES || geometry.slots > MAX_SLOTS) throw new UsageError(`postboxes must be ≤ ${MAX_POSTBOXES} and slots ≤ ${MAX_SLOTS}`);
    const postboxBytes = geometry.postboxes * geometry.slots * slotBytes;
    if (postboxBytes > MAX_POSTBOX_BYTES) {
      throw new UsageError(`postboxes × slots × slotBytes must be ≤ ${MAX_POSTBOX_BYTES} (256 MiB), got ${postboxBytes}`);
    }
    const maxIncoming = positive('maxIncoming', options.maxIncoming, 64);
    if (maxIncoming > MAX_INCOMING) throw new UsageError(`maxIncoming must be ≤ ${MAX_INCOMING}`);
    const cts = options.cyclicTransactionSize;
    if (cts !== undefined && (!Number.isSafeInteger(cts) || cts <= slotBytes - SLOT_HEADER)) {
      throw new UsageError(`cyclicTransactionSize must be a whole number above the inline limit ${slotBytes - SLOT_HEADER}, got ${String(cts)}`);
    }
    const max = options.maxMessageBytes;
    if (max !== undefined && (!Number.isSafeInteger(max) || max < 0 || max > 2 ** 31 - 1)) {
      throw new UsageError(`maxMessageBytes must be a whole number within 0..2^31-1, got ${String(max)}`);
    }
    const transport = options.transport === undefined ? (defaultTransport ??= new ShmTransport()) : checkTransport(options.transport);
    const target = transport.expose(`pb.${domain}.ep.${name}`, endpointBytes(maxIncoming), { replaceStale: true });
    const w = target.int32;
    w[H_MAGIC >> 2] = EP_MAGIC;
    w[H_VERSION >> 2] = LAYOUT_VERSION;
    w[H_PID >> 2] = transport.self.pid;
    w[H_START_LO >> 2] = Number(transport.self.start & 0xffffffffn);
    w[H_START_HI >> 2] = Number(transport.self.start >> 32n);
    w[EP_MAX_INCOMING >> 2] = maxIncoming;
    // Ordering point: the header is complete before init says READY.
    Atomics.store(w, H_INIT >> 2, INIT_READY);
    return new Postbox(new EndpointCore(name, domain, transport, target), geometry, { ...options, maxIncoming });
  }

  get closed(): boolean {
    return this.#core.closed;
  }

  // -------------------------------------------------------------------------------------------
  // Sending

  /**
   * Send `data` to `peer` ("name", or "name@node"). Resolves once the whole message is placed in
   * the receiver's postbox (its bytes are copied: `data` may be reused at once); waits for
   * acknowledgments when there is no room (back-pressure). Messages to one peer arrive in the
   * order of the send() / trySend() calls. Rejects with UsageError (bad payload, unknown peer,
   * larger than maxMessageBytes), PeerGoneError, CorruptionError (the peer broke the channel's
   * memory), ClosedError.
   */
  send(peer: string, data: Uint8Array | ArrayBufferView | ArrayBuffer): Promise<void> {
    return this.#sender.send(peer, data);
  }

  /**
   * Place `data` for `peer` now if there is room: SendStatus.OK, FULL (try later, or use send()),
   * PEER_GONE, TOO_LARGE (above the cyclic transaction size: use send()). Never waits and does not
   * throw for these conditions; throws UsageError for a bad payload or unknown peer, ClosedError
   * after close, CorruptionError if the peer broke the channel's memory.
   */
  trySend(peer: string, data: Uint8Array | ArrayBufferView | ArrayBuffer): number {
    return this.#sender.trySend(peer, data);
  }

  /**
   * Zero-copy send: reserve `length` bytes (≤ the cyclic transaction size) for `peer` and return a
   * Claim whose `buffer` is their place in the source segment — under shm the receiver's postbox
   * slot or blocks themselves, so filling it is the only copy; null when there is no room now. One
   * claim per peer may be open at a time. Throws PeerGoneError, CorruptionError, UsageError,
   * ClosedError.
   */
  claim(peer: string, length: number): Claim | null {
    return this.#sender.claim(peer, length);
  }

  /**
   * Resolve once every receiver has taken every message this endpoint sent it (or is gone):
   * close() after flush() loses nothing. TimeoutError after `timeoutMs` (default: no limit).
   */
  flush(options: { timeoutMs?: number } = {}): Promise<void> {
    return this.#sender.flush(options);
  }

  // -------------------------------------------------------------------------------------------
  // Receiving

  /**
   * Deliver up to `limit` waiting messages to `handler`, in order per sender; returns how many.
   * Never waits. The handler reads each message in place (see MessageHandler). Throws a pending
   * CorruptionError of a channel found corrupt (once; that channel is dropped, the others keep
   * working), ClosedError after close.
   */
  poll(handler: MessageHandler, limit = Infinity): number {
    return this.#receiver.poll(handler, limit);
  }

  /** A copy of the next waiting message, or undefined if none is waiting. Never waits. */
  tryReceive(): Message | undefined {
    return this.#receiver.tryReceive();
  }

  /**
   * The next message (a copy), waiting for it without blocking the event loop: spins a little,
   * then sleeps on the endpoint's bell. TimeoutError after `timeoutMs`; ClosedError if the
   * endpoint is closed meanwhile; CorruptionError as poll().
   */
  receive(options: ReceiveOptions = {}): Promise<Message> {
    return this.#receiver.receive(options);
  }

  /** Messages as they arrive (copies), until the endpoint is closed. */
  async *[Symbol.asyncIterator](): AsyncIterator<Message> {
    while (!this.#core.closed) {
      try {
        yield await this.receive();
      } catch (error) {
        if (error instanceof ClosedError && this.#core.closed) return;
        throw error;
      }
    }
  }

  /** Every LIVENESS_INTERVAL_MS: notice dead receivers (as a sender) and dead or closed senders. */
  #housekeeping(): void {
    if (this.#core.closed) return;
    checkReceivers(this.#sender);
    checkSenders(this.#receiver);
  }

  // -------------------------------------------------------------------------------------------

  /**
   * A snapshot of this endpoint's private bookkeeping, for tests and diagnostics: per node its
   * memory space (blocks free, the receiver list in order of use) and per peer channel its
   * counters and buffer count. Reads no shared memory.
   */
  inspect(): PostboxState {
    return { ...this.#sender.inspect(), ...this.#receiver.inspect() };
  }

  /**
   * Close the endpoint (await flush() first to lose nothing in flight): abort open claims, tell receivers this sender is gone and remove its data
   * and ack segments; tell senders this receiver is gone and remove its endpoint segment. Pending
   * send() and receive() calls reject with ClosedError. Idempotent.
   */
  close(): void {
    const core = this.#core;
    if (core.closed) return;
    this.#sender.abortClaims();
    core.closed = true;
    clearInterval(this.#timer);
    // As a receiver: say so, and wake senders waiting for our acknowledgments.
    Atomics.or(core.words, EP_STATUS >> 2, STATUS_CLOSED);
    this.#receiver.close();
    core.target.wake(EP_BELL);
    // As a sender: close every postbox, ring its receiver, release the segments.
    this.#sender.close();
    core.target.dispose();
  }

  dispose(): void {
    this.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
