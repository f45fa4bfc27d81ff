/**
 * The result of a benchmark: rows of memwire beside one anchor each (ratio = memwire / anchor,
 * because this project's machines are noisy and only same-run ratios compare), targets judged on
 * those ratios, and the two ways a report is printed (a readable table, or one JSON line as the
 * last line of stdout, which `memwire bench report` reads).
 */
import { platform } from '../../src/index.js';
import { collectVersions } from './environment.js';

export type Better = 'lower' | 'higher';

/** One measurement beside its anchor. Every row has exactly one anchor (null if unavailable). */
export interface Row {
  case: string;
  metric: string;
  unit: string;
  better: Better;
  memwire: number;
  anchor: number | null;
  anchorName: string;
  ratio: number | null;
  /** The runtime that measured this row, where it is not the report's own (ffi-call's children). */
  runtime?: string;
}

/** A goal for one row, printed with a pass/miss marker (never turned into an exit code). */
export interface Target {
  case: string;
  metric: string;
  anchorName: string;
  /** The row passes when its ratio is at most this. */
  maxRatio: number;
  /** For rows where higher is better: the row passes when its ratio is at least this (maxRatio is then ignored). */
  minRatio?: number;
  text: string;
}

export interface BenchReport {
  bench: string;
  runtime: string;
  backend: string;
  versions: Record<string, string | null>;
  rows: Row[];
  /** Human remarks: a missing anchor, what the anchor's columns mean, the timer's cost. */
  notes: string[];
  targets: (Target & { pass: boolean | null })[];
}

export function makeRow(
  caseName: string,
  metric: string,
  unit: string,
  better: Better,
  memwire: number,
  anchor: number | null,
  anchorName: string,
): Row {
  const ratio = anchor !== null && anchor > 0 ? memwire / anchor : null;
  return { case: caseName, metric, unit, better, memwire, anchor, anchorName, ratio };
}

/** Attach each target's verdict (null when its row has no ratio). */
export function judgeTargets(rows: readonly Row[], targets: readonly Target[]): (Target & { pass: boolean | null })[] {
  return targets.map((target) => {
    const row = rows.find((r) => r.case === target.case && r.metric === target.metric && r.anchorName === target.anchorName);
    const pass = row?.ratio == null ? null : target.minRatio !== undefined ? row.ratio >= target.minRatio : row.ratio <= target.maxRatio;
    return { ...target, pass };
  });
}

function formatNumber(value: number | null, unit: string): string {
  if (value === null) return '—';
  if (unit === 'ns') return value.toFixed(1);
  if (unit === 'us') return value < 10 ? value.toFixed(3) : value < 1000 ? value.toFixed(2) : value.toFixed(0);
  return Math.abs(value) >= 100 ? value.toFixed(0) : value.toPrecision(3);
}

function table(header: readonly string[], body: readonly string[][], rightAligned: ReadonlySet<number>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i].length)));
  const line = (cells: readonly string[]) =>
    cells.map((cell, i) => (rightAligned.has(i) ? cell.padStart(widths[i]) : cell.padEnd(widths[i]))).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}

/** The human form: a table with ratio and anchor name, the targets, notes and versions. */
export function formatReport(report: BenchReport): string {
  const targetOf = (row: Row) =>
    report.targets.find((t) => t.case === row.case && t.metric === row.metric && t.anchorName === row.anchorName);
  const body = report.rows.map((row) => {
    const target = targetOf(row);
    const verdict = target ? `${target.minRatio !== undefined ? `≥${target.minRatio}` : `≤${target.maxRatio}`}× ${target.pass === null ? '? (no anchor)' : target.pass ? 'PASS' : 'MISS'}` : '';
    return [
      row.runtime ?? report.runtime,
      row.case,
      row.metric,
      row.unit,
      formatNumber(row.memwire, row.unit),
      formatNumber(row.anchor, row.unit),
      row.anchorName,
      row.ratio === null ? '—' : `${row.ratio.toFixed(2)}×`,
      verdict,
    ];
  });
  const lines = [
    `${report.bench} — ${report.versions.runtime ?? report.runtime}, ${report.backend} (ratio = memwire / anchor; ${report.rows[0]?.better ?? 'lower'} is better)`,
    '',
    table(['runtime', 'case', 'metric', 'unit', 'memwire', 'anchor', 'anchorName', 'ratio', 'target'], body, new Set([4, 5, 7])),
  ];
  if (report.targets.length > 0) {
    lines.push('', 'targets:');
    for (const t of report.targets) {
      lines.push(`  ${t.pass === null ? '?   ' : t.pass ? 'PASS' : 'MISS'}  ${t.text}`);
    }
  }
  if (report.notes.length > 0) {
    lines.push('', 'notes:');
    for (const note of report.notes) lines.push(`  - ${note}`);
  }
  lines.push('', 'versions:');
  for (const [key, value] of Object.entries(report.versions)) lines.push(`  ${key.padEnd(13)} ${value ?? '—'}`);
  return lines.join('\n');
}

/** Print the report: the table, or with `json` one JSON object as the last line of stdout. */
export function printReport(report: BenchReport, json: boolean): void {
  if (json) process.stdout.write(`${JSON.stringify(report)}\n`);
  else process.stdout.write(`${formatReport(report)}\n`);
}

/** The skeleton of a report for this runtime and backend. */
export function newReport(bench: string): BenchReport {
  return {
    bench,
    runtime: platform.runtime,
    backend: platform.backend,
    versions: collectVersions(),
    rows: [],
    notes: [],
    targets: [],
  };
}
