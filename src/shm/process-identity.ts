/**
 * Who created a region, in a form that survives pid reuse: the pid plus the process start time
 * the kernel reports in /proc/<pid>/stat (field 22, clock ticks after boot).
 */
import { readFileSync } from 'node:fs';
import { errno, libc } from '../../ffi/libc.js';

const ESRCH = 3;

/** State (field 3) and start time (field 22) from /proc/<pid>/stat; undefined if unreadable. */
function readStat(pid: number): { state: string; startTime: bigint } | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const start = rest[22 - 3];
  return start === undefined ? undefined : { state: rest[0], startTime: BigInt(start) };
}

/** The start time of a process, or undefined when it does not exist (or /proc is unreadable). */
export function processStartTime(pid: number): bigint | undefined {
  return readStat(pid)?.startTime;
}

export const selfPid: number = libc.getpid() as number;
export const selfStartTime: bigint = processStartTime(selfPid) ?? 0n;

/**
 * Whether the process that recorded (pid, startTime) is still running. A start time of 0 means
 * "not recorded": then only the pid is checked.
 */
export function isProcessAlive(pid: number, startTime: bigint): boolean {
  if (pid <= 0) return false;
  if ((libc.kill(pid, 0) as number) === -1 && errno() === ESRCH) return false;
  const stat = readStat(pid);
  if (stat === undefined) return true; // kill() says it exists; /proc cannot tell more
  // A zombie (killed, not yet reaped by its parent) holds nothing any more, and its parent may
  // be the very process waiting on something it held.
  if (stat.state === 'Z' || stat.state === 'X') return false;
  return startTime === 0n || stat.startTime === startTime;
}
