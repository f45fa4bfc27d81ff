/**
 * The RDMA benches end to end on the tier's devices: one short round of `rdma-write-bw`, of
 * `rdma-lat`, and of `postbox-pingpong` / `postbox-stream --transport rdma` (two nodes, a Postbox
 * over RdmaTransport on each) through the CLI (the built dist/, run by this test's own runtime),
 * perftest's tools included. No figure is judged (timings in the guest are noise, and a test never asserts a
 * time); what is checked is that both sides ran, measured something, and made a complete report.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { skipReason, suffix } from './helpers.js';

const CLI = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url));

interface ReportTarget {
  case: string;
  metric: string;
  anchorName: string;
  pass: boolean | null;
}

interface ReportRow {
  case: string;
  metric: string;
  memwire: number;
  anchor: number | null;
  anchorName: string | null;
  ratio: number | null;
}

/**
 * Run one bench through the CLI. Asynchronous on purpose: a spawnSync of a bench that runs for
 * minutes in a busy guest blocks vitest's worker past its RPC timeout ("Timeout calling
 * onTaskUpdate"), which fails the run though every test passed.
 */
async function bench(name: string, args: readonly string[]): Promise<{ rows: ReportRow[]; notes: string[]; targets: ReportTarget[]; stderr: string }> {
  const child = spawn(process.execPath, [CLI, 'bench', name, '--quick', '--rounds', '1', '--json', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += String(d)));
  child.stderr.on('data', (d) => (stderr += String(d)));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGTERM');
  }, 170_000);
  const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (c, s) => resolve({ code: c, signal: s })),
  );
  clearTimeout(timer);
  const why = `${name} exited ${code} (${signal ?? 'no signal'}${timedOut ? ', killed after 170 s' : ''}):\n${stderr}`;
  expect(code, why).toBe(0);
  const last = stdout.trim().split('\n').pop() ?? '';
  const report = JSON.parse(last) as { bench: string; rows: ReportRow[]; notes: string[]; targets: ReportTarget[] };
  expect(report.bench).toBe(name);
  return { rows: report.rows, notes: report.notes, targets: report.targets, stderr };
}

function expectMeasured(row: ReportRow | undefined, anchorName: string): void {
  expect(row).toBeDefined();
  expect(row!.memwire).toBeGreaterThan(0);
  expect(row!.anchorName).toBe(anchorName);
  expect(row!.anchor).toBeGreaterThan(0);
  expect(Number.isFinite(row!.ratio)).toBe(true);
}

describe.skipIf(skipReason !== '')(`rdma benches through the CLI${suffix}`, () => {
  it('the CLI is built', () => {
    expect(existsSync(CLI), `${CLI} is missing: run npm run build`).toBe(true);
  });

  it('rdma-write-bw: one 4 KiB round of memwire and ib_write_bw, with the per-write CPU split', { timeout: 180_000 }, async () => {
    const { rows, stderr } = await bench('rdma-write-bw', ['--sizes', '4KiB', '--iterations', '1000']);
    expect(rows.map((r) => r.case)).toEqual(['4KiB']);
    expectMeasured(rows[0], 'ib_write_bw');
    // The server went quiet and the client reported where its time went (Linux /proc).
    expect(stderr).toMatch(/memwire [\d.]+ MB\/s over 1000 writes \(\d+ ms, quiet after \d+ ms; user \d+ µs, system \d+ µs, ksoftirqd \d+ µs per write\)/);
  });

  it('rdma-lat: one round of WRITE and SEND ping-pong against ib_write_lat and ib_send_lat', { timeout: 180_000 }, async () => {
    const { rows } = await bench('rdma-lat', ['--sizes', '2', '--iterations', '500', '--warmup', '200']);
    expect(rows.map((r) => `${r.case} ${r.metric}`)).toEqual(['write-2B p50', 'write-2B p99', 'send-2B p50', 'send-2B p99']);
    const p50 = (anchor: string) => rows.find((r) => r.anchorName === anchor && /p50/.test(r.metric));
    expectMeasured(p50('ib_write_lat'), 'ib_write_lat');
    expectMeasured(p50('ib_send_lat'), 'ib_send_lat');
  });

  it('postbox-pingpong --transport rdma: 64 B between two nodes against ib_write_lat, the target judged', { timeout: 180_000 }, async () => {
    const { rows, targets, notes } = await bench('postbox-pingpong', ['--transport', 'rdma', '--sizes', '64', '--iterations', '200', '--warmup', '100']);
    expect(rows.map((r) => `${r.case} ${r.metric}`)).toEqual(['64B p50', '64B p99']);
    for (const row of rows) expectMeasured(row, 'ib_write_lat');
    const target = targets.find((t) => t.case === '64B' && t.metric === 'p50');
    expect(target?.anchorName).toBe('ib_write_lat');
    expect(typeof target?.pass).toBe('boolean');
    expect(notes[0]).toMatch(/^transport rdma: node A: .*node B: /);
  });

  it('postbox-stream --transport rdma: 64 KiB from node B to node A against ib_write_bw, the target judged', { timeout: 180_000 }, async () => {
    const { rows, targets } = await bench('postbox-stream', ['--transport', 'rdma', '--sizes', '64KiB', '--iterations', '200']);
    expect(rows.map((r) => `${r.case} ${r.metric}`)).toEqual(['64KiB bandwidth']);
    expectMeasured(rows[0], 'ib_write_bw');
    const target = targets.find((t) => t.case === '64KiB' && t.metric === 'bandwidth');
    expect(target?.anchorName).toBe('ib_write_bw');
    expect(typeof target?.pass).toBe('boolean');
  });
});
