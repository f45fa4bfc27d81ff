/**
 * What every part of a postbox endpoint shares: the public result codes, options and message
 * types, the limits, name and payload checks, and the endpoint's core (its name, transport and
 * endpoint segment). The endpoint itself is split along its seams: sender.ts (placing messages,
 * reclamation, back-pressure), connect.ts (reaching a receiver: memory space, postbox,
 * registration), claim.ts (zero-copy sends), receiver.ts (polling, reassembly, acknowledgment),
 * registration.ts (attaching new senders), liveness.ts (noticing dead or closed peers), and
 * postbox.ts, the facade.
 */
import { ClosedError, UsageError } from '../errors.js';
import type { Image, Target, Transport } from '../transport/types.js';
import { H_BYTES, H_PID, H_START_HI, H_START_LO } from './layout.js';

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
/**
 * Size limits of a sender's data segment (one per receiving node), checked by Postbox.open
 * (UsageError) and by receivers (CorruptionError): the buffer pool (option poolBytes) at most
 * 1 GiB, the postboxes (postboxes × slots × slotBytes) at most 256 MiB, a slot at most 1 MiB. So
 * a data segment stays below 1.3 GiB — every offset in it fits the 32-bit words of the layout and
 * every runtime maps it whole — and the objects are sparse: only what is written takes memory.
 */
export const MAX_POOL_BYTES = 2 ** 30;
/** The most postbox bytes (postboxes × slots × slotBytes) in one data segment: 256 MiB. */
export const MAX_POSTBOX_BYTES = 2 ** 28;
/** The largest indicator slot (option slotBytes): 1 MiB. */
export const MAX_SLOT_BYTES = 2 ** 20;
/** The most postboxes (option postboxes: receivers per node one sender can reach) in one data segment. */
export const MAX_POSTBOXES = 4096;
/** The most message indicators per postbox (option slots). */
export const MAX_SLOTS = 1 << 16;
/** The most senders registered with one endpoint at once (option maxIncoming). */
export const MAX_INCOMING = 4096;
/** A dead receiver is reported to its senders at most this long after it died (event loop running). */
export const LIVENESS_BOUND_MS = 250;
export const LIVENESS_INTERVAL_MS = 100;
export const WAIT_SLICE_MS = 50;

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

export const NAME = /^[A-Za-z0-9_-]+$/;

export function checkName(what: string, name: unknown, max: number): asserts name is string {
  if (typeof name !== 'string' || name.length === 0 || name.length > max || !NAME.test(name)) {
    throw new UsageError(`${what} must be 1–${max} characters of A–Z a–z 0–9 _ -, got ${JSON.stringify(name)}`);
  }
}

export function positive(what: string, value: number | undefined, fallback: number, min = 1, multiple = 1): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v < min || v % multiple !== 0) {
    throw new UsageError(`${what} must be a whole number ≥ ${min}${multiple > 1 ? ` and a multiple of ${multiple}` : ''}, got ${String(value)}`);
  }
  return v;
}

/**
 * A payload as bytes, or a UsageError: Uint8Array (and Buffer), any ArrayBufferView, ArrayBuffer —
 * not one whose buffer was detached (transferred), which reads as empty and would send nothing.
 */
export function toBytes(data: unknown): Uint8Array {
  if (data instanceof Uint8Array && data.length !== 0) return data;
  if (!ArrayBuffer.isView(data) && !(data instanceof ArrayBuffer)) {
    throw new UsageError(`a message must be bytes (Uint8Array, Buffer, ArrayBufferView or ArrayBuffer), got ${data === null ? 'null' : typeof data}`);
  }
  try {
    // A detached buffer refuses a new view (TypeError), as do the offsets of a view of one.
    if (data instanceof ArrayBuffer) return new Uint8Array(data);
    const bytes = data instanceof Uint8Array ? data : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (bytes.length === 0) new Uint8Array(data.buffer); // an empty view: of a detached buffer?
    return bytes;
  } catch {
    throw new UsageError('a message must be bytes: its ArrayBuffer was detached (transferred)');
  }
}

export { nodeTag } from '../transport/descriptor.js';


export function readAscii(bytes: Uint8Array, at: number, length: number): string {
  let s = '';
  for (let i = 0; i < length; i++) s += String.fromCharCode(bytes[at + i]);
  return s;
}

export function writeAscii(bytes: Uint8Array, at: number, text: string): void {
  for (let i = 0; i < text.length; i++) bytes[at + i] = text.charCodeAt(i);
}

export function startOf(lo: number, hi: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

/** The endpoint's identity and its endpoint segment, shared by its sending and receiving halves. */
export class EndpointCore {
  readonly name: string;
  readonly domain: string;
  readonly transport: Transport;
  /** The endpoint segment (layout.ts, 1): where senders register postboxes for this receiver. */
  readonly target: Target;
  readonly words: Int32Array;
  closed = false;

  constructor(name: string, domain: string, transport: Transport, target: Target) {
    this.name = name;
    this.domain = domain;
    this.transport = transport;
    this.target = target;
    this.words = target.int32;
  }

  live(): void {
    if (this.closed) throw new ClosedError(`endpoint ${JSON.stringify(this.name)}`);
  }
}

export { bellNonce } from '../transport/bell.js';

/** The common header of a postbox segment (layout.ts), copied with one read of the image. */
export function headerOf(image: Image): DataView {
  const copy = new Uint8Array(H_BYTES);
  image.read(0, copy);
  return new DataView(copy.buffer);
}

/** The (pid, start) a header names. */
export function creatorOf(header: DataView): { pid: number; start: bigint } {
  return { pid: header.getInt32(H_PID, true), start: startOf(header.getUint32(H_START_LO, true), header.getUint32(H_START_HI, true)) };
}

/** Reap an image's completions and continue its queued posts; its error stays for its next post. */
export function pumpImage(image: Image): void {
  if (image.closed || image.failed) return;
  try {
    image.progress();
  } catch {
    // sticky on the image: thrown by its next post, seen by the liveness check
  }
}
