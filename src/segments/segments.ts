/**
 * Segment groups (seed 000): messages between a sender and a receiver through paired segments cut
 * into fixed-size partitions, several partition sizes side by side.
 *
 *   - The receiver allocates a target segment per partition size for a sender and registers each
 *     one's descriptor with its manager (claims 4, 21, 23: SegmentReceiver.accept). The sender
 *     obtains the descriptors there and forms the source segments — images of the targets
 *     (claims 3, 4, 20, 22: SegmentSender.connect) — pairing each source with its target as a
 *     segment group (claim 1), listed in its segment-group table and segment table (claim 5); as
 *     many groups as partition sizes, each size different (claims 1, 8).
 *   - To send, the sender selects a group by partition size: the largest partition size not above
 *     the message's length, so that the message spans contiguous partitions (claim 1); it tests
 *     whether that segment can hold the message — partition size times the span it has free, read
 *     from the directory (claims 2, 7, 9) — and falls back to the next larger partition size when
 *     it cannot (claim 2). It copies the message into the contiguous partitions of the source
 *     segment, writes the directory entries (first-of-message flag, next partition, span:
 *     claim 6), and sends the partitions' content to the target with one write — one message
 *     (claims 1, 20, 22). The receiver reads it from its target segment as one message (claims
 *     21, 23) and frees the partitions.
 *
 * Messages of one sender arrive in order across groups (a sequence number in the first entry).
 * Everything the receiver reads is checked: a bad value is a CorruptionError naming the segment.
 * The postbox mechanism (postbox/) is memwire's general-purpose messaging; this one is seed 000's.
 */
import { ClosedError, CorruptionError, PeerGoneError, TimeoutError, UsageError } from '../errors.js';
import { checkTransport } from '../transport/check.js';
import { decodeDescriptor, DESCRIPTOR_BYTES, encodeDescriptor } from '../transport/descriptor.js';
import { ShmTransport } from '../transport/shm.js';
import type { Image, ProcessIdentity, SegmentDescriptor, Target, Transport } from '../transport/types.js';
import {
  dataOffset, DE_NEXT, DE_SEQ, DE_SPAN, DE_STATE, DIR_ENTRY, directoryOffset, ENTRY_READY, INIT_READY, LENGTH_PREFIX,
  managerBytes, MAX_PARTITIONS, MAX_SEGMENT_BYTES, MAX_SEGMENT_SENDERS, ME_DESCRIPTOR, ME_GROUP, ME_PARTITION_SIZE, ME_PARTITIONS, ME_SENDER, ME_SENDER_LEN, ME_STATE, MG_BELL,
  MG_CAPACITY, MG_ENTRIES, MG_RX_PID, MG_RX_START_HI, MG_RX_START_LO, MG_ENTRY_BYTES, MG_MAGIC, MG_SLEEPING, PART_FIRST, PART_FREE, PART_NEXT, segmentBytes, SEG_VERSION,
  SG_CONSUMED, SG_GROUP, SG_INIT, SG_MAGIC, SG_PARTITION_SIZE, SG_PARTITIONS, SG_PUBLISHED, SG_QUEUE, SG_STATUS, SG_VERSION_OFF,
  STATUS_CORRUPT, STATUS_FINE, STATUS_RECEIVER_CLOSED,
} from './layout.js';

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

const NAME = /^[A-Za-z0-9_-]{1,48}$/;
function checkName(what: string, name: unknown): asserts name is string {
  if (typeof name !== 'string' || !NAME.test(name)) throw new UsageError(`${what} must be 1–48 characters of A–Z a–z 0–9 _ -, got ${JSON.stringify(name)}`);
}

let defaultTransport: ShmTransport | undefined;

/** The options object's domain and transport, checked (UsageError). */
function common(options: unknown): { domain: string; transport: Transport } {
  if (typeof options !== 'object' || options === null) throw new UsageError(`options must be an object, got ${options === null ? 'null' : typeof options}`);
  const { domain = 'default', transport } = options as SegmentOptions;
  checkName('domain', domain);
  return { domain, transport: transport === undefined ? (defaultTransport ??= new ShmTransport()) : checkTransport(transport) };
}

/** A group's partitions as a spec, or a UsageError: size a multiple of 64, 1..2^20 partitions, the segment ≤ MAX_SEGMENT_BYTES. */
function checkSpec(s: GroupSpec): void {
  const ok =
    typeof s === 'object' && s !== null && Number.isSafeInteger(s.partitionSize) && s.partitionSize >= 64 && s.partitionSize % 64 === 0 &&
    Number.isSafeInteger(s.partitions) && s.partitions >= 1 && s.partitions <= MAX_PARTITIONS;
  if (!ok) throw new UsageError(`group ${JSON.stringify(s)}: partitionSize must be a multiple of 64 and partitions 1..2^20`);
  const bytes = segmentBytes(s.partitionSize, s.partitions);
  if (bytes > MAX_SEGMENT_BYTES) throw new UsageError(`group ${JSON.stringify(s)}: its segment would be ${bytes} bytes; at most ${MAX_SEGMENT_BYTES} (1 GiB)`);
}

function managerName(domain: string, receiver: string): string {
  return `sg.${domain}.mgr.${receiver}`;
}

// ---------------------------------------------------------------------------------------------

/**
 * A sender checks that its receiver still runs at most this often: every trySend()/send() made
 * this long after the receiver died throws PeerGoneError (docs/messaging-faults.md).
 */
export const RECEIVER_CHECK_MS = 100;

interface SourceGroup {
  readonly id: number;
  readonly partitionSize: number;
  readonly partitions: number;
  readonly image: Image;
  readonly words: Int32Array;
  readonly dir: number;
  readonly data: number;
  published: number;
  cursor: number;
}

/** The sending side of one sender → receiver pair of segment groups. */
export class SegmentSender {
  readonly name: string;
  readonly receiver: string;
  /** The segment-group table, by partition size ascending (claim 5). */
  readonly groups: readonly SegmentGroupInfo[];
  /** The segment table: a source and a target per group (claim 5). */
  readonly segments: readonly SegmentInfo[];
  readonly #groups: SourceGroup[];
  readonly #manager: Image;
  readonly #transport: Transport;
  /** The receiver's process, from its manager: checked at most every RECEIVER_CHECK_MS. */
  readonly #receiverProcess: ProcessIdentity;
  #receiverCheckedAt = 0;
  #seq = 0;
  #closed = false;

  private constructor(name: string, receiver: string, groups: SourceGroup[], manager: Image, transport: Transport, receiverProcess: ProcessIdentity) {
    this.name = name;
    this.receiver = receiver;
    this.#groups = groups;
    this.#manager = manager;
    this.#transport = transport;
    this.#receiverProcess = receiverProcess;
    this.groups = groups.map((g) => ({ id: g.id, partitionSize: g.partitionSize, partitions: g.partitions, target: g.image.descriptor }));
    this.segments = groups.flatMap((g) => [
      { group: g.id, role: 'source' as const, descriptor: g.image.descriptor },
      { group: g.id, role: 'target' as const, descriptor: g.image.descriptor },
    ]);
  }

  /**
   * Obtain from `receiver`'s manager the descriptors of the target segments it allocated for
   * `name` and form their images (claims 3, 4, 20, 22). UsageError if the receiver has none for us.
   */
  static connect(name: string, receiver: string, options: SegmentOptions = {}): SegmentSender {
    checkName('sender name', name);
    checkName('receiver name', receiver);
    const { domain, transport } = common(options);
    const found = transport.find(managerName(domain, receiver));
    if (!found) throw new UsageError(`no segment receiver ${JSON.stringify(receiver)} in domain ${JSON.stringify(domain)}`);
    const manager = transport.attach(found);
    const groups: SourceGroup[] = [];
    let receiverProcess: ProcessIdentity;
    try {
      if (manager.load(0) !== MG_MAGIC || manager.load(SG_INIT) !== INIT_READY) throw new CorruptionError(found.name, 'not an initialised segment manager');
      if (manager.load(SG_VERSION_OFF) !== SEG_VERSION) throw new CorruptionError(found.name, `segment layout version ${manager.load(SG_VERSION_OFF)}, expected ${SEG_VERSION}`);
      receiverProcess = { pid: manager.load(MG_RX_PID), start: (BigInt(manager.load(MG_RX_START_HI) >>> 0) << 32n) | BigInt(manager.load(MG_RX_START_LO) >>> 0) };
      if (receiverProcess.pid <= 0) throw new CorruptionError(found.name, `receiver pid ${receiverProcess.pid}`);
      const capacity = manager.load(MG_CAPACITY);
      if (capacity < 1 || managerBytes(capacity) > manager.size) throw new CorruptionError(found.name, `capacity ${capacity}`);
      const entry = new Uint8Array(MG_ENTRY_BYTES);
      for (let e = 0; e < capacity; e++) {
        const at = MG_ENTRIES + e * MG_ENTRY_BYTES;
        if (manager.load(at + ME_STATE) !== ENTRY_READY) continue;
        manager.read(at, entry);
        const v = new DataView(entry.buffer);
        const senderLength = v.getInt32(ME_SENDER_LEN, true);
        if (senderLength !== name.length || String.fromCharCode(...entry.subarray(ME_SENDER, ME_SENDER + senderLength)) !== name) continue;
        const descriptor = decodeDescriptor(entry.subarray(ME_DESCRIPTOR, ME_DESCRIPTOR + DESCRIPTOR_BYTES), found.name);
        const partitionSize = v.getInt32(ME_PARTITION_SIZE, true);
        const partitions = v.getInt32(ME_PARTITIONS, true);
        const sane = partitionSize >= 64 && partitionSize % 64 === 0 && partitions >= 1 && partitions <= MAX_PARTITIONS;
        if (!sane || segmentBytes(partitionSize, partitions) > MAX_SEGMENT_BYTES || segmentBytes(partitionSize, partitions) !== descriptor.size) {
          throw new CorruptionError(found.name, `entry ${e}: ${partitions} partitions of ${partitionSize} bytes do not make a ${descriptor.size}-byte segment`);
        }
        const image = transport.attach(descriptor);
        groups.push({
          id: v.getInt32(ME_GROUP, true), partitionSize, partitions, image,
          words: new Int32Array(image.source.buffer, image.source.byteOffset, image.size >> 2),
          dir: directoryOffset(partitions), data: dataOffset(partitions), published: image.load(SG_PUBLISHED), cursor: 0,
        });
      }
      if (groups.length === 0) throw new UsageError(`receiver ${JSON.stringify(receiver)} has not accepted sender ${JSON.stringify(name)}`);
    } catch (error) {
      for (const g of groups) g.image.dispose();
      manager.dispose();
      throw error;
    }
    groups.sort((a, b) => a.partitionSize - b.partitionSize);
    return new SegmentSender(name, receiver, groups, manager, transport, receiverProcess);
  }

  /** The largest message any group can hold. */
  get maxMessageBytes(): number {
    return Math.max(...this.#groups.map((g) => g.partitionSize * g.partitions - LENGTH_PREFIX));
  }

  /**
   * Choose a group and a run of free partitions for `length` bytes: the group of the largest
   * partition size not above the length (claim 1), if its segment is large enough — partition size
   * × the span it has free (claims 2, 7, 9) — else the next larger partition size (claim 2).
   * Returns the group's index in the table and the run's first partition, or null.
   */
  select(length: number): { group: number; first: number; span: number } | null {
    const groups = this.#groups;
    let start = 0;
    for (let i = 0; i < groups.length; i++) if (groups[i].partitionSize <= length) start = i;
    for (let i = start; i < groups.length; i++) {
      const g = groups[i];
      const span = Math.max(1, Math.ceil((length + LENGTH_PREFIX) / g.partitionSize));
      if (span > g.partitions) continue; // claim 9: partition size × span factor too small
      const first = this.#freeRun(g, span);
      if (first >= 0) return { group: i, first, span };
    }
    return null;
  }

  /** Claim 7: the first run of `span` contiguous free partitions, from the directory. */
  #freeRun(g: SourceGroup, span: number): number {
    const n = g.partitions;
    let scanned = 0;
    let at = g.cursor + span > n ? 0 : g.cursor;
    while (scanned < n) {
      let run = 0;
      while (run < span && g.image.load(g.dir + (at + run) * DIR_ENTRY + DE_STATE) === PART_FREE) run++;
      if (run === span) return at;
      scanned += run + 1;
      at += run + 1;
      if (at + span > n) {
        scanned += n - at;
        at = 0;
      }
    }
    return -1;
  }

  /**
   * Copy `data` into contiguous partitions and send them as one message. Returns 0 when sent, -1
   * when no group has a free run now (back-pressure), -3 when no group could ever hold it.
   */
  trySend(data: Uint8Array): number {
    if (this.#closed) throw new ClosedError(`segment sender ${JSON.stringify(this.name)}`);
    if (!(data instanceof Uint8Array)) throw new UsageError('a message must be a Uint8Array');
    const status = this.#groups[0].image.load(SG_STATUS);
    if (status !== STATUS_FINE) throw this.#refused(status);
    // A receiver that died without close() leaves its status FINE: ask the process table, at
    // most every RECEIVER_CHECK_MS (one clock read per call otherwise).
    const now = Date.now();
    if (now - this.#receiverCheckedAt >= RECEIVER_CHECK_MS) {
      if (!this.#transport.isAlive(this.#receiverProcess, this.#groups[0].image.descriptor.node)) {
        throw new PeerGoneError(this.receiver, `it died (pid ${this.#receiverProcess.pid})`);
      }
      this.#receiverCheckedAt = now;
    }
    if (data.length > this.maxMessageBytes) return -3;
    const choice = this.select(data.length);
    if (!choice) return -1;
    const g = this.#groups[choice.group];
    const { first, span } = choice;
    const source = g.image.source;
    const w = g.words;
    const at = g.data + first * g.partitionSize;
    // Claim 1: the message into the contiguous partitions of the source segment.
    w[at >> 2] = data.length;
    source.set(data, at + LENGTH_PREFIX);
    // Claim 6: a directory entry per partition — first-of-message flag, next partition, span.
    const seq = this.#seq;
    for (let k = 0; k < span; k++) {
      const e = (g.dir + (first + k) * DIR_ENTRY) >> 2;
      w[e + (DE_NEXT >> 2)] = k + 1 < span ? first + k + 1 : -1;
      w[e + (DE_SPAN >> 2)] = k === 0 ? span : 0;
      w[e + (DE_SEQ >> 2)] = k === 0 ? seq : 0;
      w[e + (DE_STATE >> 2)] = k === 0 ? PART_FIRST : PART_NEXT;
    }
    g.image.write(g.dir + first * DIR_ENTRY, span * DIR_ENTRY);
    // The content of the contiguous partitions, as one message (one write; one RDMA write later).
    g.image.write(at, LENGTH_PREFIX + data.length);
    const q = SG_QUEUE + (g.published % g.partitions) * 4;
    w[q >> 2] = first;
    g.image.write(q, 4);
    g.published = (g.published + 1) | 0;
    // Ordering point: partitions, directory and queue entry are written before `published`.
    g.image.publish(SG_PUBLISHED, g.published);
    g.cursor = first + span >= g.partitions ? 0 : first + span;
    this.#seq = (seq + 1) | 0;
    if (this.#manager.load(MG_SLEEPING) !== 0) {
      this.#manager.add(MG_BELL, 1);
      this.#manager.notify(MG_BELL);
    }
    return 0;
  }

  /** The receiver's word on this pair (SG_STATUS, the same in every group) as an error. */
  #refused(status: number): Error {
    const region = this.#groups[0].image.descriptor.name;
    if (status === STATUS_RECEIVER_CLOSED) return new PeerGoneError(this.receiver, 'it closed');
    if (status === STATUS_CORRUPT) return new CorruptionError(region, `receiver ${JSON.stringify(this.receiver)} found this sender's segments corrupt and dropped them`);
    return new CorruptionError(region, `status word holds ${status}`);
  }

  /** trySend, waiting (briefly sleeping) while no run is free. UsageError if it can never fit. */
  async send(data: Uint8Array, options: { timeoutMs?: number } = {}): Promise<void> {
    const deadline = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs;
    for (;;) {
      const status = this.trySend(data);
      if (status === 0) return;
      if (status === -3) throw new UsageError(`a message of ${data.length} bytes fits no segment group (largest: ${this.maxMessageBytes})`);
      if (Date.now() > deadline) throw new TimeoutError(`no free partitions for ${data.length} bytes within ${options.timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const g of this.#groups) g.image.dispose();
    this.#manager.dispose();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

// ---------------------------------------------------------------------------------------------

interface TargetGroup {
  readonly id: number;
  readonly target: Target;
  readonly partitionSize: number;
  readonly partitions: number;
  readonly dir: number;
  readonly data: number;
  consumed: number;
}

interface Accepted {
  readonly sender: string;
  readonly groups: TargetGroup[];
  expected: number;
  /** Set when its memory was found corrupt: it is not read any more. */
  broken: CorruptionError | null;
}

/** Thrown inside a drain to unwind it once the sender was found corrupt (and dropped). */
class SenderCorrupt extends Error {}

const NOTHING = 0;
const DELIVERED = 1;
/** The group's next message is a later one of the sender: the one due is in another group. */
const LATER = 2;

export type SegmentHandler = (buffer: Uint8Array, offset: number, length: number, from: string) => void;

/** The receiving side: target segments per accepted sender, and the manager that names them. */
export class SegmentReceiver {
  readonly name: string;
  readonly domain: string;
  readonly transport: Transport;
  readonly #specs: GroupSpec[];
  readonly #manager: Target;
  readonly #capacity: number;
  readonly #accepted = new Map<string, Accepted>();
  /** CorruptionErrors of dropped senders, thrown one per poll(). */
  readonly #errors: CorruptionError[] = [];
  #entries = 0;
  #closed = false;

  private constructor(name: string, domain: string, transport: Transport, specs: GroupSpec[], manager: Target, capacity: number) {
    this.name = name;
    this.domain = domain;
    this.transport = transport;
    this.#specs = specs;
    this.#manager = manager;
    this.#capacity = capacity;
  }

  /**
   * Open receiver `name` with the partition sizes of its groups (each different, claims 1, 8)
   * and create its manager. `maxSenders` bounds accept().
   */
  static open(name: string, options: SegmentOptions & { groups: GroupSpec[]; maxSenders?: number } = { groups: [] }): SegmentReceiver {
    checkName('receiver name', name);
    const { domain, transport } = common(options);
    if (!Array.isArray(options.groups) || options.groups.length === 0) throw new UsageError('a segment receiver needs at least one group (option groups)');
    const specs = [...options.groups];
    for (const s of specs) checkSpec(s);
    if (new Set(specs.map((s) => s.partitionSize)).size !== specs.length) throw new UsageError('each group needs a different partition size (claims 1, 8)');
    const maxSenders = options.maxSenders ?? 16;
    if (!Number.isSafeInteger(maxSenders) || maxSenders < 1 || maxSenders > MAX_SEGMENT_SENDERS) throw new UsageError(`maxSenders must be a whole number within 1..${MAX_SEGMENT_SENDERS}, got ${String(maxSenders)}`);
    const capacity = maxSenders * specs.length;
    const manager = transport.expose(managerName(domain, name), managerBytes(capacity), { replaceStale: true });
    const w = manager.int32;
    w[0] = MG_MAGIC;
    w[SG_VERSION_OFF >> 2] = SEG_VERSION;
    w[MG_CAPACITY >> 2] = capacity;
    w[MG_RX_PID >> 2] = transport.self.pid;
    w[MG_RX_START_LO >> 2] = Number(transport.self.start & 0xffffffffn) | 0;
    w[MG_RX_START_HI >> 2] = Number(transport.self.start >> 32n) | 0;
    Atomics.store(w, SG_INIT >> 2, INIT_READY);
    return new SegmentReceiver(name, domain, transport, specs, manager, capacity);
  }

  /**
   * Allocate this receiver's target segments for `sender`, one per group, and register their
   * descriptors with the manager (claims 4, 21, 23). Idempotent per sender.
   */
  accept(sender: string): void {
    if (this.#closed) throw new ClosedError(`segment receiver ${JSON.stringify(this.name)}`);
    checkName('sender name', sender);
    if (this.#accepted.has(sender)) return;
    if (this.#entries + this.#specs.length > this.#capacity) throw new UsageError(`segment receiver ${this.name} accepts no more senders`);
    const groups: TargetGroup[] = [];
    try {
      this.#specs.forEach((spec, id) => {
        const target = this.transport.expose(`sg.${this.domain}.seg.${this.name}.${sender}.${id}`, segmentBytes(spec.partitionSize, spec.partitions), { replaceStale: true });
        groups.push({ id, target, ...spec, dir: directoryOffset(spec.partitions), data: dataOffset(spec.partitions), consumed: 0 });
        const w = target.int32;
        w[0] = SG_MAGIC;
        w[SG_VERSION_OFF >> 2] = SEG_VERSION;
        w[SG_PARTITION_SIZE >> 2] = spec.partitionSize;
        w[SG_PARTITIONS >> 2] = spec.partitions;
        w[SG_GROUP >> 2] = id;
        Atomics.store(w, SG_INIT >> 2, INIT_READY);
      });
    } catch (error) {
      // e.g. ENOSPC on the third group: no segment of this sender stays.
      for (const g of groups) g.target.dispose();
      throw error;
    }
    for (const g of groups) {
      // Register its descriptor (claim 4): the entry is complete before its state says READY.
      const at = MG_ENTRIES + this.#entries++ * MG_ENTRY_BYTES;
      const bytes = this.#manager.bytes;
      const v = new DataView(bytes.buffer, bytes.byteOffset + at, MG_ENTRY_BYTES);
      v.setInt32(ME_GROUP, g.id, true);
      v.setInt32(ME_PARTITION_SIZE, g.partitionSize, true);
      v.setInt32(ME_PARTITIONS, g.partitions, true);
      v.setInt32(ME_SENDER_LEN, sender.length, true);
      for (let i = 0; i < sender.length; i++) bytes[at + ME_SENDER + i] = sender.charCodeAt(i);
      encodeDescriptor(g.target.descriptor, bytes.subarray(at + ME_DESCRIPTOR, at + ME_DESCRIPTOR + DESCRIPTOR_BYTES));
      Atomics.store(this.#manager.int32, (at + ME_STATE) >> 2, ENTRY_READY);
    }
    this.#accepted.set(sender, { sender, groups, expected: 0, broken: null });
  }

  /**
   * Deliver up to `limit` messages, in order per sender, each read in place from its partitions
   * (valid during the call); the partitions are freed after the handler returns. Returns how many.
   * A sender whose segments hold an impossible value (directory, queue, message number) is
   * dropped — not read any more, told through its status word — and its CorruptionError, naming
   * the segment, is thrown once (at the start of a poll, or at its end when it delivered nothing);
   * the other senders keep being served.
   */
  poll(handler: SegmentHandler, limit = Infinity): number {
    if (this.#closed) throw new ClosedError(`segment receiver ${JSON.stringify(this.name)}`);
    if (this.#errors.length > 0) throw this.#errors.shift()!;
    let delivered = 0;
    for (const a of this.#accepted.values()) {
      if (delivered >= limit) break;
      if (a.broken) continue;
      try {
        delivered += this.#drainSender(a, handler, limit - delivered);
      } catch (error) {
        if (!(error instanceof SenderCorrupt)) throw error;
      }
    }
    if (delivered === 0 && this.#errors.length > 0) throw this.#errors.shift()!;
    return delivered;
  }

  /** Up to `limit` messages of one sender, in its order across groups. */
  #drainSender(a: Accepted, handler: SegmentHandler, limit: number): number {
    let delivered = 0;
    while (delivered < limit) {
      let outcome = this.#nextOf(a, handler);
      // Ordering point: the sender publishes its messages in order, so once a later one was seen
      // (loaded), loads made after it see the one due — a second look settles whether it exists.
      if (outcome === LATER) outcome = this.#nextOf(a, handler);
      if (outcome === NOTHING) break;
      if (outcome === LATER) {
        const heads = a.groups.map((g) => `${g.target.descriptor.name} ${g.consumed}/${Atomics.load(g.target.int32, SG_PUBLISHED >> 2)}`).join(', ');
        this.#corrupt(a, a.groups[0], `message ${a.expected} is in no group while later ones are queued (consumed/published: ${heads})`);
      }
      delivered++;
    }
    return delivered;
  }

  /** Deliver the sender's next message from whichever group holds it: DELIVERED, LATER or NOTHING. */
  #nextOf(a: Accepted, handler: SegmentHandler): number {
    let outcome = NOTHING;
    for (const g of a.groups) {
      const r = this.#deliverNext(a, g, handler);
      if (r === DELIVERED) return DELIVERED;
      if (r === LATER) outcome = LATER;
    }
    return outcome;
  }

  /** Drop `a`: tell its sender through the status word of each of its segments; raise the error once. */
  #corrupt(a: Accepted, g: TargetGroup, detail: string): never {
    const error = new CorruptionError(g.target.descriptor.name, `sender ${JSON.stringify(a.sender)}: ${detail}`);
    a.broken = error;
    this.#errors.push(error);
    for (const each of a.groups) Atomics.store(each.target.int32, SG_STATUS >> 2, STATUS_CORRUPT);
    throw new SenderCorrupt();
  }

  /** If `g`'s next queued message is the sender's next in order, deliver it (claims 21, 23): DELIVERED, LATER or NOTHING. */
  #deliverNext(a: Accepted, g: TargetGroup, handler: SegmentHandler): number {
    const w = g.target.int32;
    const published = Atomics.load(w, SG_PUBLISHED >> 2);
    const pending = (published - g.consumed) | 0;
    if (pending === 0) return NOTHING;
    if (pending < 0 || pending > g.partitions) this.#corrupt(a, g, `${published} published, ${g.consumed} consumed`);
    // Ordering point: `published` was loaded before the queue, directory and partitions are read.
    const first = w[(SG_QUEUE >> 2) + (g.consumed % g.partitions)];
    if (first < 0 || first >= g.partitions) this.#corrupt(a, g, `queued partition ${first} of ${g.partitions}`);
    const e = (g.dir + first * DIR_ENTRY) >> 2;
    const seq = w[e + (DE_SEQ >> 2)];
    if (seq !== a.expected) {
      if (((seq - a.expected) | 0) < 0) this.#corrupt(a, g, `message number ${seq} after ${a.expected - 1}`);
      return LATER; // the one due is in another group (or nowhere: #drainSender decides)
    }
    const span = w[e + (DE_SPAN >> 2)];
    if (w[e + (DE_STATE >> 2)] !== PART_FIRST || span < 1 || span > g.partitions - first) {
      this.#corrupt(a, g, `partition ${first}: state ${w[e + (DE_STATE >> 2)]}, span ${span}`);
    }
    // Claim 6: the message's partitions follow one another, linked by `next`.
    for (let k = 0; k < span; k++) {
      const ek = (g.dir + (first + k) * DIR_ENTRY) >> 2;
      const next = w[ek + (DE_NEXT >> 2)];
      if ((k > 0 && w[ek + (DE_STATE >> 2)] !== PART_NEXT) || next !== (k + 1 < span ? first + k + 1 : -1)) {
        this.#corrupt(a, g, `partition ${first + k} is not the ${k + 1}th of a ${span}-partition message`);
      }
    }
    const at = g.data + first * g.partitionSize;
    const length = w[at >> 2];
    if (length < 0 || length > span * g.partitionSize - LENGTH_PREFIX) this.#corrupt(a, g, `message length ${length} in ${span} partitions`);
    a.expected = (a.expected + 1) | 0;
    g.consumed = (g.consumed + 1) | 0;
    try {
      handler(g.target.bytes, at + LENGTH_PREFIX, length, a.sender);
    } finally {
      for (let k = 0; k < span; k++) Atomics.store(w, (g.dir + (first + k) * DIR_ENTRY + DE_STATE) >> 2, PART_FREE);
      Atomics.store(w, SG_CONSUMED >> 2, g.consumed);
    }
    return DELIVERED;
  }

  /** The next message (a copy), waiting without blocking the event loop. */
  async receive(options: { timeoutMs?: number } = {}): Promise<{ from: string; data: Uint8Array }> {
    const deadline = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs;
    let out: { from: string; data: Uint8Array } | undefined;
    const copy: SegmentHandler = (buffer, offset, length, from) => {
      out = { from, data: buffer.slice(offset, offset + length) };
    };
    const mw = this.#manager.int32;
    for (;;) {
      if (this.poll(copy, 1) > 0) return out!;
      const left = deadline - Date.now();
      if (left <= 0) throw new TimeoutError(`no segment message for ${JSON.stringify(this.name)} within ${options.timeoutMs} ms`);
      const bell = Atomics.load(mw, MG_BELL >> 2);
      Atomics.store(mw, MG_SLEEPING >> 2, 1);
      try {
        if (this.poll(copy, 1) > 0) return out!;
        await this.#manager.waitAsync(MG_BELL, bell, { timeoutMs: Math.min(left, 50) });
      } finally {
        if (!this.#closed) Atomics.store(mw, MG_SLEEPING >> 2, 0);
      }
    }
  }

  /** Release every target segment and the manager (their names go with them). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const a of this.#accepted.values()) {
      for (const g of a.groups) {
        // Tell the sender (its next trySend throws PeerGoneError), then remove the segment.
        if (!a.broken) Atomics.store(g.target.int32, SG_STATUS >> 2, STATUS_RECEIVER_CLOSED);
        g.target.dispose();
      }
    }
    this.#accepted.clear();
    this.#manager.dispose();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
