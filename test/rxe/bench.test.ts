/**
 * The RDMA benches end to end on the tier's devices: one short round of `rdma-write-bw` and of
 * `rdma-lat` through the CLI (the built dist/, run by this test's own runtime), perftest's tools
 * included. No figure is judged (timings in the guest are noise, and a test never asserts a
 * time); what is checked is that both sides ran, measured something, and made a complete report.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { skipReason, suffix } from './helpers.js';

const CLI = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url));

interface ReportRow {
  case: string;
  metric: string;
  memwire: number;
  anchor: number | null;
  anchorName: string | null;
  ratio: number | null;
}

function bench(name: string, args: readonly string[]): { rows: ReportRow[]; notes: string[]; stderr: string } {
  const run = spawnSync(process.execPath, [CLI, 'bench', name, '--quick', '--rounds', '1', '--json', ...args], { encoding: 'utf8', timeout: 150_000 });
  const why = `${name} exited ${run.status} (${run.signal ?? 'no signal'}):\n${run.stderr}`;
  expect(run.status, why).toBe(0);
  const last = run.stdout.trim().split('\n').pop() ?? '';
  const report = JSON.parse(last) as { bench: string; rows: ReportRow[]; notes: string[] };
  expect(report.bench).toBe(name);
  return { rows: report.rows, notes: report.notes, stderr: run.stderr };
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

  it('rdma-write-bw: one 4 KiB round of memwire and ib_write_bw, with the per-write CPU split', { timeout: 180_000 }, () => {
    const { rows, stderr } = bench('rdma-write-bw', ['--sizes', '4KiB', '--iterations', '1000']);
    expect(rows.map((r) => r.case)).toEqual(['4KiB']);
    expectMeasured(rows[0], 'ib_write_bw');
    // The server went quiet and the client reported where its time went (Linux /proc).
    expect(stderr).toMatch(/memwire [\d.]+ MB\/s over 1000 writes \(\d+ ms, quiet after \d+ ms; user \d+ µs, system \d+ µs, ksoftirqd \d+ µs per write\)/);
  });

  it('rdma-lat: one round of WRITE and SEND ping-pong against ib_write_lat and ib_send_lat', { timeout: 180_000 }, () => {
    const { rows } = bench('rdma-lat', ['--iterations', '500', '--warmup', '200']);
    const p50 = (anchor: string) => rows.find((r) => r.anchorName === anchor && /p50/.test(r.metric));
    expectMeasured(p50('ib_write_lat'), 'ib_write_lat');
    expectMeasured(p50('ib_send_lat'), 'ib_send_lat');
  });
});
