/**
 * The sending half of a postbox endpoint (seed 001): placing messages in the receiver's postbox
 * (inline up to slotBytes − 16 bytes, else in buffer blocks: claims 4, 5) and publishing their
 * indicators (claims 1, 2); reclaiming acknowledged blocks, first from the receiver being sent to,
 * then along the receiver list in order of use (claims 7–13, 16–30); back-pressure; and messages
 * above the cyclic transaction size in pieces that reuse the same memory (claims 22–25).
 * Reaching a receiver is connect.ts; noticing that it is gone, liveness.ts.
 */
import { ClosedError, CorruptionError, PeerGoneError, TimeoutError, UsageError } from '../errors.js';
import type { NodeSpace, OutChannel } from './channels.js';
import { Claim } from './claim.js';
import { bellNonce, type EndpointCore, LIVENESS_INTERVAL_MS, pumpImage, SendStatus, toBytes, WAIT_SLICE_MS, type PostboxState } from './common.js';
import { channelFor, channelReady, reconnect, reconnectRemote } from './connect.js';
import {
  AB_CONSUMED, AB_SLEEPING, AB_STATUS, AK_BELL, DIR_BYTES, DIR_CLOSED, DIR_STATE, DS_CLOSED, DS_DIRECTORY, DS_SENDER_WAITING, DS_STATE,
  EP_BELL, F_BLOCKS, F_FIRST, F_INLINE, F_LAST, RX_CLOSED, RX_CORRUPT, SLOT_FLAGS, SLOT_HEADER, SLOT_INLINE,
  SLOT_LENGTH, SLOT_LOCATION, SLOT_TOTAL, type DataGeometry,
} from './layout.js';
import { checkReceiver, markBroken, markGone } from './liveness.js';

export class PostboxSender {
  readonly core: EndpointCore;
  readonly geometry: DataGeometry;
  /** Bytes above which a message goes in pieces (the cyclic transaction size). */
  readonly cyclicTransactionSize: number;
  readonly maxMessageBytes: number;
  /** Node → this sender's memory space there. */
  readonly spaces = new Map<string, NodeSpace>();
  /** Peer ("name" or "name@node") → the channel to it. */
  readonly out = new Map<string, OutChannel>();
  readonly claims = new Set<Claim>();
  /** Connections to peers on other nodes under way (they need remote calls), and those that failed. */
  readonly connecting = new Map<string, Promise<OutChannel>>();
  readonly connectFailures = new Map<string, Error>();
  /** Memory spaces on other nodes being allocated. */
  readonly spacesPending = new Map<string, Promise<NodeSpace>>();

  constructor(core: EndpointCore, geometry: DataGeometry, cyclicTransactionSize: number, maxMessageBytes: number) {
    this.core = core;
    this.geometry = geometry;
    this.cyclicTransactionSize = cyclicTransactionSize;
    this.maxMessageBytes = maxMessageBytes;
  }

  /** Postbox.send(): place now if there is room, else queue behind this peer's earlier sends. */
  async send(peer: string, data: Uint8Array | ArrayBufferView | ArrayBuffer): Promise<void> {
    this.core.live();
    const bytes = toBytes(data);
    if (bytes.length > this.maxMessageBytes) {
      throw new UsageError(`message of ${bytes.length} bytes is over the limit of ${this.maxMessageBytes} bytes`);
    }
    // A peer on this node is connected now (order: an earlier send() must not be overtaken); one
    // on another node after remote calls (sends waiting for it resume in the order they came).
    let ch = channelFor(this, peer) ?? (await channelReady(this, peer));
    // The liveness checks run on a timer; if it has not run for a while (the event loop was
    // busy), check this receiver now, so a send never goes to one that died long ago. (send()
    // only: trySend() keeps its hot path free of clocks and checks when it finds no room.)
    const now = Date.now();
    if (!ch.gone && now - ch.lastCheck >= LIVENESS_INTERVAL_MS) {
      ch.lastCheck = now;
      checkReceiver(this, ch);
    }
    // Across nodes: a memory space whose connection failed (its node's agent died) fails the
    // channel as a gone peer, so this send() tries a new connection instead of repeating the
    // image's error for ever. (`failed` is a field read: nothing on the hot path.)
    if (!ch.gone && ch.space.image.failed !== undefined) markGone(this, ch, `the connection to node ${ch.space.node} was lost (${ch.space.image.failed.message})`);
    if (ch.gone) ch = ch.space.node === this.core.transport.node ? reconnect(this, peer, ch) : await reconnectRemote(this, peer, ch);
    if (ch.queued === 0 && !ch.claimOpen && bytes.length <= this.cyclicTransactionSize) {
      const status = this.place(ch, bytes, 0, bytes.length, F_FIRST | F_LAST, bytes.length);
      if (status === SendStatus.OK) return;
      if (status === SendStatus.PEER_GONE) throw ch.gone!;
    }
    ch.queued++;
    const mine = ch.tail.then(() => this.sendSlow(ch, bytes));
    ch.tail = mine.catch(() => undefined);
    try {
      await mine;
    } finally {
      ch.queued--;
    }
  }

  /** Postbox.trySend(). */
  trySend(peer: string, data: Uint8Array | ArrayBufferView | ArrayBuffer): number {
    if (this.core.closed) this.core.live();
    const bytes = data instanceof Uint8Array && data.length !== 0 ? data : toBytes(data);
    const ch = this.out.get(peer) ?? channelFor(this, peer);
    if (!ch) return SendStatus.FULL; // connecting to another node
    if (ch.gone) {
      if (ch.gone instanceof PeerGoneError) return SendStatus.PEER_GONE;
      throw ch.gone;
    }
    if (bytes.length > this.cyclicTransactionSize) return SendStatus.TOO_LARGE;
    if (ch.queued !== 0 || ch.claimOpen) return SendStatus.FULL;
    return this.place(ch, bytes, 0, bytes.length, F_FIRST | F_LAST, bytes.length);
  }

  /** Postbox.claim(). */
  claim(peer: string, length: number): Claim | null {
    this.core.live();
    if (!Number.isSafeInteger(length) || length < 0 || length > this.cyclicTransactionSize) {
      throw new UsageError(`claim length must be a whole number within 0..${this.cyclicTransactionSize}, got ${String(length)}`);
    }
    const ch = channelFor(this, peer);
    if (!ch) return null; // connecting to another node
    if (ch.gone) throw ch.gone;
    if (ch.claimOpen) throw new UsageError(`a claim for ${JSON.stringify(peer)} is already open`);
    if (ch.queued !== 0) return null;
    const sp = ch.space;
    if (((ch.sent - ch.consumed) | 0) >= sp.geometry.slots && !this.refresh(ch)) {
      if (this.full(ch) === SendStatus.PEER_GONE) throw ch.gone!;
      return null;
    }
    const slot = ch.slotBase + ((ch.sent >>> 0) % sp.geometry.slots) * sp.geometry.slotBytes;
    let first = -1;
    let count = 0;
    let at = slot + SLOT_INLINE;
    if (length > sp.inlineMax) {
      count = Math.ceil(length / sp.geometry.blockSize);
      first = this.allocate(ch, count);
      if (first < 0) {
        if (this.full(ch) === SendStatus.PEER_GONE) throw ch.gone!;
        return null;
      }
      at = sp.poolBase + first * sp.geometry.blockSize;
    }
    ch.claimOpen = true;
    const claim = new Claim(this, ch, sp.image.source.subarray(at, at + length), slot, first, count);
    this.claims.add(claim);
    return claim;
  }

  /** @internal Claim.commit() */
  commitClaim(claim: Claim, ch: OutChannel, length: number, slot: number, first: number, count: number): number {
    ch.claimOpen = false;
    this.claims.delete(claim);
    if (this.core.closed) throw new ClosedError(`endpoint ${JSON.stringify(this.core.name)}`);
    if (ch.gone) {
      if (first >= 0) ch.space.allocator.release(first, count);
      if (ch.gone instanceof PeerGoneError) return SendStatus.PEER_GONE;
      throw ch.gone;
    }
    const image = ch.space.image;
    image.cork?.(); // across nodes: the bytes and the indicator in one post
    try {
      if (first >= 0) image.write(ch.space.poolBase + first * ch.space.geometry.blockSize, length);
      return this.publish(ch, slot, length, F_FIRST | F_LAST, length, first, count);
    } finally {
      image.uncork?.();
    }
  }

  /** @internal Claim.abort() */
  abortClaim(claim: Claim, ch: OutChannel, first: number, count: number): void {
    ch.claimOpen = false;
    this.claims.delete(claim);
    if (first >= 0 && !ch.gone) ch.space.allocator.release(first, count);
  }

  /** Read the receiver's acknowledgment; true if the postbox has a free slot now. */
  refresh(ch: OutChannel): boolean {
    const aw = ch.space.ack.int32;
    const consumed = Atomics.load(aw, ch.ackWord + (AB_CONSUMED >> 2));
    const status = Atomics.load(aw, ch.ackWord + (AB_STATUS >> 2));
    if (status !== 0) {
      if (status === RX_CLOSED) markGone(this, ch, 'it closed the channel');
      else if (status === RX_CORRUPT) markBroken(ch, new CorruptionError(ch.space.data.descriptor.name, `receiver ${ch.peer} found the channel's memory corrupt`));
      else markBroken(ch, new CorruptionError(ch.space.ack.descriptor.name, `ack block ${ch.index} holds status ${status}`));
      return false;
    }
    const advance = (consumed - ch.consumed) | 0;
    if (advance < 0 || advance > ((ch.sent - ch.consumed) | 0)) {
      markBroken(ch, new CorruptionError(ch.space.ack.descriptor.name, `ack block ${ch.index} says ${consumed} consumed; ${ch.consumed}..${ch.sent} is possible`));
      return false;
    }
    ch.consumed = consumed;
    return ((ch.sent - consumed) | 0) < ch.space.geometry.slots;
  }

  /** Reclaim acknowledged blocks of one receiver (claims 11, 16–18); drop it from the list at zero (claims 20, 30). */
  reclaimFrom(ch: OutChannel): void {
    if (ch.gone) return;
    this.refresh(ch);
    if (ch.gone) return;
    const sp = ch.space;
    ch.list.reclaim(ch.consumed, sp.allocator);
    if (ch.list.blocks === 0 && ch.inList) {
      sp.receivers.delete(ch);
      ch.inList = false;
      if (sp.lastUsed === ch) sp.lastUsed = undefined;
    }
  }

  /** `count` contiguous blocks for `ch`, reclaiming acknowledged space when short; -1 if none. */
  allocate(ch: OutChannel, count: number): number {
    const sp = ch.space;
    // Claim 26 (and 24): first the memory of earlier messages — or pieces — to this receiver,
    // taken back at every block send rather than only when the pool runs short, so the blocks
    // just acknowledged are reused while hot in cache (the allocator's cursor returns to them)
    // and no single send pays for releasing a whole backlog. Two local loads of its ack block.
    // The receiver list is left alone here: the message about to be placed puts blocks back on
    // this receiver (publish); deleting and re-adding it in the Set on every send cost a p99 of
    // ~15 µs against ~0.9 µs in an in-process 256 B ping-pong. If allocation fails, reclaimFrom()
    // below drops it (claim 20).
    if (ch.list.length !== 0) {
      this.refresh(ch);
      if (ch.gone) return -1;
      ch.list.reclaim(ch.consumed, sp.allocator);
    }
    let first = sp.allocator.alloc(count);
    if (first >= 0) return first;
    this.reclaimFrom(ch);
    if (ch.gone) return -1;
    first = sp.allocator.alloc(count);
    if (first >= 0) return first;
    // Claims 10, 12, 13, 27, 28: then the receivers of this node, in order of use.
    for (const other of sp.receivers) {
      if (other === ch) continue;
      this.reclaimFrom(other);
      if (sp.allocator.free >= count) {
        first = sp.allocator.alloc(count);
        if (first >= 0) return first;
      }
    }
    return sp.allocator.alloc(count);
  }

  /** Write one message or piece and publish its indicator; SendStatus. */
  place(ch: OutChannel, data: Uint8Array, from: number, length: number, flags: number, total: number): number {
    // Across nodes the message's writes, its indicator and a bell go out in one post (cork).
    const image = ch.space.image;
    if (image.cork === undefined) return this.#place(ch, data, from, length, flags, total);
    image.cork();
    try {
      return this.#place(ch, data, from, length, flags, total);
    } finally {
      image.uncork!();
    }
  }

  #place(ch: OutChannel, data: Uint8Array, from: number, length: number, flags: number, total: number): number {
    const sp = ch.space;
    const g = sp.geometry;
    // Claim 8: is there room in the postbox for an indicator?
    if (((ch.sent - ch.consumed) | 0) >= g.slots && !this.refresh(ch)) return this.full(ch);
    const slot = ch.slotBase + ((ch.sent >>> 0) % g.slots) * g.slotBytes;
    const source = sp.image.source;
    if (length <= sp.inlineMax) {
      // Claims 4, 5: small enough to go inline, in the indicator's slot.
      if (length > 0) source.set(from === 0 && length === data.length ? data : data.subarray(from, from + length), slot + SLOT_INLINE);
      return this.publish(ch, slot, length, flags, total, -1, 0);
    }
    const count = Math.ceil(length / g.blockSize);
    const first = this.allocate(ch, count);
    if (first < 0) return this.full(ch);
    const at = sp.poolBase + first * g.blockSize;
    source.set(from === 0 && length === data.length ? data : data.subarray(from, from + length), at);
    sp.image.write(at, length);
    return this.publish(ch, slot, length, flags, total, first, count);
  }

  /**
   * No room: FULL — unless the receiver is gone. Checked here at most every LIVENESS_INTERVAL_MS
   * too, so a loop that only calls trySend (the event loop never runs) still learns of a death.
   */
  full(ch: OutChannel): number {
    // Across nodes a post may wait in its image for send-queue slots, and completions are reaped
    // by progress() or by the transport between turns of the event loop: a loop that only calls
    // trySend() must drive them itself, or the message that would free room never leaves (shm:
    // progress() is a no-op). A failed image is left to its next post and to the liveness check.
    pumpImage(ch.space.image);
    pumpImage(ch.endpoint);
    if (!ch.gone) {
      const now = Date.now();
      if (now - ch.lastCheck >= LIVENESS_INTERVAL_MS) {
        ch.lastCheck = now;
        checkReceiver(this, ch);
      }
    }
    return ch.gone ? this.goneStatus(ch) : SendStatus.FULL;
  }

  goneStatus(ch: OutChannel): number {
    if (ch.gone instanceof PeerGoneError) return SendStatus.PEER_GONE;
    throw ch.gone;
  }

  /** The indicator: header words, then the sequence word last (claims 1, 2). */
  publish(ch: OutChannel, slot: number, length: number, flags: number, total: number, first: number, count: number): number {
    const sp = ch.space;
    const w = sp.words;
    const i = slot >> 2;
    w[i + (SLOT_LENGTH >> 2)] = length;
    if (first < 0) {
      w[i + (SLOT_FLAGS >> 2)] = flags | F_INLINE;
      w[i + (SLOT_LOCATION >> 2)] = 0;
      sp.image.write(slot + SLOT_LENGTH, SLOT_HEADER - SLOT_LENGTH + length);
    } else {
      w[i + (SLOT_FLAGS >> 2)] = flags | F_BLOCKS;
      w[i + (SLOT_LOCATION >> 2)] = first;
      if ((flags & F_LAST) === 0) w[i + (SLOT_TOTAL >> 2)] = total;
      sp.image.write(slot + SLOT_LENGTH, SLOT_HEADER - SLOT_LENGTH + 4);
      // Claim 7: the list of sent messages holding blocks; claims 27, 29: the receiver list. The
      // list holds at most `slots` messages: when full, its acknowledged ones are reclaimed now.
      if (ch.list.length === sp.geometry.slots) ch.list.reclaim(ch.consumed, sp.allocator);
      ch.list.push((ch.sent + 1) | 0, first, count);
      if (!ch.inList) {
        ch.inList = true;
        sp.receivers.add(ch);
      } else if (sp.lastUsed !== ch) {
        sp.receivers.delete(ch);
        sp.receivers.add(ch);
      }
      sp.lastUsed = ch;
    }
    const seq = (ch.sent + 1) | 0;
    ch.sent = seq;
    // Ordering point: indicator and message are written before the sequence word is published.
    sp.image.publish(slot, seq);
    // Ring only a receiver that said it sleeps. Its flag is in our own ack block, pushed there by
    // the receiver (no remote read per message); read after our publication (ordering point:
    // the receiver sets it before its last look at the postbox).
    const aw = sp.ack.int32;
    const block = ch.ackWord;
    if (Atomics.load(aw, block + (AB_SLEEPING >> 2)) !== 0 || aw[block + (AB_STATUS >> 2)] !== 0) {
      if (aw[block + (AB_STATUS >> 2)] !== 0) {
        this.refresh(ch); // RX_CLOSED → PeerGoneError; a bad value → CorruptionError
        if (ch.gone instanceof PeerGoneError) return SendStatus.PEER_GONE;
        if (ch.gone) return SendStatus.OK; // published; the next call throws the channel's error
      }
      ch.endpoint.publish(EP_BELL, bellNonce(this.core.transport.self.pid));
      ch.endpoint.notify(EP_BELL, 1);
    }
    return SendStatus.OK;
  }

  /** Place a message or its pieces, waiting for room (back-pressure). */
  async sendSlow(ch: OutChannel, bytes: Uint8Array): Promise<void> {
    const total = bytes.length;
    const cts = this.cyclicTransactionSize;
    if (total <= cts) {
      await this.placeWaiting(ch, bytes, 0, total, F_FIRST | F_LAST, total);
      return;
    }
    // Claims 22–25: pieces of at most the cyclic transaction size; each reuses the memory of the
    // ones before it once they are acknowledged (allocate() reclaims this receiver first).
    for (let offset = 0; offset < total; ) {
      const length = Math.min(cts, total - offset);
      const flags = (offset === 0 ? F_FIRST : 0) | (offset + length === total ? F_LAST : 0);
      await this.placeWaiting(ch, bytes, offset, length, flags, total);
      offset += length;
    }
  }

  async placeWaiting(ch: OutChannel, bytes: Uint8Array, from: number, length: number, flags: number, total: number): Promise<void> {
    for (;;) {
      this.core.live();
      if (ch.gone) throw ch.gone;
      if (ch.claimOpen) {
        // A claim holds the next indicator: order per pair says wait for its commit or abort.
        await new Promise((resolve) => setTimeout(resolve, 1));
        continue;
      }
      const status = this.place(ch, bytes, from, length, flags, total);
      if (status === SendStatus.OK) return;
      if (status === SendStatus.PEER_GONE) throw ch.gone!;
      await this.waitForAcks(ch);
    }
  }

  /** Sleep until some receiver acknowledges (or a slice passes); check the peer's liveness. */
  async waitForAcks(ch: OutChannel): Promise<void> {
    const sp = ch.space;
    const ack = sp.ack;
    const aw = ack.int32;
    // Say we wait, in our data segment on the receivers' node (they read it there, locally).
    if (sp.waiting++ === 0) sp.image.publish(DS_SENDER_WAITING, 1);
    try {
      const bell = Atomics.load(aw, AK_BELL >> 2);
      // Re-check after announcing: an acknowledgment stored before our flag rang no bell.
      const consumed = Atomics.load(aw, ch.ackWord + (AB_CONSUMED >> 2));
      if (consumed === ch.consumed) await ack.waitAsync(AK_BELL, bell, { timeoutMs: WAIT_SLICE_MS, spin: 500 });
    } finally {
      if (--sp.waiting === 0 && !sp.image.closed) sp.image.publish(DS_SENDER_WAITING, 0);
    }
    const now = Date.now();
    if (now - ch.lastCheck >= LIVENESS_INTERVAL_MS) {
      ch.lastCheck = now;
      checkReceiver(this, ch);
    }
  }

  /** Postbox.flush(). */
  async flush(options: { timeoutMs?: number } = {}): Promise<void> {
    const deadline = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs;
    for (;;) {
      this.core.live();
      let waiting: OutChannel | undefined;
      for (const ch of this.out.values()) {
        if (ch.gone) continue;
        this.refresh(ch);
        if (!ch.gone && ch.consumed !== ch.sent) waiting = ch;
      }
      if (!waiting && [...this.out.values()].every((ch) => ch.queued === 0 || ch.gone)) return;
      if (Date.now() >= deadline) throw new TimeoutError(`endpoint ${JSON.stringify(this.core.name)}: receivers did not take every message within ${options.timeoutMs} ms`);
      if (waiting) await this.waitForAcks(waiting);
      else await new Promise((resolve) => setTimeout(resolve, 1));
    }
  }

  /** Abort the claims left open (close(), before the endpoint counts as closed). */
  abortClaims(): void {
    for (const claim of [...this.claims]) claim.abort();
    this.claims.clear();
  }

  /** Close every postbox, ring its receiver, release the segments (the sending half of close()). */
  close(): void {
    for (const ch of this.out.values()) {
      if (!ch.gone) {
        ch.gone = new PeerGoneError(ch.peer, 'this endpoint closed');
        try {
          ch.space.image.publish(DS_DIRECTORY + ch.index * DIR_BYTES + DIR_STATE, DIR_CLOSED);
          ch.endpoint.publish(EP_BELL, bellNonce(this.core.transport.self.pid));
          ch.endpoint.notify(EP_BELL);
        } catch {
          // the receiver is gone
        }
      }
      ch.endpoint.dispose();
    }
    this.out.clear();
    for (const sp of this.spaces.values()) {
      try {
        sp.image.publish(DS_STATE, DS_CLOSED);
      } catch {
        // already unmapped
      }
      sp.image.dispose();
      sp.data.dispose();
      sp.ack.dispose();
    }
    this.spaces.clear();
  }

  /** The sending half of inspect(). */
  inspect(): Pick<PostboxState, 'nodes' | 'peers'> {
    const nodes = [...this.spaces.values()].map((sp) => ({
      node: sp.node,
      dataSegment: sp.data.descriptor.name,
      ackSegment: sp.ack.descriptor.name,
      blocks: sp.geometry.blocks,
      freeBlocks: sp.allocator.free,
      receiverList: [...sp.receivers].map((ch) => ch.peer),
      postboxesInUse: sp.postboxes.filter((ch) => ch !== undefined).length,
    }));
    const peers = [...this.out.values()].map((ch) => ({
      peer: ch.peer,
      node: ch.space.node,
      postbox: ch.index,
      sent: ch.sent,
      acknowledged: ch.consumed,
      bufferCount: ch.list.blocks,
      messagesHoldingBlocks: ch.list.length,
      gone: ch.gone?.name ?? null,
    }));
    return { nodes, peers };
  }
}

