/**
 * The charts of `memwire bench report`: one SVG per benchmark and place, drawn by Vega-Lite
 * (compiled to Vega, rendered by Vega's headless SVG renderer: no browser, no canvas, no native
 * addon). vega and vega-lite are development dependencies: an installed memwire package has no
 * charts, and says so in the report, instead of carrying a charting library at run time.
 *
 * Two kinds of chart:
 * - latency against message size, when every case of the bench is a size, alone or after an
 *   operation (region-pingpong, postbox-pingpong: '64B'; rdma-lat: 'write-64B'): a line with a
 *   point per measurement for memwire and for each anchor, per runtime, all on the same axes, one
 *   panel per metric (p50, p99), log scales;
 * - bars otherwise (throughput, RDMA bandwidth, lock and signal hand-off, FFI call cost): one panel per
 *   case and metric, one bar per series.
 * Either way each data point is exactly one mark (a point or a bar); test/newcomer/report-charts.test.ts checks it.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pointsOf, type BenchRun, type ChartFile, type Place, type Point } from './report-model.js';

interface Renderer {
  toSvg(spec: object): Promise<string>;
}

/** Load vega and vega-lite, or say why they cannot be. */
export async function loadRenderer(): Promise<Renderer | string> {
  try {
    // Dynamic: they are development dependencies, absent from an installed package.
    const vegaLite = (await import('vega-lite')) as unknown as { compile(spec: object): { spec: object } };
    const vega = (await import('vega')) as unknown as {
      parse(spec: object): unknown;
      View: new (runtime: unknown, options: { renderer: 'none' }) => { toSVG(): Promise<string>; finalize(): void };
    };
    return {
      async toSvg(spec) {
        const view = new vega.View(vega.parse(vegaLite.compile(spec).spec), { renderer: 'none' });
        try {
          return await view.toSVG();
        } finally {
          view.finalize();
        }
      },
    };
  } catch (error) {
    return `charts skipped: vega and vega-lite are not installed (they are development dependencies: run \`npm install\` in a clone of memwire) — ${error instanceof Error ? error.message : String(error)}`;
  }
}

const WIDTH = 300;
const HEIGHT = 220;

/** Vega-Lite spec: latency against size, memwire and anchors per runtime on the same axes. */
export function latencySpec(title: string, points: readonly Point[]): object {
  const unit = points[0]?.unit ?? '';
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    data: { values: points },
    facet: { column: { field: 'metric', type: 'nominal', title: null } },
    spec: {
      width: WIDTH,
      height: HEIGHT,
      encoding: {
        x: { field: 'bytes', type: 'quantitative', scale: { type: 'log', base: 2 }, title: 'message size (bytes)', axis: { labelExpr: sizeLabelExpr } },
        y: { field: 'value', type: 'quantitative', scale: { type: 'log' }, title: `one-way latency (${unit})` },
        color: { field: 'series', type: 'nominal', title: 'series', legend: { labelLimit: 400 } },
        strokeDash: { field: 'who', type: 'nominal', title: 'measured', scale: { domain: ['memwire', 'anchor'], range: [[1, 0], [5, 3]] } },
        detail: { field: 'series' },
      },
      layer: [{ mark: { type: 'line' } }, { mark: { type: 'point', filled: true, size: 40 }, encoding: { tooltip: [{ field: 'series' }, { field: 'case' }, { field: 'value' }] } }],
    },
    resolve: { scale: { y: 'independent' } },
  };
}

// Axis labels in the units people read sizes in.
const sizeLabelExpr =
  "datum.value >= 1048576 ? format(datum.value / 1048576, '~g') + ' MiB' : datum.value >= 1024 ? format(datum.value / 1024, '~g') + ' KiB' : format(datum.value, '~g') + ' B'";

/** Vega-Lite spec: one panel per case and metric, one bar per series. */
export function barsSpec(title: string, points: readonly Point[]): object {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    data: { values: points.map((p) => ({ ...p, panel: `${p.case} · ${p.metric} (${p.unit})` })) },
    facet: { field: 'panel', type: 'nominal', title: null, sort: null, header: { labelLimit: 0, labelFontSize: 11 } },
    columns: 3,
    spec: {
      width: 240,
      height: 160,
      mark: { type: 'bar' },
      encoding: {
        x: { field: 'series', type: 'nominal', title: null, axis: { labelAngle: -30, labelLimit: 400 } },
        y: { field: 'value', type: 'quantitative', title: null },
        color: { field: 'series', type: 'nominal', title: 'series', legend: { labelLimit: 400 } },
        tooltip: [{ field: 'series' }, { field: 'value' }],
      },
    },
    // Each panel its own x too: a panel shows only the series measured for its case (rdma-lat's
    // WRITE panels have no ib_send_lat bar), and every panel gets its own axis labels.
    resolve: { scale: { x: 'independent', y: 'independent' } },
  };
}

/** Which chart a bench gets: latency against size when every case is a size and every metric a latency percentile. */
export function chartKind(points: readonly Point[]): ChartFile['kind'] {
  const bySize = points.length > 0 && points.every((p) => p.bytes !== null && /^p\d+$/.test(p.metric));
  const sizes = new Set(points.map((p) => p.bytes));
  return bySize && sizes.size > 1 ? 'latency-vs-size' : 'bars';
}

/** Write one SVG per bench and place under outDir/charts; returns what was written. */
export async function writeCharts(outDir: string, runs: readonly BenchRun[], renderer: Renderer): Promise<ChartFile[]> {
  mkdirSync(join(outDir, 'charts'), { recursive: true });
  const groups = new Map<string, { bench: string; place: Place; points: Point[] }>();
  for (const run of runs) {
    const key = `${run.bench}\u0000${run.place}`;
    const group = groups.get(key) ?? { bench: run.bench, place: run.place, points: [] };
    group.points.push(...pointsOf(run));
    groups.set(key, group);
  }
  const charts: ChartFile[] = [];
  for (const { bench, place, points } of groups.values()) {
    if (points.length === 0) continue;
    const kind = chartKind(points);
    const where = place === 'rxe' ? 'over Soft-RoCE (rxe guest)' : 'on this host';
    const title = `${bench} ${where}: memwire and its anchors, per runtime`;
    const svg = await renderer.toSvg(kind === 'latency-vs-size' ? latencySpec(title, points) : barsSpec(title, points));
    const file = join('charts', `${bench}${place === 'rxe' ? '.rxe' : ''}.svg`);
    writeFileSync(join(outDir, file), svg);
    charts.push({ file, bench, place, kind, points: points.length });
  }
  return charts;
}
