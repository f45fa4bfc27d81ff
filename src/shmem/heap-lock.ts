/**
 * The allocator's lock (lock 0 of a pool) as the pool's own methods take it: malloc, free,
 * ownership changes, messages, reap and dispose run under it. Two things set it apart from a
 * user's lock:
 *
 *   - It is bounded: a holder that never lets go (a member hung inside the allocator, or a lock
 *     word forged to name a live member) ends the wait with a TimeoutError after `timeoutMs`,
 *     instead of hanging every other member — dispose() included.
 *   - Whoever takes it over from a dead holder ('owner-died'), or finds an update of the heap
 *     left unfinished (Heap.needsRecovery: an update or a rebuild that threw), repairs the heap
 *     first (Heap.rebuild: replays the journal, re-derives the rest). See docs/shmem-recovery.md.
 */
import { TimeoutError } from '../errors.js';
import type { PoolContext } from './context.js';
import { crashPoint, crashPointsArmed } from './crash-points.js';
import type { Heap } from './heap.js';
import { GEN_MASK, LOCK_CONTENDED, LOCK_SLOT_MASK } from './layout.js';
import { allocatorLockIndex, DEFAULT_LOCK_SPIN, type Locks } from './locks.js';
import { slotPid } from './members.js';

/** How long a pool method waits for the allocator's lock by default (PoolOpenOptions.allocatorTimeoutMs). */
export const DEFAULT_ALLOCATOR_TIMEOUT_MS = 10_000;

export class HeapLock {
  readonly #ctx: PoolContext;
  readonly #locks: Locks;
  readonly #heap: Heap;
  readonly #index: number;
  readonly #options: { readonly timeoutMs: number; readonly spin: number };
  readonly #traced = crashPointsArmed();

  constructor(ctx: PoolContext, locks: Locks, heap: Heap, timeoutMs: number) {
    this.#ctx = ctx;
    this.#locks = locks;
    this.#heap = heap;
    this.#index = allocatorLockIndex(ctx);
    this.#options = { timeoutMs, spin: DEFAULT_LOCK_SPIN }; // checked by the pool, made once
  }

  /** Take the lock (TimeoutError after the bound), repairing the heap when a repair is owed. */
  lock(): void {
    const status = this.#locks.acquireAt(this.#index, this.#options);
    if (status === 'timed-out') {
      throw new TimeoutError(
        `pool ${JSON.stringify(this.#ctx.name)}: the allocator's lock stayed held by ${this.#holder()} for ${this.#options.timeoutMs} ms ` +
          '(a member hung inside the allocator, or a forged lock word); nothing was changed',
      );
    }
    if (status === 'owner-died' || this.#heap.needsRecovery) {
      try {
        this.#heap.rebuild();
      } catch (error) {
        this.unlock();
        throw error;
      }
    }
  }

  unlock(): void {
    if (this.#traced) crashPoint();
    this.#locks.releaseAt(this.#index);
  }

  /**
   * unlock() for a member whose slot is already FREE (the end of its own departure): another
   * acquirer may have taken the lock over as 'owner-died' since — its holder looked gone — which
   * is harmless then, as the departure was complete; that is not an error here.
   */
  unlockLeaving(): void {
    if (this.#traced) crashPoint();
    this.#locks.releaseIfHeldAt(this.#index);
  }

  /** Who the lock word names, for the error message. */
  #holder(): string {
    const word = Atomics.load(this.#ctx.w, this.#index) & ~LOCK_CONTENDED;
    const slot = (word & LOCK_SLOT_MASK) - 1;
    if (slot < 0 || slot >= this.#ctx.maxMembers) return `lock word 0x${(word >>> 0).toString(16)}`;
    const id = (((word >>> 7) & GEN_MASK) << 6) | slot;
    return `member ${id} (pid ${slotPid(this.#ctx, slot)})`;
  }
}
