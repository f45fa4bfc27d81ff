/**
 * Two "nodes" on one machine with two RDMA devices (the rxe guest's rxe0/rxe1), for the rxe tier's
 * tests and the RDMA postbox benches alike: node A on dev0 and node B on dev1, each its own mount
 * namespace with its own /dev/shm (unshare -m + a tmpfs), both in the one network namespace rxe
 * needs. A node is a holder process (`sleep`) that owns the namespace; its agent and processes
 * join it with nsenter, so the only way from one node's memory to the other's is RDMA. Each node's
 * IPv4 address comes from its device's RoCE v2 GID (an explicit address may override). Processes
 * run this runtime on the built dist/. Needs root (unshare, mount, nsenter), as the guest gives.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { selfCommand } from '../../ffi/runtime.js';
import { deviceAddress } from '../../src/index.js';
import { findExecutable, projectRoot } from './environment.js';

/** A built file under dist/ (e.g. 'src/cli/main.js'), found from source (vitest) and from dist/ alike. */
export function distFile(relative: string): string {
  return join(projectRoot(), 'dist', relative);
}

export interface Proc {
  readonly child: ChildProcess;
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output(): string;
  /** The first stdout line matching `re` (waits, bounded); rejects if the process exits first. */
  line(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /**
   * The first stdout line matching `re` that no earlier take() returned (waits, bounded): for a
   * process that prints one result line per request. Rejects if the process exits first.
   */
  take(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Write `text` to its stdin (started with `stdin: true`). */
  send(text: string): void;
  /** Send a signal; resolves when the process has exited (bounded). */
  kill(signal: NodeJS.Signals, timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function startProc(argv: string[], label: string, options: { stdin?: boolean } = {}): Proc {
  const child = spawn(argv[0], argv.slice(1), { stdio: [options.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const listeners = new Set<() => void>();
  const taken = new Set<number>();
  let exited = false;
  child.stdout!.on('data', (d) => {
    out += String(d);
    for (const l of [...listeners]) l();
  });
  child.stderr!.on('data', (d) => (err += String(d)));
  child.stdin?.on('error', () => undefined); // a dead child's stdin: its exit reports it
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => {
      exited = true;
      resolve({ code, signal });
      for (const l of [...listeners]) l();
    }),
  );
  const waitLine = (re: RegExp, timeoutMs: number, consume: boolean) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        listeners.delete(check);
      };
      const check = () => {
        // Whole lines only: a line may arrive in several chunks.
        const lines = out.split('\n').slice(0, -1);
        for (let i = 0; i < lines.length; i++) {
          if (consume && taken.has(i)) continue;
          const m = lines[i].match(re);
          if (m) {
            if (consume) taken.add(i);
            done();
            resolve(m);
            return;
          }
        }
        if (exited) {
          done();
          reject(new Error(`${label} exited before printing ${re}:\n${proc.output()}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${label} did not print ${re} within ${timeoutMs} ms:\n${proc.output()}`));
      }, timeoutMs);
      listeners.add(check);
      check();
    });
  const proc: Proc = {
    child,
    exit,
    output: () => `${out}${err ? `\n[stderr]\n${err}` : ''}`,
    line: (re, timeoutMs = 30_000) => waitLine(re, timeoutMs, false),
    take: (re, timeoutMs = 30_000) => waitLine(re, timeoutMs, true),
    send: (text) => {
      if (!child.stdin) throw new Error(`${label} was started without stdin`);
      child.stdin.write(text);
    },
    kill: async (signal, timeoutMs = 15_000) => {
      // process.kill, not child.kill: Deno's node:child_process reports a child it sent SIGTERM
      // as ended *by* SIGTERM (exit null, 'SIGTERM') even when it handled the signal and exited 0
      // (checked on the host with a plain node child); with process.kill it reports the real status.
      if (!exited) {
        try {
          process.kill(child.pid!, signal);
        } catch {
          // gone meanwhile: its exit event carries the status
        }
      }
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      try {
        return await exit;
      } finally {
        clearTimeout(timer);
      }
    },
  };
  return proc;
}

/**
 * Resolves once process `pid` is blocked in futex(2) (x86_64 syscall 202, the first field of
 * /proc/<pid>/syscall: its main thread, where the fixtures wait) in two looks 10 ms apart — so a
 * doorbell sent afterwards is what wakes it, not a word already set before it slept. A process
 * prints "waiting" just *before* it waits, and a writer that starts on that line can win the race
 * when the guest is slow. Bounded.
 */
export async function asleepInFutex(pid: number, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let seen = 0;
  for (;;) {
    let call = '';
    try {
      call = readFileSync(`/proc/${pid}/syscall`, 'utf8').split(' ')[0].trim();
    } catch {
      // gone, or not readable: the deadline reports it
    }
    seen = call === '202' ? seen + 1 : 0;
    if (seen >= 2) return;
    if (Date.now() > deadline) throw new Error(`process ${pid} did not sleep in futex within ${timeoutMs} ms (/proc/${pid}/syscall: ${call || 'unreadable'})`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export interface RunOptions {
  /** The built script to run (a path under dist/); default the node's `script`. */
  script?: string;
  /** Pin the process (all its threads: `taskset` before the runtime starts) to this CPU. */
  cpu?: number | null;
  /** Keep its stdin open for Proc.send(). */
  stdin?: boolean;
}

export class TwoNodeNode {
  readonly agents: Proc[] = [];
  readonly procs: Proc[] = [];
  private constructor(
    readonly name: string,
    readonly device: string,
    readonly address: string,
    readonly holder: Proc,
    readonly holderPid: number,
    readonly script: string | undefined,
  ) {}

  /**
   * A node: a holder in a new mount namespace whose /dev/shm is a fresh tmpfs. `address`: its
   * IPv4 address (default: from the device's GID table); `script`: what run() starts by default.
   */
  static async create(name: string, device: string, address = '', script?: string): Promise<TwoNodeNode> {
    const ip = address || deviceAddress(device).ipv4;
    const holder = startProc(
      ['unshare', '-m', '--propagation', 'private', 'sh', '-c', 'mount -t tmpfs -o size=256m,mode=1777 tmpfs /dev/shm && echo ready && exec sleep 100000'],
      `node ${name} holder`,
    );
    await holder.line(/^ready$/, 10_000);
    return new TwoNodeNode(name, device, ip, holder, holder.child.pid!, script);
  }

  #enter(argv: string[], cpu: number | null = null): string[] {
    const taskset = cpu === null ? null : findExecutable('taskset');
    return ['nsenter', '-t', String(this.holderPid), '-m', '--', ...(taskset ? [taskset, '-c', String(cpu)] : []), ...argv];
  }

  /** `memwire agent` of this node on its device, listening on its address:port; waits until it listens. */
  async startAgent(port: number): Promise<Proc> {
    const agent = startProc(this.#enter(selfCommand(distFile('src/cli/main.js'), ['agent', '--device', this.device, '--listen', `${this.address}:${port}`, '--node', this.name])), `agent of ${this.name}`);
    this.agents.push(agent);
    await agent.line(/listening on /, 30_000);
    return agent;
  }

  /** A process of this node running a built script (`options.script`, a path under dist/, or a string: that path). */
  run(args: (string | number)[], options: RunOptions | string = {}): Proc {
    const o = typeof options === 'string' ? { script: options } : options;
    const script = o.script ?? this.script;
    if (!script) throw new Error(`node ${this.name}: run() needs a script`);
    const proc = startProc(this.#enter(selfCommand(script, args.map(String)), o.cpu ?? null), `${this.name} ${args[0]}`, { stdin: o.stdin });
    this.procs.push(proc);
    return proc;
  }

  /** `memwire <args>` as a process of this node (e.g. doctor). */
  cli(args: (string | number)[]): Proc {
    const proc = startProc(this.#enter(selfCommand(distFile('src/cli/main.js'), args.map(String))), `${this.name} memwire ${args[0]}`);
    this.procs.push(proc);
    return proc;
  }

  /** The names in this node's /dev/shm, seen through the holder's root (its mount namespace). */
  shm(): string[] {
    return readdirSync(`/proc/${this.holderPid}/root/dev/shm`).sort();
  }

  /** Stop every process of the node, then the holder (its tmpfs goes with the namespace). */
  async dispose(): Promise<void> {
    await Promise.all([...this.procs, ...this.agents].map((p) => p.kill('SIGKILL')));
    await this.holder.kill('SIGKILL');
  }
}

export interface TwoNodeOptions {
  dev0: string;
  dev1: string;
  /** Override the nodes' IPv4 addresses (default: each device's own). */
  ip0?: string;
  ip1?: string;
  /** What run() starts when not told. */
  script?: string;
}

/** Node A on dev0, node B on dev1. */
export async function twoNodes(o: TwoNodeOptions): Promise<[TwoNodeNode, TwoNodeNode]> {
  const a = await TwoNodeNode.create('A', o.dev0, o.ip0 ?? '', o.script);
  try {
    return [a, await TwoNodeNode.create('B', o.dev1, o.ip1 ?? '', o.script)];
  } catch (error) {
    await a.dispose();
    throw error;
  }
}
