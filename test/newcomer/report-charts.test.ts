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
import { pointsOf, sizedCase, sizeOfLabel, type BenchRun, type FullReport } from '../../src/cli/report-model.js';
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
// Over rxe: rdma-lat's cases name an operation and a size ('write-2B'), so they are drawn against
// size with ib_write_lat / ib_send_lat on the same axes; rdma-write-bw's are bandwidth bars.
const rxeSizes = ['2B', '64B', '1KiB'];
const rxeLatencyRuns = ['node', 'bun'].map((rt, k) =>
  run(
    'rdma-lat',
    rt,
    rxeSizes.flatMap((s, i) =>
      (['write', 'send'] as const).flatMap((op) => [
        row(`${op}-${s}`, 'p50', 'us', 30 + i + k, 25 + i, `ib_${op}_lat`),
        row(`${op}-${s}`, 'p99', 'us', 300 + i + k, op === 'send' && i === 2 && rt === 'bun' ? null : 150 + i, `ib_${op}_lat`), // one perftest run failed
      ]),
    ),
    'rxe',
  ),
);
const rxeBandwidthRun = run('rdma-write-bw', 'node', [row('4KiB', 'bandwidth', 'MB/s', 90, 100, 'ib_write_bw'), row('64KiB', 'bandwidth', 'MB/s', 180, 200, 'ib_write_bw')], 'rxe');

describe('bench report charts', () => {
  it('size labels are read as the benches print them', () => {
    expect(sizeOfLabel('64B')).toBe(64);
    expect(sizeOfLabel('1 KiB')).toBe(1024);
    expect(sizeOfLabel('1MiB')).toBe(1 << 20);
    expect(sizeOfLabel('uncontended')).toBeNull();
    expect(sizedCase('write-2B')).toEqual({ op: 'write', bytes: 2 });
    expect(sizedCase('send-16KiB')).toEqual({ op: 'send', bytes: 16384 });
    expect(sizedCase('64KiB')).toEqual({ op: null, bytes: 65536 });
    expect(sizedCase('churn 64KiB')).toBeNull();
    expect(sizedCase('contended hand-off (2 processes)')).toBeNull();
  });

  it('one mark per data point, in well-formed SVG, latency against size and bars', async () => {
    const renderer = await loadRenderer();
    if (typeof renderer === 'string') throw new Error(renderer); // a dev dependency: always present in a checkout
    const runs = [...latencyRuns, ...barRuns, ...rxeLatencyRuns, rxeBandwidthRun];
    const charts = await writeCharts(out, runs, renderer);
    expect(charts.map((c) => [c.bench, c.place, c.kind])).toEqual([
      ['pingpong', 'host', 'latency-vs-size'],
      ['lock', 'host', 'bars'],
      ['rdma-lat', 'rxe', 'latency-vs-size'],
      ['rdma-write-bw', 'rxe', 'bars'],
    ]);
    expect(charts.map((c) => c.file)).toEqual(['charts/pingpong.svg', 'charts/lock.svg', 'charts/rdma-lat.rxe.svg', 'charts/rdma-write-bw.rxe.svg']);
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
    // 2 runtimes × 3 sizes × 2 operations × 2 metrics × (memwire + perftest) − the failed one
    expect(charts[2].points).toBe(2 * 3 * 2 * 2 * 2 - 1);
    // one series per operation for memwire, one per perftest tool, per runtime, all on the same axes
    const rxeSvg = readFileSync(join(out, charts[2].file), 'utf8');
    for (const series of ['memwire write · node', 'memwire send · bun', 'ib_write_lat · node', 'ib_send_lat · bun']) expect(rxeSvg).toContain(series);
    expect(rxeSvg).toContain('over Soft-RoCE (rxe guest)');
    expect(charts[3].points).toBe(4);
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

  it('report.md is honest about rxe runs: each shown where it ran, failed and interrupted ones with the reason', () => {
    const notReported: BenchRun = {
      bench: 'rdma-coalesce', runtime: 'bun', place: 'rxe', status: 'failed', exitCode: 124, seconds: 0, report: null,
      error: 'the guest did not report it (run.sh: run.sh --timeout reached; see logs/rxe-guest.log)', log: 'logs/rxe-guest.log',
    };
    const notStarted: BenchRun = { ...notReported, bench: 'regcache', status: 'skipped', exitCode: null, error: 'not started: the report was interrupted (SIGTERM)', log: null };
    const full: FullReport = {
      tool: 'memwire bench report', startedAt: 'a', finishedAt: 'b',
      options: { quick: true, rxe: true, only: null, runtimes: ['node', 'bun'] },
      runs: [...rxeLatencyRuns, notReported, notStarted],
      charts: [{ file: 'charts/rdma-lat.rxe.svg', bench: 'rdma-lat', place: 'rxe', kind: 'latency-vs-size', points: 47 }], chartsNote: null,
    };
    const md = renderMarkdown(full);
    expect(md).toContain('with `memwire bench report --quick --rxe`');
    expect(md).toContain('| rdma-lat | bun | rxe guest | ok |');
    expect(md).toContain('| rdma-coalesce | bun | rxe guest | failed: the guest did not report it (run.sh: run.sh --timeout reached; see logs/rxe-guest.log) |');
    expect(md).toContain('| regcache | bun | rxe guest | skipped: not started: the report was interrupted (SIGTERM) |  |');
    expect(md).toContain('![rdma-lat (rxe)](charts/rdma-lat.rxe.svg)');
    expect(md).toContain('| node | rxe guest | write-64B | p50 | us | 31.0 | 26.0 | ib_write_lat | 1.19× |  |');
    expect(md).toContain('| bun (rxe guest) |');
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
