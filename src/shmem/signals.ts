/**
 * Signals between the processes of a pool (seed 003, claims 26–30).
 *
 *   claims 27–28  signal one process   → signal(member)
 *   claims 29–30  signal all processes → signalAll()
 *
 * Each member slot has a signal counter (a futex word) and a count of its waits asleep. A
 * signaller adds 1 to the counter and makes a futex wake call only when the count says someone
 * sleeps. A receiver remembers the last counter value it consumed; a wait returns how many
 * signals arrived since (≥ 1), so a signal is never lost or counted twice, however signals and
 * waits interleave (counters, not flags). Waiting spins on Atomics.load, then sleeps in
 * futex(FUTEX_WAIT) on the counter; waitAsync() sleeps off the main thread.
 *
 * Ordering (no lost wake-up): the receiver increments its waiter count before the kernel
 * re-checks the counter; the signaller increments the counter before it reads the waiter count.
 * With sequentially consistent Atomics one of the two sees the other's write.
 *
 * waitUntil / signalSet / signalAdd are the OpenSHMEM-style forms (shmem_wait_until,
 * shmem_signal_wait_until and SHMEM_SIGNAL_SET / SHMEM_SIGNAL_ADD) on any 32-bit word inside an
 * allocated block; their sleepers are counted pool-wide (P_WAITUNTIL_WAITERS).
 */
import { checkWaitOptions, type FutexWord } from '../shm/futex.js';
import { UsageError } from '../errors.js';
import type { PoolContext } from './context.js';
import { liveSlots } from './members.js';
import { M_SIGNALS, M_SIGNAL_WAITERS, P_WAITUNTIL_WAITERS } from './layout.js';

export interface SignalWaitOptions {
  /** Give up after this many milliseconds (the wait then returns 0 / 'timed-out'); default: for ever. */
  timeoutMs?: number;
  /** Spin iterations before sleeping; default DEFAULT_SPIN. */
  spin?: number;
}

/** OpenSHMEM comparison operators (SHMEM_CMP_EQ, _NE, _GT, _GE, _LT, _LE). */
export type Comparison = 'eq' | 'ne' | 'gt' | 'ge' | 'lt' | 'le';

export function compare(value: number, cmp: Comparison, target: number): boolean {
  switch (cmp) {
    case 'eq':
      return value === target;
    case 'ne':
      return value !== target;
    case 'gt':
      return value > target;
    case 'ge':
      return value >= target;
    case 'lt':
      return value < target;
    case 'le':
      return value <= target;
  }
}

const COMPARISONS = new Set(['eq', 'ne', 'gt', 'ge', 'lt', 'le']);

export function checkComparison(cmp: unknown): asserts cmp is Comparison {
  if (!COMPARISONS.has(cmp as string)) throw new UsageError(`comparison must be one of eq, ne, gt, ge, lt, le; got ${String(cmp)}`);
}

const infinite = (timeoutMs: number) => timeoutMs === Infinity;

export class Signals {
  readonly #ctx: PoolContext;
  readonly #w: Int32Array;
  #counter = 0;
  #waiters = 0;
  #futex: FutexWord | undefined;
  /** The last value of our counter that a wait consumed. */
  #seen = 0;

  constructor(ctx: PoolContext) {
    this.#ctx = ctx;
    this.#w = ctx.w;
  }

  /** After joining: our own counter, which claimSlot() set to 0 before the slot became LIVE. */
  attach(): void {
    const base = this.#ctx.memberBase(this.#ctx.slot);
    this.#counter = base + M_SIGNALS / 4;
    this.#waiters = base + M_SIGNAL_WAITERS / 4;
    this.#futex = this.#ctx.futex(this.#ctx.memberOffset(this.#ctx.slot) + M_SIGNALS);
    this.#seen = 0;
  }

  /** Claims 27–28: one signal to the member in `slot`. */
  signalSlot(slot: number): void {
    const w = this.#w;
    const base = this.#ctx.memberBase(slot);
    // Ordering point: the counter is incremented before the waiter count is read.
    Atomics.add(w, base + M_SIGNALS / 4, 1);
    if (Atomics.load(w, base + M_SIGNAL_WAITERS / 4) > 0) this.#ctx.futex(this.#ctx.memberOffset(slot) + M_SIGNALS).wake();
  }

  /** Claims 29–30: one signal to every LIVE member (not this one unless includeSelf). Returns how many. */
  signalAll(includeSelf: boolean): number {
    let count = 0;
    for (const slot of liveSlots(this.#ctx)) {
      if (slot === this.#ctx.slot && !includeSelf) continue;
      this.signalSlot(slot);
      count++;
    }
    return count;
  }

  /**
   * Signals that arrived since the last wait, without waiting (and consumes them). The counter
   * only grows (wrapping at 2^32: the difference stays right); a counter that went backwards was
   * written by someone other than signal(): CorruptionError, after which counting goes on from
   * the value found.
   */
  poll(): number {
    const now = Atomics.load(this.#w, this.#counter);
    const arrived = (now - this.#seen) | 0;
    const before = this.#seen;
    this.#seen = now;
    if (arrived < 0) {
      throw this.#ctx.corrupt(`member ${this.#ctx.me}'s signal counter went backwards from ${before} to ${now}`);
    }
    return arrived;
  }

  /** Wait for at least one signal; returns how many arrived (consumed), 0 on timeout. */
  wait(options: SignalWaitOptions = {}): number {
    const { timeoutMs, spin } = checkWaitOptions(options);
    const w = this.#w;
    const counter = this.#counter;
    for (let i = 0; i <= spin; i++) if (Atomics.load(w, counter) !== this.#seen) return this.poll();
    const deadline = infinite(timeoutMs) ? Infinity : performance.now() + timeoutMs;
    const futex = this.#futex!;
    for (;;) {
      const left = deadline - performance.now();
      if (left <= 0) return this.poll();
      Atomics.add(w, this.#waiters, 1);
      try {
        futex.wait(this.#seen, { timeoutMs: infinite(left) ? undefined : left, spin: 0 });
      } finally {
        Atomics.sub(w, this.#waiters, 1);
      }
      if (Atomics.load(w, counter) !== this.#seen) return this.poll();
    }
  }

  /** Like wait(), without blocking the event loop. */
  async waitAsync(options: SignalWaitOptions = {}): Promise<number> {
    const { timeoutMs, spin } = checkWaitOptions(options);
    const w = this.#w;
    const counter = this.#counter;
    for (let i = 0; i <= spin; i++) if (Atomics.load(w, counter) !== this.#seen) return this.poll();
    const deadline = infinite(timeoutMs) ? Infinity : performance.now() + timeoutMs;
    const futex = this.#futex!;
    for (;;) {
      const left = deadline - performance.now();
      if (left <= 0) return this.poll();
      const seen = this.#seen;
      Atomics.add(w, this.#waiters, 1);
      try {
        await futex.waitAsync(seen, { timeoutMs: infinite(left) ? undefined : left, spin: 0 });
      } finally {
        Atomics.sub(w, this.#waiters, 1);
      }
      if (Atomics.load(w, counter) !== this.#seen) return this.poll();
    }
  }

  // --- OpenSHMEM-style words ---------------------------------------------------------------

  /**
   * shmem_wait_until: wait until the word at `wordIndex` compares true; false on timeout.
   * `waiters` is the word counting sleepers, which wakers read (the inbox has its own).
   */
  waitUntil(wordIndex: number, cmp: Comparison, value: number, options: SignalWaitOptions, waiters = P_WAITUNTIL_WAITERS >>> 2): boolean {
    const { timeoutMs, spin } = checkWaitOptions(options);
    const w = this.#w;
    for (let i = 0; i <= spin; i++) if (compare(Atomics.load(w, wordIndex), cmp, value)) return true;
    const deadline = infinite(timeoutMs) ? Infinity : performance.now() + timeoutMs;
    const futex = this.#ctx.region.futex(wordIndex << 2);
    for (;;) {
      const seen = Atomics.load(w, wordIndex);
      if (compare(seen, cmp, value)) return true;
      const left = deadline - performance.now();
      if (left <= 0) return false;
      Atomics.add(w, waiters, 1);
      try {
        futex.wait(seen, { timeoutMs: infinite(left) ? undefined : left, spin: 0 });
      } finally {
        Atomics.sub(w, waiters, 1);
      }
    }
  }

  async waitUntilAsync(
    wordIndex: number,
    cmp: Comparison,
    value: number,
    options: SignalWaitOptions,
    waiters = P_WAITUNTIL_WAITERS >>> 2,
  ): Promise<boolean> {
    const { timeoutMs, spin } = checkWaitOptions(options);
    const w = this.#w;
    for (let i = 0; i <= spin; i++) if (compare(Atomics.load(w, wordIndex), cmp, value)) return true;
    const deadline = infinite(timeoutMs) ? Infinity : performance.now() + timeoutMs;
    const futex = this.#ctx.region.futex(wordIndex << 2);
    for (;;) {
      const seen = Atomics.load(w, wordIndex);
      if (compare(seen, cmp, value)) return true;
      const left = deadline - performance.now();
      if (left <= 0) return false;
      Atomics.add(w, waiters, 1);
      try {
        await futex.waitAsync(seen, { timeoutMs: infinite(left) ? undefined : left, spin: 0 });
      } finally {
        Atomics.sub(w, waiters, 1);
      }
    }
  }

  /** SHMEM_SIGNAL_SET / SHMEM_SIGNAL_ADD on the word at `wordIndex`, then wake its sleepers. */
  update(wordIndex: number, value: number, add: boolean): number {
    const w = this.#w;
    const previous = add ? Atomics.add(w, wordIndex, value) : Atomics.exchange(w, wordIndex, value);
    if (Atomics.load(w, P_WAITUNTIL_WAITERS >>> 2) > 0) this.#ctx.region.futex(wordIndex << 2).wake();
    return previous;
  }
}
