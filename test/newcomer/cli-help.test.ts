// The memwire command's own surface, on the runtime under test: --version, --help on every
// subcommand (exit 0, a usage line), and exit status 2 for every usage mistake.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const cli = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url));
const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
const memwire = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 30_000 });

describe('memwire command line', () => {
  it('--version prints the package version', () => {
    const run = memwire('--version');
    expect(run.status).toBe(0);
    expect(run.stdout.trim()).toBe(pkg.version);
  });

  for (const args of [['--help'], ['doctor', '--help'], ['demo', '--help'], ['bench', '--help'], ['bench', 'ffi-call', '--help'], ['bench', 'report', '--help']]) {
    it(`${args.join(' ')}: usage, exit 0`, () => {
      const run = memwire(...args);
      expect(run.status, run.stderr).toBe(0);
      expect(run.stdout).toMatch(/^usage: memwire/);
    });
  }

  for (const args of [['frobnicate'], ['demo', '--rounds', 'x'], ['bench', 'nope'], ['bench', 'report', '--bogus'], ['bench', 'report', '--only', 'nope'], ['bench', 'report', '--runtimes', 'perl']]) {
    it(`${args.join(' ')}: a usage mistake, exit 2`, () => {
      const run = memwire(...args);
      expect(run.status, run.stdout + run.stderr).toBe(2);
      expect(run.stderr).not.toBe('');
    });
  }
});
