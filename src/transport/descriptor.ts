/**
 * Segment descriptors in shared memory: a fixed 256-byte record, so a descriptor can sit in a
 * table another process reads (seed 000's manager; postbox registrations).
 *
 *   offset  size  field
 *        0     1  transport length (1..16)
 *        1     1  node length (1..64)
 *        2     1  name length (1..160)
 *        3     1  reserved, 0
 *        4     4  key
 *        8     8  size (float64: a whole number of bytes ≤ 2^53)
 *       16     …  transport, node, name: ASCII [A-Za-z0-9._:-], back to back
 *
 * decodeDescriptor() treats the bytes as untrusted: anything out of range is a CorruptionError
 * naming the region the record was read from.
 */
import { CorruptionError, UsageError } from '../errors.js';
import type { SegmentDescriptor } from './types.js';

export const DESCRIPTOR_BYTES = 256;
const MAX_TRANSPORT = 16;
const MAX_NODE = 64;
/** The longest target name a descriptor carries. */
export const MAX_DESCRIPTOR_NAME = 160;
const MAX_NAME = MAX_DESCRIPTOR_NAME;
const TEXT = /^[A-Za-z0-9._:-]+$/;

function checkText(what: string, text: string, max: number): void {
  if (typeof text !== 'string' || text.length === 0 || text.length > max || !TEXT.test(text)) {
    throw new UsageError(`descriptor ${what} ${JSON.stringify(text)} must be 1..${max} characters of A-Z a-z 0-9 . _ : -`);
  }
}

/** Write `descriptor` into `into` (≥ DESCRIPTOR_BYTES). UsageError for a field that cannot be stored. */
export function encodeDescriptor(descriptor: SegmentDescriptor, into: Uint8Array): void {
  if (into.length < DESCRIPTOR_BYTES) throw new UsageError(`a descriptor needs ${DESCRIPTOR_BYTES} bytes, got ${into.length}`);
  const { transport, node, name, size, key } = descriptor;
  checkText('transport', transport, MAX_TRANSPORT);
  checkText('node', node, MAX_NODE);
  checkText('name', name, MAX_NAME);
  if (!Number.isSafeInteger(size) || size <= 0) throw new UsageError(`descriptor size must be a positive whole number, got ${size}`);
  if (!Number.isInteger(key) || key < 0 || key > 0xffffffff) throw new UsageError(`descriptor key must be a u32, got ${key}`);
  into.fill(0, 0, DESCRIPTOR_BYTES);
  const view = new DataView(into.buffer, into.byteOffset, DESCRIPTOR_BYTES);
  view.setUint8(0, transport.length);
  view.setUint8(1, node.length);
  view.setUint8(2, name.length);
  view.setUint32(4, key, true);
  view.setFloat64(8, size, true);
  let at = 16;
  for (const text of [transport, node, name]) {
    for (let i = 0; i < text.length; i++) into[at++] = text.charCodeAt(i);
  }
}

function readText(bytes: Uint8Array, at: number, length: number, max: number, what: string, region: string): string {
  if (length < 1 || length > max) throw new CorruptionError(region, `descriptor ${what} length ${length} outside 1..${max}`);
  let text = '';
  for (let i = 0; i < length; i++) text += String.fromCharCode(bytes[at + i]);
  if (!TEXT.test(text)) throw new CorruptionError(region, `descriptor ${what} holds characters outside A-Z a-z 0-9 . _ : -`);
  return text;
}

/** Read a descriptor written by encodeDescriptor from (untrusted) `bytes`. */
export function decodeDescriptor(bytes: Uint8Array, region: string): SegmentDescriptor {
  if (bytes.length < DESCRIPTOR_BYTES) throw new CorruptionError(region, `descriptor record of ${bytes.length} bytes`);
  // Copy first: the other side may change the bytes while we check them.
  const copy = bytes.slice(0, DESCRIPTOR_BYTES);
  const view = new DataView(copy.buffer);
  const tl = view.getUint8(0);
  const nl = view.getUint8(1);
  const ml = view.getUint8(2);
  const key = view.getUint32(4, true);
  const size = view.getFloat64(8, true);
  if (!Number.isSafeInteger(size) || size <= 0) throw new CorruptionError(region, `descriptor size ${size} is not a positive whole number`);
  const transport = readText(copy, 16, tl, MAX_TRANSPORT, 'transport', region);
  const node = readText(copy, 16 + tl, nl, MAX_NODE, 'node', region);
  const name = readText(copy, 16 + tl + nl, ml, MAX_NAME, 'name', region);
  return { transport, node, name, size, key };
}

export function sameDescriptor(a: SegmentDescriptor, b: SegmentDescriptor): boolean {
  return a.transport === b.transport && a.node === b.node && a.name === b.name && a.size === b.size && a.key === b.key;
}

/**
 * A node's name as 8 hex digits (FNV-1a), for the names of objects that belong to a pair of nodes
 * (a postbox sender's ack segment per receiving node, segment groups with a peer on another node).
 */
export function nodeTag(node: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < node.length; i++) h = Math.imul(h ^ node.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(16).padStart(8, '0');
}
