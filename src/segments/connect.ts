/**
 * How a segment sender is set up (seed 000, claims 3, 4, 20, 22): obtain from the receiver's
 * manager the descriptors of the target segments it allocated for this sender, form their images
 * (the source segments), pick up a previous connection's messages still in flight, and create
 * the return segment on this node, named in group 0's target.
 *
 * Two drivers share every check: connectHere() for a receiver on this node (the transport's
 * synchronous forms) and connectThere() for one on another node (the async forms: FIND at that
 * node's agent, RDMA READs of the manager and the targets' heads, an IS_ALIVE). Everything the
 * sender reads here is untrusted: a bad value is a CorruptionError naming the region. None of it
 * happens per message.
 */
import { CorruptionError, PeerGoneError, UsageError } from '../errors.js';
import { decodeDescriptor, DESCRIPTOR_BYTES, encodeDescriptor } from '../transport/descriptor.js';
import type { Image, ProcessIdentity, SegmentDescriptor, Target, Transport } from '../transport/types.js';
import { managerName, type Peer, peerKey, returnName, spell } from './common.js';
import {
  dataOffset, DE_SEQ, DE_SPAN, DIR_ENTRY, directoryOffset, ENTRY_READY, INIT_READY, managerBytes, MAX_PARTITIONS, MAX_SEGMENT_BYTES,
  ME_DESCRIPTOR, ME_GROUP, ME_PARTITION_SIZE, ME_PARTITIONS, ME_SENDER, ME_SENDER_LEN, ME_SENDER_MAX, ME_STATE, MG_CAPACITY, MG_ENTRIES,
  MG_ENTRY_BYTES, MG_MAGIC, MG_RX_PID, MG_RX_START_HI, MG_RX_START_LO, RT_CONSUMED, RT_GROUPS, RT_MAGIC, returnBytes, segmentBytes,
  SEG_VERSION, SG_CONSUMED, SG_INIT, SG_PUBLISHED, SG_QUEUE, SG_RETURN, SG_RETURN_READY, SG_TX_CLOSED, SG_TX_PID, SG_TX_START_HI, SG_TX_START_LO, SG_VERSION_OFF,
} from './layout.js';

/** A source segment and the sender's own record of it. */
export interface SourceGroup {
  readonly id: number;
  readonly partitionSize: number;
  readonly partitions: number;
  readonly image: Image;
  readonly words: Int32Array;
  readonly dir: number;
  readonly data: number;
  /** 1 where a partition holds a message the receiver has not consumed yet (our own record). */
  readonly busy: Uint8Array;
  /** The messages in flight, oldest first: a ring of (first partition, span). */
  readonly ringFirst: Int32Array;
  readonly ringSpan: Int32Array;
  ringHead: number;
  inFlight: number;
  /** Messages of this group the receiver consumed, as last seen in the return segment. */
  consumed: number;
  published: number;
  cursor: number;
}

/** What a connected sender starts from. */
export interface Connection {
  readonly receiver: Peer;
  readonly groups: SourceGroup[];
  readonly manager: Image;
  readonly returns: Target;
  /** The sequence number of the next message. */
  readonly seq: number;
  /** The receiver's process, from its manager's header. */
  readonly receiverProcess: ProcessIdentity;
  /** When (Date.now()) the receiver was last known alive: the start of the check that said so (0: never asked). */
  readonly aliveAt: number;
}

/** One registered target of the manager for us (claim 4). */
interface Entry {
  readonly id: number;
  readonly partitionSize: number;
  readonly partitions: number;
  readonly descriptor: SegmentDescriptor;
}

const HEADER_BYTES = 64;

/** The manager's header, checked: the receiver's process and the entry capacity. */
function checkManager(header: Uint8Array, manager: Image): { receiverProcess: ProcessIdentity; capacity: number } {
  const region = manager.descriptor.name;
  const h = new DataView(header.buffer, header.byteOffset, HEADER_BYTES);
  if (h.getInt32(0, true) !== MG_MAGIC || h.getInt32(SG_VERSION_OFF, true) !== SEG_VERSION || h.getInt32(SG_INIT, true) !== INIT_READY) {
    throw new CorruptionError(region, 'not an initialised segment manager (magic, version or init)');
  }
  const receiverProcess = { pid: h.getInt32(MG_RX_PID, true), start: (BigInt(h.getUint32(MG_RX_START_HI, true)) << 32n) | BigInt(h.getUint32(MG_RX_START_LO, true)) };
  if (receiverProcess.pid <= 0) throw new CorruptionError(region, `receiver pid ${receiverProcess.pid}`);
  const capacity = h.getInt32(MG_CAPACITY, true);
  if (capacity < 1 || managerBytes(capacity) > manager.size) throw new CorruptionError(region, `capacity ${capacity}`);
  return { receiverProcess, capacity };
}

/**
 * The READY entries of the manager registered for `sender` (as the receiver spells it), each
 * checked: a sane geometry whose segment is the descriptor's size, a descriptor of the
 * transport's kind on the receiver's node, group ids 0..n−1 once each.
 */
function entriesFor(entries: Uint8Array, capacity: number, sender: string, receiver: Peer, transport: Transport, region: string): Entry[] {
  const found: Entry[] = [];
  for (let e = 0; e < capacity; e++) {
    const entry = entries.subarray(e * MG_ENTRY_BYTES, (e + 1) * MG_ENTRY_BYTES);
    const v = new DataView(entry.buffer, entry.byteOffset, MG_ENTRY_BYTES);
    if (v.getInt32(ME_STATE, true) !== ENTRY_READY) continue;
    const senderLength = v.getInt32(ME_SENDER_LEN, true);
    if (senderLength < 1 || senderLength > ME_SENDER_MAX) throw new CorruptionError(region, `entry ${e}: sender name of ${senderLength} bytes`);
    if (senderLength !== sender.length || String.fromCharCode(...entry.subarray(ME_SENDER, ME_SENDER + senderLength)) !== sender) continue;
    const descriptor = decodeDescriptor(entry.subarray(ME_DESCRIPTOR, ME_DESCRIPTOR + DESCRIPTOR_BYTES), region);
    const partitionSize = v.getInt32(ME_PARTITION_SIZE, true);
    const partitions = v.getInt32(ME_PARTITIONS, true);
    const sane = partitionSize >= 64 && partitionSize % 64 === 0 && partitions >= 1 && partitions <= MAX_PARTITIONS;
    if (!sane || segmentBytes(partitionSize, partitions) > MAX_SEGMENT_BYTES || segmentBytes(partitionSize, partitions) !== descriptor.size) {
      throw new CorruptionError(region, `entry ${e}: ${partitions} partitions of ${partitionSize} bytes do not make a ${descriptor.size}-byte segment`);
    }
    if (descriptor.node !== receiver.node || descriptor.transport !== transport.kind) {
      throw new CorruptionError(region, `entry ${e}: target ${descriptor.name} is on ${descriptor.transport} node ${descriptor.node}, not the receiver's (${transport.kind} node ${receiver.node})`);
    }
    found.push({ id: v.getInt32(ME_GROUP, true), partitionSize, partitions, descriptor });
  }
  if (found.length === 0) throw new UsageError(`receiver ${JSON.stringify(spell(receiver, transport.node))} has not accepted sender ${JSON.stringify(sender)}`);
  if (found.some((g) => g.id < 0 || g.id >= found.length) || new Set(found.map((g) => g.id)).size !== found.length) {
    throw new CorruptionError(region, `group ids ${found.map((g) => g.id).join(', ')} are not 0..${found.length - 1}`);
  }
  return found;
}

function sourceGroup(entry: Entry, image: Image): SourceGroup {
  const { id, partitionSize, partitions } = entry;
  return {
    id, partitionSize, partitions, image,
    words: new Int32Array(image.source.buffer, image.source.byteOffset, image.size >> 2),
    dir: directoryOffset(partitions), data: dataOffset(partitions),
    busy: new Uint8Array(partitions), ringFirst: new Int32Array(partitions), ringSpan: new Int32Array(partitions),
    ringHead: 0, inFlight: 0, consumed: 0, published: 0, cursor: 0,
  };
}

/**
 * Pick up where a previous connection of this sender left the group, from `head` — the target's
 * header, queue and directory (g.data bytes), read once: its published and consumed counters and
 * the messages still queued. Returns the sequence number after the newest queued message (0 if none).
 */
function resume(g: SourceGroup, head: Uint8Array): number {
  const region = g.image.descriptor.name;
  const w = new Int32Array(head.buffer, head.byteOffset, head.length >> 2);
  const published = w[SG_PUBLISHED >> 2];
  const consumed = w[SG_CONSUMED >> 2];
  const pending = (published - consumed) | 0;
  if (pending < 0 || pending > g.partitions) throw new CorruptionError(region, `${published} published, ${consumed} consumed`);
  g.published = published;
  g.consumed = consumed;
  let next = 0;
  for (let k = 0; k < pending; k++) {
    const first = w[(SG_QUEUE >> 2) + (((consumed + k) >>> 0) % g.partitions)];
    const e = (g.dir + first * DIR_ENTRY) >> 2;
    const span = first >= 0 && first < g.partitions ? w[e + (DE_SPAN >> 2)] : -1;
    if (span < 1 || span > g.partitions - first) throw new CorruptionError(region, `queued message at partition ${first} spans ${span}`);
    g.busy.fill(1, first, first + span);
    g.ringFirst[k] = first;
    g.ringSpan[k] = span;
    next = (w[e + (DE_SEQ >> 2)] + 1) | 0;
  }
  g.inFlight = pending;
  return next;
}

/**
 * Create our return segment (always on this node: the receiver writes it, we read it in place)
 * and name it in group 0's target, where the receiver looks for it.
 */
function makeReturns(transport: Transport, domain: string, sender: string, receiver: Peer, groups: SourceGroup[]): Target {
  groups.sort((a, b) => a.partitionSize - b.partitionSize);
  const returns = transport.expose(returnName(domain, peerKey(receiver, transport.node), sender), returnBytes(groups.length), { replaceStale: true });
  const rw = returns.int32;
  rw[0] = RT_MAGIC;
  rw[SG_VERSION_OFF >> 2] = SEG_VERSION;
  rw[RT_GROUPS >> 2] = groups.length;
  for (const g of groups) rw[(RT_CONSUMED >> 2) + g.id] = g.consumed;
  Atomics.store(rw, SG_INIT >> 2, INIT_READY);
  const g0 = groups.find((g) => g.id === 0)!;
  encodeDescriptor(returns.descriptor, g0.image.source.subarray(SG_RETURN, SG_RETURN + DESCRIPTOR_BYTES));
  g0.image.write(SG_RETURN, DESCRIPTOR_BYTES);
  // Who we are (the receiver drops a sender whose process died), and "not closed" (a closed
  // sender that connects again is open again).
  const src = g0.image.source;
  const v = new DataView(src.buffer, src.byteOffset, src.byteLength);
  v.setInt32(SG_TX_PID, transport.self.pid, true);
  v.setUint32(SG_TX_START_LO, Number(transport.self.start & 0xffffffffn), true);
  v.setUint32(SG_TX_START_HI, Number(transport.self.start >> 32n), true);
  v.setInt32(SG_TX_CLOSED, 0, true);
  g0.image.write(SG_TX_PID, SG_TX_CLOSED + 4 - SG_TX_PID);
  // Ordering point: the descriptor and our process are written before the word that says they are there.
  g0.image.publish(SG_RETURN_READY, 1);
  return returns;
}

/** Everything made so far goes (the return segment's name with its handle). */
function unwind(groups: SourceGroup[], returns: Target | undefined, manager: Image): void {
  for (const g of groups) g.image.dispose();
  returns?.dispose();
  manager.dispose();
}

function noReceiver(domain: string, receiver: Peer, here: string): UsageError {
  return new UsageError(`no segment receiver ${JSON.stringify(spell(receiver, here))} in domain ${JSON.stringify(domain)}`);
}

/** Connect `sender` to `receiver` on this node (synchronous forms). */
export function connectHere(transport: Transport, domain: string, sender: string, receiver: Peer): Connection {
  const found = transport.find(managerName(domain, receiver.name));
  if (!found) throw noReceiver(domain, receiver, transport.node);
  const manager = transport.attach(found);
  const groups: SourceGroup[] = [];
  let returns: Target | undefined;
  try {
    const header = new Uint8Array(HEADER_BYTES);
    manager.read(0, header);
    const { receiverProcess, capacity } = checkManager(header, manager);
    // The entries, read whole (one read: set-up, not per message).
    const entries = new Uint8Array(capacity * MG_ENTRY_BYTES);
    manager.read(MG_ENTRIES, entries);
    let seq = 0;
    for (const entry of entriesFor(entries, capacity, sender, receiver, transport, found.name)) {
      const g = sourceGroup(entry, transport.attach(entry.descriptor));
      groups.push(g);
      const head = new Uint8Array(g.data);
      g.image.read(0, head);
      seq = Math.max(seq, resume(g, head));
    }
    returns = makeReturns(transport, domain, sender, receiver, groups);
    return { receiver, groups, manager, returns, seq, receiverProcess, aliveAt: 0 };
  } catch (error) {
    unwind(groups, returns, manager);
    throw error;
  }
}

/**
 * Connect `sender` (as the receiver spells it: "name@ourNode") to `receiver` on another node:
 * the async forms — the manager found by that node's agent, read by RDMA READ, each target
 * attached (an RDMA image: its own rkey on this process's connection) and its head read, and the
 * receiver's process asked after (PeerGoneError if it is not running).
 */
export async function connectThere(transport: Transport, domain: string, sender: string, senderName: string, receiver: Peer): Promise<Connection> {
  const found = await transport.findAsync(managerName(domain, receiver.name), receiver.node);
  if (!found) throw noReceiver(domain, receiver, transport.node);
  const manager = await transport.attachAsync(found);
  const groups: SourceGroup[] = [];
  let returns: Target | undefined;
  try {
    const header = new Uint8Array(HEADER_BYTES);
    await manager.readAsync(0, header);
    const { receiverProcess, capacity } = checkManager(header, manager);
    const entries = new Uint8Array(capacity * MG_ENTRY_BYTES);
    await manager.readAsync(MG_ENTRIES, entries);
    let seq = 0;
    for (const entry of entriesFor(entries, capacity, sender, receiver, transport, found.name)) {
      const g = sourceGroup(entry, await transport.attachAsync(entry.descriptor));
      groups.push(g);
      const head = new Uint8Array(g.data);
      await g.image.readAsync(0, head);
      seq = Math.max(seq, resume(g, head));
    }
    const askedAt = Date.now();
    if (!(await transport.isAliveAsync(receiverProcess, receiver.node))) {
      throw new PeerGoneError(spell(receiver, transport.node), `its process (pid ${receiverProcess.pid}) is not running`);
    }
    returns = makeReturns(transport, domain, senderName, receiver, groups);
    return { receiver, groups, manager, returns, seq, receiverProcess, aliveAt: askedAt };
  } catch (error) {
    unwind(groups, returns, manager);
    throw error;
  }
}
