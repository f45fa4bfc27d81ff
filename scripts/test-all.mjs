#!/usr/bin/env node
// The README's test command runs this (after the build): the same suite on Node (koffi), on Bun
// (bun:ffi) and on Deno (Deno's FFI), then a check that /dev/shm holds no memwire object of ours.
// Prints one closing line: "total: N passed, N failed, N skipped". Exit 0 only if every part ran
// at least one test and none failed.
//
// Arguments pick parts: `node`, `bun`, `deno` (the default set), and `rxe-node`, `rxe-bun`, `rxe-deno` — the
// rxe tier (vitest.rxe.config.ts), which needs an RDMA device: `npm run test:rxe` runs those
// inside the Soft-RoCE guest (scripts/rxe/run.sh).
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const bin = (name) => join(root, 'node_modules', '.bin', name);
const reports = join(root, '.cache', 'test-reports');
rmSync(reports, { recursive: true, force: true });
mkdirSync(reports, { recursive: true });

// Deno 2 opens /dev/shm, /proc and /sys to --allow-all only (ffi/deno-permissions.ts).
const DENO_RUN = [bin('deno'), 'run', '--allow-all'];
const only = process.argv.slice(2);
const DEFAULT_PARTS = ['node', 'bun', 'deno'];

const vitestPart = (name, runtimeCmd, config, env) => ({
  name,
  cmd: [...runtimeCmd, bin('vitest'), 'run', ...config, '--reporter=default', '--reporter=json', `--outputFile.json=${join(reports, `${name}.json`)}`],
  env,
  json: join(reports, `${name}.json`),
});
const RXE_CONFIG = ['--config', 'vitest.rxe.config.ts'];

const parts = [
  vitestPart('node', [process.execPath], [], { MEMWIRE_EXPECT_RUNTIME: 'node', MEMWIRE_EXPECT_BACKEND: 'koffi' }),
  vitestPart('bun', [bin('bun'), '--bun'], [], { MEMWIRE_EXPECT_RUNTIME: 'bun', MEMWIRE_EXPECT_BACKEND: 'bun:ffi' }),
  // Deno runs vitest itself (npm compatibility): the same test files, on Deno's own FFI.
  vitestPart('deno', DENO_RUN, [], { MEMWIRE_EXPECT_RUNTIME: 'deno', MEMWIRE_EXPECT_BACKEND: 'deno' }),
  vitestPart('rxe-node', [process.execPath], RXE_CONFIG, { MEMWIRE_EXPECT_RUNTIME: 'node', MEMWIRE_EXPECT_BACKEND: 'koffi' }),
  vitestPart('rxe-bun', [bin('bun'), '--bun'], RXE_CONFIG, { MEMWIRE_EXPECT_RUNTIME: 'bun', MEMWIRE_EXPECT_BACKEND: 'bun:ffi' }),
  vitestPart('rxe-deno', DENO_RUN, RXE_CONFIG, { MEMWIRE_EXPECT_RUNTIME: 'deno', MEMWIRE_EXPECT_BACKEND: 'deno' }),
].filter((p) => (only.length ? only.includes(p.name) : DEFAULT_PARTS.includes(p.name)));
if (only.some((name) => !parts.some((p) => p.name === name))) {
  console.error(`test-all: unknown part in ${only.join(' ')}; parts: node bun deno rxe-node rxe-bun rxe-deno`);
  process.exit(2);
}

const prefix = `memwire.u${process.getuid()}.`;
const shmObjects = () => readdirSync('/dev/shm').filter((e) => e.startsWith(prefix));
const before = new Set(shmObjects()); // another program's objects are not the suite's leaks

const totals = { passed: 0, failed: 0, skipped: 0 };
const lines = [];
// Each failed test by name with the first line of its error, so the summary — often all a CI log
// keeps of a long run — says what failed, not only how many.
const failedTests = [];
const failuresOf = (report, partName) => {
  for (const file of report.testResults ?? []) {
    for (const t of file.assertionResults ?? []) {
      if (t.status !== 'failed') continue;
      const first = String(t.failureMessages?.[0] ?? '').split('\n')[0].slice(0, 300);
      failedTests.push(`  ${partName}: ${file.name.replace(root, '')} > ${t.fullName}\n      ${first}`);
    }
    if (file.status === 'failed' && !(file.assertionResults ?? []).some((t) => t.status === 'failed')) {
      failedTests.push(`  ${partName}: ${file.name.replace(root, '')}: ${String(file.message ?? '').split('\n')[0].slice(0, 300)}`);
    }
  }
};
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
      failuresOf(r, part.name);
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
  lines.push(`  ${part.name.padEnd(8)} ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped (exit ${run.status ?? run.signal})`);
}

const left = shmObjects().filter((e) => !before.has(e));
if (left.length) {
  lines.push(`  /dev/shm still holds ${left.join(', ')}`);
  totals.failed++;
} else {
  lines.push('  /dev/shm holds no memwire object: nothing leaked');
  totals.passed++;
}

if (failedTests.length) console.log(`\nfailed\n${failedTests.join('\n')}`);
console.log(`\nsummary\n${lines.join('\n')}`);
console.log(`total: ${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
process.exitCode = totals.failed ? 1 : 0;
