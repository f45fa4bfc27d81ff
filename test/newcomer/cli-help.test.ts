// The memwire command's own surface, on the runtime under test: --version, --help on every
// subcommand (exit 0, a usage line), and exit status 2 for every usage mistake.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { selfCommand } from '../../ffi/runtime.js';

const cli = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url));
const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
const memwire = (...args: string[]) => {
  const [exe, ...argv] = selfCommand(cli, args);
  return spawnSync(exe, argv, { encoding: 'utf8', timeout: 30_000 });
};

describe('memwire command line', () => {
  it('--version prints the package version', () => {
    const run = memwire('--version');
    expect(run.status).toBe(0);
    expect(run.stdout.trim()).toBe(pkg.version);
  });

  for (const args of [['--help'], ['help'], ['doctor', '--help'], ['demo', '--help'], ['agent', '--help'], ['help', 'agent'], ['bench', '--help'], ['bench', 'ffi-call', '--help'], ['bench', 'report', '--help']]) {
    it(`${args.join(' ')}: usage, exit 0`, () => {
      const run = memwire(...args);
      expect(run.status, run.stderr).toBe(0);
      expect(run.stdout).toMatch(/^usage: memwire/);
    });
  }

  for (const args of [
    [], ['frobnicate'], ['help', 'frobnicate'], ['doctor', '--bogus'], ['demo', '--bogus'], ['demo', '--rounds', 'x'], ['demo', '--bulk'], ['agent'], ['agent', '--device'],
    ['agent', '--device', 'rxe0', '--bogus'], ['bench', 'nope'], ['bench', 'ffi-call', '--bogus'], ['bench', 'report', '--bogus'], ['bench', 'report', '--only', 'nope'],
    ['bench', 'report', '--runtimes', 'perl'],
  ]) {
    it(`${args.join(' ') || '(nothing)'}: a usage mistake, exit 2`, () => {
      const run = memwire(...args);
      expect(run.status, run.stdout + run.stderr).toBe(2);
      expect(run.stderr).not.toBe('');
    });
  }
});

// The guest side of `bench report --rxe` speaks one marked JSON line per run to the host (which
// reads them out of scripts/rxe/run.sh's stream). On a host without RDMA the bench fails at once
// with its NoDeviceError, and that failure must come back as a run, not vanish.
const hasRdma = (() => {
  try {
    return readdirSync('/sys/class/infiniband').length > 0;
  } catch {
    return false;
  }
})();
describe.skipIf(hasRdma)(`bench report's guest part${hasRdma ? ' (skipped: this host has an RDMA device, the bench would really run)' : ''}`, () => {
  it('reports each run as one marked line, failures included', () => {
    const run = memwire('bench', 'report', '--guest-part', '--only', 'rdma-lat', '--runtimes', 'node', '--quick');
    expect(run.status).toBe(1);
    const marked = (mark: string) => run.stdout.split('\n').filter((l) => l.startsWith(mark)).map((l) => JSON.parse(l.slice(mark.length)) as unknown);
    // Announced before it runs, then reported with its log.
    expect(marked('memwire-report-start ')).toEqual([{ bench: 'rdma-lat', runtime: 'node' }]);
    const lines = marked('memwire-report-run ') as { run: { bench: string; runtime: string; place: string; status: string; error: string; log: string }; log: string }[];
    expect(lines).toHaveLength(1);
    expect(lines[0].run).toMatchObject({ bench: 'rdma-lat', runtime: 'node', place: 'rxe', status: 'failed', log: 'logs/rdma-lat.node.rxe.log' });
    expect(lines[0].run.error).toMatch(/no RDMA device/);
    expect(lines[0].log).toMatch(/^\$ .*bench rdma-lat --json --quick\n--- stdout\n[^]*--- stderr\n[^]*no RDMA device/);
  });
});
