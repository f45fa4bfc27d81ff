/**
 * Test helpers: unique names, and child processes of the runtime under test.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { runtimeName, selfCommand, type RuntimeName } from '../ffi/runtime.js';

let counter = 0;
export function uniqueName(label: string): string {
  return `test.${label}.${process.pid}.${counter++}.${Date.now().toString(36)}`;
}

export interface Child {
  process: ChildProcess;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves when the child prints `line` on stdout; rejects if it exits first or times out. */
  waitFor(line: string, timeoutMs?: number): Promise<void>;
  /** Resolves with what `test` finds in the stdout lines so far (re-run on each output). */
  waitForMatch(test: (lines: string[]) => string | undefined, what: string, timeoutMs?: number): Promise<string>;
  stdout(): string;
  stderr(): string;
}

/** argv that runs `script` on `runtime`: this process's own runtime, or the project's Bun / Deno. */
export function commandOn(runtime: RuntimeName, script: string, args: readonly string[]): string[] {
  if (runtime === runtimeName) return selfCommand(script, args);
  const bin = (name: string) => fileURLToPath(new URL(`../node_modules/.bin/${name}`, import.meta.url));
  if (runtime === 'bun') return [bin('bun'), script, ...args];
  if (runtime === 'deno') return [bin('deno'), 'run', '--allow-all', script, ...args];
  return ['node', script, ...args];
}

/**
 * Start test/fixtures/<fixture>.ts (built into dist/) in a process of the runtime under test, or
 * of `runtime` when given (cross-runtime tests); with `asUid`, as that user and group (through
 * setpriv, which needs root).
 */
export function startFixture(
  fixture: string,
  args: readonly (string | number)[],
  options: { asUid?: number; runtime?: RuntimeName } = {},
): Child {
  const script = fileURLToPath(new URL(`../dist/test/fixtures/${fixture}.js`, import.meta.url));
  const command = commandOn(options.runtime ?? runtimeName, script, args.map(String));
  if (options.asUid !== undefined) {
    const id = String(options.asUid);
    command.unshift('setpriv', '--reuid', id, '--regid', id, '--clear-groups', '--');
  }
  const [exe, ...argv] = command;
  const child = spawn(exe, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let exited = false;
  const listeners = new Set<() => void>();
  child.stdout!.on('data', (d) => {
    out += String(d);
    for (const l of listeners) l();
  });
  child.stderr!.on('data', (d) => (err += String(d)));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => {
      exited = true;
      resolve({ code, signal });
      for (const l of listeners) l();
    }),
  );
  const waitForMatch = (test: (lines: string[]) => string | undefined, what: string, timeoutMs = 20_000) =>
    new Promise<string>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        listeners.delete(check);
      };
      const check = () => {
        const found = test(out.split('\n'));
        if (found !== undefined) {
          done();
          resolve(found);
        } else if (exited) {
          done();
          reject(new Error(`${fixture} ${args[0] ?? ''} exited before printing ${what}; stderr: ${err}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${fixture} ${args[0] ?? ''} did not print ${what} in ${timeoutMs} ms; stderr: ${err}`));
      }, timeoutMs);
      listeners.add(check);
      check();
    });
  return {
    process: child,
    exit,
    stdout: () => out,
    stderr: () => err,
    waitForMatch,
    waitFor: async (line, timeoutMs) => {
      await waitForMatch((lines) => (lines.includes(line) ? line : undefined), line, timeoutMs);
    },
  };
}

/** A scenario of test/fixtures/child.ts against a region. */
export function startChild(scenario: string, region: string, ...args: string[]): Child {
  return startFixture('child', [scenario, region, ...args]);
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

/**
 * How many cases a hostile-memory fuzzer runs (postbox, segments, shmem): MEMWIRE_FUZZ_RUNS if set,
 * else 400 under CI=1 (more seeds where time is cheap) on every runtime, else `local`. Each
 * fuzzer names its case count in its test's name and checks that it ran them all.
 */
export function fuzzRuns(local: number): number {
  const set = Number(process.env.MEMWIRE_FUZZ_RUNS);
  if (Number.isSafeInteger(set) && set > 0) return set;
  return process.env.CI ? Math.max(400, local) : local;
}
