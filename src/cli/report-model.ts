/**
 * The data of `memwire bench report`: one run per (benchmark, runtime, place), each holding the
 * benchmark's own JSON report unchanged, and the plain-data helpers the Markdown and the charts
 * share (which runs a bench has, what a row's points are, what a size label means).
 *
 * Nothing here runs anything: report.ts runs the benchmarks, report-markdown.ts and
 * report-charts.ts read what it collected.
 */
import type { BenchReport, Row } from '../../bench/lib/report.js';

export type { BenchReport, Row };

/** Where a run happened: the host, or the Soft-RoCE guest (scripts/rxe/run.sh). */
export type Place = 'host' | 'rxe';

export interface BenchRun {
  bench: string;
  runtime: string;
  place: Place;
  /** 'ok': the bench printed its JSON report; 'failed': it did not (see error and the log); 'skipped': not run (see error). */
  status: 'ok' | 'failed' | 'skipped';
  exitCode: number | null;
  seconds: number;
  /** The bench's own JSON report (its last line of stdout), exactly as printed. */
  report: BenchReport | null;
  /** Why it failed or was skipped. */
  error: string | null;
  /** The file (relative to the output directory) holding the bench's stdout and stderr. */
  log: string | null;
  /** The flags the report added to `--json [--quick]` for this run (regcache's `--device` in the guest), if any. */
  flags?: string[];
}

export interface ChartFile {
  /** Path relative to the output directory. */
  file: string;
  bench: string;
  place: Place;
  kind: 'latency-vs-size' | 'bars';
  /** How many data points (= marks) the chart holds. */
  points: number;
}

export interface FullReport {
  tool: 'memwire bench report';
  startedAt: string;
  finishedAt: string;
  options: { quick: boolean; rxe: boolean; only: string[] | null; runtimes: string[] };
  runs: BenchRun[];
  charts: ChartFile[];
  /** Why charts are missing, when they are (e.g. vega not installed). */
  chartsNote: string | null;
}

/** One plotted value: a memwire figure or an anchor figure of one row of one run. */
export interface Point {
  bench: string;
  place: Place;
  runtime: string;
  /**
   * 'memwire · node', 'ucx tag_lat · node', 'memwire write · node' …: the anchor is measured in each
   * runtime's run, so it is a series per runtime; a case that names an operation ('write-64B')
   * puts the operation in memwire's series name (the anchor's name already tells them apart).
   */
  series: string;
  who: 'memwire' | 'anchor';
  case: string;
  metric: string;
  unit: string;
  value: number;
  /** The message size in bytes when the case is a size label ('64B', '1 KiB', 'write-64B'), else null. */
  bytes: number | null;
}

const SIZE_UNITS: Record<string, number> = { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 };

/** '64B', '64 B', '1KiB', '1 MiB' → bytes; anything else → null. */
export function sizeOfLabel(label: string): number | null {
  const match = /^(\d+(?:\.\d+)?)\s?(B|KiB|MiB|GiB)$/.exec(label.trim());
  return match ? Number(match[1]) * SIZE_UNITS[match[2]] : null;
}

/**
 * A case label read as (operation, size): '64B' → (null, 64), 'write-2B' → ('write', 2)
 * (rdma-lat's cases), 'uncontended' → null.
 */
export function sizedCase(label: string): { op: string | null; bytes: number } | null {
  const bytes = sizeOfLabel(label);
  if (bytes !== null) return { op: null, bytes };
  const match = /^([a-z][a-z0-9]*)-(.+)$/i.exec(label.trim());
  const sized = match ? sizeOfLabel(match[2]) : null;
  return match && sized !== null ? { op: match[1], bytes: sized } : null;
}

/** A value a chart can place (log axes included): finite and above zero. */
export function plottable(value: number | null): value is number {
  return value !== null && Number.isFinite(value) && value > 0;
}

/**
 * The points of one run: for each row its memwire figure and, when measured, its anchor's.
 * Rows whose value cannot be plotted (null, zero, not finite) give no point; the Markdown
 * tables still show them. A bench that compares one memwire figure with two anchors prints it in
 * two rows: it is one point.
 */
export function pointsOf(run: BenchRun): Point[] {
  const points: Point[] = [];
  if (!run.report) return points;
  const seen = new Set<string>();
  for (const row of run.report.rows) {
    const sized = sizedCase(row.case);
    const base = { bench: run.bench, place: run.place, runtime: run.runtime, case: row.case, metric: row.metric, unit: row.unit, bytes: sized?.bytes ?? null };
    const ours = `${row.case}\u0000${row.metric}\u0000${row.unit}\u0000${row.memwire}`;
    if (plottable(row.memwire) && !seen.has(ours)) {
      seen.add(ours);
      points.push({ ...base, series: `memwire${sized?.op ? ` ${sized.op}` : ''} · ${run.runtime}`, who: 'memwire', value: row.memwire });
    }
    if (plottable(row.anchor)) points.push({ ...base, series: `${row.anchorName} · ${run.runtime}`, who: 'anchor', value: row.anchor });
  }
  return points;
}

/** The benches that need an RDMA device: on a host without one they run only with --rxe, in the guest. */
export function needsRdmaDevice(bench: string): boolean {
  return bench.startsWith('rdma-');
}

/**
 * What a bench runs in the Soft-RoCE guest with --rxe: null for nothing, else the flags that pick
 * its RDMA part. The rdma-* benches run whole; regcache runs only its device parts (churn,
 * ibv_reg_mr cost) there, since its lookup part runs on the host like every shm bench.
 */
export function rxeFlags(bench: string): string[] | null {
  if (needsRdmaDevice(bench)) return [];
  if (bench === 'regcache') return ['--device'];
  return null;
}
