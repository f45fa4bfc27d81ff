// The charts of `memwire bench report`, from runs made up here (pure logic plus the real vega
// renderer, no benchmark run): each SVG is well-formed and holds one mark per data point; the
// chart kind follows the data; the Markdown shows every row. The report run on real benches is
// test/newcomer/bench-report.test.ts.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { BenchReport, Row } from '../../bench/lib/report.js';
import { loadRenderer, writeCharts } from '../../src/cli/report-charts.js';
import { renderMarkdown } from '../../src/cli/report-markdown.js';
import { pointsOf, sizeOfLabel, type BenchRun, type FullReport } from '../../src/cli/report-model.js';
import { failureLine, lastJsonReport } from '../../src/cli/report.js';
import { countDataMarks, wellFormed } from './svg-marks.js';

const out = mkdtempSync(join(tmpdir(), 'memwire-charts-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

function row(caseName: string, metric: string, unit: string, memwire: number, anchor: number | null, anchorName: string): Row {
  return { case: caseName, metric, unit, better: 'lower', memwire, anchor, anchorName, ratio: anchor ? memwire / anchor : null };
}

function run(bench: string, runtime: string, rows: Row[], place: 'host' | 'rxe' = 'host'): BenchRun {
  const report: BenchReport = { bench, runtime, backend: runtime === 'bun' ? 'bun:ffi' : 'koffi', versions: { runtime }, rows, notes: [], targets: [] };
  return { bench, runtime, place, status: 'ok', exitCode: 0, seconds: 1, report, error: null, log: null };
}

const sizes = ['64B', '256B', '1KiB', '4KiB', '64KiB'];
const latencyRuns = ['node', 'bun'].map((rt, k) =>
  run(
    'pingpong',
    rt,
    sizes.flatMap((s, i) => [
      row(s, 'p50', 'us', 0.3 + i + k, 0.5 + i, 'ucx-posix'),
      row(s, 'p99', 'us', 0.9 + i + k, i === 2 ? null : 1.5 + i, 'ucx-posix'), // one anchor missing: no mark for it
      row(s, 'p50', 'us', 0.3 + i + k, 7 + i, `${rt}-uds`),
    ]),
  ),
);
const barRuns = ['node', 'bun'].map((rt) =>
  run('lock', rt, [row('uncontended', 'p50', 'ns', 70, 25, 'c-mutex'), row('contended', 'p50', 'us', 6.5, 5.7, 'c-mutex'), row('contended', 'p99', 'us', 0, 15, 'c-mutex')]),
);
const rxeRun = run('rdma-lat', 'node', [row('WRITE 2B', 'p50', 'us', 35, 29, 'ib_write_lat')], 'rxe');

describe('bench report charts', () => {
  it('size labels are read as the benches print them', () => {
    expect(sizeOfLabel('64B')).toBe(64);
    expect(sizeOfLabel('1 KiB')).toBe(1024);
    expect(sizeOfLabel('1MiB')).toBe(1 << 20);
    expect(sizeOfLabel('uncontended')).toBeNull();
  });

  it('one mark per data point, in well-formed SVG, latency against size and bars', async () => {
    const renderer = await loadRenderer();
    if (typeof renderer === 'string') throw new Error(renderer); // a dev dependency: always present in a checkout
    const runs = [...latencyRuns, ...barRuns, rxeRun];
    const charts = await writeCharts(out, runs, renderer);
    expect(charts.map((c) => [c.bench, c.place, c.kind])).toEqual([
      ['pingpong', 'host', 'latency-vs-size'],
      ['lock', 'host', 'bars'],
      ['rdma-lat', 'rxe', 'bars'],
    ]);
    for (const chart of charts) {
      const svg = readFileSync(join(out, chart.file), 'utf8');
      expect(wellFormed(svg), chart.file).toBe(true);
      const expected = runs.filter((r) => r.bench === chart.bench && r.place === chart.place).flatMap(pointsOf).length;
      expect(chart.points).toBe(expected);
      expect(countDataMarks(svg, chart.kind === 'bars' ? ['rect'] : ['symbol']), chart.file).toBe(expected);
    }
    // 2 runtimes × 5 sizes × (p50 memwire + ucx + uds, p99 memwire + ucx) − the missing p99 anchor, twice
    expect(charts[0].points).toBe(2 * 5 * 5 - 2);
    // the zero p99 cannot be drawn (log axes, and a zero bar says nothing): 2 × (6 − 1)
    expect(charts[1].points).toBe(10);
  });

  it('report.md shows every row of every run, with its ratio and target', () => {
    const runs = [...barRuns];
    runs[0].report!.targets = [{ case: 'contended', metric: 'p50', anchorName: 'c-mutex', maxRatio: 2, text: 'hand-off within 2×', pass: true }];
    const full: FullReport = {
      tool: 'memwire bench report', startedAt: 'a', finishedAt: 'b',
      options: { quick: true, rxe: false, only: null, runtimes: ['node', 'bun'] },
      runs: [...runs, { bench: 'rdma-lat', runtime: 'node', place: 'host', status: 'skipped', exitCode: null, seconds: 0, report: null, error: 'no RDMA device here', log: null }],
      charts: [], chartsNote: null,
    };
    const md = renderMarkdown(full);
    expect(md).toContain('1 met, 0 missed');
    expect(md).toContain('| node | host | contended | p50 | us | 6.50 | 5.70 | c-mutex | 1.14× | ≤ 2× met |');
    expect(md).toContain('| bun | host | uncontended | p50 | ns | 70.0 | 25.0 | c-mutex | 2.80× |  |');
    expect(md).toContain('skipped: no RDMA device here');
  });

  it("a bench's report is its last stdout line, or nothing", () => {
    const report = { bench: 'x', runtime: 'node', backend: 'koffi', versions: {}, rows: [], notes: [], targets: [] };
    expect(lastJsonReport(`progress\n${JSON.stringify(report)}\n`)).toEqual(report);
    expect(lastJsonReport('a table\n')).toBeNull();
    expect(lastJsonReport('{"not":"a report"}')).toBeNull();
  });

  it("a failed bench is summed up by its own 'failed' line, not a stack frame", () => {
    expect(failureLine('[bench] 64B\nmemwire bench x failed: Error: timed out\n    at f (a.js:1:1)\n')).toBe('memwire bench x failed: Error: timed out');
    expect(failureLine('boom\n    at f (a.js:1:1)\n')).toBe('boom');
  });
});
