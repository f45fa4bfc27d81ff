/**
 * Mailbox: the foundation's minimal message channel — one slot, one writer process, one reader
 * process, inside a SharedRegion. It moves a message with TypedArray.set and publishes it with
 * Atomics.store; no FFI call is made per message unless the other side is asleep (then one
 * futex wake). Waiting spins, then blocks on the futex (FutexWord.wait / waitAsync).
 *
 * It is what `memwire demo` and the region-pingpong benchmark use. Real messaging between many
 * processes (postboxes, segment groups) builds its own layouts on SharedRegion.
 *
 * Hot-path methods return numbers and do not throw for "not yet": tryPut() → false,
 * tryTake() → -1. A length in shared memory larger than the capacity is a CorruptionError.
 */
import { CorruptionError, UsageError } from '../errors.js';
import type { FutexWord, WaitOptions } from './futex.js';
import { MB_CONSUMED, MB_LENGTH, MB_PAYLOAD, MB_READER_WAITING, MB_SEQUENCE, MB_WRITER_WAITING } from './mailbox-layout.js';
import type { SharedRegion } from './region.js';

export class Mailbox {
  /** Region bytes a mailbox of this capacity occupies (a multiple of 64). */
  static bytesFor(capacity: number): number {
    return MB_PAYLOAD + Math.ceil(capacity / 64) * 64;
  }

  readonly capacity: number;
  readonly #words: Int32Array;
  readonly #payload: Uint8Array;
  readonly #sequence: FutexWord;
  readonly #consumed: FutexWord;
  readonly #region: SharedRegion;
  #sent = 0;
  #taken = 0;
  // The payload prefix last read, kept so tryTake() does not allocate a view per message.
  #readView: Uint8Array;

  /** A mailbox at data byte `byteOffset` (64-aligned) of `region`, holding up to `capacity` bytes. */
  constructor(region: SharedRegion, byteOffset: number, capacity: number) {
    if (!Number.isInteger(byteOffset) || byteOffset < 0 || byteOffset % 64 !== 0) {
      throw new UsageError(`mailbox offset must be a non-negative multiple of 64, got ${byteOffset}`);
    }
    if (!Number.isInteger(capacity) || capacity <= 0) throw new UsageError(`mailbox capacity must be a positive integer, got ${capacity}`);
    if (byteOffset + Mailbox.bytesFor(capacity) > region.size) {
      throw new UsageError(`a mailbox of ${capacity} bytes at ${byteOffset} does not fit in region ${JSON.stringify(region.name)} (${region.size} bytes)`);
    }
    this.#region = region;
    this.capacity = capacity;
    this.#words = region.view('int32', byteOffset, MB_PAYLOAD / 4);
    this.#payload = region.view('uint8', byteOffset + MB_PAYLOAD, capacity);
    this.#readView = this.#payload;
    this.#sequence = region.futex(byteOffset + MB_SEQUENCE);
    this.#consumed = region.futex(byteOffset + MB_CONSUMED);
    // Resume counting where the shared counters are (a mailbox may be attached to late).
    this.#sent = Atomics.load(this.#words, MB_SEQUENCE / 4);
    this.#taken = Atomics.load(this.#words, MB_CONSUMED / 4);
  }

  /** Writer: publish `message` if the slot is free. Returns false if the reader has not taken the last one. */
  tryPut(message: Uint8Array): boolean {
    const words = this.#words;
    if (Atomics.load(words, MB_CONSUMED / 4) !== this.#sent) return false;
    if (message.length > this.capacity) {
      throw new UsageError(`message of ${message.length} bytes exceeds the mailbox capacity of ${this.capacity}`);
    }
    this.#payload.set(message);
    words[MB_LENGTH / 4] = message.length;
    this.#sent = (this.#sent + 1) | 0;
    // Ordering point: payload and length are visible before the new sequence.
    Atomics.store(words, MB_SEQUENCE / 4, this.#sent);
    if (Atomics.load(words, MB_READER_WAITING / 4) !== 0) this.#sequence.wake(1);
    return true;
  }

  /** Writer: publish `message`, waiting (spin, then futex) for the slot. */
  put(message: Uint8Array, options?: WaitOptions): boolean {
    while (!this.tryPut(message)) {
      if (!this.#sleep(this.#consumed, MB_WRITER_WAITING, this.#sent - 1, options)) return false;
    }
    return true;
  }

  /**
   * Reader: copy the waiting message into `into` and free the slot. Returns its length, or -1 if
   * there is none. `into` must hold `capacity` bytes (or at least the message).
   */
  tryTake(into: Uint8Array): number {
    const words = this.#words;
    if (Atomics.load(words, MB_SEQUENCE / 4) === this.#taken) return -1;
    // Ordering point: the sequence was loaded before length and payload are read.
    const length = words[MB_LENGTH / 4];
    if (length < 0 || length > this.capacity) {
      throw new CorruptionError(this.#region.name, `mailbox message length ${length} exceeds capacity ${this.capacity}`);
    }
    if (length > into.length) throw new UsageError(`receive buffer of ${into.length} bytes is smaller than the ${length}-byte message`);
    if (this.#readView.length !== length) this.#readView = this.#payload.subarray(0, length);
    into.set(this.#readView);
    this.#taken = (this.#taken + 1) | 0;
    Atomics.store(words, MB_CONSUMED / 4, this.#taken);
    if (Atomics.load(words, MB_WRITER_WAITING / 4) !== 0) this.#consumed.wake(1);
    return length;
  }

  /** Reader: wait (spin, then futex) for a message and take it. Returns -1 on timeout. */
  take(into: Uint8Array, options?: WaitOptions): number {
    for (;;) {
      const length = this.tryTake(into);
      if (length >= 0) return length;
      if (!this.#sleep(this.#sequence, MB_READER_WAITING, this.#taken, options)) return -1;
    }
  }

  /** Reader: like take(), without blocking the event loop. */
  async takeAsync(into: Uint8Array, options: WaitOptions = {}): Promise<number> {
    for (;;) {
      const length = this.tryTake(into);
      if (length >= 0) return length;
      const flag = MB_READER_WAITING / 4;
      Atomics.store(this.#words, flag, 1);
      try {
        if ((await this.#sequence.waitAsync(this.#taken, options)) === 'timed-out') return this.tryTake(into);
      } finally {
        Atomics.store(this.#words, flag, 0);
      }
    }
  }

  /** Announce that we sleep, re-check, then wait on `word` while it still equals `seen`. */
  #sleep(word: FutexWord, waitingFlagOffset: number, seen: number, options?: WaitOptions): boolean {
    const flag = waitingFlagOffset / 4;
    Atomics.store(this.#words, flag, 1);
    try {
      // The flag is stored before the wait re-checks the word, so a publisher that missed the
      // flag has already changed the word and the wait returns at once.
      return word.wait(seen, options) !== 'timed-out';
    } finally {
      Atomics.store(this.#words, flag, 0);
    }
  }
}
