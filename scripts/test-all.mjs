#!/usr/bin/env node
// The README's test command runs this (after the build): the same shm suite on Node (koffi)
// and on Bun (bun:ffi), the Deno smoke test, then a check that /dev/shm holds no memwire object
// of ours. Prints one closing line: "total: N passed, N failed, N skipped". Exit 0 only if every
// part ran at least one test and none failed.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const bin = (name) => join(root, 'node_modules', '.bin', name);
const reports = join(root, '.cache', 'test-reports');
rmSync(reports, { recursive: true, force: true });
mkdirSync(reports, { recursive: true });

const DENO_FLAGS = ['--allow-ffi', '--allow-read', '--allow-write', '--allow-env', '--allow-sys', '--allow-run', '--allow-net'];
const only = process.argv.slice(2); // e.g. `node scripts/test-all.mjs node` runs one part

const parts = [
  {
    name: 'node',
    cmd: [process.execPath, bin('vitest'), 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${join(reports, 'node.json')}`],
    env: { MEMWIRE_EXPECT_RUNTIME: 'node', MEMWIRE_EXPECT_BACKEND: 'koffi' },
    json: join(reports, 'node.json'),
  },
  {
    name: 'bun',
    cmd: [bin('bun'), '--bun', bin('vitest'), 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${join(reports, 'bun.json')}`],
    env: { MEMWIRE_EXPECT_RUNTIME: 'bun', MEMWIRE_EXPECT_BACKEND: 'bun:ffi' },
    json: join(reports, 'bun.json'),
  },
  {
    name: 'deno',
    cmd: [bin('deno'), 'run', ...DENO_FLAGS, join(root, 'test', 'deno', 'smoke.mjs')],
    env: {},
  },
].filter((p) => only.length === 0 || only.includes(p.name));

const totals = { passed: 0, failed: 0, skipped: 0 };
const lines = [];
for (const part of parts) {
  console.log(`\n=== ${part.name}: ${part.cmd.map((c) => c.replace(root, '')).join(' ')}`);
  const run = spawnSync(part.cmd[0], part.cmd.slice(1), {
    cwd: root,
    stdio: part.json ? 'inherit' : ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, ...part.env },
    timeout: 20 * 60_000,
  });
  let counts = { passed: 0, failed: 0, skipped: 0 };
  if (part.json) {
    try {
      const r = JSON.parse(readFileSync(part.json, 'utf8'));
      counts = { passed: r.numPassedTests, failed: r.numFailedTests, skipped: r.numPendingTests + (r.numTodoTests ?? 0) };
    } catch {
      counts.failed = 1; // no report: the runner itself failed
    }
  } else {
    const out = String(run.stdout ?? '');
    process.stdout.write(out);
    const m = out.match(/(\d+) passed, (\d+) failed/);
    counts = m ? { passed: Number(m[1]), failed: Number(m[2]), skipped: 0 } : { passed: 0, failed: 1, skipped: 0 };
  }
  if (run.status !== 0 && counts.failed === 0) counts.failed = 1; // e.g. a failing global teardown
  if (counts.passed === 0 && counts.failed === 0) counts.failed = 1; // a part that ran no test failed
  for (const k of Object.keys(totals)) totals[k] += counts[k];
  lines.push(`  ${part.name.padEnd(5)} ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped (exit ${run.status ?? run.signal})`);
}

const prefix = `memwire.u${process.getuid()}.`;
const left = readdirSync('/dev/shm').filter((e) => e.startsWith(prefix));
if (left.length) {
  lines.push(`  /dev/shm still holds ${left.join(', ')}`);
  totals.failed++;
} else {
  lines.push('  /dev/shm holds no memwire object: nothing leaked');
  totals.passed++;
}

console.log(`\nsummary\n${lines.join('\n')}`);
console.log(`total: ${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
process.exitCode = totals.failed ? 1 : 0;
