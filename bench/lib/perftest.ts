/**
 * The RDMA benches' anchor: perftest's tools (ib_write_lat, ib_send_lat, ib_write_bw) on the same
 * device pair and CPUs as memwire — server `-d dev0 -x gid`, client `-d dev1 -x gid <dev0's
 * IPv4>`, under `taskset` — and the rounds that alternate memwire and perftest.
 */
import { findExecutable } from './environment.js';
import type { FlagSpec } from './flags.js';
import { makeRow, type Better, type Row } from './report.js';
import { freePort, isListening, Peer } from './peer.js';
import type { DevicePair } from './rdma-devices.js';

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
export function pairedRow(caseName: string, metric: string, unit: string, ours: readonly number[], theirs: readonly number[], anchorName: string, better: Better = 'higher'): Row {
  const ratios: number[] = [];
  for (let i = 0; i < Math.min(ours.length, theirs.length); i++) if (Number.isFinite(ours[i]) && Number.isFinite(theirs[i]) && theirs[i] > 0) ratios.push(ours[i] / theirs[i]);
  const anchor = median(theirs);
  const row = makeRow(caseName, metric, unit, better, median(ours), Number.isFinite(anchor) ? anchor : null, anchorName);
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

export interface PerftestResult {
  /** The columns of perftest's result line, by header name. */
  columns: Record<string, number>;
  clientOutput: string;
}

/**
 * Run one perftest tool: server on dev0 (pinned to cpus[0]), then, once it listens on its TCP
 * port, the client on dev1 (cpus[1]) connecting to dev0's address. Both under `timeout -s KILL`.
 * Returns the client's result line split by its header.
 */
export async function runPerftest(tool: string, args: readonly string[], pair: DevicePair, cpus: [number, number] | null, timeoutMs: number): Promise<PerftestResult> {
  const exe = findExecutable(tool);
  if (!exe) throw new Error(`${tool} is not installed (Debian package perftest)`);
  const taskset = cpus ? findExecutable('taskset') : null;
  const pin = (cpu: number) => (taskset ? [taskset, '-c', String(cpu)] : []);
  const port = await freePort();
  const common = ['-x', String(pair.gidIndex), '-F', '-p', String(port), ...args];
  const lifetime = Math.ceil(timeoutMs / 1000) + 5;
  const server = Peer.start(`${tool} server`, [...pin(cpus?.[0] ?? 0), exe, '-d', pair.dev0, ...common], { captureStderr: true, lifetimeSeconds: lifetime });
  let client: Peer | undefined;
  try {
    await server.waitFor(`${tool} listening on port ${port}`, () => isListening(port), 15_000);
    client = Peer.start(`${tool} client`, [...pin(cpus?.[1] ?? 0), exe, '-d', pair.dev1, ...common, pair.serverIp], { captureStderr: true, lifetimeSeconds: lifetime });
    const out = await client.finish(timeoutMs);
    await server.finish(10_000);
    return { columns: parsePerftest(out, tool), clientOutput: out };
  } finally {
    await client?.stop();
    await server.stop();
  }
}

/**
 * perftest prints a header line starting with " #bytes" and one result line below it. Some
 * header names have spaces ("BW average[MB/sec]", "99% percentile[usec]") and the columns are not
 * always two spaces apart, so names are rebuilt from tokens; the numbers split on any space.
 */
export function parsePerftest(output: string, tool: string): Record<string, number> {
  const lines = output.split('\n');
  const h = lines.findIndex((l) => l.trim().startsWith('#bytes'));
  if (h < 0) throw new Error(`${tool}: no result header in its output: ${output.trim().split('\n').slice(-5).join(' | ')}`);
  // A name ends at a token starting with '#' or holding ']' ("BW average[MB/sec]" is two tokens).
  const names: string[] = [];
  let pending: string[] = [];
  for (const token of lines[h].trim().split(/\s+/)) {
    pending.push(token);
    if (token.startsWith('#') || token.includes(']')) {
      names.push(pending.join(' '));
      pending = [];
    }
  }
  const valueLine = lines.slice(h + 1).find((l) => /^\s*\d/.test(l));
  if (!valueLine) throw new Error(`${tool}: no result line under its header`);
  const values = valueLine.trim().split(/\s+/).map(Number);
  const columns: Record<string, number> = {};
  names.forEach((name, i) => {
    if (i < values.length) columns[name] = values[i];
  });
  return columns;
}

/** The first column whose name starts with `prefix` (e.g. "t_typical", "BW average"). */
export function column(columns: Record<string, number>, prefix: string): number {
  const key = Object.keys(columns).find((k) => k.startsWith(prefix));
  if (key === undefined) throw new Error(`perftest output has no column ${prefix} (columns: ${Object.keys(columns).join(', ')})`);
  return columns[key];
}
