/**
 * Warm-up that holds on every runtime: repeat unmeasured rounds until the figure stops moving,
 * instead of a fixed count. A fixed count was too short on Bun: whichever size region-pingpong
 * measured first paid for the JIT's later tiers (64 B at 3.21× UCX when first, 1.16× when run
 * after 1 KiB; issue 14), so the size order changed the result.
 *
 * Rule: rounds run until two consecutive rounds' p50 agree within `tolerance` (5 % by default),
 * at least `minRounds` and at most `maxRounds` of them. A size that never settles is measured
 * anyway, and the bench says so in its notes (`warmupNote`), so an unsettled figure is visible.
 *
 * Between rounds this process sleeps `pauseMs`: JIT compilers (JavaScriptCore's above all) build
 * the faster tiers on helper threads, and while both benchmark processes busy-poll on a 2-CPU
 * machine those threads hardly get a CPU; the pause gives them one, so the next round runs the
 * code they have finished.
 */
import { sleep } from './timing.js';

export interface WarmupOptions {
  /** Largest relative difference of two consecutive rounds' p50 that counts as stable. */
  tolerance?: number;
  minRounds?: number;
  maxRounds?: number;
  /** Sleep after each round, for the JIT's helper threads (default WARMUP_PAUSE_MS). */
  pauseMs?: number;
}

export interface WarmupResult {
  /** Each round's p50, in the unit the round returned. */
  p50s: number[];
  stable: boolean;
}

export const WARMUP_TOLERANCE = 0.05;
export const WARMUP_MAX_ROUNDS = 25;
export const WARMUP_PAUSE_MS = 20;

/** Whether two consecutive p50s agree within `tolerance` of the smaller one. */
export function agree(a: number, b: number, tolerance: number): boolean {
  return Math.abs(a - b) <= tolerance * Math.min(a, b);
}

/**
 * Run `round` (one unmeasured warm-up round that returns its p50) until the last two p50s agree.
 * Resolves with every round's p50 and whether they settled within the bound.
 */
export async function warmUntilStable(round: () => number | Promise<number>, options: WarmupOptions = {}): Promise<WarmupResult> {
  const tolerance = options.tolerance ?? WARMUP_TOLERANCE;
  const minRounds = Math.max(2, options.minRounds ?? 2);
  const maxRounds = Math.max(minRounds, options.maxRounds ?? WARMUP_MAX_ROUNDS);
  const p50s: number[] = [];
  while (p50s.length < maxRounds) {
    p50s.push(await round());
    await sleep(options.pauseMs ?? WARMUP_PAUSE_MS);
    const n = p50s.length;
    if (n >= minRounds && agree(p50s[n - 2], p50s[n - 1], tolerance)) return { p50s, stable: true };
  }
  return { p50s, stable: false };
}

/**
 * One line for a bench's notes: how many warm-up rounds each case took, and which did not settle.
 * `cases` maps a case label (e.g. "64B") to its warm-up.
 */
export function warmupNote(what: string, roundSize: string, cases: ReadonlyMap<string, WarmupResult>): string {
  const parts = [...cases].map(([label, w]) => `${label} ${w.p50s.length === 0 ? 'none (--warmup 0)' : `${w.p50s.length}${w.stable ? '' : ' (NOT stable)'}`}`);
  return (
    `warm-up: ${what} rounds of ${roundSize} until two consecutive rounds' p50 agree within ${WARMUP_TOLERANCE * 100} % ` +
    `(at most ${WARMUP_MAX_ROUNDS}); rounds per case: ${parts.join(', ')}`
  );
}
