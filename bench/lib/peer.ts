/**
 * Peer processes of the benchmarks: started with their output captured, waited for with a
 * timeout, killed (SIGKILL) on any failure and at exit, whatever happened; and the TCP helpers
 * the anchors' tools need (a free port, whether a port listens).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { findExecutable } from './environment.js';
import { withTimeout } from './timing.js';

/**
 * Whether process `pid` runs, read from /proc (a zombie counts as dead). Synchronous and cheap
 * enough for a busy loop's rare checks, where no 'exit' event can arrive.
 */
export function processRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.charAt(stat.lastIndexOf(')') + 2);
    return state !== 'Z' && state !== 'X';
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
  }
  // /proc unreadable (Deno allows it only with --allow-all): ask the kernel with signal 0,
  // which cannot tell a zombie from a live process.
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const livePeers = new Set<Peer>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Whatever ends this process (an exception, process.exit), no peer outlives it. Peers also
  // watch their parent, for the deaths no hook sees (SIGKILL).
  process.once('exit', () => {
    for (const peer of livePeers) peer.kill();
  });
}

export interface PeerExit {
  code: number | null;
  signal: string | null;
}

/**
 * A child process of a benchmark: started with its stdout captured, waited for with a timeout,
 * killed (SIGKILL) on any failure and at exit.
 */
export class Peer {
  readonly label: string;
  readonly child: ChildProcess;
  readonly exited: Promise<PeerExit>;
  #exit: PeerExit | undefined;
  #stdout = '';
  #stderr = '';
  /** Called on any output and on exit: wakes waitFor(). */
  #onEvent: (() => void) | undefined;

  readonly #ownGroup: boolean;

  private constructor(label: string, child: ChildProcess, ownGroup: boolean) {
    this.label = label;
    this.child = child;
    this.#ownGroup = ownGroup;
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      this.#stdout += chunk;
      this.#onEvent?.();
    });
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      this.#stderr += chunk;
      this.#onEvent?.();
    });
    this.exited = new Promise((resolve) => {
      const done = (exit: PeerExit) => {
        if (this.#exit) return;
        this.#exit = exit;
        livePeers.delete(this);
        resolve(exit);
        this.#onEvent?.();
      };
      child.once('exit', (code, signal) => done({ code, signal }));
      child.once('error', (error) => {
        this.#stderr += `${error.message}\n`;
        done({ code: null, signal: null });
      });
    });
  }

  /**
   * Start `argv` (e.g. from selfCommand). stderr is captured too when `captureStderr` (a C tool
   * whose errors we quote), otherwise it is passed through to ours.
   *
   * `lifetimeSeconds` is for programs that cannot notice our death (a ucx_perftest server waits
   * for its client for ever): they run in their own process group under coreutils `timeout -s
   * KILL`, so they die by then whatever happens to us, and kill() takes the whole group.
   *
   * Either way such a child runs in a session of its own (spawn's `detached`: setsid), and with
   * the kernel's autogroup scheduling (`/proc/sys/kernel/sched_autogroup_enabled`, on by default)
   * a session is one scheduling group whose weight is shared by its runnable threads across the
   * CPUs. `ownSession` gives a peer that: a measured side must get the same treatment as the
   * anchor it is compared with (UCX's server and client each have their own session through the
   * lifetime bound). A peer in our session halves its weight and ours on a loaded host
   * (bench/README.md, "postbox-pingpong tails"). It must notice our death by itself.
   */
  static start(
    label: string,
    argv: readonly string[],
    options: { env?: NodeJS.ProcessEnv; captureStderr?: boolean; lifetimeSeconds?: number; ownSession?: boolean } = {},
  ): Peer {
    installExitHook();
    const timeout = options.lifetimeSeconds ? findExecutable('timeout') : null;
    const full = timeout ? [timeout, '-s', 'KILL', String(Math.ceil(options.lifetimeSeconds ?? 0)), ...argv] : argv;
    const [command, ...args] = full;
    const ownGroup = timeout !== null || options.ownSession === true;
    const child = spawn(command, args, {
      stdio: ['ignore', 'pipe', options.captureStderr ? 'pipe' : 'inherit'],
      env: options.env ?? process.env,
      detached: ownGroup,
    });
    const peer = new Peer(label, child, ownGroup);
    livePeers.add(peer);
    return peer;
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get stdout(): string {
    return this.#stdout;
  }

  get stderr(): string {
    return this.#stderr;
  }

  /** Whether the process has exited, as the event loop has seen it. */
  get hasExited(): boolean {
    return this.#exit !== undefined;
  }

  /**
   * Whether the process is still running, read from /proc now: usable inside a busy loop, where
   * the 'exit' event cannot arrive. An unreaped child (a zombie) counts as dead.
   */
  isRunningNow(): boolean {
    return !this.#exit && processRunning(this.pid);
  }

  /** Resolve when `test` holds (checked on each output and every 5 ms); reject if the peer exits or time runs out. */
  async waitFor(what: string, test: () => boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!test()) {
      if (this.#exit) throw new Error(`${this.label} exited (${describeExit(this.#exit)}) before ${what}${this.#tail()}`);
      if (Date.now() > deadline) throw new Error(`${this.label}: ${what} did not happen within ${timeoutMs} ms${this.#tail()}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 5);
        this.#onEvent = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#onEvent = undefined;
    }
  }

  /** Wait for the peer to exit; an Error on timeout (the caller's finally kills it). */
  async waitExit(timeoutMs: number): Promise<PeerExit> {
    return withTimeout(this.exited, timeoutMs, `${this.label} exit`);
  }

  /** Wait for a clean exit (code 0) and return its stdout; anything else is an Error. */
  async finish(timeoutMs: number): Promise<string> {
    const exit = await this.waitExit(timeoutMs);
    if (exit.code !== 0) throw new Error(`${this.label} failed (${describeExit(exit)})${this.#tail()}`);
    return this.#stdout;
  }

  /** SIGKILL the peer unless it has exited. Safe to call at any time, any number of times. */
  kill(): void {
    if (this.#exit) return;
    try {
      if (this.#ownGroup && this.pid > 0) process.kill(-this.pid, 'SIGKILL');
      else this.child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }

  /** Kill, then wait (boundedly) until the exit is seen, so no process outlives its phase. */
  async stop(timeoutMs = 2000): Promise<void> {
    this.kill();
    await this.waitExit(timeoutMs).catch(() => undefined);
  }

  #tail(): string {
    const text = `${this.#stderr}${this.#stdout}`.trim();
    return text ? `: ${text.split('\n').slice(-5).join(' | ')}` : '';
  }
}

function describeExit(exit: PeerExit): string {
  return exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`;
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('no port'))));
    });
  });
}

/** Whether some socket listens on TCP `port` (IPv4 or IPv6), from /proc/net. */
export function isListening(port: number): boolean {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      // fields[1] is local "ADDR:PORT", fields[3] the state; 0A is LISTEN.
      if (fields.length > 3 && fields[3] === '0A' && fields[1].endsWith(`:${hex}`)) return true;
    }
  }
  return false;
}
