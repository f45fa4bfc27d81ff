/**
 * Warm-up that holds on every runtime: repeat unmeasured rounds until the figure stops moving,
 * instead of a fixed count. A fixed count was too short on Bun: whichever size region-pingpong
 * measured first paid for the JIT's later tiers (64 B at 3.21× UCX when first, 1.16× when run
 * after 1 KiB; issue 14), so the size order changed the result.
 *
 * Rule (2026-12-07, second version): rounds run until
 *  - at least WARMUP_MIN_MS of rounds have run (time spent in the rounds, pauses not counted), and
 *  - the last three rounds' p50s agree: the largest within `tolerance` (5 %) of the smallest,
 * at most WARMUP_MAX_ROUNDS rounds or WARMUP_MAX_MS. A round that took under WARMUP_ROUND_MS runs
 * twice as many iterations next time, so a round is long enough to say something.
 * The first version (two consecutive rounds within 5 %) stopped on a plateau: Bun's JavaScriptCore
 * runs a hot loop at one tier for a few hundred thousand iterations, flat to within 5 %, before
 * its top tier takes over (shmem-lock's uncontended pair: 99 → 94 → 96 → 79 → … → 34 ns per
 * pair, 20 ms batches) — and the order check showed the first case 2–2.5× slower than the same
 * case measured again at the end. Time, not only agreement, gets it past that.
 *
 * A case that never settles is measured anyway, and the bench says so in its notes
 * (`warmupNote`), so an unsettled figure is visible.
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
import { sameState, stateText, STATE_TOLERANCE, withState, type StateAround } from './machine-state.js';
import { progress, sleep } from './timing.js';

export interface WarmupOptions {
  /** Largest relative spread of the last WARMUP_WINDOW rounds' p50 that counts as stable. */
  tolerance?: number;
  /** Least time spent in rounds before the figure may count as stable (default WARMUP_MIN_MS). */
  minMs?: number;
  maxRounds?: number;
  /** Most time spent in rounds (default WARMUP_MAX_MS). */
  maxMs?: number;
  /** Sleep after each round, for the JIT's helper threads (default WARMUP_PAUSE_MS). */
  pauseMs?: number;
  /** The clock in ms (tests give their own). */
  now?: () => number;
}

export interface WarmupResult {
  /** Each round's p50, in the unit the round returned. */
  p50s: number[];
  /** Each round's iteration count (they double while a round is shorter than WARMUP_ROUND_MS). */
  counts: number[];
  /** Time spent in the rounds, ms. */
  ms: number;
  stable: boolean;
}

export const WARMUP_TOLERANCE = 0.05;
export const WARMUP_WINDOW = 3;
export const WARMUP_MIN_MS = 300;
export const WARMUP_MAX_MS = 5000;
export const WARMUP_ROUND_MS = 20;
export const WARMUP_MAX_ROUNDS = 40;
export const WARMUP_PAUSE_MS = 20;

/** A warm-up that did not run (--warmup 0). */
export const NO_WARMUP: WarmupResult = { p50s: [], counts: [], ms: 0, stable: false };

/** Whether the p50s agree: the largest within `tolerance` of the smallest. */
export function agree(p50s: readonly number[], tolerance: number): boolean {
  return Math.max(...p50s) <= (1 + tolerance) * Math.min(...p50s);
}

/**
 * Run `round(count)` (an unmeasured warm-up round of `count` iterations that returns its p50),
 * starting at `count`, until the rule above holds. Resolves with every round's p50 and count and
 * whether they settled within the bounds.
 */
export async function warmUntilStable(round: (count: number) => number | Promise<number>, count: number, options: WarmupOptions = {}): Promise<WarmupResult> {
  const tolerance = options.tolerance ?? WARMUP_TOLERANCE;
  const minMs = options.minMs ?? WARMUP_MIN_MS;
  const maxMs = Math.max(minMs, options.maxMs ?? WARMUP_MAX_MS);
  const maxRounds = Math.max(WARMUP_WINDOW, options.maxRounds ?? WARMUP_MAX_ROUNDS);
  const now = options.now ?? (() => performance.now());
  const result: WarmupResult = { p50s: [], counts: [], ms: 0, stable: false };
  let n = Math.max(1, count);
  while (result.p50s.length < maxRounds && result.ms < maxMs) {
    const started = now();
    result.p50s.push(await round(n));
    const took = now() - started;
    result.counts.push(n);
    result.ms += took;
    if (took < WARMUP_ROUND_MS) n *= 2;
    await sleep(options.pauseMs ?? WARMUP_PAUSE_MS);
    const last = result.p50s.slice(-WARMUP_WINDOW);
    if (result.ms >= minMs && last.length === WARMUP_WINDOW && agree(last, tolerance)) {
      result.stable = true;
      break;
    }
  }
  return result;
}

/**
 * One line for a bench's notes: the rule, and how many warm-up rounds (and how long) each case
 * took, and which did not settle. `cases` maps a case label (e.g. "64B") to its warm-up.
 */
export function warmupNote(what: string, roundSize: string, cases: ReadonlyMap<string, WarmupResult>): string {
  const parts = [...cases].map(([label, w]) => `${label} ${w.p50s.length === 0 ? 'none (--warmup 0)' : `${w.p50s.length} (${Math.round(w.ms)} ms)${w.stable ? '' : ' (NOT stable)'}`}`);
  return (
    `warm-up: ${what} rounds of at least ${roundSize} (doubled while a round is under ${WARMUP_ROUND_MS} ms) until at least ${WARMUP_MIN_MS} ms of rounds ran and ` +
    `the last ${WARMUP_WINDOW} rounds' p50 agree within ${WARMUP_TOLERANCE * 100} % (at most ${WARMUP_MAX_ROUNDS} rounds, ${WARMUP_MAX_MS / 1000} s); rounds per case: ${parts.join(', ')}`
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
  /**
   * The machine's state (bench/lib/machine-state.ts) around the first and the repeated
   * measurement, where the bench probes it: figures taken in different states say nothing about
   * the order.
   */
  stateFirst?: StateAround;
  stateAgain?: StateAround;
}

/**
 * The order check's second measurement of the first case, after every other case: warmed (when
 * `warmupCount` > 0, by `warmRound`) and measured (`measure`) exactly as the first time, with the
 * machine's state probed around it. `first` is the case's first figure and the state around it.
 */
export async function measureAgain(label: string, first: { p50: number; state?: StateAround }, cpus: readonly [number, number] | null, warmupCount: number, warmRound: (count: number) => number, measure: () => { p50: number }): Promise<OrderCheck> {
  const started = Date.now();
  const warm = warmupCount > 0 ? await warmUntilStable(warmRound, warmupCount) : null;
  const again = await withState(cpus, measure);
  progress(`${label} again: memwire, ${warm?.p50s.length ?? 0} warm-up rounds, p50 ${again.value.p50.toFixed(3)} µs (first ${first.p50.toFixed(3)}), ${Date.now() - started} ms`);
  return { label, first: first.p50, again: again.value.p50, unit: 'µs', stateFirst: first.state, stateAgain: again.state };
}

/**
 * One line for a bench's notes: the first case's p50 measured first and again after the other
 * cases, and first / again. Machine-readable too: `order check: <label> p50 first <x> <unit>,
 * again <y> <unit>, first/again <r>`.
 */
export function orderCheckNote(check: OrderCheck): string {
  const ratio = check.first / check.again;
  const digits = (v: number) => (v < 10 ? v.toFixed(3) : v.toFixed(1));
  const same = check.stateFirst && check.stateAgain ? sameState(check.stateFirst, check.stateAgain) : null;
  const state =
    check.stateFirst && check.stateAgain
      ? `; machine state (cache-line hand-off before/after): first ${stateText(check.stateFirst)}, again ${stateText(check.stateAgain)}`
      : '';
  const verdict =
    same === false
      ? `the machine's state changed between them (probes more than ${STATE_TOLERANCE}× apart): not comparable, this says nothing about the order`
      : Math.abs(ratio - 1) <= ORDER_CHECK_TOLERANCE
        ? `within ${ORDER_CHECK_TOLERANCE * 100} %: the order of the cases did not matter`
        : `more than ${ORDER_CHECK_TOLERANCE * 100} % apart: ${ratio > 1 ? 'the first figure may still carry warm-up' : 'the machine got slower during the run'} (or host noise)`;
  return `order check: ${check.label} p50 first ${digits(check.first)} ${check.unit}, again ${digits(check.again)} ${check.unit} after every other case, first/again ${ratio.toFixed(3)} — ${verdict}${state}`;
}
