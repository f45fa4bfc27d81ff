/**
 * Waiting and waking across processes on a 32-bit word of shared memory.
 *
 * Atomics.wait cannot be used on memory that is not a SharedArrayBuffer, so blocking goes through
 * the futex syscall on the word's address (shared, not FUTEX_PRIVATE: the waker is another
 * process). The strategy:
 *
 *  - wait(): spin on Atomics.load for a short while (a waker usually answers within a
 *    microsecond or two when both sides are busy), then block in futex(FUTEX_WAIT) on this
 *    thread, with the timeout passed to the kernel. Measured wake latency: see README.
 *  - waitAsync(): the same spin, then futex(FUTEX_WAIT) off the main thread in bounded slices
 *    (SLICE_MS) so no helper thread is ever parked indefinitely: under koffi the call runs on
 *    libuv's thread pool, under Bun on a Worker. At most POOL_WAITERS such calls are in flight
 *    per process, which leaves the rest of libuv's pool (4 threads by default) to fs, dns and
 *    crypto; further async waiters are checked by one 1 ms timer instead.
 *
 * Results mirror Atomics.wait: 'ok' (woken, or the value changed), 'not-equal' (it differed at
 * the call), 'timed-out'.
 */
import { errno, FUTEX_WAIT, FUTEX_WAKE, futexWaitAsync, libc, SYS_futex } from '../../ffi/libc.js';
import { NativeBlock } from '../native-block.js';
import { errnoError, ClosedError, UsageError } from '../errors.js';

export type WaitResult = 'ok' | 'not-equal' | 'timed-out';

export interface WaitOptions {
  /** Give up after this many milliseconds; default: wait for ever. */
  timeoutMs?: number;
  /** Spin iterations before blocking; default DEFAULT_SPIN. 0 blocks at once. */
  spin?: number;
}

/** What a FutexWord needs of its region: whether it is still mapped. */
export interface FutexOwner {
  readonly closed: boolean;
  readonly name: string;
}

export const DEFAULT_SPIN = 2000;
/** The longest a single off-thread futex wait lasts before it is re-armed. */
export const SLICE_MS = 50;
/** Off-thread futex waits in flight at once, per process. */
export const POOL_WAITERS = 2;
const POLL_MS = 1;

const EAGAIN = 11;
const EINTR = 4;
const ETIMEDOUT = 110;

// A reused timespec for synchronous waits (the kernel reads it during the call).
const syncTimespec = new BigInt64Array(2);

function setTimespec(target: BigInt64Array, offset: number, ms: number): void {
  const whole = Math.floor(ms / 1000);
  target[offset] = BigInt(whole);
  target[offset + 1] = BigInt(Math.floor((ms - whole * 1000) * 1e6));
}

/**
 * Timespecs for off-thread waits live in one private page, one 16-byte slot per wait in flight,
 * because the helper thread reads them after this thread has moved on.
 */
const timespecPage = (() => {
  const block = new NativeBlock(4096, 'futex timespecs');
  return { address: block.address, cells: new BigInt64Array(block.view.buffer) };
})();const freeSlots: number[] = Array.from({ length: POOL_WAITERS }, (_, i) => i);

/** Waiters beyond POOL_WAITERS, checked by one timer. */
const polled = new Set<{ check(): boolean }>();
let pollTimer: ReturnType<typeof setInterval> | undefined;

function ensurePolling(): void {
  if (pollTimer) return;
  pollTimer = setInterval(() => {
    for (const waiter of polled) if (waiter.check()) polled.delete(waiter);
    if (polled.size === 0) {
      clearInterval(pollTimer);
      pollTimer = undefined;
    }
  }, POLL_MS);
}

export class FutexWord {
  constructor(
    private readonly owner: FutexOwner,
    private readonly cells: Int32Array,
    private readonly index: number,
    /** The word's address in this process. */
    readonly address: number,
  ) {}

  #check(): void {
    if (this.owner.closed) throw new ClosedError(`region ${JSON.stringify(this.owner.name)} (futex word)`);
  }

  load(): number {
    this.#check();
    return Atomics.load(this.cells, this.index);
  }

  store(value: number): void {
    this.#check();
    Atomics.store(this.cells, this.index, value);
  }

  add(delta: number): number {
    this.#check();
    return Atomics.add(this.cells, this.index, delta);
  }

  /** Wake up to `count` waiters (default all); returns how many were woken. */
  wake(count = 0x7fffffff): number {
    this.#check();
    if (!Number.isInteger(count) || count < 0) throw new UsageError(`wake count must be a non-negative integer, got ${count}`);
    const woken = libc.futex(SYS_futex, this.address, FUTEX_WAKE, Math.min(count, 0x7fffffff), null, 0, 0) as number;
    if (woken === -1) throw errnoError('futex', errno(), { op: 'FUTEX_WAKE', address: this.address, count });
    return woken;
  }

  /** Block this thread until the word is no longer `expected`, it is woken, or the timeout passes. */
  wait(expected: number, options: WaitOptions = {}): WaitResult {
    this.#check();
    const { timeoutMs, spin } = checkWaitOptions(options);
    const cells = this.cells;
    const index = this.index;
    if (Atomics.load(cells, index) !== (expected | 0)) return 'not-equal';
    for (let i = 0; i < spin; i++) if (Atomics.load(cells, index) !== (expected | 0)) return 'ok';
    const deadline = timeoutMs === Infinity ? Infinity : performance.now() + timeoutMs;
    for (;;) {
      let timespec: BigInt64Array | null = null;
      if (deadline !== Infinity) {
        const left = deadline - performance.now();
        if (left <= 0) return 'timed-out';
        setTimespec(syncTimespec, 0, left);
        timespec = syncTimespec;
      }
      const result = libc.futex(SYS_futex, this.address, FUTEX_WAIT, expected >>> 0, timespec, 0, 0) as number;
      if (result === 0) return 'ok';
      const code = errno();
      if (code === EAGAIN) return 'ok'; // changed between our load and the kernel's
      if (code === ETIMEDOUT) return 'timed-out';
      if (code !== EINTR) throw errnoError('futex', code, { op: 'FUTEX_WAIT', address: this.address, expected });
    }
  }

  /**
   * Wait without blocking this thread: resolves like wait(). Rejects with ClosedError if the
   * region is closed meanwhile (noticed within SLICE_MS).
   */
  async waitAsync(expected: number, options: WaitOptions = {}): Promise<WaitResult> {
    this.#check();
    const { timeoutMs, spin } = checkWaitOptions(options);
    const cells = this.cells;
    const index = this.index;
    if (Atomics.load(cells, index) !== (expected | 0)) return 'not-equal';
    for (let i = 0; i < spin; i++) if (Atomics.load(cells, index) !== (expected | 0)) return 'ok';
    const deadline = timeoutMs === Infinity ? Infinity : performance.now() + timeoutMs;
    const slot = freeSlots.pop();
    if (slot === undefined) return this.#pollUntil(expected, deadline);
    try {
      for (;;) {
        this.#check();
        if (Atomics.load(cells, index) !== (expected | 0)) return 'ok';
        const left = deadline - performance.now();
        if (left <= 0) return 'timed-out';
        setTimespec(timespecPage.cells, slot * 2, Math.min(left, SLICE_MS));
        const { value, errno: code } = await futexWaitAsync(this.address, expected, timespecPage.address + slot * 16);
        if (value === 0 || code === EAGAIN) {
          if (this.owner.closed) this.#check();
          return 'ok';
        }
        if (code !== ETIMEDOUT && code !== EINTR) {
          throw errnoError('futex', code, { op: 'FUTEX_WAIT (async)', address: this.address, expected });
        }
      }
    } finally {
      freeSlots.push(slot);
    }
  }

  #pollUntil(expected: number, deadline: number): Promise<WaitResult> {
    return new Promise<WaitResult>((resolve, reject) => {
      polled.add({
        check: () => {
          if (this.owner.closed) {
            reject(new ClosedError(`region ${JSON.stringify(this.owner.name)} (futex word)`));
            return true;
          }
          if (Atomics.load(this.cells, this.index) !== (expected | 0)) {
            resolve('ok');
            return true;
          }
          if (performance.now() >= deadline) {
            resolve('timed-out');
            return true;
          }
          return false;
        },
      });
      ensurePolling();
    });
  }
}

/** Validate wait options (UsageError) and fill in the defaults: no timeout, DEFAULT_SPIN. */
export function checkWaitOptions(options: WaitOptions): { timeoutMs: number; spin: number } {
  const timeoutMs = options.timeoutMs ?? Infinity;
  const spin = options.spin ?? DEFAULT_SPIN;
  if (typeof timeoutMs !== 'number' || Number.isNaN(timeoutMs) || timeoutMs < 0) {
    throw new UsageError(`timeoutMs must be a non-negative number, got ${String(timeoutMs)}`);
  }
  if (!Number.isInteger(spin) || spin < 0) throw new UsageError(`spin must be a non-negative integer, got ${String(spin)}`);
  return { timeoutMs, spin };
}
