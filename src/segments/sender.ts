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
import type { Image, ProcessIdentity, Target, Transport } from '../transport/types.js';
import { checkName, common, parsePeer, type SegmentGroupInfo, type SegmentInfo, type SegmentOptions, spell } from './common.js';
import { type Connection, connectHere, connectThere, type SourceGroup } from './connect.js';
import {
  DE_NEXT, DE_SEQ, DE_SPAN, DE_STATE, DIR_ENTRY, LENGTH_PREFIX, MG_BELL, PART_FIRST, PART_NEXT, RT_ATTACHED, RT_CONSUMED, RT_SLEEPING, RT_STATUS,
  SG_PUBLISHED, SG_QUEUE, SG_TX_CLOSED, STATUS_CORRUPT, STATUS_FINE, STATUS_RECEIVER_CLOSED,
} from './layout.js';

/**
 * A sender checks that its receiver still runs at most this often: every trySend()/send() made
 * this long after the receiver died throws PeerGoneError (docs/messaging-faults.md).
 */
export const RECEIVER_CHECK_MS = 100;

/**
 * A receiver on another node is asked in the background (isAliveAsync), so a "yes" is trusted
 * this long after the question went out; past it, trySend() writes nothing (returns -1, as for
 * back-pressure) until a fresh answer came. Why: once a receiver died, its node's agent forgets
 * its targets within 500 ms and deregisters them FORGET_GRACE_MS (15 s) later; a WRITE after that
 * fails — and fails the queue pair every image of this process to that node shares. Well inside
 * the grace (it was half of an earlier 5 s one), so that WRITEs still queued behind others land in time too. (1 s was too short in the
 * TCG guest: an IS_ALIVE answer took longer, and a synchronous burst of trySend() got -1.)
 */
export const RECEIVER_TRUST_MS = 2500;

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
  readonly #receiverNode: string;
  #receiverCheckedAt = 0;
  /** When the receiver (on another node) was last known alive: the start of the check that said so. */
  #receiverAliveAt: number;
  /** A check by isAliveAsync (receiver on another node) under way. */
  #receiverChecking = false;
  #receiverGone = false;
  #goneWhy: string | undefined;
  #seq: number;
  #closed = false;

  private constructor(name: string, transport: Transport, c: Connection) {
    this.#pid = transport.self.pid;
    this.#transport = transport;
    this.#receiverProcess = c.receiverProcess;
    this.#receiverNode = c.receiver.node;
    this.#receiverAliveAt = c.aliveAt;
    this.name = name;
    this.receiver = spell(c.receiver, transport.node);
    this.#groups = c.groups;
    this.#manager = c.manager;
    this.#returns = c.returns;
    this.#rw = c.returns.int32;
    this.#seq = c.seq;
    this.groups = c.groups.map((g) => ({ id: g.id, partitionSize: g.partitionSize, partitions: g.partitions, target: g.image.descriptor }));
    this.segments = c.groups.flatMap((g) => [
      { group: g.id, role: 'source' as const, descriptor: g.image.descriptor },
      { group: g.id, role: 'target' as const, descriptor: g.image.descriptor },
    ]);
  }

  /**
   * Obtain from `receiver`'s manager the descriptors of the target segments it allocated for
   * `name` and form their images (claims 3, 4, 20, 22); create our return segment and name it
   * in group 0's target. `receiver` is on this node ("name", or "name@thisNode"); one on another
   * node needs connectAsync (UsageError here). UsageError if the receiver has none for us.
   */
  static connect(name: string, receiver: string, options: SegmentOptions = {}): SegmentSender {
    checkName('sender name', name);
    const { domain, transport } = common(options);
    const to = parsePeer('receiver name', receiver, transport.node);
    if (to.node !== transport.node) {
      throw new UsageError(`receiver ${JSON.stringify(receiver)} is on another node than this one (${transport.node}): use SegmentSender.connectAsync`);
    }
    return new SegmentSender(name, transport, connectHere(transport, domain, name, to));
  }

  /**
   * connect() for a receiver on any node: "name" or "name@node" (as postboxes name peers). On
   * another node every set-up step is a remote call (the transport's async forms; RDMA: the
   * node's agent, RDMA READs), and the receiver must have accepted this sender as
   * "<name>@<this node>". The messages then go as RDMA WRITEs into its targets, with no remote
   * read per message: what the receiver consumed, whether it sleeps and whether it closed it
   * writes into our return segment, on this node. Rejects with UsageError (no such receiver, not
   * accepted), PeerGoneError (its process is not running), CorruptionError (its manager or
   * targets hold impossible values) or the transport's errors (e.g. AgentError, TimeoutError).
   */
  static async connectAsync(name: string, receiver: string, options: SegmentOptions = {}): Promise<SegmentSender> {
    checkName('sender name', name);
    const { domain, transport } = common(options);
    const to = parsePeer('receiver name', receiver, transport.node);
    if (to.node === transport.node) return new SegmentSender(name, transport, connectHere(transport, domain, name, to));
    const spelled = spell({ name, node: transport.node }, to.node);
    return new SegmentSender(name, transport, await connectThere(transport, domain, spelled, name, to));
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
    const trusted = this.#checkReceiver();
    if (data.length > this.maxMessageBytes) return -3;
    if (!trusted) return -1;
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
   * A receiver that died without close() leaves its status FINE: ask, at most every
   * RECEIVER_CHECK_MS (one clock read per call otherwise; no remote memory operation). On this
   * node the process table answers at once (PeerGoneError). A receiver on another node is asked
   * through its node's agent with isAliveAsync, in the background (transport contract 6): "no"
   * fails later calls with PeerGoneError, as does a node that cannot be reached any more; a late
   * answer (TimeoutError: control messages queue behind the data on the connection) is no
   * answer. Returns whether writing is safe now: always on this node; on another node while the
   * last "yes" is at most RECEIVER_TRUST_MS old.
   */
  #checkReceiver(): boolean {
    if (this.#receiverGone) throw this.#gone();
    const now = Date.now();
    const node = this.#receiverNode;
    const remote = node !== this.#transport.node;
    if (now - this.#receiverCheckedAt >= RECEIVER_CHECK_MS) {
      this.#receiverCheckedAt = now;
      if (!remote) {
        if (!this.#transport.isAlive(this.#receiverProcess, node)) {
          this.#receiverGone = true;
          throw this.#gone();
        }
      } else if (!this.#receiverChecking) {
        this.#receiverChecking = true;
        this.#transport.isAliveAsync(this.#receiverProcess, node).then(
          (alive) => {
            if (alive) this.#receiverAliveAt = Math.max(this.#receiverAliveAt, now);
            else this.#receiverGone = true;
          },
          (error: Error) => {
            if (error instanceof TimeoutError || this.#closed) return; // asked again after RECEIVER_CHECK_MS
            this.#goneWhy = `its node ${node} cannot be reached (${error.message})`;
            this.#receiverGone = true;
          },
        ).finally(() => { this.#receiverChecking = false; });
      }
    }
    return !remote || now - this.#receiverAliveAt <= RECEIVER_TRUST_MS;
  }

  #gone(): PeerGoneError {
    return new PeerGoneError(this.receiver, this.#goneWhy ?? `it died (pid ${this.#receiverProcess.pid})`);
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

  /**
   * Close this side: tell the receiver we closed (so that our process ending later is not
   * reported as a death), release the images and our return segment. Messages already sent stay
   * in the targets and are still delivered; a later connect() under the same name continues there.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      // Ordering point: after every message's publish on the same image set.
      this.#groups.find((g) => g.id === 0)?.image.publish(SG_TX_CLOSED, 1);
    } catch {
      // the receiver's memory or node is gone: nobody to tell
    }
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
