/**
 * Postbox test helpers: child processes running test/fixtures/postbox-child.ts (built into dist/)
 * with the runtime under test.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { selfCommand } from '../../ffi/runtime.js';
import type { Child } from '../helpers.js';

const SCRIPT = fileURLToPath(new URL('../../dist/test/fixtures/postbox-child.js', import.meta.url));

export function startPostboxChild(...args: string[]): Child & { stdout(): string } {
  const [exe, ...argv] = selfCommand(SCRIPT, args);
  const child = spawn(exe, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const listeners: (() => void)[] = [];
  child.stdout!.on('data', (d) => {
    out += String(d);
    listeners.forEach((l) => l());
  });
  child.stderr!.on('data', (d) => (err += String(d)));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return {
    process: child,
    exit,
    stderr: () => err,
    stdout: () => out,
    waitFor(line, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = () => out.split('\n').includes(line) && (clearTimeout(timer), resolve());
        const timer = setTimeout(() => reject(new Error(`child did not print ${line} in ${timeoutMs} ms; stderr: ${err}`)), timeoutMs);
        listeners.push(check);
        check();
      });
    },
  };
}
