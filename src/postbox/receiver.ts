/**
 * The receiving half of a postbox endpoint (seed 001): polling its postboxes in the senders'
 * memory spaces (claim 3), reading each message where its indicator says, reassembling chunked
 * messages (claims 22–25; a half message is never delivered), acknowledging what it took in the
 * sender's ack block (claims 32, 33), and sleeping on the endpoint's bell when idle. A value read
 * from a sender's memory that cannot be right breaks only that channel: a CorruptionError raised
 * once from poll()/receive(), the sender told through its ack block, the other channels served.
 * Attaching new senders is registration.ts; noticing dead ones, liveness.ts.
 */
import { CorruptionError, TimeoutError } from '../errors.js';
import { PostStatus, type Image } from '../transport/types.js';
import { ChannelCorrupt, type InChannel } from './channels.js';
import { bellNonce, type EndpointCore, LIVENESS_INTERVAL_MS, type Message, type MessageHandler, type ReceiveOptions, type PostboxState, pumpImage } from './common.js';
import {
  AB_CONSUMED, AB_SLEEPING, AB_STATUS, AK_BELL, DS_SENDER_WAITING, ENTRY_BYTES, ENTRY_FREE, EN_STATE, EP_BELL, EP_ENTRIES, EP_REGISTRATIONS,
  EP_STATUS, F_BLOCKS, F_FIRST, F_INLINE, F_KNOWN, F_LAST, RX_CLOSED, RX_CORRUPT, SLOT_FLAGS, SLOT_INLINE, SLOT_LENGTH,
  SLOT_LOCATION, SLOT_TOTAL, STATUS_SLEEPING,
} from './layout.js';
import { removeIfIncarnation, removeIfIncarnationAsync } from './liveness.js';
import { retryNotReady, scanRegistrations } from './registration.js';

export class PostboxReceiver {
  readonly core: EndpointCore;
  readonly maxIncoming: number;
  readonly maxMessageBytes: number;
  /** The channels polled, in round-robin order. */
  readonly in: InChannel[] = [];
  /** Registration entry → its channel. */
  readonly inByEntry: (InChannel | undefined)[];
  /** Entries found corrupt: ignored until their sender frees or re-registers them. */
  readonly ignored = new Set<number>();
  /** Entries whose ack segment, on another node, is being attached. */
  readonly attaching = new Set<number>();
  /** CorruptionErrors of dropped channels, thrown one per poll(). */
  readonly errors: Error[] = [];
  /** Entries whose segments were not initialised yet → when that was first seen (Date.now()). */
  readonly notReady = new Map<number, number>();
  /** When poll() looks at the notReady entries again. */
  notReadyRetryAt = 0;
  /** The endpoint's registration counter when the entries were last scanned. */
  registrations = -1;
  #rr = 0;
  #copyOut: Message | undefined;
  readonly #copyHandler: MessageHandler = (buffer, offset, length, from) => {
    this.#copyOut = { from, data: buffer.slice(offset, offset + length) };
  };

  constructor(core: EndpointCore, maxIncoming: number, maxMessageBytes: number) {
    this.core = core;
    this.maxIncoming = maxIncoming;
    this.maxMessageBytes = maxMessageBytes;
    this.inByEntry = new Array(maxIncoming).fill(undefined);
  }

  /** Postbox.poll(). */
  poll(handler: MessageHandler, limit = Infinity): number {
    if (this.core.closed) this.core.live();
    if (this.errors.length > 0) throw this.errors.shift()!;
    const registrations = Atomics.load(this.core.words, EP_REGISTRATIONS >> 2);
    if (registrations !== this.registrations) {
      this.registrations = registrations;
      scanRegistrations(this);
    } else if (this.notReady.size > 0) {
      retryNotReady(this);
    }
    const list = this.in;
    const n = list.length;
    if (n === 0) return 0;
    let delivered = 0;
    const start = this.#rr < n ? this.#rr : 0;
    this.#rr = start + 1;
    for (let k = 0; k < n && delivered < limit; k++) {
      const ch = list[(start + k) % n];
      if (ch === undefined) continue; // a channel dropped during this round
      if (ch.after !== undefined) {
        // It superseded an older channel of its sender: that one's messages go first.
        if (list.includes(ch.after)) continue;
        ch.after = undefined;
      }
      try {
        delivered += this.#drain(ch, handler, limit - delivered);
      } catch (error) {
        if (!(error instanceof ChannelCorrupt)) throw error;
      }
    }
    // Channels whose sender left and that are now empty are dropped.
    for (let k = list.length - 1; k >= 0; k--) if (list[k].closing && this.isEmpty(list[k])) this.dropIncoming(list[k], list[k].deadSender);
    // Nothing came: drive the acks posted across nodes (a loop that only polls never lets the
    // transport reap them between event-loop turns, and an ack stuck in its image starves the
    // sender). shm: a no-op.
    if (delivered === 0) for (let k = 0; k < list.length; k++) pumpImage(list[k].ack);
    return delivered;
  }

  /** Postbox.tryReceive(). */
  tryReceive(): Message | undefined {
    this.#copyOut = undefined;
    this.poll(this.#copyHandler, 1);
    const message = this.#copyOut;
    this.#copyOut = undefined;
    return message;
  }

  /** Postbox.receive(). */
  async receive(options: ReceiveOptions = {}): Promise<Message> {
    const deadline = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs;
    const spin = options.spin ?? 1000;
    const w = this.core.words;
    for (;;) {
      let message = this.tryReceive();
      if (message) return message;
      for (let i = 0; i < spin; i++) {
        message = this.tryReceive();
        if (message) return message;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new TimeoutError(`no message for endpoint ${JSON.stringify(this.core.name)} within ${options.timeoutMs} ms`);
      // Say we sleep, then look once more: a sender publishing after this sees the flag.
      const bell = Atomics.load(w, EP_BELL >> 2);
      Atomics.or(w, EP_STATUS >> 2, STATUS_SLEEPING);
      // Posts still in flight (another node) must have landed before our last look.
      const landing = this.#announceSleep(1);
      if (landing) await landing;
      try {
        message = this.tryReceive();
        if (message) return message;
        await this.core.target.waitAsync(EP_BELL, bell, { timeoutMs: Math.min(left, LIVENESS_INTERVAL_MS), spin: 0 });
      } finally {
        if (!this.core.closed) {
          Atomics.and(w, EP_STATUS >> 2, ~STATUS_SLEEPING);
          this.#announceSleep(0);
        }
      }
    }
  }

  isEmpty(ch: InChannel): boolean {
    const slot = ch.slotBase + ((ch.next >>> 0) % ch.slots) * ch.slotBytes;
    return Atomics.load(ch.words, slot >> 2) !== ((ch.next + 1) | 0);
  }

  /** Take up to `limit` messages of one postbox (claim 3), then acknowledge them (claims 32, 33). */
  #drain(ch: InChannel, handler: MessageHandler, limit: number): number {
    const words = ch.words;
    const bytes = ch.bytes;
    const slots = ch.slots;
    const begin = ch.next;
    let next = begin;
    let taken = 0;
    // Across nodes, what the handlers post on the sender's connection (an echo) and the
    // acknowledgment go out together in one post when the drain ends (cork; shm: absent).
    let corked: Image | undefined;
    try {
      while (taken < limit) {
        const slot = ch.slotBase + ((next >>> 0) % slots) * ch.slotBytes;
        const i = slot >> 2;
        const want = (next + 1) | 0;
        const seq = Atomics.load(words, i);
        if (seq !== want) {
          if (seq === ((want - slots) | 0) || (seq === 0 && ch.firstLap)) break;
          this.corrupt(ch, `postbox slot holds sequence ${seq}; ${want} or ${(want - slots) | 0} is possible`);
        }
        if (corked === undefined && ch.ack.cork !== undefined) {
          corked = ch.ack;
          corked.cork!();
        }
        // Ordering point: the sequence word was loaded before the indicator and message are read.
        const length = words[i + (SLOT_LENGTH >> 2)];
        const flags = words[i + (SLOT_FLAGS >> 2)];
        let offset: number;
        if ((flags & ~F_KNOWN) !== 0 || (flags & (F_INLINE | F_BLOCKS)) === 0 || (flags & (F_INLINE | F_BLOCKS)) === (F_INLINE | F_BLOCKS)) {
          this.corrupt(ch, `indicator flags 0x${(flags >>> 0).toString(16)}`);
        }
        if ((flags & F_INLINE) !== 0) {
          if (length < 0 || length > ch.inlineMax) this.corrupt(ch, `inline length ${length} (at most ${ch.inlineMax})`);
          offset = slot + SLOT_INLINE;
        } else {
          const first = words[i + (SLOT_LOCATION >> 2)];
          if (length <= 0 || first < 0 || first >= ch.blocks || Math.ceil(length / ch.blockSize) > ch.blocks - first) {
            this.corrupt(ch, `message of ${length} bytes at block ${first} is outside the ${ch.blocks}-block pool`);
          }
          offset = ch.poolBase + first * ch.blockSize;
        }
        next = want;
        if (next === slots) ch.firstLap = false;
        const ends = flags & (F_FIRST | F_LAST);
        if (ends === (F_FIRST | F_LAST)) {
          if (ch.assembly) this.corrupt(ch, 'a whole message inside a chunked one');
          taken++;
          ch.next = next;
          handler(bytes, offset, length, ch.from);
        } else if (this.#piece(ch, words, i, ends, bytes, offset, length)) {
          taken++;
          ch.next = next;
          const whole = ch.assembly!;
          ch.assembly = null;
          handler(whole, 0, whole.length, ch.from);
        }
        ch.next = next;
      }
    } finally {
      if (next !== ch.next) ch.next = next;
      // Only progress is acknowledged: a store per empty poll made a busy-polling receiver
      // write the sender's ack line in a loop, pulling it away from the sender's core.
      try {
        if (ch.next !== begin) this.#acknowledge(ch);
      } finally {
        corked?.uncork!();
      }
    }
    return taken;
  }

  /** A piece of a chunked message (claims 22–25): copy it out; true when the message is whole. */
  #piece(ch: InChannel, words: Int32Array, i: number, ends: number, bytes: Uint8Array, offset: number, length: number): boolean {
    if ((ends & F_FIRST) !== 0) {
      if (ch.assembly) this.corrupt(ch, 'a first piece inside a chunked message');
      const total = words[i + (SLOT_TOTAL >> 2)];
      if (total <= length || total > this.maxMessageBytes) this.corrupt(ch, `chunked message total ${total} (piece ${length}, limit ${this.maxMessageBytes})`);
      // Grown as pieces arrive, so a forged total alone allocates little.
      ch.assembly = new Uint8Array(Math.min(total, Math.max(length * 4, 1 << 16)));
      ch.assembled = 0;
      ch.total = total;
    } else if (!ch.assembly) {
      this.corrupt(ch, 'a piece without its first piece');
    }
    if (ch.assembled + length > ch.total) this.corrupt(ch, `pieces exceed the message's ${ch.total} bytes`);
    let buffer = ch.assembly!;
    if (ch.assembled + length > buffer.length) {
      const grown = new Uint8Array(Math.min(ch.total, Math.max(buffer.length * 2, ch.assembled + length)));
      grown.set(buffer.subarray(0, ch.assembled));
      buffer = ch.assembly = grown;
    }
    buffer.set(bytes.subarray(offset, offset + length), ch.assembled);
    ch.assembled += length;
    if ((ends & F_LAST) === 0) return false;
    if (ch.assembled !== ch.total) this.corrupt(ch, `last piece ends at ${ch.assembled} of ${ch.total} bytes`);
    return true;
  }

  /** Store how far we have read in the sender's ack block; wake the sender if it waits. */
  #acknowledge(ch: InChannel): void {
    const ack = ch.ack;
    if (ack.closed) return;
    try {
      ack.publish(ch.ackWord + AB_CONSUMED, ch.next);
      // The sender's "waiting" flag is in its data segment, here on our node: a local read.
      // Ordering point: read after the publication of `consumed` (the sender sets it before its
      // last look at `consumed`).
      if (Atomics.load(ch.words, DS_SENDER_WAITING >> 2) !== 0) this.#ringSender(ch);
    } catch (error) {
      // The ack image failed (another node: its connection ended, or the sender's memory is
      // gone): the sender can no longer learn what we took — its channel ends here as if the
      // sender were gone; what is still in its postbox is delivered, the other channels go on.
      if (!ack.failed) throw error;
      ch.closing = true;
      ch.deadSender = true;
    }
  }

  #ringSender(ch: InChannel): void {
    ch.ack.publish(AK_BELL, bellNonce(this.core.transport.self.pid));
    ch.ack.notify(AK_BELL);
  }

  /**
   * Tell every sender whether we sleep on our bell: a flag in its own ack block, so its sends
   * read it locally. Returns, when some post is still in flight (another node), a promise of
   * their completion: it must come before our last look for work.
   */
  #announceSleep(sleeping: 0 | 1): Promise<unknown> | undefined {
    let posted: Promise<unknown>[] | undefined;
    for (const ch of this.in) {
      if (ch.ack.closed || ch.ack.failed) continue;
      if (ch.ack.publish(ch.ackWord + AB_SLEEPING, sleeping) === PostStatus.POSTED) (posted ??= []).push(ch.ack.settled().catch(() => undefined));
    }
    return posted && Promise.all(posted);
  }

  corrupt(ch: InChannel, detail: string): never {
    const error = new CorruptionError(ch.data.descriptor.name, `channel from ${JSON.stringify(ch.from)}: ${detail}`);
    this.errors.push(error);
    try {
      ch.ack.publish(ch.ackWord + AB_STATUS, RX_CORRUPT);
      this.#ringSender(ch);
    } catch {
      // the ack image may be gone too
    }
    this.ignored.add(ch.entry);
    this.dropIncoming(ch, false, true);
    throw new ChannelCorrupt();
  }

  /** Stop polling a sender's postbox; free its entry; reclaim a dead sender's segments. */
  dropIncoming(ch: InChannel, senderDead: boolean, corrupt = false): void {
    const at = this.in.indexOf(ch);
    if (at >= 0) this.in.splice(at, 1);
    if (this.inByEntry[ch.entry] === ch) this.inByEntry[ch.entry] = undefined;
    ch.assembly = null; // a half message is never delivered
    if (!corrupt) Atomics.store(this.core.words, (EP_ENTRIES + ch.entry * ENTRY_BYTES + EN_STATE) >> 2, ENTRY_FREE);
    const dataName = ch.data.descriptor.name;
    const ackName = ch.ack.descriptor.name;
    ch.ack.dispose();
    ch.data.dispose();
    if (senderDead) {
      // Its memory — data, ack and its own endpoint segment: remove the names if they still
      // belong to that dead incarnation (its header says the same pid and start time).
      const endpointName = `pb.${this.core.domain}.ep.${ch.from.split('@')[0]}`;
      const transport = this.core.transport;
      removeIfIncarnation(transport, dataName, transport.node, ch.pid, ch.start);
      if (ch.node === transport.node) {
        removeIfIncarnation(transport, ackName, ch.node, ch.pid, ch.start);
        removeIfIncarnation(transport, endpointName, ch.node, ch.pid, ch.start);
      } else {
        void removeIfIncarnationAsync(transport, ackName, ch.node, ch.pid, ch.start).then(() => removeIfIncarnationAsync(transport, endpointName, ch.node, ch.pid, ch.start));
      }
    }
  }

  /** Tell every sender this receiver closed, and stop polling (the receiving half of close()). */
  close(): void {
    for (const ch of [...this.in]) {
      try {
        ch.ack.publish(ch.ackWord + AB_STATUS, RX_CLOSED);
        this.#ringSender(ch);
      } catch {
        // the sender's ack segment is gone already
      }
      this.dropIncoming(ch, false);
    }
  }

  /** The receiving half of inspect(). */
  inspect(): Pick<PostboxState, 'senders'> {
    return { senders: this.in.map((ch) => ({ from: ch.from, received: ch.next, assembling: ch.assembly !== null })) };
  }
}
