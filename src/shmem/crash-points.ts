/**
 * Fault injection for the crash-point tests (test/shmem/pool-crash-points.test.ts): the allocator,
 * reap() and dispose() call crashPoint() before each write to shared memory they make under the
 * allocator's lock. It does nothing unless a test process armed it; a test child arms it to
 * SIGKILL itself at the k-th point, so a loop over k stops a member at every step.
 *
 * The allocator's hot path (malloc/free) asks crashPointsArmed() once, when the pool is opened,
 * and skips the calls otherwise (a call per word written cost malloc+free about a third of its
 * speed): a test arms the hook before it opens the pool.
 *
 * Not part of the public API (src/index.ts does not export it).
 */

let hook: (() => void) | undefined;

/** Arm (or with undefined, disarm) the hook crashPoint() calls. Tests only. */
export function armCrashPoints(fn: (() => void) | undefined): void {
  hook = fn;
}

/** Whether a hook is armed now (the heap and its lock ask once, when a pool is opened). */
export function crashPointsArmed(): boolean {
  return hook !== undefined;
}

/** A step of a multi-word update: a no-op unless a test armed a hook. */
export function crashPoint(): void {
  if (hook !== undefined) hook();
}
