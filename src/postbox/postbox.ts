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
 */
import { ClosedError, CorruptionError, PeerGoneError, TimeoutError, UsageError } from '../errors.js';
import { decodeDescriptor, DESCRIPTOR_BYTES, encodeDescriptor } from '../transport/descriptor.js';
import { ShmTransport } from '../transport/shm.js';
import type { Image, SegmentDescriptor, Target, Transport } from '../transport/types.js';
import { BlockAllocator, SentList } from './blocks.js';
import {
  AB_CONSUMED, AB_STATUS, ackBytes, AK_BELL, AK_BLOCK_BYTES, AK_BLOCKS, AK_FIRST_BLOCK, AK_MAGIC, AK_SENDER_WAITING,
  DIR_ASSIGNED, DIR_BYTES, DIR_CLOSED, DIR_FREE, DIR_NAME, DIR_NAME_LEN, DIR_STATE, DIR_EPOCH, DS_ACK_DESCRIPTOR,
  DS_BLOCK_SIZE, DS_BLOCKS, DS_CLOSED, DS_DIRECTORY, DS_MAGIC, DS_OPEN, DS_POSTBOXES, DS_SLOT_BYTES, DS_SLOTS, DS_STATE,
  dataBytes, EN_DESCRIPTOR, EN_NAME, EN_NAME_LEN, EN_PID, EN_POSTBOX, EN_START_HI, EN_START_LO, EN_STATE, endpointBytes,
  ENTRY_BYTES, ENTRY_CLAIMED, ENTRY_FREE, ENTRY_READY, EP_BELL, EP_ENTRIES, EP_MAGIC, EP_MAX_INCOMING, EP_REGISTRATIONS,
  EP_STATUS, F_BLOCKS, F_FIRST, F_INLINE, F_KNOWN, F_LAST, H_INIT, H_MAGIC, H_PID, H_START_HI, H_START_LO, H_VERSION,
  INIT_READY, LAYOUT_VERSION, MAX_ENDPOINT_NAME, poolOffset, postboxOffset, RX_CLOSED, RX_CORRUPT, SLOT_FLAGS, SLOT_HEADER,
  SLOT_INLINE, SLOT_LENGTH, SLOT_LOCATION, SLOT_TOTAL, STATUS_CLOSED, STATUS_SLEEPING, type DataGeometry,
} from './layout.js';

/** trySend() results. Negative: not placed. */
export const SendStatus = {
  /** Placed: the receiver will see it. */
  OK: 0,
  /** No room now (postbox full, no free blocks, or an earlier send() still queued): try later. */
  FULL: -1,
  /** The receiver is gone (died or closed): nothing more can reach it. */
  PEER_GONE: -2,
  /** Larger than the cyclic transaction size: it must go in pieces, which send() does. */
  TOO_LARGE: -3,
} as const;

/** The largest message send() accepts by default: 1 GiB (chunked above the cyclic transaction size). */
export const MAX_MESSAGE_BYTES = 2 ** 30;
/** A dead receiver is reported to its senders at most this long after it died (event loop running). */
export const LIVENESS_BOUND_MS = 250;
const LIVENESS_INTERVAL_MS = 100;
const WAIT_SLICE_MS = 50;

export interface PostboxOptions {
  /** Endpoints meet within a domain (default 'default'): 1–32 characters of A–Z a–z 0–9 _ -. */
  domain?: string;
  /** The transport; default the shm transport (processes of this machine). */
  transport?: Transport;
  /** n: postboxes in each of this sender's data segments = receivers it can reach per node (default 64). */
  postboxes?: number;
  /** Message indicators per postbox (default 64): messages in flight to one receiver. */
  slots?: number;
  /** Bytes per indicator slot (default 256, a multiple of 64): messages up to slotBytes − 16 go inline. */
  slotBytes?: number;
  /** Buffer block size (default 4096, a multiple of 64). */
  blockSize?: number;
  /** Buffer pool bytes per data segment (default 4 MiB). */
  poolBytes?: number;
  /** The cyclic transaction size: the most memory one message or piece uses (default min(1 MiB, pool)). */
  cyclicTransactionSize?: number;
  /** Senders that can register with this endpoint at once (default 64). */
  maxIncoming?: number;
  /** Largest message this endpoint sends or accepts (default MAX_MESSAGE_BYTES). */
  maxMessageBytes?: number;
}

export interface Message {
  /** The sender's endpoint name (with "@node" when it is on another node). */
  readonly from: string;
  /** The message's bytes: a copy this process owns. */
  readonly data: Uint8Array;
}

/**
 * Called by poll() for each message. `buffer[offset, offset + length)` is the message, read in
 * place from shared memory (or a private reassembly buffer for a chunked one): it is valid only
 * during the call — copy what you keep.
 */
export type MessageHandler = (buffer: Uint8Array, offset: number, length: number, from: string) => void;

export interface PostboxState {
  nodes: { node: string; dataSegment: string; ackSegment: string; blocks: number; freeBlocks: number; receiverList: string[]; postboxesInUse: number }[];
  peers: { peer: string; node: string; postbox: number; sent: number; acknowledged: number; bufferCount: number; messagesHoldingBlocks: number; gone: string | null }[];
  senders: { from: string; received: number; assembling: boolean }[];
}

export interface ReceiveOptions {
  /** Give up after this long: TimeoutError. Default: wait for ever. */
  timeoutMs?: number;
  /** Polls before sleeping (default 1000). */
  spin?: number;
}

const NAME = /^[A-Za-z0-9_-]+$/;

function checkName(what: string, name: unknown, max: number): asserts name is string {
  if (typeof name !== 'string' || name.length === 0 || name.length > max || !NAME.test(name)) {
    throw new UsageError(`${what} must be 1–${max} characters of A–Z a–z 0–9 _ -, got ${JSON.stringify(name)}`);
  }
}

function positive(what: string, value: number | undefined, fallback: number, min = 1, multiple = 1): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v < min || v % multiple !== 0) {
    throw new UsageError(`${what} must be a whole number ≥ ${min}${multiple > 1 ? ` and a multiple of ${multiple}` : ''}, got ${String(value)}`);
  }
  return v;
}

/** A payload as bytes, or a UsageError: Uint8Array (and Buffer), any ArrayBufferView, ArrayBuffer. */
function toBytes(data: unknown): Uint8Array {
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  throw new UsageError(`a message must be bytes (Uint8Array, Buffer, ArrayBufferView or ArrayBuffer), got ${data === null ? 'null' : typeof data}`);
}

function nodeTag(node: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < node.length; i++) h = Math.imul(h ^ node.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(16).padStart(8, '0');
}

let defaultTransport: ShmTransport | undefined;

function readAscii(bytes: Uint8Array, at: number, length: number): string {
  let s = '';
  for (let i = 0; i < length; i++) s += String.fromCharCode(bytes[at + i]);
  return s;
}

function writeAscii(bytes: Uint8Array, at: number, text: string): void {
  for (let i = 0; i < text.length; i++) bytes[at + i] = text.charCodeAt(i);
}

function startOf(lo: number, hi: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

// ---------------------------------------------------------------------------------------------
// Sender side

/** This sender's memory space on one receiving node: data segment, ack segment, block pool. */
class NodeSpace {
  readonly node: string;
  readonly data: Target;
  readonly image: Image;
  /** The source segment as words (the image's source). */
  readonly words: Int32Array;
  readonly ack: Target;
  readonly geometry: DataGeometry;
  readonly inlineMax: number;
  readonly postboxBase: number;
  readonly poolBase: number;
  readonly allocator: BlockAllocator;
  /** Postbox index → the channel using it. */
  readonly postboxes: (OutChannel | undefined)[];
  /** The receiver list: receivers holding blocks, in order of use (claim 27); last = most recent. */
  readonly receivers = new Set<OutChannel>();
  lastUsed: OutChannel | undefined;

  constructor(node: string, data: Target, image: Image, ack: Target, geometry: DataGeometry) {
    this.node = node;
    this.data = data;
    this.image = image;
    this.words = new Int32Array(image.source.buffer, image.source.byteOffset, image.size >> 2);
    this.ack = ack;
    this.geometry = geometry;
    this.inlineMax = geometry.slotBytes - SLOT_HEADER;
    this.postboxBase = postboxOffset(geometry);
    this.poolBase = poolOffset(geometry);
    this.allocator = new BlockAllocator(geometry.blocks);
    this.postboxes = new Array(geometry.postboxes).fill(undefined);
  }
}

/** One simplex channel from this endpoint to one receiver (claim 40). */
class OutChannel {
  readonly peer: string;
  readonly space: NodeSpace;
  readonly index: number;
  readonly slotBase: number;
  readonly ackWord: number;
  readonly endpoint: Image;
  readonly pid: number;
  readonly start: bigint;
  readonly list: SentList;
  sent = 0;
  consumed = 0;
  inList = false;
  /** send() calls queued behind one another (order per pair). */
  queued = 0;
  tail: Promise<void> = Promise.resolve();
  claimOpen = false;
  touched = false;
  lastCheck = 0;
  gone: Error | null = null;

  constructor(peer: string, space: NodeSpace, index: number, endpoint: Image, pid: number, start: bigint) {
    this.peer = peer;
    this.space = space;
    this.index = index;
    this.slotBase = space.postboxBase + index * space.geometry.slots * space.geometry.slotBytes;
    this.ackWord = (AK_FIRST_BLOCK + index * AK_BLOCK_BYTES) >> 2;
    this.endpoint = endpoint;
    this.pid = pid;
    this.start = start;
    this.list = new SentList(space.geometry.slots);
  }
}

/**
 * A zero-copy send (claim → fill → commit): `buffer` is the message's place in the source
 * segment. Fill it, then commit() publishes it; abort() gives the space back. Exactly one of them
 * must be called; Postbox.close() aborts a claim left open.
 */
export class Claim {
  #endpoint: Postbox | undefined;
  readonly #channel: OutChannel;
  readonly buffer: Uint8Array;
  readonly #slot: number;
  readonly #first: number;
  readonly #count: number;

  /** @internal */
  constructor(endpoint: Postbox, channel: OutChannel, buffer: Uint8Array, slot: number, first: number, count: number) {
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

  #take(): Postbox {
    const endpoint = this.#endpoint;
    if (!endpoint) throw new UsageError('this claim was already committed or aborted');
    this.#endpoint = undefined;
    return endpoint;
  }
}

// ---------------------------------------------------------------------------------------------
// Receiver side

/** One sender's postbox as this receiver polls it. */
class InChannel {
  readonly from: string;
  readonly entry: number;
  readonly data: Target;
  readonly words: Int32Array;
  readonly bytes: Uint8Array;
  readonly ack: Image;
  readonly ackWord: number;
  readonly slots: number;
  readonly slotBytes: number;
  readonly inlineMax: number;
  readonly blockSize: number;
  readonly blocks: number;
  readonly slotBase: number;
  readonly poolBase: number;
  readonly directoryEntry: number;
  readonly pid: number;
  readonly start: bigint;
  readonly node: string;
  next = 0;
  firstLap = true;
  closing = false;
  /** The sender died: when its postbox is empty, its segments' names are removed. */
  deadSender = false;
  /** A chunked message being reassembled. */
  assembly: Uint8Array | null = null;
  assembled = 0;
  total = 0;

  constructor(init: {
    from: string; entry: number; data: Target; ack: Image; index: number; g: DataGeometry; pid: number; start: bigint; node: string;
  }) {
    const { g } = init;
    this.from = init.from;
    this.entry = init.entry;
    this.data = init.data;
    this.words = init.data.int32;
    this.bytes = init.data.bytes;
    this.ack = init.ack;
    this.ackWord = AK_FIRST_BLOCK + init.index * AK_BLOCK_BYTES;
    this.slots = g.slots;
    this.slotBytes = g.slotBytes;
    this.inlineMax = g.slotBytes - SLOT_HEADER;
    this.blockSize = g.blockSize;
    this.blocks = g.blocks;
    this.slotBase = postboxOffset(g) + init.index * g.slots * g.slotBytes;
    this.poolBase = poolOffset(g);
    this.directoryEntry = DS_DIRECTORY + init.index * DIR_BYTES;
    this.pid = init.pid;
    this.start = init.start;
    this.node = init.node;
  }
}

class ChannelCorrupt extends Error {}

// ---------------------------------------------------------------------------------------------

export class Postbox {
  readonly name: string;
  readonly domain: string;
  readonly transport: Transport;
  /** Bytes above which a message goes in pieces (the cyclic transaction size). */
  readonly cyclicTransactionSize: number;
  readonly maxMessageBytes: number;
  readonly #geometry: DataGeometry;
  readonly #maxIncoming: number;
  readonly #target: Target;
  readonly #words: Int32Array;
  readonly #spaces = new Map<string, NodeSpace>();
  readonly #out = new Map<string, OutChannel>();
  readonly #in: InChannel[] = [];
  readonly #inByEntry: (InChannel | undefined)[];
  /** Entries found corrupt: ignored until their sender frees or re-registers them. */
  readonly #ignored = new Set<number>();
  readonly #errors: Error[] = [];
  readonly #claims = new Set<Claim>();
  #registrations = -1;
  #rr = 0;
  #closed = false;
  #timer: ReturnType<typeof setInterval> | undefined;
  #copyOut: Message | undefined;
  readonly #copyHandler: MessageHandler = (buffer, offset, length, from) => {
    this.#copyOut = { from, data: buffer.slice(offset, offset + length) };
  };

  private constructor(name: string, domain: string, transport: Transport, target: Target, geometry: DataGeometry, options: PostboxOptions) {
    this.name = name;
    this.domain = domain;
    this.transport = transport;
    this.#target = target;
    this.#words = target.int32;
    this.#geometry = geometry;
    this.#maxIncoming = options.maxIncoming ?? 64;
    this.#inByEntry = new Array(this.#maxIncoming).fill(undefined);
    const pool = geometry.blocks * geometry.blockSize;
    this.cyclicTransactionSize = Math.min(options.cyclicTransactionSize ?? 1 << 20, pool);
    this.maxMessageBytes = options.maxMessageBytes ?? MAX_MESSAGE_BYTES;
    this.#timer = setInterval(() => this.#housekeeping(), LIVENESS_INTERVAL_MS);
    (this.#timer as { unref?: () => void }).unref?.();
  }

  /**
   * Open the endpoint `name` of `options.domain`: create its endpoint segment (the place senders
   * register postboxes for it). Nothing else is created until a message is sent (claims 31, 34).
   * UsageError for a bad name or option, or a name a live endpoint holds.
   */
  static open(name: string, options: PostboxOptions = {}): Postbox {
    checkName('endpoint name', name, MAX_ENDPOINT_NAME);
    const domain = options.domain ?? 'default';
    checkName('domain', domain, 32);
    const slotBytes = positive('slotBytes', options.slotBytes, 256, 64, 64);
    const blockSize = positive('blockSize', options.blockSize, 4096, 64, 64);
    const poolBytes = positive('poolBytes', options.poolBytes, 4 << 20, blockSize);
    const geometry: DataGeometry = {
      postboxes: positive('postboxes', options.postboxes, 64),
      slots: positive('slots', options.slots, 64, 2),
      slotBytes,
      blockSize,
      blocks: Math.floor(poolBytes / blockSize),
    };
    if (geometry.postboxes > 4096 || geometry.slots > 1 << 16) throw new UsageError('postboxes must be ≤ 4096 and slots ≤ 65536');
    const maxIncoming = positive('maxIncoming', options.maxIncoming, 64);
    if (maxIncoming > 4096) throw new UsageError('maxIncoming must be ≤ 4096');
    const cts = options.cyclicTransactionSize;
    if (cts !== undefined && (!Number.isSafeInteger(cts) || cts <= slotBytes - SLOT_HEADER)) {
      throw new UsageError(`cyclicTransactionSize must be a whole number above the inline limit ${slotBytes - SLOT_HEADER}, got ${String(cts)}`);
    }
    const max = options.maxMessageBytes;
    if (max !== undefined && (!Number.isSafeInteger(max) || max < 0 || max > 2 ** 31 - 1)) {
      throw new UsageError(`maxMessageBytes must be a whole number within 0..2^31-1, got ${String(max)}`);
    }
    const transport = options.transport ?? (defaultTransport ??= new ShmTransport());
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
    return new Postbox(name, domain, transport, target, geometry, { ...options, maxIncoming });
  }

  get closed(): boolean {
    return this.#closed;
  }

  #live(): void {
    if (this.#closed) throw new ClosedError(`endpoint ${JSON.stringify(this.name)}`);
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
  async send(peer: string, data: Uint8Array | ArrayBufferView | ArrayBuffer): Promise<void> {
    this.#live();
    const bytes = toBytes(data);
    if (bytes.length > this.maxMessageBytes) {
      throw new UsageError(`message of ${bytes.length} bytes is over the limit of ${this.maxMessageBytes} bytes`);
    }
    let ch = this.#channel(peer);
    if (ch.gone) ch = this.#reconnect(peer, ch);
    if (ch.queued === 0 && !ch.claimOpen && bytes.length <= this.cyclicTransactionSize) {
      const status = this.#place(ch, bytes, 0, bytes.length, F_FIRST | F_LAST, bytes.length);
      if (status === SendStatus.OK) return;
      if (status === SendStatus.PEER_GONE) throw ch.gone!;
    }
    ch.queued++;
    const mine = ch.tail.then(() => this.#sendSlow(ch, bytes));
    ch.tail = mine.catch(() => undefined);
    try {
      await mine;
    } finally {
      ch.queued--;
    }
  }

  /**
   * Place `data` for `peer` now if there is room: SendStatus.OK, FULL (try later, or use send()),
   * PEER_GONE, TOO_LARGE (above the cyclic transaction size: use send()). Never waits and does not
   * throw for these conditions; throws UsageError for a bad payload or unknown peer, ClosedError
   * after close, CorruptionError if the peer broke the channel's memory.
   */
  trySend(peer: string, data: Uint8Array | ArrayBufferView | ArrayBuffer): number {
    if (this.#closed) this.#live();
    const bytes = data instanceof Uint8Array ? data : toBytes(data);
    const ch = this.#out.get(peer) ?? this.#channel(peer);
    if (ch.gone) {
      if (ch.gone instanceof PeerGoneError) return SendStatus.PEER_GONE;
      throw ch.gone;
    }
    if (bytes.length > this.cyclicTransactionSize) return SendStatus.TOO_LARGE;
    if (ch.queued !== 0 || ch.claimOpen) return SendStatus.FULL;
    return this.#place(ch, bytes, 0, bytes.length, F_FIRST | F_LAST, bytes.length);
  }

  /**
   * Zero-copy send: reserve `length` bytes (≤ the cyclic transaction size) for `peer` and return a
   * Claim whose `buffer` is their place in the source segment — under shm the receiver's postbox
   * slot or blocks themselves, so filling it is the only copy; null when there is no room now. One
   * claim per peer may be open at a time. Throws PeerGoneError, CorruptionError, UsageError,
   * ClosedError.
   */
  claim(peer: string, length: number): Claim | null {
    this.#live();
    if (!Number.isSafeInteger(length) || length < 0 || length > this.cyclicTransactionSize) {
      throw new UsageError(`claim length must be a whole number within 0..${this.cyclicTransactionSize}, got ${String(length)}`);
    }
    const ch = this.#channel(peer);
    if (ch.gone) throw ch.gone;
    if (ch.claimOpen) throw new UsageError(`a claim for ${JSON.stringify(peer)} is already open`);
    if (ch.queued !== 0) return null;
    const sp = ch.space;
    if (((ch.sent - ch.consumed) | 0) >= sp.geometry.slots && !this.#refresh(ch)) {
      if (this.#full(ch) === SendStatus.PEER_GONE) throw ch.gone!;
      return null;
    }
    const slot = ch.slotBase + ((ch.sent >>> 0) % sp.geometry.slots) * sp.geometry.slotBytes;
    let first = -1;
    let count = 0;
    let at = slot + SLOT_INLINE;
    if (length > sp.inlineMax) {
      count = Math.ceil(length / sp.geometry.blockSize);
      first = this.#allocate(ch, count);
      if (first < 0) {
        if (this.#full(ch) === SendStatus.PEER_GONE) throw ch.gone!;
        return null;
      }
      at = sp.poolBase + first * sp.geometry.blockSize;
    }
    ch.claimOpen = true;
    const claim = new Claim(this, ch, sp.image.source.subarray(at, at + length), slot, first, count);
    this.#claims.add(claim);
    return claim;
  }

  /** @internal Claim.commit() */
  commitClaim(claim: Claim, ch: OutChannel, length: number, slot: number, first: number, count: number): number {
    ch.claimOpen = false;
    this.#claims.delete(claim);
    if (this.#closed) throw new ClosedError(`endpoint ${JSON.stringify(this.name)}`);
    if (ch.gone) {
      if (first >= 0) ch.space.allocator.release(first, count);
      if (ch.gone instanceof PeerGoneError) return SendStatus.PEER_GONE;
      throw ch.gone;
    }
    if (first >= 0) ch.space.image.write(ch.space.poolBase + first * ch.space.geometry.blockSize, length);
    return this.#publish(ch, slot, length, F_FIRST | F_LAST, length, first, count);
  }

  /** @internal Claim.abort() */
  abortClaim(claim: Claim, ch: OutChannel, first: number, count: number): void {
    ch.claimOpen = false;
    this.#claims.delete(claim);
    if (first >= 0 && !ch.gone) ch.space.allocator.release(first, count);
  }

  /** Resolve a peer to its channel, connecting on first use (lazy creation, claims 31–35). */
  #channel(peer: string): OutChannel {
    const existing = this.#out.get(peer);
    if (existing) return existing;
    if (typeof peer !== 'string') throw new UsageError(`peer must be a string, got ${typeof peer}`);
    const at = peer.indexOf('@');
    const name = at < 0 ? peer : peer.slice(0, at);
    const node = at < 0 ? this.transport.node : peer.slice(at + 1);
    checkName('peer name', name, MAX_ENDPOINT_NAME);
    const ch = this.#connect(peer, name, node);
    this.#out.set(peer, ch);
    return ch;
  }

  #reconnect(peer: string, old: OutChannel): OutChannel {
    if (!(old.gone instanceof PeerGoneError)) throw old.gone!;
    const at = peer.indexOf('@');
    const name = at < 0 ? peer : peer.slice(0, at);
    const node = at < 0 ? this.transport.node : peer.slice(at + 1);
    const descriptor = this.transport.find(`pb.${this.domain}.ep.${name}`, node);
    if (!descriptor) throw old.gone;
    let fresh: OutChannel;
    try {
      fresh = this.#connect(peer, name, node);
    } catch {
      throw old.gone;
    }
    if (fresh.pid === old.pid && fresh.start === old.start) {
      this.#dropChannel(fresh, false);
      throw old.gone;
    }
    this.#out.set(peer, fresh);
    return fresh;
  }

  #connect(peer: string, name: string, node: string): OutChannel {
    const descriptor = this.transport.find(`pb.${this.domain}.ep.${name}`, node);
    if (!descriptor) throw new UsageError(`unknown peer ${JSON.stringify(peer)}: no endpoint of that name in domain ${JSON.stringify(this.domain)}`);
    const endpoint = this.transport.attach(descriptor);
    let space: NodeSpace | undefined;
    try {
      // The endpoint's creator stores init last; a just-opened endpoint may still be writing it.
      const deadline = Date.now() + 2000;
      while (endpoint.load(H_INIT) !== INIT_READY && Date.now() < deadline);
      if (endpoint.load(H_MAGIC) !== EP_MAGIC || endpoint.load(H_VERSION) !== LAYOUT_VERSION || endpoint.load(H_INIT) !== INIT_READY) {
        throw new CorruptionError(descriptor.name, 'not an initialised postbox endpoint segment (magic, version or init)');
      }
      const pid = endpoint.load(H_PID);
      const start = startOf(endpoint.load(H_START_LO), endpoint.load(H_START_HI));
      if ((endpoint.load(EP_STATUS) & STATUS_CLOSED) !== 0 || !this.transport.isAlive({ pid, start }, node)) {
        throw new PeerGoneError(peer, 'its endpoint is closed or its process is not running');
      }
      const maxIncoming = endpoint.load(EP_MAX_INCOMING);
      if (maxIncoming < 1 || EP_ENTRIES + maxIncoming * ENTRY_BYTES > descriptor.size) {
        throw new CorruptionError(descriptor.name, `maxIncoming ${maxIncoming} does not fit the segment`);
      }
      space = this.#space(node);
      const index = space.postboxes.indexOf(undefined);
      if (index < 0) throw new UsageError(`all ${space.geometry.postboxes} postboxes on node ${node} are in use (option postboxes)`);
      const ch = new OutChannel(peer, space, index, endpoint, pid, start);
      this.#preparePostbox(space, ch, name);
      this.#register(endpoint, descriptor.name, maxIncoming, space, index);
      space.postboxes[index] = ch;
      return ch;
    } catch (error) {
      endpoint.dispose();
      throw error;
    }
  }

  /** Reset a postbox for a new receiver and name it in the directory (claim 1). */
  #preparePostbox(sp: NodeSpace, ch: OutChannel, receiver: string): void {
    const g = sp.geometry;
    const { image, words } = sp;
    image.source.fill(0, ch.slotBase, ch.slotBase + g.slots * g.slotBytes);
    image.write(ch.slotBase, g.slots * g.slotBytes);
    // The ack block is ours (our node): reset it before the receiver can see the postbox.
    Atomics.store(sp.ack.int32, ch.ackWord + (AB_CONSUMED >> 2), 0);
    Atomics.store(sp.ack.int32, ch.ackWord + (AB_STATUS >> 2), 0);
    const dir = DS_DIRECTORY + ch.index * DIR_BYTES;
    words[(dir + DIR_EPOCH) >> 2] = (words[(dir + DIR_EPOCH) >> 2] + 1) | 0;
    words[(dir + DIR_NAME_LEN) >> 2] = receiver.length;
    image.source.fill(0, dir + DIR_NAME, dir + DIR_BYTES);
    writeAscii(image.source, dir + DIR_NAME, receiver);
    image.write(dir + DIR_EPOCH, DIR_BYTES - DIR_EPOCH);
    image.publish(dir + DIR_STATE, DIR_ASSIGNED);
  }

  /** Tell the receiver where its postbox is: an entry in its endpoint segment. */
  #register(endpoint: Image, region: string, maxIncoming: number, sp: NodeSpace, index: number): void {
    for (let i = 0; i < maxIncoming; i++) {
      const at = EP_ENTRIES + i * ENTRY_BYTES;
      if (endpoint.compareExchange(at + EN_STATE, ENTRY_FREE, ENTRY_CLAIMED) !== ENTRY_FREE) continue;
      const src = endpoint.source;
      const w = new DataView(src.buffer, src.byteOffset + at, ENTRY_BYTES);
      w.setInt32(EN_POSTBOX, index, true);
      w.setInt32(EN_PID, this.transport.self.pid, true);
      w.setUint32(EN_START_LO, Number(this.transport.self.start & 0xffffffffn), true);
      w.setUint32(EN_START_HI, Number(this.transport.self.start >> 32n), true);
      w.setInt32(EN_NAME_LEN, this.name.length, true);
      src.fill(0, at + EN_NAME, at + EN_DESCRIPTOR);
      writeAscii(src, at + EN_NAME, this.name);
      encodeDescriptor(sp.data.descriptor, src.subarray(at + EN_DESCRIPTOR, at + EN_DESCRIPTOR + DESCRIPTOR_BYTES));
      endpoint.write(at + EN_POSTBOX, EN_DESCRIPTOR + DESCRIPTOR_BYTES - EN_POSTBOX);
      // Ordering point: the entry is complete before its state says READY.
      endpoint.publish(at + EN_STATE, ENTRY_READY);
      endpoint.add(EP_REGISTRATIONS, 1);
      endpoint.add(EP_BELL, 1);
      endpoint.notify(EP_BELL);
      return;
    }
    throw new UsageError(`receiver ${region} has no free registration entry (its maxIncoming is ${maxIncoming})`);
  }

  /** This sender's memory space on `node`, created on first need with its ack segment (claims 31–35, 39). */
  #space(node: string): NodeSpace {
    const existing = this.#spaces.get(node);
    if (existing) return existing;
    const g = this.#geometry;
    const self = this.transport.self;
    const ack = this.transport.expose(`pb.${this.domain}.ack.${this.name}.${nodeTag(node)}`, ackBytes(g.postboxes), { replaceStale: true });
    let data: Target | undefined;
    let image: Image | undefined;
    try {
      const aw = ack.int32;
      aw[H_MAGIC >> 2] = AK_MAGIC;
      aw[H_VERSION >> 2] = LAYOUT_VERSION;
      aw[H_PID >> 2] = self.pid;
      aw[H_START_LO >> 2] = Number(self.start & 0xffffffffn);
      aw[H_START_HI >> 2] = Number(self.start >> 32n);
      aw[AK_BLOCKS >> 2] = g.postboxes;
      Atomics.store(aw, H_INIT >> 2, INIT_READY);
      data = this.transport.expose(`pb.${this.domain}.data.${this.name}`, dataBytes(g), { replaceStale: true, node });
      image = this.transport.attach(data.descriptor);
      const w = new Int32Array(image.source.buffer, image.source.byteOffset, 64 >> 2);
      w[H_MAGIC >> 2] = DS_MAGIC;
      w[H_VERSION >> 2] = LAYOUT_VERSION;
      w[H_PID >> 2] = self.pid;
      w[H_START_LO >> 2] = Number(self.start & 0xffffffffn);
      w[H_START_HI >> 2] = Number(self.start >> 32n);
      w[DS_POSTBOXES >> 2] = g.postboxes;
      w[DS_SLOTS >> 2] = g.slots;
      w[DS_SLOT_BYTES >> 2] = g.slotBytes;
      w[DS_BLOCK_SIZE >> 2] = g.blockSize;
      w[DS_BLOCKS >> 2] = g.blocks;
      w[DS_STATE >> 2] = DS_OPEN;
      encodeDescriptor(ack.descriptor, image.source.subarray(DS_ACK_DESCRIPTOR, DS_ACK_DESCRIPTOR + DESCRIPTOR_BYTES));
      image.write(0, DS_DIRECTORY);
      image.publish(H_INIT, INIT_READY);
    } catch (error) {
      image?.dispose();
      data?.dispose();
      ack.dispose();
      throw error;
    }
    const space = new NodeSpace(node, data, image, ack, g);
    this.#spaces.set(node, space);
    return space;
  }

  /** Read the receiver's acknowledgment; true if the postbox has a free slot now. */
  #refresh(ch: OutChannel): boolean {
    const aw = ch.space.ack.int32;
    const consumed = Atomics.load(aw, ch.ackWord + (AB_CONSUMED >> 2));
    const status = Atomics.load(aw, ch.ackWord + (AB_STATUS >> 2));
    if (status !== 0) {
      if (status === RX_CLOSED) this.#gone(ch, 'it closed the channel');
      else if (status === RX_CORRUPT) this.#broken(ch, new CorruptionError(ch.space.data.descriptor.name, `receiver ${ch.peer} found the channel's memory corrupt`));
      else this.#broken(ch, new CorruptionError(ch.space.ack.descriptor.name, `ack block ${ch.index} holds status ${status}`));
      return false;
    }
    const advance = (consumed - ch.consumed) | 0;
    if (advance < 0 || advance > ((ch.sent - ch.consumed) | 0)) {
      this.#broken(ch, new CorruptionError(ch.space.ack.descriptor.name, `ack block ${ch.index} says ${consumed} consumed; ${ch.consumed}..${ch.sent} is possible`));
      return false;
    }
    ch.consumed = consumed;
    return ((ch.sent - consumed) | 0) < ch.space.geometry.slots;
  }

  /** Reclaim acknowledged blocks of one receiver (claims 11, 16–18); drop it from the list at zero (claims 20, 30). */
  #reclaimFrom(ch: OutChannel): void {
    if (ch.gone) return;
    this.#refresh(ch);
    if (ch.gone) return;
    const sp = ch.space;
    ch.list.reclaim(ch.consumed, sp.allocator);
    if (ch.list.blocks === 0 && ch.inList) {
      sp.receivers.delete(ch);
      ch.inList = false;
      if (sp.lastUsed === ch) sp.lastUsed = undefined;
    }
  }

  /** `count` contiguous blocks for `ch`, reclaiming acknowledged space when short; -1 if none. */
  #allocate(ch: OutChannel, count: number): number {
    const sp = ch.space;
    let first = sp.allocator.alloc(count);
    if (first >= 0) return first;
    // Claim 26 (and 24): first the memory of earlier messages — or pieces — to this receiver.
    this.#reclaimFrom(ch);
    first = sp.allocator.alloc(count);
    if (first >= 0) return first;
    // Claims 10, 12, 13, 27, 28: then the receivers of this node, in order of use.
    for (const other of sp.receivers) {
      if (other === ch) continue;
      this.#reclaimFrom(other);
      if (sp.allocator.free >= count) {
        first = sp.allocator.alloc(count);
        if (first >= 0) return first;
      }
    }
    return sp.allocator.alloc(count);
  }

  /** Write one message or piece and publish its indicator; SendStatus. */
  #place(ch: OutChannel, data: Uint8Array, from: number, length: number, flags: number, total: number): number {
    const sp = ch.space;
    const g = sp.geometry;
    // Claim 8: is there room in the postbox for an indicator?
    if (((ch.sent - ch.consumed) | 0) >= g.slots && !this.#refresh(ch)) return this.#full(ch);
    const slot = ch.slotBase + ((ch.sent >>> 0) % g.slots) * g.slotBytes;
    const source = sp.image.source;
    if (length <= sp.inlineMax) {
      // Claims 4, 5: small enough to go inline, in the indicator's slot.
      if (length > 0) source.set(from === 0 && length === data.length ? data : data.subarray(from, from + length), slot + SLOT_INLINE);
      return this.#publish(ch, slot, length, flags, total, -1, 0);
    }
    const count = Math.ceil(length / g.blockSize);
    const first = this.#allocate(ch, count);
    if (first < 0) return this.#full(ch);
    const at = sp.poolBase + first * g.blockSize;
    source.set(from === 0 && length === data.length ? data : data.subarray(from, from + length), at);
    sp.image.write(at, length);
    return this.#publish(ch, slot, length, flags, total, first, count);
  }

  /**
   * No room: FULL — unless the receiver is gone. Checked here at most every LIVENESS_INTERVAL_MS
   * too, so a loop that only calls trySend (the event loop never runs) still learns of a death.
   */
  #full(ch: OutChannel): number {
    if (!ch.gone) {
      const now = Date.now();
      if (now - ch.lastCheck >= LIVENESS_INTERVAL_MS) {
        ch.lastCheck = now;
        this.#checkReceiver(ch);
      }
    }
    return ch.gone ? this.#goneStatus(ch) : SendStatus.FULL;
  }

  #goneStatus(ch: OutChannel): number {
    if (ch.gone instanceof PeerGoneError) return SendStatus.PEER_GONE;
    throw ch.gone;
  }

  /** The indicator: header words, then the sequence word last (claims 1, 2). */
  #publish(ch: OutChannel, slot: number, length: number, flags: number, total: number, first: number, count: number): number {
    const sp = ch.space;
    const w = sp.words;
    const i = slot >> 2;
    w[i + (SLOT_LENGTH >> 2)] = length;
    if (first < 0) {
      w[i + (SLOT_FLAGS >> 2)] = flags | F_INLINE;
      w[i + (SLOT_LOCATION >> 2)] = 0;
      sp.image.write(slot + SLOT_LENGTH, SLOT_HEADER - SLOT_LENGTH + length);
    } else {
      w[i + (SLOT_FLAGS >> 2)] = flags | F_BLOCKS;
      w[i + (SLOT_LOCATION >> 2)] = first;
      if ((flags & F_LAST) === 0) w[i + (SLOT_TOTAL >> 2)] = total;
      sp.image.write(slot + SLOT_LENGTH, SLOT_HEADER - SLOT_LENGTH + 4);
      // Claim 7: the list of sent messages holding blocks; claims 27, 29: the receiver list. The
      // list holds at most `slots` messages: when full, its acknowledged ones are reclaimed now.
      if (ch.list.length === sp.geometry.slots) ch.list.reclaim(ch.consumed, sp.allocator);
      ch.list.push((ch.sent + 1) | 0, first, count);
      if (!ch.inList) {
        ch.inList = true;
        sp.receivers.add(ch);
      } else if (sp.lastUsed !== ch) {
        sp.receivers.delete(ch);
        sp.receivers.add(ch);
      }
      sp.lastUsed = ch;
    }
    const seq = (ch.sent + 1) | 0;
    ch.sent = seq;
    // Ordering point: indicator and message are written before the sequence word is published.
    sp.image.publish(slot, seq);
    ch.touched = true;
    // Ring only a receiver that said it sleeps (its flag is read after our publication).
    const status = ch.endpoint.load(EP_STATUS);
    if (status !== 0) {
      if ((status & STATUS_CLOSED) !== 0) {
        this.#gone(ch, 'it closed its endpoint');
        return SendStatus.PEER_GONE;
      }
      ch.endpoint.add(EP_BELL, 1);
      ch.endpoint.notify(EP_BELL, 1);
    }
    return SendStatus.OK;
  }

  /** Place a message or its pieces, waiting for room (back-pressure). */
  async #sendSlow(ch: OutChannel, bytes: Uint8Array): Promise<void> {
    const total = bytes.length;
    const cts = this.cyclicTransactionSize;
    if (total <= cts) {
      await this.#placeWaiting(ch, bytes, 0, total, F_FIRST | F_LAST, total);
      return;
    }
    // Claims 22–25: pieces of at most the cyclic transaction size; each reuses the memory of the
    // ones before it once they are acknowledged (#allocate reclaims this receiver first).
    for (let offset = 0; offset < total; ) {
      const length = Math.min(cts, total - offset);
      const flags = (offset === 0 ? F_FIRST : 0) | (offset + length === total ? F_LAST : 0);
      await this.#placeWaiting(ch, bytes, offset, length, flags, total);
      offset += length;
    }
  }

  async #placeWaiting(ch: OutChannel, bytes: Uint8Array, from: number, length: number, flags: number, total: number): Promise<void> {
    for (;;) {
      this.#live();
      if (ch.gone) throw ch.gone;
      if (ch.claimOpen) {
        // A claim holds the next indicator: order per pair says wait for its commit or abort.
        await new Promise((resolve) => setTimeout(resolve, 1));
        continue;
      }
      const status = this.#place(ch, bytes, from, length, flags, total);
      if (status === SendStatus.OK) return;
      if (status === SendStatus.PEER_GONE) throw ch.gone!;
      await this.#waitForAcks(ch);
    }
  }

  /** Sleep until some receiver acknowledges (or a slice passes); check the peer's liveness. */
  async #waitForAcks(ch: OutChannel): Promise<void> {
    const ack = ch.space.ack;
    const aw = ack.int32;
    Atomics.add(aw, AK_SENDER_WAITING >> 2, 1);
    try {
      const bell = Atomics.load(aw, AK_BELL >> 2);
      // Re-check after announcing: an acknowledgment stored before our flag rang no bell.
      const consumed = Atomics.load(aw, ch.ackWord + (AB_CONSUMED >> 2));
      if (consumed === ch.consumed) await ack.waitAsync(AK_BELL, bell, { timeoutMs: WAIT_SLICE_MS, spin: 500 });
    } finally {
      Atomics.sub(aw, AK_SENDER_WAITING >> 2, 1);
    }
    const now = Date.now();
    if (now - ch.lastCheck >= LIVENESS_INTERVAL_MS) {
      ch.lastCheck = now;
      this.#checkReceiver(ch);
    }
  }

  #checkReceiver(ch: OutChannel): void {
    if (ch.gone) return;
    if ((ch.endpoint.load(EP_STATUS) & STATUS_CLOSED) !== 0) this.#gone(ch, 'it closed its endpoint');
    else if (!this.transport.isAlive({ pid: ch.pid, start: ch.start }, ch.space.node)) this.#gone(ch, 'its process died');
  }

  /** The receiver is gone: fail the channel, reclaim its memory and postbox, remove its stale name. */
  #gone(ch: OutChannel, why: string): void {
    if (ch.gone) return;
    ch.gone = new PeerGoneError(ch.peer, why);
    const dead = why === 'its process died';
    this.#dropChannel(ch, dead);
  }

  #broken(ch: OutChannel, error: CorruptionError): void {
    if (ch.gone) return;
    ch.gone = error;
    // Its blocks may still be read by the receiver: they stay allocated (lost to this segment).
    const sp = ch.space;
    sp.receivers.delete(ch);
    if (sp.lastUsed === ch) sp.lastUsed = undefined;
  }

  #dropChannel(ch: OutChannel, removeStaleName: boolean): void {
    const sp = ch.space;
    ch.list.releaseAll(sp.allocator);
    sp.receivers.delete(ch);
    ch.inList = false;
    if (sp.lastUsed === ch) sp.lastUsed = undefined;
    if (sp.postboxes[ch.index] === ch) {
      sp.postboxes[ch.index] = undefined;
      sp.image.publish(DS_DIRECTORY + ch.index * DIR_BYTES + DIR_STATE, DIR_FREE);
    }
    if (removeStaleName) {
      // The dead receiver's endpoint segment: remove its name if it still is that incarnation's.
      const name = ch.endpoint.descriptor.name;
      try {
        const now = this.transport.find(name, sp.node);
        if (now) {
          const probe = this.transport.attach(now);
          try {
            const same = probe.load(H_PID) === ch.pid && startOf(probe.load(H_START_LO), probe.load(H_START_HI)) === ch.start;
            if (same) this.transport.remove(name, sp.node);
          } finally {
            probe.dispose();
          }
        }
      } catch {
        // gone meanwhile
      }
    }
    ch.endpoint.dispose();
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
    if (this.#closed) this.#live();
    if (this.#errors.length > 0) throw this.#errors.shift()!;
    const registrations = Atomics.load(this.#words, EP_REGISTRATIONS >> 2);
    if (registrations !== this.#registrations) {
      this.#registrations = registrations;
      this.#scan();
    }
    const list = this.#in;
    const n = list.length;
    if (n === 0) return 0;
    let delivered = 0;
    const start = this.#rr < n ? this.#rr : 0;
    this.#rr = start + 1;
    for (let k = 0; k < n && delivered < limit; k++) {
      const ch = list[(start + k) % n];
      if (ch === undefined) continue; // a channel dropped during this round
      try {
        delivered += this.#drain(ch, handler, limit - delivered);
      } catch (error) {
        if (!(error instanceof ChannelCorrupt)) throw error;
      }
    }
    // Channels whose sender left and that are now empty are dropped.
    for (let k = list.length - 1; k >= 0; k--) if (list[k].closing && this.#isEmpty(list[k])) this.#dropIncoming(list[k], list[k].deadSender);
    return delivered;
  }

  /** A copy of the next waiting message, or undefined if none is waiting. Never waits. */
  tryReceive(): Message | undefined {
    this.#copyOut = undefined;
    this.poll(this.#copyHandler, 1);
    const message = this.#copyOut;
    this.#copyOut = undefined;
    return message;
  }

  /**
   * The next message (a copy), waiting for it without blocking the event loop: spins a little,
   * then sleeps on the endpoint's bell. TimeoutError after `timeoutMs`; ClosedError if the
   * endpoint is closed meanwhile; CorruptionError as poll().
   */
  async receive(options: ReceiveOptions = {}): Promise<Message> {
    const deadline = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs;
    const spin = options.spin ?? 1000;
    const w = this.#words;
    for (;;) {
      let message = this.tryReceive();
      if (message) return message;
      for (let i = 0; i < spin; i++) {
        message = this.tryReceive();
        if (message) return message;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new TimeoutError(`no message for endpoint ${JSON.stringify(this.name)} within ${options.timeoutMs} ms`);
      // Say we sleep, then look once more: a sender publishing after this sees the flag.
      const bell = Atomics.load(w, EP_BELL >> 2);
      Atomics.or(w, EP_STATUS >> 2, STATUS_SLEEPING);
      try {
        message = this.tryReceive();
        if (message) return message;
        await this.#target.waitAsync(EP_BELL, bell, { timeoutMs: Math.min(left, LIVENESS_INTERVAL_MS), spin: 0 });
      } finally {
        if (!this.#closed) Atomics.and(w, EP_STATUS >> 2, ~STATUS_SLEEPING);
      }
    }
  }

  /** Messages as they arrive (copies), until the endpoint is closed. */
  async *[Symbol.asyncIterator](): AsyncIterator<Message> {
    while (!this.#closed) {
      try {
        yield await this.receive();
      } catch (error) {
        if (error instanceof ClosedError && this.#closed) return;
        throw error;
      }
    }
  }

  #isEmpty(ch: InChannel): boolean {
    const slot = ch.slotBase + ((ch.next >>> 0) % ch.slots) * ch.slotBytes;
    return Atomics.load(ch.words, slot >> 2) !== ((ch.next + 1) | 0);
  }

  /** Take up to `limit` messages of one postbox (claim 3), then acknowledge them (claims 32, 33). */
  #drain(ch: InChannel, handler: MessageHandler, limit: number): number {
    const words = ch.words;
    const bytes = ch.bytes;
    const slots = ch.slots;
    let next = ch.next;
    let taken = 0;
    try {
      while (taken < limit) {
        const slot = ch.slotBase + ((next >>> 0) % slots) * ch.slotBytes;
        const i = slot >> 2;
        const want = (next + 1) | 0;
        const seq = Atomics.load(words, i);
        if (seq !== want) {
          if (seq === ((want - slots) | 0) || (seq === 0 && ch.firstLap)) break;
          this.#corrupt(ch, `postbox slot holds sequence ${seq}; ${want} or ${(want - slots) | 0} is possible`);
        }
        // Ordering point: the sequence word was loaded before the indicator and message are read.
        const length = words[i + (SLOT_LENGTH >> 2)];
        const flags = words[i + (SLOT_FLAGS >> 2)];
        let offset: number;
        if ((flags & ~F_KNOWN) !== 0 || (flags & (F_INLINE | F_BLOCKS)) === 0 || (flags & (F_INLINE | F_BLOCKS)) === (F_INLINE | F_BLOCKS)) {
          this.#corrupt(ch, `indicator flags 0x${(flags >>> 0).toString(16)}`);
        }
        if ((flags & F_INLINE) !== 0) {
          if (length < 0 || length > ch.inlineMax) this.#corrupt(ch, `inline length ${length} (at most ${ch.inlineMax})`);
          offset = slot + SLOT_INLINE;
        } else {
          const first = words[i + (SLOT_LOCATION >> 2)];
          if (length <= 0 || first < 0 || first >= ch.blocks || Math.ceil(length / ch.blockSize) > ch.blocks - first) {
            this.#corrupt(ch, `message of ${length} bytes at block ${first} is outside the ${ch.blocks}-block pool`);
          }
          offset = ch.poolBase + first * ch.blockSize;
        }
        next = want;
        if (next === slots) ch.firstLap = false;
        const ends = flags & (F_FIRST | F_LAST);
        if (ends === (F_FIRST | F_LAST)) {
          if (ch.assembly) this.#corrupt(ch, 'a whole message inside a chunked one');
          taken++;
          ch.next = next;
          handler(bytes, offset, length, ch.from);
        } else if (this.#piece(ch, words, i, ends, bytes, offset, length)) {
          taken++;
          ch.next = next;
          const whole = ch.assembly!;
          ch.assembly = null;
          handler(whole, 0, whole.length, ch.from);
        }
        ch.next = next;
      }
    } finally {
      if (next !== ch.next) ch.next = next;
      this.#acknowledge(ch);
    }
    return taken;
  }

  /** A piece of a chunked message (claims 22–25): copy it out; true when the message is whole. */
  #piece(ch: InChannel, words: Int32Array, i: number, ends: number, bytes: Uint8Array, offset: number, length: number): boolean {
    if ((ends & F_FIRST) !== 0) {
      if (ch.assembly) this.#corrupt(ch, 'a first piece inside a chunked message');
      const total = words[i + (SLOT_TOTAL >> 2)];
      if (total <= length || total > this.maxMessageBytes) this.#corrupt(ch, `chunked message total ${total} (piece ${length}, limit ${this.maxMessageBytes})`);
      // Grown as pieces arrive, so a forged total alone allocates little.
      ch.assembly = new Uint8Array(Math.min(total, Math.max(length * 4, 1 << 16)));
      ch.assembled = 0;
      ch.total = total;
    } else if (!ch.assembly) {
      this.#corrupt(ch, 'a piece without its first piece');
    }
    if (ch.assembled + length > ch.total) this.#corrupt(ch, `pieces exceed the message's ${ch.total} bytes`);
    let buffer = ch.assembly!;
    if (ch.assembled + length > buffer.length) {
      const grown = new Uint8Array(Math.min(ch.total, Math.max(buffer.length * 2, ch.assembled + length)));
      grown.set(buffer.subarray(0, ch.assembled));
      buffer = ch.assembly = grown;
    }
    buffer.set(bytes.subarray(offset, offset + length), ch.assembled);
    ch.assembled += length;
    if ((ends & F_LAST) === 0) return false;
    if (ch.assembled !== ch.total) this.#corrupt(ch, `last piece ends at ${ch.assembled} of ${ch.total} bytes`);
    return true;
  }

  /** Store how far we have read in the sender's ack block; wake the sender if it waits. */
  #acknowledge(ch: InChannel): void {
    const ack = ch.ack;
    if (ack.closed) return;
    ack.publish(ch.ackWord + AB_CONSUMED, ch.next);
    if (ack.load(AK_SENDER_WAITING) !== 0) {
      ack.add(AK_BELL, 1);
      ack.notify(AK_BELL);
    }
  }

  #corrupt(ch: InChannel, detail: string): never {
    const error = new CorruptionError(ch.data.descriptor.name, `channel from ${JSON.stringify(ch.from)}: ${detail}`);
    this.#errors.push(error);
    try {
      ch.ack.publish(ch.ackWord + AB_STATUS, RX_CORRUPT);
      ch.ack.add(AK_BELL, 1);
      ch.ack.notify(AK_BELL);
    } catch {
      // the ack image may be gone too
    }
    this.#ignored.add(ch.entry);
    this.#dropIncoming(ch, false, true);
    throw new ChannelCorrupt();
  }

  /** Look at the registration entries for new senders. */
  #scan(): void {
    const w = this.#words;
    for (let e = 0; e < this.#maxIncoming; e++) {
      const state = Atomics.load(w, (EP_ENTRIES + e * ENTRY_BYTES + EN_STATE) >> 2);
      if (state !== ENTRY_READY) {
        if (state === ENTRY_FREE) this.#ignored.delete(e);
        continue;
      }
      if (this.#inByEntry[e] || this.#ignored.has(e)) continue;
      try {
        this.#attachIncoming(e);
      } catch (error) {
        this.#ignored.add(e);
        const region = this.#target.descriptor.name;
        this.#errors.push(error instanceof CorruptionError ? error : new CorruptionError(region, `registration entry ${e}: ${(error as Error).message}`));
      }
    }
  }

  #attachIncoming(e: number): void {
    const base = EP_ENTRIES + e * ENTRY_BYTES;
    const region = this.#target.descriptor.name;
    const entry = this.#target.bytes.slice(base, base + ENTRY_BYTES); // a copy: checked, then used
    const v = new DataView(entry.buffer);
    const index = v.getInt32(EN_POSTBOX, true);
    const pid = v.getInt32(EN_PID, true);
    const start = startOf(v.getUint32(EN_START_LO, true), v.getUint32(EN_START_HI, true));
    const nameLength = v.getInt32(EN_NAME_LEN, true);
    if (nameLength < 1 || nameLength > MAX_ENDPOINT_NAME) throw new CorruptionError(region, `entry ${e}: sender name length ${nameLength}`);
    const sender = readAscii(entry, EN_NAME, nameLength);
    if (!NAME.test(sender)) throw new CorruptionError(region, `entry ${e}: sender name is not a valid endpoint name`);
    const descriptor = decodeDescriptor(entry.subarray(EN_DESCRIPTOR), region);
    if (descriptor.node !== this.transport.node) throw new CorruptionError(region, `entry ${e}: data segment on node ${descriptor.node}, not here`);
    if (descriptor.name !== `pb.${this.domain}.data.${sender}`) throw new CorruptionError(region, `entry ${e}: data segment ${descriptor.name} is not ${sender}'s`);
    let data: Target | undefined;
    let ack: Image | undefined;
    try {
      try {
        data = this.transport.openLocal(descriptor);
      } catch (error) {
        if (!(error instanceof UsageError)) throw error;
        // The sender closed (or died and was cleaned up) before we attached: nothing to read.
        Atomics.store(this.#words, (base + EN_STATE) >> 2, ENTRY_FREE);
        return;
      }
      const g = this.#checkData(data, index);
      const ackDescriptor = decodeDescriptor(data.bytes.subarray(DS_ACK_DESCRIPTOR, DS_ACK_DESCRIPTOR + DESCRIPTOR_BYTES), descriptor.name);
      if (ackDescriptor.name !== `pb.${this.domain}.ack.${sender}.${nodeTag(this.transport.node)}`) {
        throw new CorruptionError(descriptor.name, `ack segment ${ackDescriptor.name} is not ${sender}'s`);
      }
      ack = this.transport.attach(ackDescriptor);
      if (ack.load(H_MAGIC) !== AK_MAGIC || ack.load(H_VERSION) !== LAYOUT_VERSION || ack.load(H_INIT) !== INIT_READY) {
        throw new CorruptionError(ackDescriptor.name, 'not an initialised ack segment');
      }
      const blocks = ack.load(AK_BLOCKS);
      if (blocks <= index || ackBytes(blocks) > ack.size) throw new CorruptionError(ackDescriptor.name, `${blocks} ack blocks; postbox ${index} needs more`);
      const from = ackDescriptor.node === this.transport.node ? sender : `${sender}@${ackDescriptor.node}`;
      const ch = new InChannel({ from, entry: e, data, ack, index, g, pid, start, node: ackDescriptor.node });
      this.#inByEntry[e] = ch;
      this.#in.push(ch);
    } catch (error) {
      ack?.dispose();
      data?.dispose();
      if (error instanceof CorruptionError) throw error;
      throw new CorruptionError(region, `entry ${e}: ${(error as Error).message}`);
    }
  }

  /** Check a sender's data segment header and our directory entry in it. */
  #checkData(data: Target, index: number): DataGeometry {
    const w = data.int32;
    const name = data.descriptor.name;
    if (Atomics.load(w, H_INIT >> 2) !== INIT_READY || w[H_MAGIC >> 2] !== DS_MAGIC || w[H_VERSION >> 2] !== LAYOUT_VERSION) {
      throw new CorruptionError(name, 'not an initialised postbox data segment');
    }
    const g: DataGeometry = {
      postboxes: w[DS_POSTBOXES >> 2],
      slots: w[DS_SLOTS >> 2],
      slotBytes: w[DS_SLOT_BYTES >> 2],
      blockSize: w[DS_BLOCK_SIZE >> 2],
      blocks: w[DS_BLOCKS >> 2],
    };
    const sane =
      g.postboxes >= 1 && g.postboxes <= 4096 && g.slots >= 2 && g.slots <= 1 << 16 && g.slotBytes >= 64 && g.slotBytes % 64 === 0 &&
      g.slotBytes <= 1 << 20 && g.blockSize >= 64 && g.blockSize % 64 === 0 && g.blocks >= 1 && dataBytes(g) === data.size;
    if (!sane) throw new CorruptionError(name, `geometry ${JSON.stringify(g)} does not describe a ${data.size}-byte segment`);
    if (index < 0 || index >= g.postboxes) throw new CorruptionError(name, `postbox ${index} of ${g.postboxes}`);
    const dir = DS_DIRECTORY + index * DIR_BYTES;
    const nameLength = w[(dir + DIR_NAME_LEN) >> 2];
    if (Atomics.load(w, (dir + DIR_STATE) >> 2) !== DIR_ASSIGNED || nameLength !== this.name.length || readAscii(data.bytes, dir + DIR_NAME, nameLength) !== this.name) {
      throw new CorruptionError(name, `directory entry ${index} is not assigned to ${this.name}`);
    }
    return g;
  }

  /** Stop polling a sender's postbox; free its entry; reclaim a dead sender's segments. */
  #dropIncoming(ch: InChannel, senderDead: boolean, corrupt = false): void {
    const at = this.#in.indexOf(ch);
    if (at >= 0) this.#in.splice(at, 1);
    if (this.#inByEntry[ch.entry] === ch) this.#inByEntry[ch.entry] = undefined;
    ch.assembly = null; // a half message is never delivered
    if (!corrupt) Atomics.store(this.#words, (EP_ENTRIES + ch.entry * ENTRY_BYTES + EN_STATE) >> 2, ENTRY_FREE);
    const dataName = ch.data.descriptor.name;
    const ackName = ch.ack.descriptor.name;
    ch.ack.dispose();
    ch.data.dispose();
    if (senderDead) {
      // Its memory — data, ack and its own endpoint segment: remove the names if they still
      // belong to that dead incarnation (its header says the same pid and start time).
      const endpointName = `pb.${this.domain}.ep.${ch.from.split('@')[0]}`;
      for (const [name, node] of [[dataName, this.transport.node], [ackName, ch.node], [endpointName, ch.node]] as const) {
        try {
          const now = this.transport.find(name, node);
          if (!now) continue;
          const probe = this.transport.attach(now);
          try {
            if (probe.load(H_PID) === ch.pid && startOf(probe.load(H_START_LO), probe.load(H_START_HI)) === ch.start) this.transport.remove(name, node);
          } finally {
            probe.dispose();
          }
        } catch {
          // gone meanwhile
        }
      }
    }
  }

  /** Every LIVENESS_INTERVAL_MS: notice dead receivers (as a sender) and dead or closed senders. */
  #housekeeping(): void {
    if (this.#closed) return;
    const now = Date.now();
    for (const ch of this.#out.values()) {
      if (ch.gone || (!ch.touched && ch.sent === ch.consumed)) continue;
      ch.touched = false;
      ch.lastCheck = now;
      this.#checkReceiver(ch);
    }
    for (const ch of [...this.#in]) {
      if (ch.closing) continue;
      const dead = !this.transport.isAlive({ pid: ch.pid, start: ch.start }, ch.node);
      const closed = Atomics.load(ch.words, (ch.directoryEntry + DIR_STATE) >> 2) !== DIR_ASSIGNED || Atomics.load(ch.words, DS_STATE >> 2) === DS_CLOSED;
      if (!dead && !closed) continue;
      ch.closing = true;
      ch.deadSender = dead;
      if (this.#isEmpty(ch)) this.#dropIncoming(ch, dead);
    }
  }

  /**
   * Resolve once every receiver has taken every message this endpoint sent it (or is gone):
   * close() after flush() loses nothing. TimeoutError after `timeoutMs` (default: no limit).
   */
  async flush(options: { timeoutMs?: number } = {}): Promise<void> {
    const deadline = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs;
    for (;;) {
      this.#live();
      let waiting: OutChannel | undefined;
      for (const ch of this.#out.values()) {
        if (ch.gone) continue;
        this.#refresh(ch);
        if (!ch.gone && ch.consumed !== ch.sent) waiting = ch;
      }
      if (!waiting && [...this.#out.values()].every((ch) => ch.queued === 0 || ch.gone)) return;
      if (Date.now() >= deadline) throw new TimeoutError(`endpoint ${JSON.stringify(this.name)}: receivers did not take every message within ${options.timeoutMs} ms`);
      if (waiting) await this.#waitForAcks(waiting);
      else await new Promise((resolve) => setTimeout(resolve, 1));
    }
  }

  // -------------------------------------------------------------------------------------------

  /**
   * A snapshot of this endpoint's private bookkeeping, for tests and diagnostics: per node its
   * memory space (blocks free, the receiver list in order of use) and per peer channel its
   * counters and buffer count. Reads no shared memory.
   */
  inspect(): PostboxState {
    const nodes = [...this.#spaces.values()].map((sp) => ({
      node: sp.node,
      dataSegment: sp.data.descriptor.name,
      ackSegment: sp.ack.descriptor.name,
      blocks: sp.geometry.blocks,
      freeBlocks: sp.allocator.free,
      receiverList: [...sp.receivers].map((ch) => ch.peer),
      postboxesInUse: sp.postboxes.filter((ch) => ch !== undefined).length,
    }));
    const peers = [...this.#out.values()].map((ch) => ({
      peer: ch.peer,
      node: ch.space.node,
      postbox: ch.index,
      sent: ch.sent,
      acknowledged: ch.consumed,
      bufferCount: ch.list.blocks,
      messagesHoldingBlocks: ch.list.length,
      gone: ch.gone?.name ?? null,
    }));
    const senders = this.#in.map((ch) => ({ from: ch.from, received: ch.next, assembling: ch.assembly !== null }));
    return { nodes, peers, senders };
  }

  /**
   * Close the endpoint (await flush() first to lose nothing in flight): abort open claims, tell receivers this sender is gone and remove its data
   * and ack segments; tell senders this receiver is gone and remove its endpoint segment. Pending
   * send() and receive() calls reject with ClosedError. Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    for (const claim of [...this.#claims]) claim.abort();
    this.#claims.clear();
    this.#closed = true;
    clearInterval(this.#timer);
    // As a receiver: say so, and wake senders waiting for our acknowledgments.
    Atomics.or(this.#words, EP_STATUS >> 2, STATUS_CLOSED);
    for (const ch of [...this.#in]) {
      try {
        ch.ack.publish(ch.ackWord + AB_STATUS, RX_CLOSED);
        ch.ack.add(AK_BELL, 1);
        ch.ack.notify(AK_BELL);
      } catch {
        // the sender's ack segment is gone already
      }
      this.#dropIncoming(ch, false);
    }
    this.#target.wake(EP_BELL);
    // As a sender: close every postbox, ring its receiver, release the segments.
    for (const ch of this.#out.values()) {
      if (!ch.gone) {
        ch.gone = new PeerGoneError(ch.peer, 'this endpoint closed');
        try {
          ch.space.image.publish(DS_DIRECTORY + ch.index * DIR_BYTES + DIR_STATE, DIR_CLOSED);
          ch.endpoint.add(EP_BELL, 1);
          ch.endpoint.notify(EP_BELL);
        } catch {
          // the receiver is gone
        }
      }
      ch.endpoint.dispose();
    }
    this.#out.clear();
    for (const sp of this.#spaces.values()) {
      try {
        sp.image.publish(DS_STATE, DS_CLOSED);
      } catch {
        // already unmapped
      }
      sp.image.dispose();
      sp.data.dispose();
      sp.ack.dispose();
    }
    this.#spaces.clear();
    this.#target.dispose();
  }

  dispose(): void {
    this.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
