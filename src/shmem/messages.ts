/**
 * Messages between the processes of a pool (seed 003, claims 26, 31–36): a message is a block
 * reserved from the pool's heap (the "shared memory reservation" of claims 33 and 36), filled,
 * owned by its receiver, pushed onto the receiver's inbox and signalled (futex wake when the
 * receiver sleeps). send-to-all reserves one block per receiver, all under one hold of the
 * allocator's lock, so either every live member gets the message or none does.
 *
 * The inbox is a multi-producer, single-consumer stack in the receiver's member slot: senders
 * push by compareExchange on its head (a granule index); the receiver takes the whole stack with
 * one exchange and reverses it, so messages from one sender arrive in the order sent. There is
 * no ABA problem because nothing but the receiver ever pops, and it takes everything.
 *
 * Pushes happen under the allocator's lock, after the receiver was checked LIVE; a member being
 * reaped is LEAVING first, so a message can never land in an inbox nobody will free. The
 * receiver checks each block it takes (a used message block of this pool owned by it; the chain
 * bounded), so a scribbled inbox is a CorruptionError, not a wild read or an endless walk.
 */
import { ClosedError } from '../errors.js';
import type { MemberId, PoolContext } from './context.js';
import type { Heap } from './heap.js';
import {
  BLOCK_KIND_MESSAGE,
  B_KIND,
  B_OWNERS_HI,
  B_OWNERS_LO,
  MIN_BLOCK_GRANULES,
  MSG_FROM,
  MSG_HEADER_SIZE,
  MSG_LENGTH,
  MSG_NEXT,
  M_INBOX,
  M_INBOX_WAITERS,
} from './layout.js';

/** A received message. Its bytes stay in the pool until release() (or dispose) frees the block. */
export class Message {
  /** The sender. */
  readonly from: MemberId;
  /** The block holding it (an offset in the pool, as malloc returns). */
  readonly offset: number;
  /** The message's bytes: a view into shared memory, valid until release(). */
  readonly data: Uint8Array;
  readonly #release: (offset: number) => void;
  #released = false;

  constructor(from: MemberId, offset: number, data: Uint8Array, release: (offset: number) => void) {
    this.from = from;
    this.offset = offset;
    this.data = data;
    this.#release = release;
  }

  get length(): number {
    return this.data.length;
  }

  /** Free the message's block. Idempotent. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#release(this.offset);
  }

  [Symbol.dispose](): void {
    this.release();
  }
}

export class Inbox {
  readonly #ctx: PoolContext;
  readonly #heap: Heap;
  readonly #w: Int32Array;
  /** Block indices taken from the shared inbox, oldest first, not yet handed out. */
  #queue: number[] = [];
  #next = 0;
  #head = 0;
  #waiters = 0;

  constructor(ctx: PoolContext, heap: Heap) {
    this.#ctx = ctx;
    this.#heap = heap;
    this.#w = ctx.w;
  }

  attach(): void {
    const base = this.#ctx.memberBase(this.#ctx.slot);
    this.#head = base + M_INBOX / 4;
    this.#waiters = base + M_INBOX_WAITERS / 4;
  }

  /** Word index of this member's inbox head and waiter count, for sleeping on it. */
  get headIndex(): number {
    return this.#head;
  }

  get waitersIndex(): number {
    return this.#waiters;
  }

  /**
   * Sender side, under the allocator's lock: fill block `index` (owned by `slot`) with `data`
   * and push it onto that member's inbox.
   */
  fillAndPush(index: number, slot: number, data: Uint8Array): void {
    const ctx = this.#ctx;
    const w = this.#w;
    const offset = ctx.payloadOffset(index);
    ctx.region.bytes.set(data, offset + MSG_HEADER_SIZE);
    const word = offset >>> 2;
    w[word + MSG_LENGTH / 4] = data.length;
    w[word + MSG_FROM / 4] = ctx.me;
    const head = ctx.memberBase(slot) + M_INBOX / 4;
    for (;;) {
      const first = Atomics.load(w, head);
      w[word + MSG_NEXT / 4] = first;
      // Ordering point: the message and its link are written before the head names it.
      if (Atomics.compareExchange(w, head, first, index) === first) return;
    }
  }

  /** Whether the inbox of `slot` has a waiter to wake. */
  hasWaiter(slot: number): boolean {
    return Atomics.load(this.#w, this.#ctx.memberBase(slot) + M_INBOX_WAITERS / 4) > 0;
  }

  /** Whether something is waiting to be taken (locally or in shared memory). */
  get pending(): boolean {
    return this.#next < this.#queue.length || Atomics.load(this.#w, this.#head) !== 0;
  }

  /** The oldest message, or null. `release` frees a block (ShmemPool.free). */
  take(release: (offset: number) => void): Message | null {
    if (this.#next >= this.#queue.length) {
      this.#queue.length = 0;
      this.#next = 0;
      if (Atomics.load(this.#w, this.#head) === 0) return null;
      this.#grab();
    }
    if (this.#next >= this.#queue.length) return null;
    const index = this.#queue[this.#next++];
    const ctx = this.#ctx;
    if (ctx.region.closed) throw new ClosedError(`pool ${JSON.stringify(ctx.name)}`);
    const offset = ctx.payloadOffset(index);
    const capacity = this.#heap.length(index);
    const word = offset >>> 2;
    const length = this.#w[word + MSG_LENGTH / 4];
    if (length < 0 || length > capacity - MSG_HEADER_SIZE) {
      throw ctx.corrupt(`message at ${offset} claims ${length} bytes in a ${capacity}-byte block`);
    }
    const from = this.#w[word + MSG_FROM / 4];
    return new Message(from, offset, ctx.region.view('uint8', offset + MSG_HEADER_SIZE, length), release);
  }

  /** Take the whole shared stack, check every block, and queue it oldest first. */
  #grab(): void {
    const ctx = this.#ctx;
    const w = this.#w;
    let index = Atomics.exchange(w, this.#head, 0);
    const taken: number[] = [];
    const limit = Math.ceil(ctx.heapGranules / MIN_BLOCK_GRANULES);
    const myBit = ctx.slot < 32 ? 1 << ctx.slot : 1 << (ctx.slot - 32);
    while (index !== 0) {
      if (taken.length > limit) throw ctx.corrupt('inbox chain does not end');
      const offset = ctx.payloadOffset(index);
      if (ctx.indexOf(offset) !== index) throw ctx.corrupt(`inbox names granule ${index}, outside the heap`);
      let checked: number;
      try {
        checked = this.#heap.usedIndex(offset, 'inbox');
      } catch (error) {
        throw ctx.corrupt(`inbox names block ${index}, which is not allocated (${(error as Error).message})`);
      }
      const base = ctx.blockBase(checked);
      const owners = ctx.slot < 32 ? w[base + B_OWNERS_LO / 4] : w[base + B_OWNERS_HI / 4];
      if (w[base + B_KIND / 4] !== BLOCK_KIND_MESSAGE || (owners & myBit) === 0) {
        throw ctx.corrupt(`inbox names block ${index}, which is not a message for this member`);
      }
      taken.push(index);
      index = w[(offset >>> 2) + MSG_NEXT / 4];
    }
    taken.reverse();
    this.#queue = taken;
    this.#next = 0;
  }
}
