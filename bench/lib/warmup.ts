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
 * Order check: a bench with several cases measures its first case once more after all the others,
 * the same way (warm-up rounds included), and prints both p50s and their ratio (`orderCheckNote`).
 * Both figures come from one process run, so host noise that drifts slowly cancels as far as it
 * can; a first figure that paid for warm-up shows as a ratio above 1.
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

/** How far apart the first and the repeated measurement of the first case may be before the note says so. */
export const ORDER_CHECK_TOLERANCE = 0.1;

export const ORDER_CHECK_FLAG = {
  'no-order-check': { kind: 'boolean' as const, help: 'do not measure the first case again after the others (see bench/README.md, Warm-up)' },
};

export interface OrderCheck {
  /** The case measured first and again at the end, e.g. "64B". */
  label: string;
  /** Its p50 when measured first (the figure the report shows) and when measured again last. */
  first: number;
  again: number;
  unit: string;
}

/**
 * One line for a bench's notes: the first case's p50 measured first and again after the other
 * cases, and first / again. Machine-readable too: `order check: <label> p50 first <x> <unit>,
 * again <y> <unit>, first/again <r>`.
 */
export function orderCheckNote(check: OrderCheck): string {
  const ratio = check.first / check.again;
  const digits = (v: number) => (v < 10 ? v.toFixed(3) : v.toFixed(1));
  const verdict =
    Math.abs(ratio - 1) <= ORDER_CHECK_TOLERANCE
      ? `within ${ORDER_CHECK_TOLERANCE * 100} %: the order of the cases did not matter`
      : `more than ${ORDER_CHECK_TOLERANCE * 100} % apart: ${ratio > 1 ? 'the first figure may still carry warm-up' : 'the machine got slower during the run'} (or host noise)`;
  return `order check: ${check.label} p50 first ${digits(check.first)} ${check.unit}, again ${digits(check.again)} ${check.unit} after every other case, first/again ${ratio.toFixed(3)} — ${verdict}`;
}
