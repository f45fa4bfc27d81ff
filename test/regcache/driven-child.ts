/**
 * Drive test/fixtures/regcache-child.ts (built into dist/) in a process of the runtime under
 * test: one command line in, one answer line out, each with a timeout.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { selfCommand } from '../../ffi/runtime.js';

export class DrivenChild {
  readonly process: ChildProcess;
  readonly #lines: string[] = [];
  readonly #waiters: (() => void)[] = [];
  #stderr = '';
  #exited = false;

  /** Start test/fixtures/<fixture>.js with `args`, under `wrapper` (e.g. prlimit …) if given. */
  constructor(args: readonly string[], fixture = 'regcache-child', wrapper: readonly string[] = []) {
    const script = fileURLToPath(new URL(`../../dist/test/fixtures/${fixture}.js`, import.meta.url));
    const [exe, ...argv] = [...wrapper, ...selfCommand(script, args)];
    this.process = spawn(exe, argv, { stdio: ['pipe', 'pipe', 'pipe'] });
    createInterface({ input: this.process.stdout! }).on('line', (line) => {
      this.#lines.push(line);
      this.#waiters.splice(0).forEach((w) => w());
    });
    this.process.stderr!.on('data', (d) => (this.#stderr += String(d)));
    this.process.on('exit', () => {
      this.#exited = true;
      this.#waiters.splice(0).forEach((w) => w());
    });
  }

  /** The next line the child prints (within `timeoutMs`). */
  async next(timeoutMs = 20_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (this.#lines.length === 0) {
      if (this.#exited) throw new Error(`regcache child exited; stderr: ${this.#stderr}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`regcache child said nothing in ${timeoutMs} ms; stderr: ${this.#stderr}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.#lines.shift()!;
  }

  /** Send one command; the answer's words after the command name. Throws on an "error" answer. */
  async ask(command: string, timeoutMs?: number): Promise<string[]> {
    this.process.stdin!.write(`${command}\n`);
    const answer = await this.next(timeoutMs);
    const [head, ...rest] = answer.split(' ');
    if (head === 'error') throw new Error(`child: ${rest.join(' ')}`);
    return rest;
  }

  kill(): Promise<void> {
    if (this.#exited) return Promise.resolve();
    return new Promise((resolve) => {
      this.process.on('exit', () => resolve());
      this.process.kill('SIGKILL');
    });
  }
}
