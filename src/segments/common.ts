/**
 * What the sending and the receiving side of segment groups share: the options, the group specs
 * and their checks, and the names of the shared objects.
 */
import { UsageError } from '../errors.js';
import { checkTransport } from '../transport/check.js';
import { nodeTag } from '../transport/descriptor.js';
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

/** A node's name in a peer's name ("name@node"): the descriptor alphabet; ≤ 55 so "name@node" fits a manager entry. */
const NODE = /^[A-Za-z0-9._:-]{1,55}$/;

/** A sender or receiver: its name and the node it runs on. */
export interface Peer {
  readonly name: string;
  readonly node: string;
}

/**
 * A peer named "name" (a process of node `here`) or "name@node" (as postboxes name peers), checked
 * (UsageError).
 */
export function parsePeer(what: string, peer: unknown, here: string): Peer {
  if (typeof peer !== 'string') throw new UsageError(`${what} must be a string "name" or "name@node", got ${typeof peer}`);
  const at = peer.indexOf('@');
  const name = at < 0 ? peer : peer.slice(0, at);
  checkName(what, name);
  const node = at < 0 ? here : peer.slice(at + 1);
  if (!NODE.test(node)) throw new UsageError(`${what} ${JSON.stringify(peer)}: a node must be 1–55 characters of A–Z a–z 0–9 . _ : -`);
  return { name, node };
}

/** How a process of node `here` spells `p`: its bare name on `here`, "name@node" elsewhere (a receiver's `from`). */
export function spell(p: Peer, here: string): string {
  return p.node === here ? p.name : `${p.name}@${p.node}`;
}

/**
 * `p` in the object names of node `here`: its name, and its node's tag when that is another node
 * (a name holds no '.', so a local peer and one of another node never share a key).
 */
export function peerKey(p: Peer, here: string): string {
  return p.node === here ? p.name : `${p.name}.${nodeTag(p.node)}`;
}

/** The receiver's manager (layout 2), on the receiver's node. */
export function managerName(domain: string, receiver: string): string {
  return `sg.${domain}.mgr.${receiver}`;
}

/** Target segment `group` (layout 1) for `senderKey` (peerKey on the receiver's node), on the receiver's node. */
export function targetName(domain: string, receiver: string, senderKey: string, group: number): string {
  return `sg.${domain}.seg.${receiver}.${senderKey}.${group}`;
}

/** The sender's return segment (layout 3) for the pair receiver ← sender, on the sender's node (`receiverKey`: peerKey there). */
export function returnName(domain: string, receiverKey: string, sender: string): string {
  return `sg.${domain}.ret.${receiverKey}.${sender}`;
}
