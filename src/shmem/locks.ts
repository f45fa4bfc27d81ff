/**
 * Global locks of a pool (seed 003, claims 17–25): a table of robust, futex-based mutexes in
 * shared memory, addressed by small integer ids.
 *
 *   claims 18–19  reserve a lock id            → reserve()
 *   claims 20–21  release a lock id            → releaseId()
 *   claims 22–23  acquire (lock) a global lock → acquire() / acquireAsync() / tryAcquire()
 *   claims 24–25  release (unlock) it          → release()
 *
 * The lock word (layout.ts) holds the holder's tag — its member slot + 1 and its generation —
 * and a CONTENDED bit (Drepper's "futexes are tricky", mutex 2): acquiring a free lock is one
 * compareExchange and releasing one exchange, with no FFI call unless the CONTENDED bit says a
 * waiter may sleep in the kernel. A waiter spins briefly, sets CONTENDED, then futex-waits in
 * slices of RECHECK_MS.
 *
 * Robustness (as a PTHREAD_MUTEX_ROBUST mutex's EOWNERDEAD): a waiter checks whether the holder
 * still exists — cheaply (member slot still LIVE or LEAVING, with the same generation) before
 * each sleep, and after a slice that timed out also through the process table (pid + start
 * time; a zombie counts as dead). A holder
 * that is gone is replaced by one compareExchange from the exact word seen, so one acquirer wins
 * and is told 'owner-died'; the data the lock protected may be half-updated and is the
 * acquirer's to repair. The generation in the word means a slot reused by a newcomer is never
 * mistaken for the dead holder.
 */
import { UsageError } from '../errors.js';
import type { PoolContext } from './context.js';
import { slotProcessAlive } from './members.js';
import {
  ALLOCATOR_LOCK,
  GEN_MASK,
  LOCK_CONTENDED,
  LOCK_ENTRY_SIZE,
  LOCK_SLOT_MASK,
  L_RECOVERIES,
  L_RESERVED,
  L_WORD,
  MEMBER_LEAVING,
  MEMBER_LIVE,
  M_GEN,
  M_STATE,
} from './layout.js';

/** How a lock was obtained: normally, or taken over from a holder that died (EOWNERDEAD). */
export type LockStatus = 'acquired' | 'owner-died';
export type SetLockResult = LockStatus | 'timed-out';
export type TestLockResult = LockStatus | 'busy';

export interface LockWaitOptions {
  /** Give up after this many milliseconds ('timed-out'); default: wait for ever. */
  timeoutMs?: number;
  /** Spin iterations before sleeping; default DEFAULT_LOCK_SPIN. */
  spin?: number;
}

export const DEFAULT_LOCK_SPIN = 1000;
/** A sleeping waiter re-checks its holder's liveness at least this often. */
export const RECHECK_MS = 100;
/** testLock() asks the process table about the same busy holder at most this often. */
export const TRY_RECHECK_MS = 1;

const HOLDER_MASK = ~LOCK_CONTENDED;
const DEFAULTS: { readonly timeoutMs: number; readonly spin: number } = { timeoutMs: Infinity, spin: DEFAULT_LOCK_SPIN };

export class Locks {
  readonly #ctx: PoolContext;
  readonly #w: Int32Array;
  /** The holder tag tryAcquire() last found alive in the process table, and when. */
  #aliveHolder = 0;
  #aliveAt = 0;

  constructor(ctx: PoolContext) {
    this.#ctx = ctx;
    this.#w = ctx.w;
  }

  /** Word index of lock `id`'s lock word, after checking the id is in range and reserved. */
  wordIndex(id: number): number {
    const ctx = this.#ctx;
    if (typeof id !== 'number' || !Number.isInteger(id) || id <= ALLOCATOR_LOCK || id >= ctx.maxLocks) {
      throw new UsageError(`unknown lock id ${String(id)}: ids run from 1 to ${ctx.maxLocks - 1}`, 'ERR_MEMWIRE_BAD_LOCK');
    }
    const base = (ctx.lockTableOffset + id * LOCK_ENTRY_SIZE) >>> 2;
    if (Atomics.load(this.#w, base + L_RESERVED / 4) === 0) {
      throw new UsageError(`lock id ${id} is not reserved (reserveLock() first)`, 'ERR_MEMWIRE_BAD_LOCK');
    }
    return base + L_WORD / 4;
  }

  /** Claims 18–19: reserve a free lock id. UsageError when every id is taken. */
  reserve(): number {
    const ctx = this.#ctx;
    for (let id = 1; id < ctx.maxLocks; id++) {
      const base = (ctx.lockTableOffset + id * LOCK_ENTRY_SIZE) >>> 2;
      if (Atomics.load(this.#w, base + L_RESERVED / 4) !== 0) continue;
      if (Atomics.compareExchange(this.#w, base + L_RESERVED / 4, 0, ctx.slot + 1) === 0) {
        Atomics.store(this.#w, base + L_WORD / 4, 0);
        Atomics.store(this.#w, base + L_RECOVERIES / 4, 0);
        return id;
      }
    }
    throw new UsageError(`all ${ctx.maxLocks - 1} lock ids of pool ${JSON.stringify(ctx.name)} are reserved`, 'ERR_MEMWIRE_NO_LOCK_IDS');
  }

  /** Claims 20–21: give a lock id back. Refused (UsageError) while the lock is held. */
  releaseId(id: number): void {
    const index = this.wordIndex(id);
    const word = Atomics.load(this.#w, index);
    if (word !== 0 && !this.#holderGone(word, true)) {
      throw new UsageError(`lock id ${id} is held; clear it before releasing the id`, 'ERR_MEMWIRE_LOCK_HELD');
    }
    Atomics.store(this.#w, index, 0);
    Atomics.store(this.#w, index - L_WORD / 4 + L_RESERVED / 4, 0);
  }

  /**
   * The try form: 'busy' when another live process holds it. A holder whose process died is
   * noticed at once (the process table is asked, at most once per TRY_RECHECK_MS per holder):
   * its lock is taken over, 'owner-died'.
   */
  tryAcquire(id: number): TestLockResult {
    const w = this.#w;
    const index = this.wordIndex(id);
    const me = this.#ctx.lockTag;
    const seen = Atomics.compareExchange(w, index, 0, me);
    if (seen === 0) return 'acquired';
    const holder = seen & HOLDER_MASK;
    const now = performance.now();
    // A busy-polling caller must not read /proc on every call: a holder found alive a moment
    // ago is taken to be alive still.
    const thorough = holder !== this.#aliveHolder || now - this.#aliveAt >= TRY_RECHECK_MS;
    if (this.#holderGone(seen, thorough)) {
      if (Atomics.compareExchange(w, index, seen, me | (seen & LOCK_CONTENDED)) === seen) return this.#recovered(index);
    } else if (thorough) {
      this.#aliveHolder = holder;
      this.#aliveAt = now;
    }
    return 'busy';
  }

  /**
   * Block this thread until the lock is ours ('acquired' / 'owner-died') or the timeout passes.
   * UsageError if this process already holds it (that would deadlock the thread).
   */
  acquire(id: number, options?: LockWaitOptions): SetLockResult {
    return this.acquireAt(this.wordIndex(id), options === undefined ? DEFAULTS : checkOptions(options));
  }

  /**
   * acquire() of the lock word at word index `index` (the allocator's lock has no public id),
   * with options already checked (no allocation on this path: malloc and free take it).
   */
  acquireAt(index: number, checked: { readonly timeoutMs: number; readonly spin: number } = DEFAULTS): SetLockResult {
    const { timeoutMs, spin } = checked;
    const w = this.#w;
    const me = this.#ctx.lockTag;
    // Ordering point: the compareExchange is the acquire; everything after it sees the previous holder's writes.
    let seen = Atomics.compareExchange(w, index, 0, me);
    if (seen === 0) return 'acquired';
    if ((seen & HOLDER_MASK) === me) {
      throw new UsageError(`lock ${lockIdOf(this.#ctx, index)} is already held by this process`, 'ERR_MEMWIRE_LOCK_HELD');
    }
    for (let i = 0; i < spin; i++) {
      seen = Atomics.load(w, index);
      if (seen === 0 && (seen = Atomics.compareExchange(w, index, 0, me)) === 0) return 'acquired';
    }
    const deadline = timeoutMs === Infinity ? Infinity : performance.now() + timeoutMs;
    const futex = this.#ctx.futex(index << 2);
    let thorough = false;
    for (;;) {
      seen = Atomics.load(w, index);
      if (seen === 0) {
        // Someone else may still sleep: take it with CONTENDED so our release wakes them.
        if (Atomics.compareExchange(w, index, 0, me | LOCK_CONTENDED) === 0) return 'acquired';
        continue;
      }
      if (this.#holderGone(seen, thorough)) {
        if (Atomics.compareExchange(w, index, seen, me | (seen & LOCK_CONTENDED)) === seen) return this.#recovered(index);
        continue;
      }
      if ((seen & LOCK_CONTENDED) === 0) {
        if (Atomics.compareExchange(w, index, seen, seen | LOCK_CONTENDED) !== seen) continue;
        seen |= LOCK_CONTENDED;
      }
      const left = deadline === Infinity ? RECHECK_MS : Math.min(RECHECK_MS, deadline - performance.now());
      if (left <= 0) return 'timed-out';
      thorough = futex.wait(seen, { timeoutMs: left, spin: 0 }) === 'timed-out';
    }
  }

  /** Like acquire(), without blocking the event loop (sleeps through FutexWord.waitAsync). */
  async acquireAsync(id: number, options?: LockWaitOptions): Promise<SetLockResult> {
    const { timeoutMs, spin } = options === undefined ? DEFAULTS : checkOptions(options);
    const w = this.#w;
    const index = this.wordIndex(id);
    const me = this.#ctx.lockTag;
    let seen = Atomics.compareExchange(w, index, 0, me);
    if (seen === 0) return 'acquired';
    for (let i = 0; i < spin; i++) {
      seen = Atomics.load(w, index);
      if (seen === 0 && (seen = Atomics.compareExchange(w, index, 0, me)) === 0) return 'acquired';
    }
    const deadline = timeoutMs === Infinity ? Infinity : performance.now() + timeoutMs;
    const futex = this.#ctx.futex(index << 2);
    let thorough = false;
    for (;;) {
      seen = Atomics.load(w, index);
      if (seen === 0) {
        if (Atomics.compareExchange(w, index, 0, me | LOCK_CONTENDED) === 0) return 'acquired';
        continue;
      }
      // Another async task of this process may hold it: that is not a dead holder, just wait.
      if ((seen & HOLDER_MASK) !== me && this.#holderGone(seen, thorough)) {
        if (Atomics.compareExchange(w, index, seen, me | (seen & LOCK_CONTENDED)) === seen) return this.#recovered(index);
        continue;
      }
      if ((seen & LOCK_CONTENDED) === 0) {
        if (Atomics.compareExchange(w, index, seen, seen | LOCK_CONTENDED) !== seen) continue;
        seen |= LOCK_CONTENDED;
      }
      const left = deadline === Infinity ? RECHECK_MS : Math.min(RECHECK_MS, deadline - performance.now());
      if (left <= 0) return 'timed-out';
      thorough = (await futex.waitAsync(seen, { timeoutMs: left, spin: 0 })) === 'timed-out';
    }
  }

  /** Release a lock this process holds; UsageError (ERR_MEMWIRE_NOT_HOLDER) otherwise. */
  release(id: number): void {
    this.releaseAt(this.wordIndex(id));
  }

  /**
   * Release the lock at `index` if this process still holds it; false when another acquirer has
   * taken it over meanwhile. Only for a holder whose last step made it look gone (departures.ts,
   * leave(): its slot is FREE before the release): the takeover can come only after that step.
   * A compare-exchange, so a takeover between the check and the release is never undone.
   */
  releaseIfHeldAt(index: number): boolean {
    const w = this.#w;
    for (;;) {
      const seen = Atomics.load(w, index);
      if ((seen & HOLDER_MASK) !== this.#ctx.lockTag) return false;
      // Ordering point: as in releaseAt; a waiter setting LOCK_CONTENDED meanwhile makes us retry.
      if (Atomics.compareExchange(w, index, seen, 0) === seen) {
        if ((seen & LOCK_CONTENDED) !== 0) this.#ctx.futex(index << 2).wake(1);
        return true;
      }
    }
  }

  releaseAt(index: number): void {
    const w = this.#w;
    const seen = Atomics.load(w, index);
    if ((seen & HOLDER_MASK) !== this.#ctx.lockTag) {
      throw new UsageError(`lock ${lockIdOf(this.#ctx, index)} is not held by this process`, 'ERR_MEMWIRE_NOT_HOLDER');
    }
    // Ordering point: the exchange publishes every write of the critical section.
    if ((Atomics.exchange(w, index, 0) & LOCK_CONTENDED) !== 0) this.#ctx.futex(index << 2).wake(1);
  }

  /** Whether this process holds lock `id` now. */
  heldByMe(id: number): boolean {
    return (Atomics.load(this.#w, this.wordIndex(id)) & HOLDER_MASK) === this.#ctx.lockTag;
  }

  #recovered(index: number): 'owner-died' {
    Atomics.add(this.#w, index - L_WORD / 4 + L_RECOVERIES / 4, 1);
    return 'owner-died';
  }

  /**
   * Whether the holder named by lock word `word` no longer exists: its slot is no longer LIVE
   * with the same generation, or (thorough) its process is dead. A word naming no valid slot is
   * treated as gone, so a scribbled lock word cannot hang every acquirer.
   */
  #holderGone(word: number, thorough: boolean): boolean {
    const ctx = this.#ctx;
    const w = this.#w;
    const slot = (word & LOCK_SLOT_MASK) - 1;
    if (slot < 0 || slot >= ctx.maxMembers) return true;
    const base = ctx.memberBase(slot);
    // LEAVING still counts as present: a member cleaning up on its way out holds the
    // allocator's lock in that state, and a dead one in that state fails the process check.
    const state = Atomics.load(w, base + M_STATE / 4);
    if (state !== MEMBER_LIVE && state !== MEMBER_LEAVING) return true;
    if ((Atomics.load(w, base + M_GEN / 4) & GEN_MASK) !== ((word >>> 7) & GEN_MASK)) return true;
    if (!thorough || slot === ctx.slot) return false;
    return !slotProcessAlive(ctx, slot);
  }
}

function checkOptions(options: LockWaitOptions): { timeoutMs: number; spin: number } {
  const timeoutMs = options.timeoutMs ?? Infinity;
  const spin = options.spin ?? DEFAULT_LOCK_SPIN;
  if (typeof timeoutMs !== 'number' || Number.isNaN(timeoutMs) || timeoutMs < 0) {
    throw new UsageError(`timeoutMs must be a non-negative number, got ${String(timeoutMs)}`);
  }
  if (!Number.isInteger(spin) || spin < 0) throw new UsageError(`spin must be a non-negative integer, got ${String(spin)}`);
  return { timeoutMs, spin };
}

function lockIdOf(ctx: PoolContext, index: number): number {
  return ((index << 2) - ctx.lockTableOffset) / LOCK_ENTRY_SIZE;
}

/** Word index of the allocator's lock (lock 0, reserved by the creator). */
export function allocatorLockIndex(ctx: PoolContext): number {
  return (ctx.lockTableOffset + ALLOCATOR_LOCK * LOCK_ENTRY_SIZE + L_WORD) >>> 2;
}

