// `memwire bench report --quick` on this host, on real benchmarks (two of them, to keep the suite
// short: ffi-call and shmem-signal, on Node, Bun and Deno): it exits 0, report.json holds each
// bench's own JSON unchanged (compared with the last stdout line the bench printed, kept in its
// log), every chart is a well-formed, non-empty SVG with one mark per data point of report.json,
// and report.md shows every run. Figures are never judged here.
//
// Runs on the Node part of `npm test` only: the report starts every runtime itself.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { runtimeName } from '../../ffi/runtime.js';
import { pointsOf, type FullReport } from '../../src/cli/report-model.js';
import { lastJsonReport } from '../../src/cli/report.js';
import { countDataMarks, wellFormed } from './svg-marks.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const onOtherRuntime = runtimeName !== 'node';
const out = mkdtempSync(join(tmpdir(), 'memwire-report-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

function runReport(args: string[], timeoutMs: number): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(root, 'dist/src/cli/main.js'), 'bench', 'report', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += String(d)));
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs); // the report kills its bench's process group on exit
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

describe.skipIf(onOtherRuntime)(`memwire bench report --quick${onOtherRuntime ? ' (skipped: the Node part runs it; it starts every runtime itself)' : ''}`, () => {
  let full: FullReport;

  it('runs the benches on Node, Bun and Deno, showing progress, and exits 0', async () => {
    const { code, stderr } = await runReport(['--quick', '--only', 'ffi-call,shmem-signal', '--out', out], 540_000);
    expect(code, stderr).toBe(0);
    expect(stderr).toMatch(/\[1\/6 · \d+:\d\d\] ffi-call on node — left after it: ffi-call\/bun ffi-call\/deno shmem-signal\/node shmem-signal\/bun shmem-signal\/deno/);
    expect(stderr).toMatch(/\[6\/6 · \d+:\d\d\] shmem-signal on deno — left after it: none/);
    full = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as FullReport;
    expect(full.runs.map((r) => `${r.bench}/${r.runtime}/${r.status}`)).toEqual(['ffi-call/node/ok', 'ffi-call/bun/ok', 'ffi-call/deno/ok', 'shmem-signal/node/ok', 'shmem-signal/bun/ok', 'shmem-signal/deno/ok']);
  }, 550_000);

  it("report.json holds each bench's own JSON, unchanged", () => {
    for (const run of full.runs) {
      const log = readFileSync(join(out, run.log!), 'utf8');
      const stdout = log.slice(log.indexOf('--- stdout\n') + 11, log.indexOf('\n--- stderr\n'));
      expect(run.report).toEqual(lastJsonReport(stdout));
      expect(run.report!.runtime).toBe(run.runtime);
      expect(run.report!.rows.length).toBeGreaterThan(0);
    }
  });

  it('writes one well-formed chart per bench, one mark per data point', () => {
    expect(full.chartsNote).toBeNull();
    expect(full.charts.map((c) => c.file).sort()).toEqual(['charts/ffi-call.svg', 'charts/shmem-signal.svg']);
    for (const chart of full.charts) {
      const file = join(out, chart.file);
      expect(statSync(file).size).toBeGreaterThan(1000);
      const svg = readFileSync(file, 'utf8');
      expect(wellFormed(svg), chart.file).toBe(true);
      const points = full.runs.filter((r) => r.bench === chart.bench).flatMap(pointsOf).length;
      expect(points).toBeGreaterThan(0);
      expect(chart.points).toBe(points);
      expect(countDataMarks(svg), chart.file).toBe(points);
    }
  });

  it('report.md shows every run, its rows, the targets and the versions', () => {
    const md = readFileSync(join(out, 'report.md'), 'utf8');
    for (const run of full.runs) {
      expect(md).toContain(`| ${run.bench} | ${run.runtime} | host | ok |`);
      for (const row of run.report!.rows) expect(md).toContain(`| ${run.runtime} | host | ${row.case} | ${row.metric} | ${row.unit} |`);
    }
    expect(md).toMatch(/\d+ met, \d+ missed/);
    expect(md).toContain('![shmem-signal (host)](charts/shmem-signal.svg)');
    expect(md).toContain('## Machine and versions');
    expect(existsSync(join(out, 'logs'))).toBe(true);
  });
});
