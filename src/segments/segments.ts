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
 *
 * Between nodes (a transport whose async forms reach other nodes: RDMA) the receiver accepts
 * "name@node" and the sender connects with SegmentSender.connectAsync(name, "receiver@node"): the
 * targets stay on the receiver's node and the return segment on the sender's, each written from
 * the other node (RDMA WRITEs), each read in place where it lives (docs/across-machines.md).
 *
 * This file is the receiving side and the module's entry; the sending side is sender.ts, its
 * set-up connect.ts, what both share common.ts, the layouts layout.ts.
 */
import { ClosedError, CorruptionError, PeerGoneError, TimeoutError, UsageError } from '../errors.js';
import { decodeDescriptor, DESCRIPTOR_BYTES, encodeDescriptor, MAX_DESCRIPTOR_NAME } from '../transport/descriptor.js';
import { type Image, PostStatus, type ProcessIdentity, type Target, type Transport } from '../transport/types.js';
import {
  checkName, checkSpec, common, type GroupSpec, managerName, parsePeer, type Peer, peerKey, returnName, type SegmentOptions, spell, targetName,
} from './common.js';
import {
  dataOffset, DE_NEXT, DE_SEQ, DE_SPAN, DE_STATE, DIR_ENTRY, directoryOffset, ENTRY_READY, INIT_READY, LENGTH_PREFIX, managerBytes,
  MAX_SEGMENT_SENDERS, ME_DESCRIPTOR, ME_GROUP, ME_PARTITION_SIZE, ME_PARTITIONS, ME_SENDER, ME_SENDER_LEN, ME_STATE, MG_BELL, MG_CAPACITY, MG_ENTRIES,
  MG_ENTRY_BYTES, MG_MAGIC, MG_RX_PID, MG_RX_START_HI, MG_RX_START_LO, PART_FIRST, PART_FREE, PART_NEXT, returnBytes, RT_ATTACHED, RT_CONSUMED, RT_GROUPS, RT_MAGIC, RT_SLEEPING,
  RT_STATUS, segmentBytes, SEG_VERSION, SG_CONSUMED, SG_GROUP, SG_INIT, SG_MAGIC, SG_PARTITION_SIZE, SG_PARTITIONS, SG_PUBLISHED,
  SG_QUEUE, SG_RETURN, SG_RETURN_READY, SG_STATUS, SG_TX_CLOSED, SG_TX_PID, SG_TX_START_HI, SG_TX_START_LO, SG_VERSION_OFF, STATUS_CORRUPT,
  STATUS_RECEIVER_CLOSED,
} from './layout.js';

export type { GroupSpec, SegmentGroupInfo, SegmentInfo, SegmentOptions } from './common.js';
export { RECEIVER_CHECK_MS, RECEIVER_TRUST_MS, SegmentSender } from './sender.js';

interface TargetGroup {
  readonly id: number;
  /** Its entry in the manager (freed when the sender is dropped). */
  readonly entry: number;
  readonly target: Target;
  readonly partitionSize: number;
  readonly partitions: number;
  readonly dir: number;
  readonly data: number;
  consumed: number;
}

interface Accepted {
  /** As accept() was given it, normalised: "name" on this node, "name@node" elsewhere (the handler's `from`). */
  readonly sender: string;
  readonly from: Peer;
  /** The name its return segment must have (on its node). */
  readonly returnName: string;
  readonly groups: TargetGroup[];
  expected: number;
  /** The sender's return segment (layout 3), once found: where we push consumed, sleeping, status. */
  returns: Image | undefined;
  /** An attach of a return segment on another node is under way. */
  attaching: boolean;
  /** Not before this time (ms) is a return segment on another node looked for again (after a failed attach or a failed image). */
  retryAt: number;
  /** Set when its memory was found corrupt: it is not read any more. */
  broken: CorruptionError | null;
  /** The sender's process, from group 0's target once it connected (each connect writes it anew). */
  process: ProcessIdentity | undefined;
  /** When its process was last asked after (Date.now()). */
  checkedAt: number;
  /** An isAliveAsync (sender on another node) under way. */
  checking: boolean;
  /** Set once its process is known to have ended: why (its messages are drained, then it is dropped). */
  ended: string | undefined;
}

/**
 * How long a receiver waits before it looks again for a return segment on another node that it
 * could not attach, or whose image failed (each look is a FIND at that node's agent).
 */
const RETURN_RETRY_MS = 100;

/**
 * A receiver asks whether each connected sender's process still runs at most this often (a clock
 * read per poll() otherwise; a sender on another node is asked through its node's agent, in the
 * background). A sender that died is dropped once everything it published was delivered.
 */
export const SENDER_CHECK_MS = 100;

/** The sender's process as group 0's target names it (SG_TX_*; pid ≤ 0: none or forged). */
function senderProcess(w0: Int32Array): ProcessIdentity {
  const start = (BigInt(Atomics.load(w0, SG_TX_START_HI >> 2) >>> 0) << 32n) | BigInt(Atomics.load(w0, SG_TX_START_LO >> 2) >>> 0);
  return { pid: Atomics.load(w0, SG_TX_PID >> 2), start };
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
  /** CorruptionErrors and PeerGoneErrors of dropped senders, thrown one per poll(). */
  readonly #errors: Error[] = [];
  /** Manager entries in use or used (the next new one is this index). */
  #entries = 0;
  /** Entries freed by dropped senders, taken again by accept(). */
  readonly #freeEntries: number[] = [];
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
   * descriptors with the manager (claims 4, 21, 23). Idempotent per sender. A sender on another
   * node is named "name@node" (as postboxes name peers; the transport must reach that node — RDMA);
   * its messages come with that name as `from`. The targets are on this node either way: a sender
   * elsewhere writes them by RDMA through this node's agent (SegmentSender.connectAsync).
   */
  accept(sender: string): void {
    if (this.#closed) throw new ClosedError(`segment receiver ${JSON.stringify(this.name)}`);
    const here = this.transport.node;
    const from = parsePeer('sender name', sender, here);
    const spelled = spell(from, here);
    if (this.#accepted.has(spelled)) return;
    if (this.#entries - this.#freeEntries.length + this.#specs.length > this.#capacity) throw new UsageError(`segment receiver ${this.name} accepts no more senders`);
    const names = this.#specs.map((_, id) => targetName(this.domain, this.name, peerKey(from, here), id));
    const returns = returnName(this.domain, peerKey({ name: this.name, node: here }, from.node), from.name);
    for (const name of [...names, returns]) {
      if (name.length > MAX_DESCRIPTOR_NAME) throw new UsageError(`segment name ${name} is ${name.length} characters; a descriptor holds ${MAX_DESCRIPTOR_NAME} (shorter domain, receiver or sender names)`);
    }
    const groups: TargetGroup[] = [];
    try {
      this.#specs.forEach((spec, id) => {
        const target = this.transport.expose(names[id], segmentBytes(spec.partitionSize, spec.partitions), { replaceStale: true });
        groups.push({ id, entry: -1, target, ...spec, dir: directoryOffset(spec.partitions), data: dataOffset(spec.partitions), consumed: 0 });
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
      const entry = this.#freeEntries.pop() ?? this.#entries++;
      (g as { entry: number }).entry = entry;
      const at = MG_ENTRIES + entry * MG_ENTRY_BYTES;
      const bytes = this.#manager.bytes;
      const v = new DataView(bytes.buffer, bytes.byteOffset + at, MG_ENTRY_BYTES);
      v.setInt32(ME_GROUP, g.id, true);
      v.setInt32(ME_PARTITION_SIZE, g.partitionSize, true);
      v.setInt32(ME_PARTITIONS, g.partitions, true);
      v.setInt32(ME_SENDER_LEN, spelled.length, true);
      for (let i = 0; i < spelled.length; i++) bytes[at + ME_SENDER + i] = spelled.charCodeAt(i);
      encodeDescriptor(g.target.descriptor, bytes.subarray(at + ME_DESCRIPTOR, at + ME_DESCRIPTOR + DESCRIPTOR_BYTES));
      Atomics.store(this.#manager.int32, (at + ME_STATE) >> 2, ENTRY_READY);
    }
    this.#accepted.set(spelled, {
      sender: spelled, from, returnName: returns, groups, expected: 0, broken: null, returns: undefined, attaching: false, retryAt: 0,
      process: undefined, checkedAt: 0, checking: false, ended: undefined,
    });
  }

  /**
   * Deliver up to `limit` messages, in order per sender, each read in place from its partitions
   * (valid during the call); the partitions are freed after the handler returns. Returns how many.
   * A sender whose segments hold an impossible value (directory, queue, message number) is
   * dropped — not read any more, told through its status word — and its CorruptionError, naming
   * the segment, is thrown once (at the start of a poll, or at its end when it delivered nothing);
   * the other senders keep being served. A sender whose process died without close() is dropped
   * once everything it published was delivered — its targets removed, its manager entries freed,
   * a PeerGoneError naming it thrown once the same way; accept() it again to take a new process
   * of that name. (One that closed first is not reported; its segments stay for a reconnect.)
   */
  poll(handler: SegmentHandler, limit = Infinity): number {
    if (this.#closed) throw new ClosedError(`segment receiver ${JSON.stringify(this.name)}`);
    if (this.#errors.length > 0) throw this.#errors.shift()!;
    let delivered = 0;
    const now = Date.now();
    for (const a of this.#accepted.values()) {
      if (delivered >= limit) break;
      if (a.broken) continue;
      // Ordering point: `ended` was set before this drain's loads, so the drain sees every
      // message the sender published before it ended; one that delivers nothing was the last.
      const ended = a.ended !== undefined;
      try {
        if (!a.returns && !a.attaching && now >= a.retryAt) this.#findReturns(a);
        const got = this.#drainSender(a, handler, limit - delivered);
        delivered += got;
        if (ended && got === 0) this.#dropEnded(a);
        else if (!ended && a.process && now - a.checkedAt >= SENDER_CHECK_MS) this.#checkSender(a, now);
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

  /**
   * Whether the sender's process still runs (pid + start time): on this node the process table
   * answers; on another node its agent, in the background — only an answer "no" ends the sender
   * (an unreachable node or a late answer is asked again after SENDER_CHECK_MS: the sender may
   * well run, and dropping it would remove the memory it writes).
   */
  #checkSender(a: Accepted, now: number): void {
    a.checkedAt = now;
    const who = a.process!;
    const node = a.from.node;
    if (node === this.transport.node) {
      if (!this.transport.isAlive(who, node)) a.ended = `it died (pid ${who.pid})`;
      return;
    }
    if (a.checking) return;
    a.checking = true;
    this.transport.isAliveAsync(who, node).then(
      (alive) => {
        // Still the same incarnation? (a new connect of that name rewrote `process`.)
        if (!alive && a.process === who) a.ended = `it died (pid ${who.pid} on ${node})`;
      },
      () => undefined,
    ).finally(() => { a.checking = false; });
  }

  /**
   * Drop a sender whose process ended, after its last message was delivered: free its manager
   * entries, remove its targets, and report it (PeerGoneError, once) unless it closed first.
   */
  #dropEnded(a: Accepted): void {
    const w0 = a.groups[0].target.int32;
    const closedFirst = Atomics.load(w0, SG_TX_CLOSED >> 2) === 1;
    // Entries first: from here on no new connect finds these targets.
    for (const g of a.groups) Atomics.store(this.#manager.int32, (MG_ENTRIES + g.entry * MG_ENTRY_BYTES + ME_STATE) >> 2, 0);
    // A new process of that name that connected before (it rewrote group 0's process words) is
    // served instead: keep everything. (One whose connect read the entries just before they were
    // freed and writes its process just after is not seen: it finds no receiver reading — accept
    // it again. The window is one connect within SENDER_CHECK_MS of its predecessor's death.)
    const { pid, start } = senderProcess(w0);
    if (pid !== a.process!.pid || start !== a.process!.start) {
      for (const g of a.groups) Atomics.store(this.#manager.int32, (MG_ENTRIES + g.entry * MG_ENTRY_BYTES + ME_STATE) >> 2, ENTRY_READY);
      a.ended = undefined;
      a.process = pid > 0 ? { pid, start } : undefined;
      a.checkedAt = 0;
      a.returns?.dispose(); // its return segment is a new one: look it up again
      a.returns = undefined;
      return;
    }
    this.#accepted.delete(a.sender);
    for (const g of a.groups) this.#freeEntries.push(g.entry);
    a.returns?.dispose();
    a.returns = undefined;
    for (const g of a.groups) g.target.dispose();
    if (!closedFirst) this.#errors.push(new PeerGoneError(a.sender, `${a.ended!}; every message it sent was delivered, its segments removed`));
  }

  /** Drop `a`: tell its sender through the status word of each of its segments; raise the error once. */
  #corrupt(a: Accepted, g: TargetGroup, detail: string): never {
    const error = new CorruptionError(g.target.descriptor.name, `sender ${JSON.stringify(a.sender)}: ${detail}`);
    a.broken = error;
    this.#errors.push(error);
    for (const each of a.groups) Atomics.store(each.target.int32, SG_STATUS >> 2, STATUS_CORRUPT);
    this.#pushStatus(a, STATUS_CORRUPT);
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
      // The sender learns it in its own memory (its per-message path reads nothing of ours).
      if (a.returns) this.#toSender(a, RT_CONSUMED + g.id * 4, g.consumed);
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
      // Say we sleep — in each sender's return segment, which its sends read — then look once more.
      const landing = this.#announceSleep(1);
      if (landing) await landing; // landed before our last look
      try {
        if (this.poll(copy, 1) > 0) return out!;
        await this.#manager.waitAsync(MG_BELL, bell, { timeoutMs: Math.min(left, 50) });
      } finally {
        if (!this.#closed) this.#announceSleep(0);
      }
    }
  }

  /**
   * Find the sender's return segment, named in its group-0 target once it connected, and attach
   * it (on another node: asynchronously; meanwhile the sender rings on every message). A forged
   * descriptor — another name or size — is this sender's CorruptionError.
   */
  #findReturns(a: Accepted): void {
    const g0 = a.groups[0];
    if (Atomics.load(g0.target.int32, SG_RETURN_READY >> 2) !== 1) return;
    const region = g0.target.descriptor.name;
    let descriptor;
    try {
      descriptor = decodeDescriptor(g0.target.bytes.subarray(SG_RETURN, SG_RETURN + DESCRIPTOR_BYTES), region);
    } catch (error) {
      this.#corrupt(a, g0, (error as Error).message);
    }
    if (descriptor.name !== a.returnName || descriptor.node !== a.from.node || descriptor.size !== returnBytes(a.groups.length) || descriptor.transport !== this.transport.kind) {
      this.#corrupt(a, g0, `return segment ${descriptor.name}@${descriptor.node} of ${descriptor.size} bytes is not this sender's`);
    }
    const w0 = g0.target.int32;
    const { pid, start } = senderProcess(w0);
    if (pid <= 0) this.#corrupt(a, g0, `sender process id ${pid}`);
    if (a.process?.pid !== pid || a.process.start !== start) {
      a.process = { pid, start };
      a.checkedAt = 0;
    }
    const ready = (returns: Image, late: boolean): void => {
      a.attaching = false;
      if (late && this.#closed && !a.broken) {
        // We closed while attaching: still tell the sender (its next trySend throws PeerGoneError).
        try {
          returns.publish(RT_STATUS, STATUS_RECEIVER_CLOSED);
        } catch {
          // its segment or node is gone: nothing to tell
        }
        void returns.settled().catch(() => undefined).finally(() => returns.dispose());
        return;
      }
      if (a.broken || (late && this.#closed)) {
        returns.dispose();
        return;
      }
      a.returns = returns;
      for (const g of a.groups) if (a.returns) this.#toSender(a, RT_CONSUMED + g.id * 4, g.consumed);
      // Ordering point: the counts are there before the word that says the sender may trust them.
      if (a.returns) this.#toSender(a, RT_ATTACHED, 1);
    };
    if (descriptor.node === this.transport.node) {
      let returns: Image;
      try {
        returns = this.transport.attach(descriptor);
      } catch {
        return; // not there (yet, or any more): look again on the next poll
      }
      ready(returns, false);
    } else {
      a.attaching = true;
      this.transport.attachAsync(descriptor).then((returns) => ready(returns, true), () => {
        // Not there (yet, or any more), or its node unreachable: look again later, not on every
        // poll (each look is a control call to that node's agent).
        a.attaching = false;
        a.retryAt = Date.now() + RETURN_RETRY_MS;
      });
    }
  }

  /**
   * Publish a word in the sender's return segment. On another node the image can fail (the
   * sender died and its node's agent deregistered the segment, or the connection broke): that
   * costs only the word — the sender's messages in our memory are still delivered — and the
   * segment is looked for again after RETURN_RETRY_MS (a live sender's is found on a new
   * connection; a dead one's is not).
   */
  #toSender(a: Accepted, byteOffset: number, value: number): PostStatus | undefined {
    const returns = a.returns!;
    try {
      if (!returns.failed && !returns.closed) return returns.publish(byteOffset, value);
    } catch {
      // failed by this post or an earlier one (sticky): dropped below
    }
    a.returns = undefined;
    a.retryAt = Date.now() + RETURN_RETRY_MS;
    returns.dispose();
    return undefined;
  }

  #pushStatus(a: Accepted, status: number): void {
    // the sender's node or segment gone: nothing to tell
    if (a.returns) this.#toSender(a, RT_STATUS, status);
  }

  /** Tell each sender whether we sleep; a promise of the posts still in flight (another node), if any. */
  #announceSleep(sleeping: 0 | 1): Promise<unknown> | undefined {
    let posted: Promise<unknown>[] | undefined;
    for (const a of this.#accepted.values()) {
      if (!a.returns || a.broken) continue;
      const returns = a.returns;
      if (this.#toSender(a, RT_SLEEPING, sleeping) === PostStatus.POSTED) (posted ??= []).push(returns.settled().catch(() => undefined));
    }
    return posted && Promise.all(posted);
  }

  /** Release every target segment and the manager (their names go with them). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const a of this.#accepted.values()) {
      for (const g of a.groups) {
        // Tell the sender (its next trySend throws PeerGoneError), then remove the segment.
        if (!a.broken) Atomics.store(g.target.int32, SG_STATUS >> 2, STATUS_RECEIVER_CLOSED);
      }
      if (!a.broken) {
        if (!a.returns && !a.attaching) {
          try {
            this.#findReturns(a);
          } catch {
            // nothing to tell a sender whose return segment is missing or broken
          }
        }
        this.#pushStatus(a, STATUS_RECEIVER_CLOSED);
      }
      a.returns?.dispose();
      for (const g of a.groups) g.target.dispose();
    }
    this.#accepted.clear();
    this.#manager.dispose();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
