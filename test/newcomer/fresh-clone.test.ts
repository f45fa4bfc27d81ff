// A newcomer's path, verbatim: clone the repository into a temporary directory, then run every
// command of README.md's shell blocks that uses `npx memwire` — the first of them, `npm install &&
// npx memwire demo`, is the install step — each in a plain shell, and check each exits 0.
//
// It clones what is committed (HEAD), not the working tree. npm needs only the registry (its cache
// makes it quick after the project's own install). Runs on the Node part of `npm test` only: it
// starts npm and node itself, so under Bun or Deno it would run the very same commands again.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { runtimeName } from '../../ffi/runtime.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const onOtherRuntime = runtimeName !== 'node';
const git = spawnSync('git', ['-C', root, 'rev-parse', 'HEAD'], { encoding: 'utf8' });
const skipReason = onOtherRuntime
  ? 'the Node part runs it (it starts npm and node itself)'
  : git.status !== 0
    ? 'not a git checkout (or no git): nothing to clone'
    : null;

/** The README's shell lines that run memwire through npx, comments stripped, in order. */
export function readmeCommands(readme: string): string[] {
  const blocks = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]);
  return blocks
    .flatMap((block) => block.split('\n'))
    .map((line) => line.replace(/\s+#.*$/, '').trim())
    .filter((line) => /(^|&&\s*)npx memwire\b/.test(line));
}

// A newcomer's shell: none of the variables `npm test` sets, no node_modules/.bin of this checkout on PATH.
const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_|^INIT_CWD$|^MEMWIRE_EXPECT_/i.test(k)));
env.PATH = (process.env.PATH ?? '')
  .split(':')
  .filter((dir) => !dir.includes('node_modules/.bin'))
  .join(':');

/** Run a shell command without blocking this thread (a long spawnSync starves vitest's worker RPC). */
function shell(command: string, cwd: string, timeoutMs: number): Promise<{ code: number | null; output: string; seconds: number }> {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn('sh', ['-c', command], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let output = '';
    child.stdout.on('data', (d) => (output += String(d)));
    child.stderr.on('data', (d) => (output += String(d)));
    const timer = setTimeout(() => {
      output += `\n(timed out after ${timeoutMs} ms: killed)`;
      try {
        process.kill(-child.pid!, 'SIGKILL'); // the whole group: npm, node, the demo's peer
      } catch {
        // gone
      }
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output, seconds: (Date.now() - started) / 1000 });
    });
  });
}

const work = skipReason ? null : mkdtempSync(join(tmpdir(), 'memwire-clone-'));
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe.skipIf(skipReason !== null)(`a fresh clone runs the README's commands${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  const commands = readmeCommands(readFileSync(join(root, 'README.md'), 'utf8'));

  it('the README has the install step and the commands', () => {
    expect(commands[0]).toBe('npm install && npx memwire demo');
    expect(commands).toEqual(expect.arrayContaining(['npx memwire doctor', 'npx memwire bench list']));
    expect(commands.some((c) => /^npx memwire bench [a-z-]+ --quick$/.test(c) && !c.includes('report'))).toBe(true);
  });

  it('git clone', async () => {
    const clone = await shell(`git clone --quiet '${root}' memwire`, work!, 120_000);
    expect(clone.output).toBe('');
    expect(clone.code).toBe(0);
    expect(existsSync(join(work!, 'memwire', 'dist'))).toBe(false); // nothing built yet
  }, 130_000);

  for (const command of commands) {
    it(command, async () => {
      const run = await shell(command, join(work!, 'memwire'), 900_000); // ~1 min on an idle machine; 6 min seen at load 20
      const tail = run.output.trim().split('\n').slice(-15).join('\n');
      console.log(`${command}: exit ${run.code} in ${run.seconds.toFixed(1)} s`);
      expect(run.code, tail).toBe(0);
    }, 910_000);
  }
});
