/**
 * The sending side of segment groups (seed 000; the mechanism is described in segments.ts).
 *
 * Per message the sender reads only its own memory (transport contract 5): which partitions are
 * free it knows itself — it allocated them, and its return segment (layout 3, on its node) tells
 * it how many messages of each group the receiver has consumed, which frees them in the order
 * they were sent; the receiver's status and whether it sleeps are there too. Reading the target
 * (its directory, queue and counters) happens once, at connect, to pick up a previous
 * connection's messages still in flight.
 */
import { ClosedError, CorruptionError, PeerGoneError, TimeoutError, UsageError } from '../errors.js';
import { bellNonce } from '../transport/bell.js';
import { decodeDescriptor, DESCRIPTOR_BYTES, encodeDescriptor } from '../transport/descriptor.js';
import type { Image, ProcessIdentity, Target, Transport } from '../transport/types.js';
import { checkName, common, managerName, returnName, type SegmentGroupInfo, type SegmentInfo, type SegmentOptions } from './common.js';
import {
  dataOffset, DE_NEXT, DE_SEQ, DE_SPAN, DE_STATE, DIR_ENTRY, directoryOffset, ENTRY_READY, INIT_READY, LENGTH_PREFIX, managerBytes,
  MAX_PARTITIONS, MAX_SEGMENT_BYTES, ME_DESCRIPTOR, ME_GROUP, ME_PARTITION_SIZE, ME_PARTITIONS, ME_SENDER, ME_SENDER_LEN, ME_STATE, MG_BELL, MG_CAPACITY,
  MG_ENTRIES, MG_ENTRY_BYTES, MG_MAGIC, MG_RX_PID, MG_RX_START_HI, MG_RX_START_LO, PART_FIRST, PART_NEXT, RT_ATTACHED, RT_CONSUMED, RT_GROUPS, RT_MAGIC, RT_SLEEPING, RT_STATUS,
  returnBytes, segmentBytes, SEG_VERSION, SG_CONSUMED, SG_INIT, SG_PUBLISHED, SG_QUEUE, SG_RETURN, SG_RETURN_READY, SG_VERSION_OFF,
  STATUS_CORRUPT, STATUS_FINE, STATUS_RECEIVER_CLOSED,
} from './layout.js';

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
  readonly #returns: Target;
  readonly #rw: Int32Array;
  readonly #pid: number;
  readonly #transport: Transport;
  /** The receiver's process, from its manager's header at connect: checked at most every RECEIVER_CHECK_MS. */
  readonly #receiverProcess: ProcessIdentity;
  #receiverCheckedAt = 0;
  /** A check by isAliveAsync (receiver on another node) under way. */
  #receiverChecking = false;
  #receiverGone = false;
  #seq: number;
  #closed = false;

  private constructor(name: string, receiver: string, groups: SourceGroup[], manager: Image, returns: Target, seq: number, transport: Transport, receiverProcess: ProcessIdentity) {
    this.#pid = transport.self.pid;
    this.#transport = transport;
    this.#receiverProcess = receiverProcess;
    this.name = name;
    this.receiver = receiver;
    this.#groups = groups;
    this.#manager = manager;
    this.#returns = returns;
    this.#rw = returns.int32;
    this.#seq = seq;
    this.groups = groups.map((g) => ({ id: g.id, partitionSize: g.partitionSize, partitions: g.partitions, target: g.image.descriptor }));
    this.segments = groups.flatMap((g) => [
      { group: g.id, role: 'source' as const, descriptor: g.image.descriptor },
      { group: g.id, role: 'target' as const, descriptor: g.image.descriptor },
    ]);
  }

  /**
   * Obtain from `receiver`'s manager the descriptors of the target segments it allocated for
   * `name` and form their images (claims 3, 4, 20, 22); create our return segment and name it
   * in group 0's target. UsageError if the receiver has none for us.
   */
  static connect(name: string, receiver: string, options: SegmentOptions = {}): SegmentSender {
    checkName('sender name', name);
    checkName('receiver name', receiver);
    const { domain, transport } = common(options);
    const found = transport.find(managerName(domain, receiver));
    if (!found) throw new UsageError(`no segment receiver ${JSON.stringify(receiver)} in domain ${JSON.stringify(domain)}`);
    const manager = transport.attach(found);
    const groups: SourceGroup[] = [];
    let returns: Target | undefined;
    let seq = 0;
    let receiverProcess: ProcessIdentity;
    try {
      const header = new Uint8Array(64);
      manager.read(0, header);
      const h = new DataView(header.buffer);
      if (h.getInt32(0, true) !== MG_MAGIC || h.getInt32(SG_VERSION_OFF, true) !== SEG_VERSION || h.getInt32(SG_INIT, true) !== INIT_READY) {
        throw new CorruptionError(found.name, 'not an initialised segment manager (magic, version or init)');
      }
      receiverProcess = { pid: h.getInt32(MG_RX_PID, true), start: (BigInt(h.getUint32(MG_RX_START_HI, true)) << 32n) | BigInt(h.getUint32(MG_RX_START_LO, true)) };
      if (receiverProcess.pid <= 0) throw new CorruptionError(found.name, `receiver pid ${receiverProcess.pid}`);
      const capacity = h.getInt32(MG_CAPACITY, true);
      if (capacity < 1 || managerBytes(capacity) > manager.size) throw new CorruptionError(found.name, `capacity ${capacity}`);
      // The entries, read whole (one read: set-up, not per message).
      const entries = new Uint8Array(capacity * MG_ENTRY_BYTES);
      manager.read(MG_ENTRIES, entries);
      for (let e = 0; e < capacity; e++) {
        const entry = entries.subarray(e * MG_ENTRY_BYTES, (e + 1) * MG_ENTRY_BYTES);
        const v = new DataView(entry.buffer, entry.byteOffset, MG_ENTRY_BYTES);
        if (v.getInt32(ME_STATE, true) !== ENTRY_READY) continue;
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
        const g: SourceGroup = {
          id: v.getInt32(ME_GROUP, true), partitionSize, partitions, image,
          words: new Int32Array(image.source.buffer, image.source.byteOffset, image.size >> 2),
          dir: directoryOffset(partitions), data: dataOffset(partitions),
          busy: new Uint8Array(partitions), ringFirst: new Int32Array(partitions), ringSpan: new Int32Array(partitions),
          ringHead: 0, inFlight: 0, consumed: 0, published: 0, cursor: 0,
        };
        groups.push(g);
        seq = Math.max(seq, resume(g));
      }
      if (groups.length === 0) throw new UsageError(`receiver ${JSON.stringify(receiver)} has not accepted sender ${JSON.stringify(name)}`);
      if (groups.some((g) => g.id < 0 || g.id >= groups.length) || new Set(groups.map((g) => g.id)).size !== groups.length) {
        throw new CorruptionError(found.name, `group ids ${groups.map((g) => g.id).join(', ')} are not 0..${groups.length - 1}`);
      }
      groups.sort((a, b) => a.partitionSize - b.partitionSize);
      returns = transport.expose(returnName(domain, receiver, name), returnBytes(groups.length), { replaceStale: true });
      const rw = returns.int32;
      rw[0] = RT_MAGIC;
      rw[SG_VERSION_OFF >> 2] = SEG_VERSION;
      rw[RT_GROUPS >> 2] = groups.length;
      for (const g of groups) rw[(RT_CONSUMED >> 2) + g.id] = g.consumed;
      Atomics.store(rw, SG_INIT >> 2, INIT_READY);
      // Name it in group 0's target, where the receiver looks for it.
      const g0 = groups.find((g) => g.id === 0)!;
      encodeDescriptor(returns.descriptor, g0.image.source.subarray(SG_RETURN, SG_RETURN + DESCRIPTOR_BYTES));
      g0.image.write(SG_RETURN, DESCRIPTOR_BYTES);
      // Ordering point: the descriptor is written before the word that says it is there.
      g0.image.publish(SG_RETURN_READY, 1);
    } catch (error) {
      for (const g of groups) g.image.dispose();
      returns?.dispose();
      manager.dispose();
      throw error;
    }
    return new SegmentSender(name, receiver, groups, manager, returns, seq, transport, receiverProcess);
  }

  /** The largest message any group can hold. */
  get maxMessageBytes(): number {
    return Math.max(...this.#groups.map((g) => g.partitionSize * g.partitions - LENGTH_PREFIX));
  }

  /** Free the partitions of the messages the receiver consumed since we last looked (our memory only). */
  #reclaim(g: SourceGroup): void {
    const now = Atomics.load(this.#rw, (RT_CONSUMED >> 2) + g.id);
    const advance = (now - g.consumed) | 0;
    if (advance === 0) return;
    if (advance < 0 || advance > g.inFlight) {
      throw new CorruptionError(this.#returns.descriptor.name, `group ${g.id}: ${now} consumed; ${g.consumed}..${g.consumed + g.inFlight} is possible`);
    }
    for (let k = 0; k < advance; k++) {
      const first = g.ringFirst[g.ringHead];
      g.busy.fill(0, first, first + g.ringSpan[g.ringHead]);
      g.ringHead = (g.ringHead + 1) % g.partitions;
    }
    g.inFlight -= advance;
    g.consumed = now;
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
      this.#reclaim(g);
      const first = freeRun(g, span);
      if (first >= 0) return { group: i, first, span };
    }
    return null;
  }

  /**
   * Copy `data` into contiguous partitions and send them as one message. Returns 0 when sent, -1
   * when no group has a free run now (back-pressure), -3 when no group could ever hold it.
   */
  trySend(data: Uint8Array): number {
    if (this.#closed) throw new ClosedError(`segment sender ${JSON.stringify(this.name)}`);
    if (!(data instanceof Uint8Array)) throw new UsageError('a message must be a Uint8Array');
    const rw = this.#rw;
    const status = Atomics.load(rw, RT_STATUS >> 2);
    if (status !== STATUS_FINE) throw this.#refused(status);
    this.#checkReceiver();
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
    g.busy.fill(1, first, first + span);
    const tail = (g.ringHead + g.inFlight) % g.partitions;
    g.ringFirst[tail] = first;
    g.ringSpan[tail] = span;
    g.inFlight++;
    // Ordering point: partitions, directory and queue entry are written before `published`.
    g.image.publish(SG_PUBLISHED, g.published);
    g.cursor = first + span >= g.partitions ? 0 : first + span;
    this.#seq = (seq + 1) | 0;
    // Ring a receiver that sleeps — or that has not found our return segment yet, so cannot say.
    // (Read after our publication: the receiver sets the flag before its last look.)
    if (Atomics.load(rw, RT_SLEEPING >> 2) !== 0 || Atomics.load(rw, RT_ATTACHED >> 2) === 0) {
      this.#manager.publish(MG_BELL, bellNonce(this.#pid));
      this.#manager.notify(MG_BELL);
    }
    return 0;
  }

  /**
   * A receiver that died without close() leaves its status FINE: ask the process table, at most
   * every RECEIVER_CHECK_MS (one clock read per call otherwise; no remote memory operation). A
   * receiver on another node is asked with isAliveAsync, in the background (transport contract 6).
   */
  #checkReceiver(): void {
    if (this.#receiverGone) throw this.#gone();
    const now = Date.now();
    if (now - this.#receiverCheckedAt < RECEIVER_CHECK_MS) return;
    this.#receiverCheckedAt = now;
    const node = this.#manager.descriptor.node;
    if (node === this.#transport.node) {
      if (!this.#transport.isAlive(this.#receiverProcess, node)) {
        this.#receiverGone = true;
        throw this.#gone();
      }
    } else if (!this.#receiverChecking) {
      this.#receiverChecking = true;
      this.#transport.isAliveAsync(this.#receiverProcess, node).then(
        (alive) => { if (!alive) this.#receiverGone = true; },
        () => undefined, // unknown: asked again after RECEIVER_CHECK_MS
      ).finally(() => { this.#receiverChecking = false; });
    }
  }

  #gone(): PeerGoneError {
    return new PeerGoneError(this.receiver, `it died (pid ${this.#receiverProcess.pid})`);
  }

  /** The receiver's word on this pair (in our return segment) as an error. */
  #refused(status: number): Error {
    const region = this.#groups[0].image.descriptor.name;
    if (status === STATUS_RECEIVER_CLOSED) return new PeerGoneError(this.receiver, 'it closed');
    if (status === STATUS_CORRUPT) return new CorruptionError(region, `receiver ${JSON.stringify(this.receiver)} found this sender's segments corrupt and dropped them`);
    return new CorruptionError(this.#returns.descriptor.name, `status word holds ${status}`);
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
    this.#returns.dispose();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** Claim 7: the first run of `span` contiguous free partitions, from our own record. */
function freeRun(g: SourceGroup, span: number): number {
  const n = g.partitions;
  const busy = g.busy;
  let scanned = 0;
  let at = g.cursor + span > n ? 0 : g.cursor;
  while (scanned < n) {
    let run = 0;
    while (run < span && busy[at + run] === 0) run++;
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
 * Pick up where a previous connection of this sender left the group: its published and consumed
 * counters and the messages still queued (one read of the target's header, queue and directory,
 * at connect only). Returns the sequence number after the newest queued message (0 if none).
 */
function resume(g: SourceGroup): number {
  const region = g.image.descriptor.name;
  const head = new Uint8Array(g.data);
  g.image.read(0, head);
  const w = new Int32Array(head.buffer);
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
