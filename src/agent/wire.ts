/**
 * The node agent's control messages: what an agent and its clients send each other as single
 * RDMA SENDs over their rdma_cm connection. Declared once here; both sides encode and decode
 * through these functions only. Every message a peer sends is untrusted input: decode() checks
 * magic, version, length, type and every field, and throws ProtocolError for anything else —
 * the receiver then drops that connection (and only that one).
 *
 *   offset  size  field
 *   ------  ----  ---------------------------------------------------------------
 *        0     4  magic       0x4D574147 ("MWAG" read as a big-endian word)
 *        4     2  version     WIRE_VERSION; another version is refused, not guessed at
 *        6     2  type        MessageType
 *        8     4  length      bytes of the whole message, header included, ≤ MAX_MESSAGE_BYTES;
 *                             must equal the byte count of the RECV completion
 *       12     4  requestId   chosen by the asker, echoed in the answer; 0 in notices
 *       16     …  body (little-endian, fixed fields first, then one length-prefixed name)
 *
 *   type           body                                                  answer
 *   HELLO       1  pid u32, 0 u32, startTime u64, role u8 (Role), node    WELCOME
 *   WELCOME     2  pid u32, 0 u32, startTime u64, node name               —
 *   ALLOCATE    3  size u64, target name                                  DESCRIPTOR | ERROR
 *   FIND        4  target name                                            DESCRIPTOR | ERROR
 *   DESCRIPTOR  5  size u64, rkey u32, base u32, target name              —
 *   REMOVE      6  target name                                            DONE | ERROR
 *   DONE        7  (empty)                                                —
 *   IS_ALIVE    8  pid u32, 0 u32, startTime u64                          ALIVE
 *   ALIVE       9  alive u8 (0 or 1)                                      —
 *   GONE       10  pid u32, 0 u32, startTime u64   (notice: a process of  —
 *                  the agent's node that said HELLO is gone)
 *   DOORBELL   11  offset u32, count u32, target name  (no answer: the    —
 *                  agent does FUTEX_WAKE on that word of its mapping)
 *   ERROR      12  code u16, text length u16, text (UTF-8)                —
 *   BYE        13  reason u8   (notice: the agent is stopping)            —
 *
 * A name is a length byte and that many bytes of ASCII (the region-name alphabet of
 * src/shm/names.ts, at most MAX_NAME_LENGTH); a node name may be empty. The body must end
 * exactly where `length` says. Descriptors hold no address: a target is registered with an iova
 * equal to its first byte's offset within its page (`base`, < 4096: the kernel requires the iova
 * and the address to agree below the page size), so the remote address of target offset x is
 * base + x — nothing about where the agent mapped it.
 */
import { MemwireError } from '../errors.js';
import { MAX_NAME_LENGTH } from '../shm/names.js';

export const WIRE_MAGIC = 0x4d574147;
export const WIRE_VERSION = 1;
export const HEADER_BYTES = 16;
/** The largest message; each posted RECV buffer has exactly this many bytes. */
export const MAX_MESSAGE_BYTES = 512;
/** The longest ERROR text carried (longer texts are cut). */
export const MAX_ERROR_TEXT = 400;

export const W_MAGIC = 0;
export const W_VERSION = 4;
export const W_TYPE = 6;
export const W_LENGTH = 8;
export const W_REQUEST_ID = 12;

export const MessageType = {
  HELLO: 1,
  WELCOME: 2,
  ALLOCATE: 3,
  FIND: 4,
  DESCRIPTOR: 5,
  REMOVE: 6,
  DONE: 7,
  IS_ALIVE: 8,
  ALIVE: 9,
  GONE: 10,
  DOORBELL: 11,
  ERROR: 12,
  BYE: 13,
} as const;

/**
 * Who says HELLO: a process of the agent's own node (its liveness is watched and its end pushed
 * to every peer as GONE), another node's agent, or a process of another node.
 */
export const Role = { LOCAL_PROCESS: 1, AGENT: 2, REMOTE_PROCESS: 3 } as const;

/** Why an agent answered ERROR. */
export const ErrorCode = {
  NOT_FOUND: 1,
  EXISTS: 2,
  BAD_REQUEST: 3,
  SYSTEM: 4,
  NOT_READY: 5,
} as const;
export type ErrorCodeName = keyof typeof ErrorCode;

export type Message =
  | { type: 'hello'; requestId: number; pid: number; startTime: bigint; role: number; node: string }
  | { type: 'welcome'; requestId: number; pid: number; startTime: bigint; node: string }
  | { type: 'allocate'; requestId: number; size: number; name: string }
  | { type: 'find'; requestId: number; name: string }
  | { type: 'descriptor'; requestId: number; size: number; rkey: number; base: number; name: string }
  | { type: 'remove'; requestId: number; name: string }
  | { type: 'done'; requestId: number }
  | { type: 'is-alive'; requestId: number; pid: number; startTime: bigint }
  | { type: 'alive'; requestId: number; alive: boolean }
  | { type: 'gone'; requestId: number; pid: number; startTime: bigint }
  | { type: 'doorbell'; requestId: number; offset: number; count: number; name: string }
  | { type: 'error'; requestId: number; code: number; text: string }
  | { type: 'bye'; requestId: number; reason: number };

/** A control message that breaks the format above. The connection it came on is dropped. */
export class ProtocolError extends MemwireError {
  constructor(detail: string) {
    super('ERR_MEMWIRE_PROTOCOL', `agent control message refused: ${detail}`);
  }
}

const NAME_CHARS = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/;
/** A target's base is its offset within a page: below the (x86_64) page size. */
export const MAX_BASE = 4096;
/** Largest target size announced (the region limit, 16 GiB, fits well below 2^53). */
const MAX_SIZE = 2 ** 34;

const TYPE_OF: Record<Message['type'], number> = {
  hello: MessageType.HELLO,
  welcome: MessageType.WELCOME,
  allocate: MessageType.ALLOCATE,
  find: MessageType.FIND,
  descriptor: MessageType.DESCRIPTOR,
  remove: MessageType.REMOVE,
  done: MessageType.DONE,
  'is-alive': MessageType.IS_ALIVE,
  alive: MessageType.ALIVE,
  gone: MessageType.GONE,
  doorbell: MessageType.DOORBELL,
  error: MessageType.ERROR,
  bye: MessageType.BYE,
};

/** Writes fields in order into a fixed buffer; too much is a ProtocolError (never a bigger buffer). */
class Writer {
  readonly bytes = new Uint8Array(MAX_MESSAGE_BYTES);
  readonly view = new DataView(this.bytes.buffer);
  at = HEADER_BYTES;

  #room(n: number): number {
    if (this.at + n > MAX_MESSAGE_BYTES) throw new ProtocolError(`message would exceed ${MAX_MESSAGE_BYTES} bytes`);
    const at = this.at;
    this.at += n;
    return at;
  }
  u8(v: number): void {
    this.view.setUint8(this.#room(1), v);
  }
  u16(v: number): void {
    this.view.setUint16(this.#room(2), v, true);
  }
  u32(v: number): void {
    this.view.setUint32(this.#room(4), v, true);
  }
  u64(v: number | bigint): void {
    this.view.setBigUint64(this.#room(8), BigInt(v), true);
  }
  name(v: string, allowEmpty: boolean): void {
    checkName(v, allowEmpty, 'name');
    this.u8(v.length);
    const at = this.#room(v.length);
    for (let i = 0; i < v.length; i++) this.bytes[at + i] = v.charCodeAt(i);
  }
}

function checkName(v: string, allowEmpty: boolean, what: string): void {
  if (typeof v !== 'string') throw new ProtocolError(`${what} is not a string`);
  if (v.length === 0 && allowEmpty) return;
  if (v.length > MAX_NAME_LENGTH || !NAME_CHARS.test(v)) throw new ProtocolError(`${what} ${JSON.stringify(v.slice(0, 40))} is not a valid name (letters, digits, '.', '_', '-'; 1..${MAX_NAME_LENGTH})`);
}

function checkU32(v: number, what: string): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new ProtocolError(`${what} must be a u32, got ${v}`);
}

/** Encode one message (exactly `length` bytes). ProtocolError for values the format cannot carry. */
export function encode(message: Message): Uint8Array {
  const w = new Writer();
  checkU32(message.requestId, 'requestId');
  switch (message.type) {
    case 'hello':
      checkU32(message.pid, 'pid');
      w.u32(message.pid);
      w.u32(0);
      w.u64(message.startTime);
      w.u8(message.role);
      w.name(message.node, true);
      break;
    case 'welcome':
      checkU32(message.pid, 'pid');
      w.u32(message.pid);
      w.u32(0);
      w.u64(message.startTime);
      w.name(message.node, true);
      break;
    case 'allocate':
      if (!Number.isSafeInteger(message.size) || message.size <= 0 || message.size > MAX_SIZE) throw new ProtocolError(`size must be 1..${MAX_SIZE}, got ${message.size}`);
      w.u64(message.size);
      w.name(message.name, false);
      break;
    case 'find':
    case 'remove':
      w.name(message.name, false);
      break;
    case 'descriptor':
      w.u64(message.size);
      checkU32(message.rkey, 'rkey');
      w.u32(message.rkey);
      if (!Number.isInteger(message.base) || message.base < 0 || message.base >= MAX_BASE) throw new ProtocolError(`base must be 0..${MAX_BASE - 1}, got ${message.base}`);
      w.u32(message.base);
      w.name(message.name, false);
      break;
    case 'done':
      break;
    case 'is-alive':
    case 'gone':
      checkU32(message.pid, 'pid');
      w.u32(message.pid);
      w.u32(0);
      w.u64(message.startTime);
      break;
    case 'alive':
      w.u8(message.alive ? 1 : 0);
      break;
    case 'doorbell':
      checkU32(message.offset, 'offset');
      checkU32(message.count, 'count');
      w.u32(message.offset);
      w.u32(message.count);
      w.name(message.name, false);
      break;
    case 'error': {
      const text = new TextEncoder().encode(message.text).subarray(0, MAX_ERROR_TEXT);
      w.u16(message.code);
      w.u16(text.length);
      w.bytes.set(text, w.at);
      w.at += text.length;
      break;
    }
    case 'bye':
      w.u8(message.reason);
      break;
    default:
      throw new ProtocolError(`unknown message type ${JSON.stringify((message as { type: unknown }).type)}`);
  }
  w.view.setUint32(W_MAGIC, WIRE_MAGIC, true);
  w.view.setUint16(W_VERSION, WIRE_VERSION, true);
  w.view.setUint16(W_TYPE, TYPE_OF[message.type], true);
  w.view.setUint32(W_LENGTH, w.at, true);
  w.view.setUint32(W_REQUEST_ID, message.requestId, true);
  return w.bytes.slice(0, w.at);
}

/** Reads fields in order; reading past `end` is a ProtocolError. */
class Reader {
  at = HEADER_BYTES;
  constructor(
    readonly bytes: Uint8Array,
    readonly view: DataView,
    readonly end: number,
  ) {}

  #take(n: number, what: string): number {
    if (this.at + n > this.end) throw new ProtocolError(`message ends inside ${what} (length ${this.end})`);
    const at = this.at;
    this.at += n;
    return at;
  }
  u8(what: string): number {
    return this.view.getUint8(this.#take(1, what));
  }
  u16(what: string): number {
    return this.view.getUint16(this.#take(2, what), true);
  }
  u32(what: string): number {
    return this.view.getUint32(this.#take(4, what), true);
  }
  u64(what: string): bigint {
    return this.view.getBigUint64(this.#take(8, what), true);
  }
  zero32(what: string): void {
    if (this.u32(what) !== 0) throw new ProtocolError(`${what} must be 0`);
  }
  size(what: string): number {
    const v = this.u64(what);
    if (v === 0n || v > BigInt(MAX_SIZE)) throw new ProtocolError(`${what} ${v} is outside 1..${MAX_SIZE}`);
    return Number(v);
  }
  name(allowEmpty: boolean, what: string): string {
    const n = this.u8(`${what} length`);
    const at = this.#take(n, what);
    let s = '';
    for (let i = 0; i < n; i++) s += String.fromCharCode(this.bytes[at + i]);
    checkName(s, allowEmpty, what);
    return s;
  }
  text(n: number): string {
    const at = this.#take(n, 'error text');
    return new TextDecoder('utf-8', { fatal: false }).decode(this.bytes.subarray(at, at + n));
  }
}

/**
 * Decode one received message of `received` bytes (the RECV completion's byte count). Checks
 * everything (see the header comment); ProtocolError names the first thing wrong.
 */
export function decode(bytes: Uint8Array, received = bytes.length): Message {
  if (!Number.isInteger(received) || received < 0 || received > bytes.length) throw new ProtocolError(`received byte count ${received} is outside the buffer (${bytes.length})`);
  if (received < HEADER_BYTES) throw new ProtocolError(`${received} bytes is shorter than the ${HEADER_BYTES}-byte header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, received);
  const magic = view.getUint32(W_MAGIC, true);
  if (magic !== WIRE_MAGIC) throw new ProtocolError(`bad magic 0x${magic.toString(16)}`);
  const version = view.getUint16(W_VERSION, true);
  if (version !== WIRE_VERSION) throw new ProtocolError(`version ${version} is not the supported ${WIRE_VERSION}`);
  const length = view.getUint32(W_LENGTH, true);
  if (length !== received) throw new ProtocolError(`length field says ${length} bytes, ${received} arrived`);
  if (length > MAX_MESSAGE_BYTES) throw new ProtocolError(`${length} bytes exceeds the ${MAX_MESSAGE_BYTES}-byte limit`);
  const requestId = view.getUint32(W_REQUEST_ID, true);
  const code = view.getUint16(W_TYPE, true);
  const r = new Reader(bytes, view, length);
  let message: Message;
  switch (code) {
    case MessageType.HELLO: {
      const pid = r.u32('pid');
      r.zero32('hello padding');
      const startTime = r.u64('startTime');
      const role = r.u8('role');
      if (role !== Role.LOCAL_PROCESS && role !== Role.AGENT && role !== Role.REMOTE_PROCESS) throw new ProtocolError(`unknown role ${role}`);
      message = { type: 'hello', requestId, pid, startTime, role, node: r.name(true, 'node name') };
      break;
    }
    case MessageType.WELCOME: {
      const pid = r.u32('pid');
      r.zero32('welcome padding');
      const startTime = r.u64('startTime');
      message = { type: 'welcome', requestId, pid, startTime, node: r.name(true, 'node name') };
      break;
    }
    case MessageType.ALLOCATE: {
      const size = r.size('size');
      message = { type: 'allocate', requestId, size, name: r.name(false, 'target name') };
      break;
    }
    case MessageType.FIND:
      message = { type: 'find', requestId, name: r.name(false, 'target name') };
      break;
    case MessageType.DESCRIPTOR: {
      const size = r.size('size');
      const rkey = r.u32('rkey');
      const base = r.u32('base');
      if (base >= MAX_BASE) throw new ProtocolError(`base ${base} is not below ${MAX_BASE}`);
      message = { type: 'descriptor', requestId, size, rkey, base, name: r.name(false, 'target name') };
      break;
    }
    case MessageType.REMOVE:
      message = { type: 'remove', requestId, name: r.name(false, 'target name') };
      break;
    case MessageType.DONE:
      message = { type: 'done', requestId };
      break;
    case MessageType.IS_ALIVE:
    case MessageType.GONE: {
      const pid = r.u32('pid');
      r.zero32('padding');
      const startTime = r.u64('startTime');
      message = { type: code === MessageType.GONE ? 'gone' : 'is-alive', requestId, pid, startTime };
      break;
    }
    case MessageType.ALIVE: {
      const alive = r.u8('alive');
      if (alive > 1) throw new ProtocolError(`alive must be 0 or 1, got ${alive}`);
      message = { type: 'alive', requestId, alive: alive === 1 };
      break;
    }
    case MessageType.DOORBELL: {
      const offset = r.u32('offset');
      const count = r.u32('count');
      if (offset % 4 !== 0) throw new ProtocolError(`doorbell offset ${offset} is not 4-aligned`);
      message = { type: 'doorbell', requestId, offset, count, name: r.name(false, 'target name') };
      break;
    }
    case MessageType.ERROR: {
      const errorCode = r.u16('error code');
      const n = r.u16('error text length');
      if (n > MAX_ERROR_TEXT) throw new ProtocolError(`error text of ${n} bytes exceeds ${MAX_ERROR_TEXT}`);
      message = { type: 'error', requestId, code: errorCode, text: r.text(n) };
      break;
    }
    case MessageType.BYE:
      message = { type: 'bye', requestId, reason: r.u8('reason') };
      break;
    default:
      throw new ProtocolError(`unknown message type ${code}`);
  }
  if (r.at !== length) throw new ProtocolError(`${length - r.at} trailing bytes after a ${message.type} message`);
  return message;
}

/** The name of an ERROR code, for messages ('SYSTEM', 'NOT_FOUND', …; the number if unknown). */
export function errorCodeName(code: number): string {
  return (Object.keys(ErrorCode) as ErrorCodeName[]).find((k) => ErrorCode[k] === code) ?? String(code);
}
