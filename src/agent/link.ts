/**
 * One control connection between a node agent and a peer (a process, or another agent), seen
 * from either end: an rdma_cm RC connection whose QP carries the wire.ts messages as SENDs into
 * RECV_SLOTS posted receive buffers of MAX_MESSAGE_BYTES each, and — on a client's side — the
 * RDMA WRITEs into targets the agent registered on this very connection's protection domain.
 *
 * Everything is driven by the process's pump (pump.ts), which sleeps on the link's completion
 * channel and rdma_cm channel while nothing happens, or by its user's progress(). A link is lost — once, with the reason given to its owner — when the peer disconnects
 * (rdma_cm DISCONNECTED), a work request fails (the QP went to error), or the peer sends a
 * message wire.ts refuses (ProtocolError). Then the connection, its QP, CQ, PD and every memory
 * region registered on that PD are destroyed.
 */
import { C } from '../../ffi/verbs-layout.js';
import { ClosedError, MemwireError, PeerGoneError, TimeoutError } from '../errors.js';
import type { Completion } from '../verbs/completion-queue.js';
import { completionError } from '../verbs/errors.js';
import type { MemoryRegion } from '../verbs/memory-region.js';
import type { CmConnection } from '../verbs/rdma-cm.js';
import { pump, type PumpTask } from './pump.js';
import { decode, encode, MAX_MESSAGE_BYTES, type Message } from './wire.js';

/**
 * Receives posted per link. A SEND that finds none posted is refused (RNR NAK) and retried after
 * the receiver's min_rnr_timer, stalling the sender's whole QP — its RDMA WRITEs too: a process
 * streaming to a sleeping receiver sends a doorbell per message, faster than a loaded agent
 * re-posts, so the agent's end keeps more than the 16 SEND_SLOTS a peer may have in flight.
 */
export const RECV_SLOTS = 64;
/** Receives posted per ibv_post_recv (a QP's default maxChain is 32). */
const RECV_POST_CHUNK = 16;
export const SEND_SLOTS = 16;
/**
 * Send slots doorbells may hold at once: the rest are kept for requests and answers, so a FIND or
 * IS_ALIVE never waits for a doorbell's completion (see send()).
 */
export const BELL_SLOTS = SEND_SLOTS - 4;
/**
 * How often the connection manager's channel is checked for a disconnect while the link is
 * serviced (a sleeping pump is woken by the channel itself).
 */
export const CM_CHECK_MS = 50;
const RECV_WR_BASE = 1;
const SEND_WR_BASE = 1000;
const WRITE_WR_BASE = 1_000_000;

export interface LinkOwner {
  /** A message arrived (already checked by wire.decode). May send; must not throw. */
  onMessage(link: AgentLink, message: Message): void;
  /** The link is gone (reason given); called once, before its connection is destroyed. */
  onLost(link: AgentLink, reason: Error): void;
}

/**
 * @internal Work posted on a link's queue pair by someone else (the RDMA transport's request
 * engine and atomics, src/transport/rdma-channel.ts): the link polls the one completion queue and
 * hands every batch to it first; the completions it owns are then skipped here.
 */
export interface DataPlane {
  owns(c: Completion): boolean;
  handleCompletions(completions: readonly Completion[], n: number): void;
}

export class AgentLink {
  readonly connection: CmConnection;
  /** For messages: who is at the other end ("rxe1 agent", "pid 1234"). Set by the owner. */
  label: string;
  /** @internal See DataPlane. */
  dataPlane: DataPlane | undefined;
  readonly #owner: LinkOwner;
  readonly #recv = new Uint8Array(RECV_SLOTS * MAX_MESSAGE_BYTES);
  readonly #send = new Uint8Array(SEND_SLOTS * MAX_MESSAGE_BYTES);
  readonly #recvMr: MemoryRegion;
  readonly #sendMr: MemoryRegion;
  readonly #freeSend: number[] = [];
  /** Messages other than doorbells waiting for a send slot, in order (they go before any doorbell). */
  readonly #queued: Uint8Array[] = [];
  /** Doorbells waiting for a send slot, one per (target, word): see send(). */
  readonly #bells = new Map<string, Extract<Message, { type: 'doorbell' }>>();
  /** Send slots holding a doorbell now. */
  readonly #bellSlot: boolean[] = new Array(SEND_SLOTS).fill(false);
  #bellsInFlight = 0;
  readonly #writes = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  #writeSeq = 0;
  #lastCmCheck = 0;
  #cmCheckInFlight = false;
  /** The rdma_cm channel was readable when the pump woke: look at it in the next service. */
  #cmDue = false;
  #lost: Error | undefined;
  #flushWaiters: (() => void)[] = [];
  readonly #task: PumpTask & { drivenAt: number } = {
    service: (now) => this.#service(now),
    arm: () => this.#arm(),
    woke: (readable) => this.#woke(readable),
    drivenAt: 0,
  };

  /** Wrap an established connection: register the message buffers and post every receive. */
  constructor(connection: CmConnection, owner: LinkOwner, label: string) {
    this.connection = connection;
    this.#owner = owner;
    this.label = label;
    this.#recvMr = connection.pd.registerMemory(this.#recv);
    this.#sendMr = connection.pd.registerMemory(this.#send);
    for (let i = 0; i < SEND_SLOTS; i++) this.#freeSend.push(i);
    for (let first = 0; first < RECV_SLOTS; first += RECV_POST_CHUNK) {
      const recvs = Array.from({ length: Math.min(RECV_POST_CHUNK, RECV_SLOTS - first) }, (_, i) => ({
        wrId: RECV_WR_BASE + first + i,
        sge: { mr: this.#recvMr, offset: (first + i) * MAX_MESSAGE_BYTES, length: MAX_MESSAGE_BYTES },
      }));
      const rc = connection.qp.postRecv(recvs);
      if (rc !== 0) throw new MemwireError('ERR_MEMWIRE_SYSTEM', `ibv_post_recv of the control link's ${RECV_SLOTS} receives failed (${rc})`);
    }
    pump.add(this.#task);
  }

  /** Why the link was lost, or undefined while it is up. */
  get lost(): Error | undefined {
    return this.#lost;
  }

  /**
   * Send one message. ClosedError once lost. While every send slot is in flight, messages wait
   * here: requests and answers in order, ahead of doorbells. Doorbells are many — a process
   * streaming to a receiver that sleeps rings one per message — and each costs the peer's pump
   * a turn; measured in the TCG guest (issue 12), a sender's doorbells to a busy agent piled up
   * in this queue (7,352 RNR NAKs in 6 minutes even with 64 receives posted) and a FIND or
   * IS_ALIVE behind them went unanswered for over 10 s. So a doorbell waiting for a slot takes
   * in a later one for the same word (the counts add up; 0 — all — wins),
   * doorbells hold at most BELL_SLOTS slots, and requests never queue behind them. Order still
   * holds where it matters: a doorbell is posted after every RDMA WRITE posted before send() was
   * called (writes do not wait here), so its reader sees them.
   */
  send(message: Message): void {
    if (this.#lost) throw new ClosedError(`control link to ${this.label}`);
    if (message.type === 'doorbell') {
      const key = `${message.offset} ${message.name}`;
      const waiting = this.#bells.get(key);
      if (waiting) {
        // Each doorbell may wake `count` waiters (0: all): together, the sum.
        const count = waiting.count === 0 || message.count === 0 ? 0 : Math.min(waiting.count + message.count, 0x7fffffff);
        this.#bells.set(key, { ...waiting, count });
      } else {
        encode(message); // refused now (ProtocolError), not when posted
        this.#bells.set(key, message);
      }
      this.#drain();
    } else {
      const bytes = encode(message);
      if (this.#freeSend.length === 0 || this.#queued.length) this.#queued.push(bytes);
      else this.#post(bytes, false);
    }
    pump.kick();
  }

  /** Post what waits, while slots are free: requests and answers first, then doorbells (at most BELL_SLOTS in flight). */
  #drain(): void {
    while (this.#queued.length && this.#freeSend.length && !this.#lost) this.#post(this.#queued.shift()!, false);
    while (this.#bells.size && this.#freeSend.length && this.#bellsInFlight < BELL_SLOTS && !this.#lost) {
      const [key, bell] = this.#bells.entries().next().value!;
      this.#bells.delete(key);
      this.#post(encode(bell), true);
    }
  }

  #post(bytes: Uint8Array, bell: boolean): void {
    const slot = this.#freeSend.pop()!;
    const offset = slot * MAX_MESSAGE_BYTES;
    this.#send.set(bytes, offset);
    const rc = this.connection.qp.postSend({ wrId: SEND_WR_BASE + slot, sge: { mr: this.#sendMr, offset, length: bytes.length }, signaled: true });
    if (rc !== 0) {
      this.#freeSend.push(slot);
      this.lose(new MemwireError('ERR_MEMWIRE_SYSTEM', `ibv_post_send of a control message to ${this.label} failed (${rc})`));
      return;
    }
    this.#bellSlot[slot] = bell;
    if (bell) this.#bellsInFlight++;
  }

  /**
   * RDMA WRITE `length` bytes from `source` (at `sourceOffset`) to remote address `remoteAddress`
   * (a target's base + offset) under `rkey`. Resolves when the write completed;
   * rejects with the typed work-completion error, or PeerGoneError when the link is lost. The
   * source region must stay registered (and its bytes unchanged) until then — unless `inline`
   * (at most the QP's maxInlineData bytes): then the bytes are copied when it is posted.
   */
  write(source: MemoryRegion, sourceOffset: number, length: number, rkey: number, remoteAddress: number, inline = false): Promise<void> {
    if (this.#lost) return Promise.reject(new ClosedError(`control link to ${this.label}`));
    const wrId = WRITE_WR_BASE + (this.#writeSeq = (this.#writeSeq + 1) % 1_000_000_000);
    return new Promise<void>((resolve, reject) => {
      const rc = this.connection.qp.postSend({ wrId, opcode: 'write', sge: { mr: source, offset: sourceOffset, length }, remoteAddr: remoteAddress, rkey, signaled: true, inline });
      if (rc !== 0) {
        reject(new MemwireError('ERR_MEMWIRE_SYSTEM', `ibv_post_send (RDMA WRITE of ${length} bytes to ${this.label}) failed (${rc})`));
        return;
      }
      this.#writes.set(wrId, { resolve, reject });
      pump.kick();
    });
  }

  /** @internal Doorbells waiting for a send slot (one per word), and those in flight. */
  get bellsWaiting(): number {
    return this.#bells.size;
  }
  get bellsInFlight(): number {
    return this.#bellsInFlight;
  }

  /** Writes posted and not yet completed. */
  get writesInFlight(): number {
    return this.#writes.size;
  }

  #servicing = false;

  /** Nothing waits and nothing is in flight. */
  #idle(): boolean {
    return this.#queued.length === 0 && this.#bells.size === 0 && this.#freeSend.length === SEND_SLOTS;
  }

  /**
   * Poll the completion queue now (non-blocking), for a caller that cannot wait for the pump.
   * While a user calls this, the pump leaves the link to it (pump.ts, DRIVEN_MS).
   */
  progress(): void {
    const now = performance.now();
    this.#task.drivenAt = now;
    this.#service(now);
  }

  /** The pump is about to sleep: ask for an event on the next completion; the fds to wait on. */
  #arm(): readonly number[] | undefined {
    if (this.#lost) return undefined;
    const cq = this.connection.cq;
    cq.armEvents();
    const fds = [cq.eventFd, this.connection.eventFd];
    return fds[0] < 0 || fds[1] < 0 ? undefined : fds;
  }

  /** The pump woke: acknowledge the CQ's events (so it can be armed again); note a CM event. */
  #woke(readable: readonly boolean[]): void {
    if (this.#lost) return;
    try {
      if (readable[0]) this.connection.cq.takeEvents();
    } catch {
      /* a CQ that fails here fails its next poll too, which loses the link with the reason */
    }
    if (readable[1]) this.#cmDue = true;
  }

  /** Resolves when every queued and posted message has completed (or the link is lost, or timeoutMs passes). */
  flush(timeoutMs: number): Promise<void> {
    if (this.#lost || this.#idle()) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#flushWaiters.push(done);
    });
  }

  #service(now: number): boolean {
    // Not re-entered: cq.completions is one reused array, and progress() may be called by code a
    // completion's handler runs (a post that reaps to make room, rdma-channel.ts).
    if (this.#lost || this.#servicing) return false;
    this.#servicing = true;
    try {
      return this.#serviceOnce(now);
    } finally {
      this.#servicing = false;
    }
  }

  #serviceOnce(now: number): boolean {
    const cq = this.connection.cq;
    let worked = false;
    let n: number;
    try {
      n = cq.poll();
    } catch (error) {
      this.lose(error as Error);
      return true;
    }
    const dataPlane = this.dataPlane;
    if (dataPlane && n > 0) {
      try {
        dataPlane.handleCompletions(cq.completions, n);
      } catch (error) {
        this.lose(error as Error);
        return true;
      }
    }
    for (let i = 0; i < n && !this.#lost; i++) {
      const c = cq.completions[i];
      worked = true;
      if (dataPlane?.owns(c)) {
        // An error completion (not a flush) of the data plane: the queue pair is in the error
        // state, so the connection is unusable; the data plane has its typed error already.
        if (c.status !== C.IBV_WC_SUCCESS && c.status !== C.IBV_WC_WR_FLUSH_ERR) {
          this.lose(completionError(c));
          break;
        }
        continue;
      }
      const wrId = c.wrId;
      if (!c.ok) {
        const error = completionError(c);
        this.#writes.get(wrId)?.reject(error);
        this.#writes.delete(wrId);
        this.lose(error);
        break;
      }
      if (wrId >= WRITE_WR_BASE) {
        this.#writes.get(wrId)?.resolve();
        this.#writes.delete(wrId);
      } else if (wrId >= SEND_WR_BASE) {
        const slot = wrId - SEND_WR_BASE;
        if (this.#bellSlot[slot]) {
          this.#bellSlot[slot] = false;
          this.#bellsInFlight--;
        }
        this.#freeSend.push(slot);
        this.#drain();
        if (this.#idle()) for (const w of this.#flushWaiters.splice(0)) w();
      } else {
        const slot = wrId - RECV_WR_BASE;
        let message: Message;
        try {
          message = decode(this.#recv.subarray(slot * MAX_MESSAGE_BYTES, (slot + 1) * MAX_MESSAGE_BYTES), c.byteLen);
        } catch (error) {
          this.lose(error as Error);
          break;
        }
        // The message is copied out: the buffer can take the next one.
        const rc = this.connection.qp.postRecv({ wrId, sge: { mr: this.#recvMr, offset: slot * MAX_MESSAGE_BYTES, length: MAX_MESSAGE_BYTES } });
        if (rc !== 0) {
          this.lose(new MemwireError('ERR_MEMWIRE_SYSTEM', `ibv_post_recv on the link to ${this.label} failed (${rc})`));
          break;
        }
        this.#owner.onMessage(this, message);
      }
    }
    if (!this.#lost && !this.#cmCheckInFlight && (this.#cmDue || now - this.#lastCmCheck >= CM_CHECK_MS)) {
      this.#lastCmCheck = now;
      this.#cmDue = false;
      this.#cmCheckInFlight = true;
      // A zero timeout makes this a non-blocking look at the channel: TimeoutError means "no event".
      this.connection.disconnected({ timeoutMs: 0 }).then(
        () => this.lose(new PeerGoneError(this.label, 'its end of the rdma_cm connection disconnected')),
        (error: unknown) => {
          if (!(error instanceof TimeoutError)) this.lose(error as Error);
        },
      ).finally(() => {
        this.#cmCheckInFlight = false;
      });
    }
    return worked;
  }

  /** Give the link up (idempotent): tell the owner why, fail pending writes, destroy the connection. */
  lose(reason: Error): void {
    if (this.#lost) return;
    this.#lost = reason;
    pump.delete(this.#task);
    const gone = reason instanceof PeerGoneError ? reason : new PeerGoneError(this.label, `control link lost: ${reason.message}`);
    for (const w of this.#writes.values()) w.reject(gone);
    this.#writes.clear();
    for (const w of this.#flushWaiters.splice(0)) w();
    try {
      this.#owner.onLost(this, reason);
    } finally {
      try {
        this.connection.dispose();
      } catch {
        /* already torn down by the peer's disconnect; nothing of ours is left */
      }
    }
  }

  /** Close from this side (no reason to report beyond "closed"). Idempotent. */
  close(): void {
    this.lose(new ClosedError(`control link to ${this.label}`));
  }
}
