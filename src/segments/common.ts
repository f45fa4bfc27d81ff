/**
 * What the sending and the receiving side of segment groups share: the options, the group specs
 * and their checks, and the names of the shared objects.
 */
import { UsageError } from '../errors.js';
import { checkTransport } from '../transport/check.js';
import { ShmTransport } from '../transport/shm.js';
import type { SegmentDescriptor, Transport } from '../transport/types.js';
import { MAX_PARTITIONS, MAX_SEGMENT_BYTES, segmentBytes } from './layout.js';

export interface GroupSpec {
  /** Bytes per partition (a multiple of 64). */
  partitionSize: number;
  /** Partitions in the segment. */
  partitions: number;
}

export interface SegmentOptions {
  domain?: string;
  transport?: Transport;
}

/** A row of the sender's segment-group table (claim 5). */
export interface SegmentGroupInfo {
  readonly id: number;
  readonly partitionSize: number;
  readonly partitions: number;
  /** The source segment: the image of the target (its descriptor is the target's). */
  readonly target: SegmentDescriptor;
}

/** A row of the segment table (claim 5): every segment, source and target, of the groups. */
export interface SegmentInfo {
  readonly group: number;
  readonly role: 'source' | 'target';
  readonly descriptor: SegmentDescriptor;
}

export const NAME = /^[A-Za-z0-9_-]{1,48}$/;
export function checkName(what: string, name: unknown): asserts name is string {
  if (typeof name !== 'string' || !NAME.test(name)) throw new UsageError(`${what} must be 1–48 characters of A–Z a–z 0–9 _ -, got ${JSON.stringify(name)}`);
}

let defaultTransport: ShmTransport | undefined;

/** The options object's domain and transport, checked (UsageError). */
export function common(options: unknown): { domain: string; transport: Transport } {
  if (typeof options !== 'object' || options === null) throw new UsageError(`options must be an object, got ${options === null ? 'null' : typeof options}`);
  const { domain = 'default', transport } = options as SegmentOptions;
  checkName('domain', domain);
  return { domain, transport: transport === undefined ? (defaultTransport ??= new ShmTransport()) : checkTransport(transport) };
}

/** A group's partitions as a spec, or a UsageError: size a multiple of 64, 1..2^20 partitions, the segment ≤ MAX_SEGMENT_BYTES. */
export function checkSpec(s: GroupSpec): void {
  const ok =
    typeof s === 'object' && s !== null && Number.isSafeInteger(s.partitionSize) && s.partitionSize >= 64 && s.partitionSize % 64 === 0 &&
    Number.isSafeInteger(s.partitions) && s.partitions >= 1 && s.partitions <= MAX_PARTITIONS;
  if (!ok) throw new UsageError(`group ${JSON.stringify(s)}: partitionSize must be a multiple of 64 and partitions 1..2^20`);
  const bytes = segmentBytes(s.partitionSize, s.partitions);
  if (bytes > MAX_SEGMENT_BYTES) throw new UsageError(`group ${JSON.stringify(s)}: its segment would be ${bytes} bytes; at most ${MAX_SEGMENT_BYTES} (1 GiB)`);
}

export function managerName(domain: string, receiver: string): string {
  return `sg.${domain}.mgr.${receiver}`;
}

/** The sender's return segment (layout 3) for the pair receiver ← sender, on the sender's node. */
export function returnName(domain: string, receiver: string, sender: string): string {
  return `sg.${domain}.ret.${receiver}.${sender}`;
}
