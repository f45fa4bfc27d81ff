/**
 * The measuring process of a bench whose anchor runs in sessions of its own gets one too.
 *
 * With the kernel's autogroup scheduling (`/proc/sys/kernel/sched_autogroup_enabled`, on by
 * default) each session is one scheduling group whose weight its runnable threads share. The
 * anchors' processes (`ucx_perftest` server and client, started under a lifetime bound) and the
 * memwire peers (`Peer.start(…, { ownSession: true })`) each lead a session; the process that runs
 * the bench — and measures memwire's side — stayed in the caller's session, the shell's, which on
 * this shared host also runs that user's builds, tests and QEMU guests. Its weight was then shared
 * with them while UCX's client had a group to itself (bench/README.md, "postbox-pingpong tails":
 * the probe's measuring side waited for its CPU about twice as long as in a session of its own).
 *
 * `inOwnSession` runs the same bench command again in a child that leads a session of its own
 * (spawn's `detached`: setsid), whose output is ours; it forwards SIGINT, SIGTERM and SIGHUP (a
 * terminal's ^C no longer reaches a child of another session) and returns the child's exit code.
 * A process that already leads its session (that child, or one started by setsid) runs the bench
 * itself.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';
import { platform } from '../../src/index.js';
import { runtimeCommand } from './environment.js';

/** Set in the child: it must run the bench, even if setsid did not make it a session leader. */
const MARK = 'MEMWIRE_BENCH_OWN_SESSION';

/** The session id of `pid` (field 6 of /proc/<pid>/stat), or null where /proc cannot say. */
export function sessionOf(pid: number | 'self'): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // After "pid (comm) ": state, ppid, pgrp, session — comm may hold spaces and parentheses.
    const session = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[3]);
    return Number.isInteger(session) ? session : null;
  } catch {
    return null;
  }
}

/** Whether this process leads its session (what setsid makes of a process). */
export function leadsSession(): boolean {
  return sessionOf('self') === process.pid;
}

/**
 * Run `memwire bench <name> <argv>` in a child leading a session of its own, unless this process
 * already leads one; returns the child's exit code, or null when the bench should run here.
 */
export async function inOwnSession(name: string, argv: readonly string[]): Promise<number | null> {
  if (process.env[MARK] === '1' || leadsSession() || sessionOf('self') === null) return null;
  // Node and Bun: this very executable; Deno needs its `run --allow-all`.
  const command = platform.runtime === 'deno' ? runtimeCommand('deno') : [process.execPath];
  if (!command) return null; // cannot find our own runtime again: measure here rather than not at all
  const main = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
  const child = spawn(command[0], [...command.slice(1), ...process.execArgv, main, 'bench', name, ...argv], {
    stdio: 'inherit',
    detached: true,
    env: { ...process.env, [MARK]: '1' },
  });
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  const forward = (signal: NodeJS.Signals) => {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  };
  for (const s of signals) process.on(s, forward);
  try {
    return await new Promise<number>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code, signal) => resolve(code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0)));
    });
  } finally {
    for (const s of signals) process.off(s, forward);
  }
}
