/**
 * The node agent's control-message format (src/agent/wire.ts), pure: every message type round
 * trips; short, long, mislabelled and garbled messages are refused with ProtocolError naming
 * what is wrong; random bytes never make decode() throw anything else.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decode,
  encode,
  ErrorCode,
  errorCodeName,
  HEADER_BYTES,
  MAX_MESSAGE_BYTES,
  MessageType,
  ProtocolError,
  Role,
  W_LENGTH,
  W_MAGIC,
  W_TYPE,
  W_VERSION,
  WIRE_VERSION,
  type Message,
} from '../../src/agent/wire.js';

const samples: Message[] = [
  { type: 'hello', requestId: 1, pid: 4242, startTime: 123456789n, role: Role.LOCAL_PROCESS, node: 'nodeA' },
  { type: 'hello', requestId: 2, pid: 1, startTime: 0n, role: Role.REMOTE_PROCESS, node: '' },
  { type: 'welcome', requestId: 1, pid: 77, startTime: 2n ** 40n, node: 'rxe1' },
  { type: 'allocate', requestId: 9, size: 64 << 20, name: 'space.S1.on-B' },
  { type: 'find', requestId: 10, name: 'x' },
  { type: 'descriptor', requestId: 10, size: 4096, rkey: 0xfedcba98, base: 128, name: 'a'.repeat(200) },
  { type: 'remove', requestId: 11, name: 'space_1' },
  { type: 'done', requestId: 11 },
  { type: 'is-alive', requestId: 12, pid: 99, startTime: 5n },
  { type: 'alive', requestId: 12, alive: true },
  { type: 'alive', requestId: 13, alive: false },
  { type: 'gone', requestId: 0, pid: 99, startTime: 5n },
  { type: 'doorbell', requestId: 0, offset: 4096, count: 1, name: 'box' },
  { type: 'error', requestId: 14, code: ErrorCode.NOT_FOUND, text: 'no target "box" — here' },
  { type: 'bye', requestId: 0, reason: 1 },
];

function withHeader(body: number[], type: number, patch: Partial<{ magic: number; version: number; length: number }> = {}): Uint8Array {
  const bytes = new Uint8Array(HEADER_BYTES + body.length);
  const v = new DataView(bytes.buffer);
  v.setUint32(W_MAGIC, patch.magic ?? 0x4d574147, true);
  v.setUint16(W_VERSION, patch.version ?? WIRE_VERSION, true);
  v.setUint16(W_TYPE, type, true);
  v.setUint32(W_LENGTH, patch.length ?? bytes.length, true);
  bytes.set(body, HEADER_BYTES);
  return bytes;
}

function refused(bytes: Uint8Array, pattern: RegExp, received = bytes.length): void {
  let caught: unknown;
  try {
    decode(bytes, received);
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(ProtocolError);
  expect((caught as Error).message).toMatch(pattern);
}

describe('agent wire format', () => {
  it('round-trips every message type', () => {
    for (const m of samples) {
      const bytes = encode(m);
      expect(bytes.length).toBeLessThanOrEqual(MAX_MESSAGE_BYTES);
      expect(new DataView(bytes.buffer).getUint32(W_LENGTH, true)).toBe(bytes.length);
      expect(decode(bytes)).toEqual(m);
    }
    const types = new Set(samples.map((m) => m.type));
    expect(types.size).toBe(Object.keys(MessageType).length);
  });

  it('decodes a message at the start of a larger receive buffer, by the received count', () => {
    const slot = new Uint8Array(MAX_MESSAGE_BYTES).fill(0xee);
    const bytes = encode(samples[3]);
    slot.set(bytes);
    expect(decode(slot, bytes.length)).toEqual(samples[3]);
    refused(slot, /length field says/, bytes.length + 1);
  });

  it('refuses short, mislabelled and oversized messages', () => {
    refused(new Uint8Array(0), /shorter than the 16-byte header/);
    refused(new Uint8Array(15), /shorter than the 16-byte header/);
    refused(withHeader([], MessageType.DONE, { magic: 0x12345678 }), /bad magic 0x12345678/);
    refused(withHeader([], MessageType.DONE, { version: 2 }), /version 2 is not the supported 1/);
    refused(withHeader([], MessageType.DONE, { length: 17 }), /length field says 17 bytes, 16 arrived/);
    refused(withHeader([], 99), /unknown message type 99/);
    refused(withHeader([], 0), /unknown message type 0/);
    const big = withHeader(new Array(MAX_MESSAGE_BYTES).fill(0), MessageType.DONE);
    refused(big, /exceeds the 512-byte limit/);
    refused(new Uint8Array(8), /received byte count 9/, 9);
  });

  it('refuses bodies that end early, run on, or carry bad fields', () => {
    refused(withHeader([5, 0x61, 0x62], MessageType.FIND), /ends inside target name/);
    refused(withHeader([0], MessageType.FIND), /not a valid name/);
    refused(withHeader([3, 0x61, 0x2f, 0x62], MessageType.FIND), /not a valid name/); // "a/b"
    refused(withHeader([1, 0x2e], MessageType.FIND), /not a valid name/); // "."
    refused(withHeader([0], MessageType.DONE), /1 trailing bytes after a done/);
    refused(withHeader([2], MessageType.ALIVE), /alive must be 0 or 1/);
    refused(withHeader([0, 0, 0, 0, 0, 0, 0, 0, 1, 0x61], MessageType.ALLOCATE), /size 0 is outside/);
    refused(withHeader([2, 0, 0, 0, 1, 0, 0, 0, 1, 0x61], MessageType.DOORBELL), /not 4-aligned/);
    refused(withHeader([1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0], MessageType.HELLO), /hello padding must be 0/);
    refused(withHeader([1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0], MessageType.HELLO), /unknown role 7/);
    refused(withHeader([1, 0, 0xff, 0xff], MessageType.ERROR), /error text of 65535 bytes exceeds/);
  });

  it('refuses to encode what the format cannot carry', () => {
    expect(() => encode({ type: 'find', requestId: 1, name: 'bad/name' })).toThrow(ProtocolError);
    expect(() => encode({ type: 'find', requestId: 1, name: 'a'.repeat(201) })).toThrow(ProtocolError);
    expect(() => encode({ type: 'allocate', requestId: 1, size: 0, name: 'a' })).toThrow(/size must be/);
    expect(() => encode({ type: 'done', requestId: -1 })).toThrow(/requestId must be a u32/);
    expect(() => encode({ type: 'descriptor', requestId: 1, size: 8, rkey: 1, base: 4096, name: 'a' })).toThrow(/base must be/);
    refused(withHeader([8, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 16, 0, 0, 1, 0x61], MessageType.DESCRIPTOR), /base 4096 is not below 4096/);
    const long = encode({ type: 'error', requestId: 1, code: ErrorCode.SYSTEM, text: 'x'.repeat(2000) });
    expect((decode(long) as { text: string }).text.length).toBe(400);
  });

  it('names error codes', () => {
    expect(errorCodeName(ErrorCode.NOT_FOUND)).toBe('NOT_FOUND');
    expect(errorCodeName(999)).toBe('999');
  });

  it('random bytes and random corruptions of valid messages only ever give ProtocolError', () => {
    const decodeOrProtocolError = (bytes: Uint8Array, n: number) => {
      try {
        decode(bytes, n);
      } catch (error) {
        if (!(error instanceof ProtocolError)) throw error;
      }
    };
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 600 }), (bytes) => decodeOrProtocolError(bytes, bytes.length)),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: samples.length - 1 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }), fc.integer({ min: -3, max: 3 }), (i, flips, cut) => {
        const bytes = encode(samples[i]);
        const copy = new Uint8Array(MAX_MESSAGE_BYTES);
        copy.set(bytes);
        for (const [at, value] of flips) copy[at % bytes.length] = value;
        decodeOrProtocolError(copy, Math.max(0, Math.min(MAX_MESSAGE_BYTES, bytes.length + cut)));
      }),
      { numRuns: 3000 },
    );
  });
});
