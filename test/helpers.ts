/**
 * Test helpers: unique names, and child processes of the runtime under test.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { selfCommand } from '../ffi/runtime.js';

let counter = 0;
export function uniqueName(label: string): string {
  return `test.${label}.${process.pid}.${counter++}.${Date.now().toString(36)}`;
}

const CHILD = fileURLToPath(new URL('../dist/test/fixtures/child.js', import.meta.url));

export interface Child {
  process: ChildProcess;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves when the child prints `line` on stdout. */
  waitFor(line: string, timeoutMs?: number): Promise<void>;
  stderr(): string;
}

export function startChild(scenario: string, region: string, ...args: string[]): Child {
  const [exe, ...argv] = selfCommand(CHILD, [scenario, region, ...args]);
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

/** Wait for a child to exit, failing (and killing it) after a timeout. */
export async function finished(child: Child, timeoutMs = 30_000): Promise<number | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      child.process.kill('SIGKILL');
      reject(new Error(`child did not finish within ${timeoutMs} ms; stderr: ${child.stderr()}`));
    }, timeoutMs);
  });
  try {
    const { code, signal } = await Promise.race([child.exit, timeout]);
    if (signal) throw new Error(`child died of ${signal}; stderr: ${child.stderr()}`);
    if (code !== 0) throw new Error(`child exited ${code}; stderr: ${child.stderr()}`);
    return code;
  } finally {
    clearTimeout(timer);
  }
}
