/**
 * Rounds of the RDMA benches: memwire and its anchor alternate (A B, B A, ...), and the figures
 * are medians over the rounds, the ratio the median of the per-round ratios.
 */
import { makeRow, type FlagSpec, type Row } from './common.js';

/**
 * Rounds: the guest's figures swing ±30 % from run to run (TCG on a shared host), for perftest as
 * for memwire, so each bench alternates memwire and perftest `rounds` times and compares the
 * medians of each side's results.
 */
export const ROUNDS_FLAG: FlagSpec = {
  rounds: { kind: 'count', help: 'alternate memwire and perftest this many times; compare the medians (default 5, --quick 1)' },
};

/** Rounds by default: with 3, one stray round in the guest still moved a median by 20 % and more. */
export const DEFAULT_ROUNDS = 5;

/**
 * One round of a comparison: memwire's measurement and perftest's (null: no anchor), memwire
 * first in odd rounds and perftest first in even ones (A B, B A, ...), so that a drift of the
 * guest's speed across the rounds weighs on both sides alike.
 */
export async function runRound(round: number, ours: () => Promise<void>, theirs: (() => Promise<void>) | null): Promise<void> {
  if (theirs && round % 2 === 0) {
    await theirs();
    await ours();
  } else {
    await ours();
    await theirs?.();
  }
}

/**
 * "; best rounds <ours> vs <theirs> (<ratio>×)" for a rounds note, or '' without perftest rounds.
 * The guest's disturbances only ever slow a round down, so the best rounds show what each side
 * can do; the medians stay the judged figures.
 */
export function bestRounds(ours: readonly number[], theirs: readonly number[], better: 'higher' | 'lower'): string {
  if (theirs.length === 0 || ours.length === 0) return '';
  const pick = better === 'higher' ? Math.max : Math.min;
  const a = pick(...ours);
  const b = pick(...theirs);
  return `; best rounds ${a.toFixed(1)} vs ${b.toFixed(1)} (${(a / b).toFixed(2)}×)`;
}

/**
 * The row of a comparison made in rounds: each side's median, and as the ratio the median of the
 * per-round ratios ours[i] / theirs[i] (rounds where either side has no finite figure are left
 * out). A round's two measurements run back to back, so the guest's drift across a run weighs on
 * both alike; the median of those paired ratios is steadier than the ratio of two medians, which
 * can pair one side's fast rounds with the other's slow ones.
 */
export function pairedRow(caseName: string, metric: string, unit: string, ours: readonly number[], theirs: readonly number[], anchorName: string): Row {
  const ratios: number[] = [];
  for (let i = 0; i < Math.min(ours.length, theirs.length); i++) if (Number.isFinite(ours[i]) && Number.isFinite(theirs[i]) && theirs[i] > 0) ratios.push(ours[i] / theirs[i]);
  const anchor = median(theirs);
  const row = makeRow(caseName, metric, unit, 'higher', median(ours), Number.isFinite(anchor) ? anchor : null, anchorName);
  row.ratio = ratios.length ? median(ratios) : null;
  return row;
}

/** "per-round ratios a, b, c" for a rounds note ('' without pairs). */
export function roundRatios(ours: readonly number[], theirs: readonly number[]): string {
  const r: string[] = [];
  for (let i = 0; i < Math.min(ours.length, theirs.length); i++) if (Number.isFinite(ours[i]) && Number.isFinite(theirs[i]) && theirs[i] > 0) r.push((ours[i] / theirs[i]).toFixed(2));
  return r.length ? `; per-round ratios ${r.join(', ')} (the ratio reported is their median)` : '';
}

/** The median of the finite values (NaN if none). */
export function median(values: readonly number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}
