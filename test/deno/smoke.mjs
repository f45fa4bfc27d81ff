// Deno smoke test: create a region, open it from a second Deno process, and count Atomics.add
// from both. Run by scripts/test-all.mjs as `deno run --allow-ffi ... test/deno/smoke.mjs`;
// prints "N passed, N failed" and exits non-zero on failure.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { selfCommand } from '../../dist/ffi/runtime.js';
import { platform, SharedRegion } from '../../dist/src/index.js';

const ADDS = 200_000;
const [role, name] = process.argv.slice(2);

if (role === 'child') {
  const region = SharedRegion.open(name);
  Atomics.add(region.int32, 1, 1);
  while (Atomics.load(region.int32, 1) < 2); // start together
  for (let i = 0; i < ADDS; i++) Atomics.add(region.int32, 0, 1);
  region.close();
} else {
  let passed = 0;
  let failed = 0;
  const check = (label, ok, detail = '') => {
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${label}${detail ? `: ${detail}` : ''}`);
    ok ? passed++ : failed++;
  };
  check('runtime is deno with the koffi backend', platform.runtime === 'deno' && platform.backend === 'koffi', `${platform.runtime} ${platform.runtimeVersion} / ${platform.backend}`);
  const regionName = `test.deno.${process.pid}.${Date.now().toString(36)}`;
  const region = SharedRegion.create(regionName, 4096);
  try {
    const opened = SharedRegion.open(regionName);
    region.bytes[100] = 77;
    check('create then open sees the same bytes', opened.bytes[100] === 77);
    opened.close();
    const [exe, ...args] = selfCommand(fileURLToPath(import.meta.url), ['child', regionName]);
    const child = spawn(exe, args, { stdio: 'inherit' });
    Atomics.add(region.int32, 1, 1);
    while (Atomics.load(region.int32, 1) < 2) await new Promise((r) => setTimeout(r, 0));
    for (let i = 0; i < ADDS; i++) Atomics.add(region.int32, 0, 1);
    const code = await new Promise((resolve) => child.on('exit', (c) => resolve(c)));
    check('second Deno process exited cleanly', code === 0, `exit ${code}`);
    const total = Atomics.load(region.int32, 0);
    check(`Atomics.add from two processes totals ${2 * ADDS}`, total === 2 * ADDS, `got ${total}`);
  } finally {
    region.dispose();
  }
  console.log(`deno: ${passed} passed, ${failed} failed`);
  process.exitCode = failed ? 1 : 0;
}
