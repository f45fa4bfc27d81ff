/**
 * The two-node harness of the rxe tier: node A on DEV0 and node B on DEV1 in one guest, each its
 * own mount namespace with its own /dev/shm (unshare -m + a tmpfs), both in the one network
 * namespace rxe needs. A node is a holder process (`sleep`) that owns the namespace; its agent
 * and processes join it with nsenter, so the only way from one node's memory to the other's is
 * RDMA. Each node's IPv4 address comes from its device's RoCE v2 GID (MEMWIRE_RXE_IP0/IP1 may
 * override). Processes run the runtime under test (Node or Bun) on the built dist/.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { selfCommand } from '../../ffi/runtime.js';
import { deviceAddress } from '../../src/index.js';
import { DEV0, DEV1 } from './helpers.js';

const CLI = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url));
const FIXTURE = fileURLToPath(new URL('../../dist/test/fixtures/two-node-process.js', import.meta.url));

export interface Proc {
  readonly child: ChildProcess;
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output(): string;
  /** The first stdout line matching `re` (waits, bounded); rejects if the process exits first. */
  line(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Send a signal; resolves when the process has exited (bounded). */
  kill(signal: NodeJS.Signals, timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function start(argv: string[], label: string): Proc {
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const listeners = new Set<() => void>();
  let exited = false;
  child.stdout!.on('data', (d) => {
    out += String(d);
    for (const l of [...listeners]) l();
  });
  child.stderr!.on('data', (d) => (err += String(d)));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => {
      exited = true;
      resolve({ code, signal });
      for (const l of [...listeners]) l();
    }),
  );
  const proc: Proc = {
    child,
    exit,
    output: () => `${out}${err ? `\n[stderr]\n${err}` : ''}`,
    line: (re, timeoutMs = 30_000) =>
      new Promise((resolve, reject) => {
        const done = () => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        const check = () => {
          // Whole lines only: a line may arrive in several chunks.
          for (const l of out.split('\n').slice(0, -1)) {
            const m = l.match(re);
            if (m) {
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
      }),
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

export class TwoNodeNode {
  readonly agents: Proc[] = [];
  readonly procs: Proc[] = [];
  private constructor(
    readonly name: string,
    readonly device: string,
    readonly address: string,
    readonly holder: Proc,
    readonly holderPid: number,
  ) {}

  /** A node: a holder in a new mount namespace whose /dev/shm is a fresh tmpfs. */
  static async create(name: string, device: string, override: string): Promise<TwoNodeNode> {
    const address = override || deviceAddress(device).ipv4;
    const holder = start(
      ['unshare', '-m', '--propagation', 'private', 'sh', '-c', 'mount -t tmpfs -o size=256m,mode=1777 tmpfs /dev/shm && echo ready && exec sleep 100000'],
      `node ${name} holder`,
    );
    await holder.line(/^ready$/, 10_000);
    return new TwoNodeNode(name, device, address, holder, holder.child.pid!);
  }

  #enter(argv: string[]): string[] {
    return ['nsenter', '-t', String(this.holderPid), '-m', '--', ...argv];
  }

  /** `memwire agent` of this node on its device, listening on its address:port; waits until it listens. */
  async startAgent(port: number): Promise<Proc> {
    const agent = start(this.#enter(selfCommand(CLI, ['agent', '--device', this.device, '--listen', `${this.address}:${port}`, '--node', this.name])), `agent of ${this.name}`);
    this.agents.push(agent);
    await agent.line(/listening on /, 30_000);
    return agent;
  }

  /** A process of this node running test/fixtures/two-node-process.ts (or another built fixture, a path under dist/). */
  run(args: (string | number)[], fixture = FIXTURE): Proc {
    const proc = start(this.#enter(selfCommand(fixture, args.map(String))), `${this.name} ${args[0]}`);
    this.procs.push(proc);
    return proc;
  }

  /** `memwire <args>` as a process of this node (e.g. doctor). */
  cli(args: (string | number)[]): Proc {
    const proc = start(this.#enter(selfCommand(CLI, args.map(String))), `${this.name} memwire ${args[0]}`);
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

/** Node A on DEV0, node B on DEV1. */
export async function twoNodes(): Promise<[TwoNodeNode, TwoNodeNode]> {
  const a = await TwoNodeNode.create('A', DEV0, process.env.MEMWIRE_RXE_IP0 ?? '');
  try {
    return [a, await TwoNodeNode.create('B', DEV1, process.env.MEMWIRE_RXE_IP1 ?? '')];
  } catch (error) {
    await a.dispose();
    throw error;
  }
}
