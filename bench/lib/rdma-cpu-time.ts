/**
 * Where an RDMA bench's time went (this thread's user and system time, and ksoftirqd's, from
 * /proc), and waiting for a quiet machine before a measured loop.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { sleep } from './timing.js';

/** utime and stime in /proc are in USER_HZ ticks: 100 per second on every Linux ABI. */
const USER_HZ = 100;

/** CPU time in clock ticks: the calling thread's user and system time, and `ksoftirqd/<cpu>`'s. */
export interface CpuSample {
  user: number;
  system: number;
  softirqd: number;
}

const softirqdPids = new Map<number, string | null>();

function procTicks(path: string): [number, number] | null {
  try {
    const f = readFileSync(path, 'utf8').split(') ')[1].split(' ');
    return [Number(f[11]), Number(f[12])]; // utime, stime
  } catch {
    return null;
  }
}

function softirqdPid(cpu: number): string | null {
  let pid = softirqdPids.get(cpu);
  if (pid !== undefined) return pid;
  pid = null;
  try {
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === `ksoftirqd/${cpu}`) {
          pid = entry;
          break;
        }
      } catch {
        // gone meanwhile
      }
    }
  } catch {
    // no /proc
  }
  softirqdPids.set(cpu, pid);
  return pid;
}

/** A CpuSample now (`cpu`: the CPU whose ksoftirqd counts), or null where /proc cannot tell. */
export function cpuSample(cpu: number | null): CpuSample | null {
  const own = procTicks('/proc/thread-self/stat');
  if (!own) return null;
  const pid = cpu === null ? null : softirqdPid(cpu);
  const soft = pid ? procTicks(`/proc/${pid}/stat`) : null;
  return { user: own[0], system: own[1], softirqd: soft ? soft[0] + soft[1] : 0 };
}

/**
 * "user U µs, system S µs, ksoftirqd K µs per write" between two samples, or '' without them:
 * where a round's time went. rxe does its work inside ibv_post_send (system time); a round in the
 * slow regime shows ksoftirqd time next to it; the user time is memwire's own.
 */
export function cpuSplit(before: CpuSample | null, after: CpuSample | null, writes: number): string {
  if (!before || !after) return '';
  const us = (key: keyof CpuSample) => usPerWrite(after[key] - before[key], writes);
  return `user ${us('user')} µs, system ${us('system')} µs, ksoftirqd ${us('softirqd')} µs per write`;
}

/** "ksoftirqd K µs per write" between two samples (for perftest's rounds), or ''. */
export function softirqdSplit(before: CpuSample | null, after: CpuSample | null, writes: number): string {
  if (!before || !after) return '';
  return `ksoftirqd ${usPerWrite(after.softirqd - before.softirqd, writes)} µs per write`;
}

/** ksoftirqd's µs per write between two samples, or NaN without them. */
export function softirqdUsPerWrite(before: CpuSample | null, after: CpuSample | null, writes: number): number {
  if (!before || !after) return NaN;
  return (((after.softirqd - before.softirqd) / USER_HZ) * 1e6) / writes;
}

function usPerWrite(ticks: number, writes: number): string {
  return (((ticks / USER_HZ) * 1e6) / writes).toFixed(0);
}

/** The window and thresholds of `settle()`: under 5 % of a CPU here, at most one tick there. */
const SETTLE_WINDOW_MS = 200;
const SETTLE_OWN_US = 10_000;
const SETTLE_PEER_TICKS = 1;

/**
 * Before a measured loop: wait (at most `limitMs`) until this process and the server process
 * `peerPid` have been idle for a whole window, and return the ms waited. A runtime that has just
 * run the warm-up is still compiling it, and a server that has just started is still finishing
 * its own start-up, on helper threads the pinning does not cover; under the guest's TCG such work
 * on the other vCPU can slow the measured client (in traces, rounds with that vCPU 9–14 % busy
 * were more often than not among the slowest of their run). perftest has no JIT and no runtime
 * to start, so this begins memwire's measurement where perftest's begins: on a quiet machine.
 */
export async function settle(peerPid: number | null, limitMs = 3000): Promise<number> {
  const started = Date.now();
  const peerTicks = () => {
    const ticks = peerPid === null ? null : procTicks(`/proc/${peerPid}/stat`);
    return ticks ? ticks[0] + ticks[1] : 0; // gone, or /proc unreadable: nothing to wait for there
  };
  let own = process.cpuUsage();
  let peer = peerTicks();
  while (Date.now() - started < limitMs) {
    await sleep(SETTLE_WINDOW_MS);
    const ownNow = process.cpuUsage();
    const peerNow = peerTicks();
    const quiet = ownNow.user + ownNow.system - own.user - own.system < SETTLE_OWN_US && peerNow - peer <= SETTLE_PEER_TICKS;
    own = ownNow;
    peer = peerNow;
    if (quiet) break;
  }
  return Date.now() - started;
}
