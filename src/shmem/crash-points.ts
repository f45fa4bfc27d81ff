/**
 * Fault injection for the crash-point tests (test/shmem/pool-crash-points.test.ts): the allocator,
 * reap() and dispose() call crashPoint() before each write to shared memory they make under the
 * allocator's lock ('locked'), and open's claim of a member slot before each of its stores
 * ('claim'). It does nothing unless a test process armed it; a test child arms it to SIGKILL
 * itself at the k-th point of one kind, so a loop over k stops a member at every step.
 *
 * The allocator's hot path (malloc/free) asks crashPointsArmed() once, when the pool is opened,
 * and skips the calls otherwise (a call per word written cost malloc+free about a third of its
 * speed): a test arms the hook before it opens the pool.
 *
 * Not part of the public API (src/index.ts does not export it).
 */

/** Which kind of step a crash point is: under the allocator's lock, or claiming a member slot. */
export type CrashPointKind = 'locked' | 'claim';

let hook: ((kind: CrashPointKind) => void) | undefined;

/** Arm (or with undefined, disarm) the hook crashPoint() calls. Tests only. */
export function armCrashPoints(fn: ((kind: CrashPointKind) => void) | undefined): void {
  hook = fn;
}

/** Whether a hook is armed now (the heap and its lock ask once, when a pool is opened). */
export function crashPointsArmed(): boolean {
  return hook !== undefined;
}

/** A step of a multi-word update: a no-op unless a test armed a hook. */
export function crashPoint(kind: CrashPointKind = 'locked'): void {
  if (hook !== undefined) hook(kind);
}
