// `memwire bench <name> --runtime node|bun|deno` runs the bench under that runtime: the report it
// prints names the runtime and FFI backend that measured it (a real run, with few iterations).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const MAIN = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url));
const BACKEND = { node: 'koffi', bun: 'bun:ffi', deno: 'deno' } as const;

function benchOn(runtime: string): { status: number | null; report?: { runtime: string; backend: string; rows: { runtime?: string }[] }; stderr: string } {
  // Started from Node whatever runs this file, so --runtime always has something to switch from.
  const run = spawnSync('node', [MAIN, 'bench', 'ffi-call', '--runtime', runtime, '--no-other-runtime', '--iterations', '20000', '--batches', '3', '--warmup', '1', '--json'], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  const last = run.stdout.trim().split('\n').pop() ?? '';
  return { status: run.status, report: last.startsWith('{') ? JSON.parse(last) : undefined, stderr: run.stderr };
}

describe('memwire bench --runtime', () => {
  for (const runtime of ['node', 'bun', 'deno'] as const) {
    it(`--runtime ${runtime}: measured by ${runtime} on ${BACKEND[runtime]}`, () => {
      const { status, report, stderr } = benchOn(runtime);
      expect(status, stderr).toBe(0);
      expect(report?.runtime).toBe(runtime);
      expect(report?.backend).toBe(BACKEND[runtime]);
    });
  }

  it('an unknown runtime is a usage error (exit 2) naming the choices', () => {
    const run = spawnSync('node', [MAIN, 'bench', 'ffi-call', '--runtime', 'rhino'], { encoding: 'utf8', timeout: 30_000 });
    expect(run.status).toBe(2);
    expect(run.stderr).toContain('node, bun, deno');
  });
});
