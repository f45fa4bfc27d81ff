/**
 * CPU pinning for the benchmarks: one sched_setaffinity call per process at set-up, never per
 * message. It goes through memwire's internal libc bindings (ffi/libc.ts) on purpose: pinning is
 * not part of memwire's public API, and the benches need it on Node, Bun and Deno alike.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import type { NativeFn } from '../../ffi/backend.js';
import { libc } from '../../ffi/libc.js';

// cpu_set_t is 1024 bits on glibc.
const CPU_SET_BYTES = 128;
let affinityFns: { set: NativeFn; get: NativeFn } | undefined;

function affinity() {
  affinityFns ??= { set: libc.sched_setaffinity, get: libc.sched_getaffinity };
  return affinityFns;
}

/** The CPUs this process may run on, by number. */
export function allowedCpus(): number[] {
  const fns = affinity();
  const mask = new Uint8Array(CPU_SET_BYTES);
  if (!fns || fns.get(0, CPU_SET_BYTES, mask) !== 0) return Array.from({ length: availableParallelism() }, (_, i) => i);
  const cpus: number[] = [];
  for (let cpu = 0; cpu < CPU_SET_BYTES * 8; cpu++) if (mask[cpu >> 3] & (1 << (cpu & 7))) cpus.push(cpu);
  return cpus;
}

/**
 * Pin one thread (`tid` 0: the calling thread; a child's pid: its main thread) to `cpus`.
 * Returns false if the call is unavailable or fails; pinning is a help, not a requirement.
 */
export function pinThread(tid: number, cpus: readonly number[]): boolean {
  const fns = affinity();
  if (!fns) return false;
  const mask = new Uint8Array(CPU_SET_BYTES);
  for (const cpu of cpus) mask[cpu >> 3] |= 1 << (cpu & 7);
  return fns.set(tid, CPU_SET_BYTES, mask) === 0;
}

/**
 * sched_yield(2): let another runnable thread of this CPU run now (for a busy-polling loop whose
 * CPU also runs the kernel's share of the transfer, e.g. rxe's ksoftirqd). Cheap when nothing
 * else is runnable: the caller goes straight back to polling.
 */
export function yieldCpu(): void {
  libc.sched_yield();
}

/** This thread's kernel id (for pinning the others), or 0 where /proc cannot tell. */
function ownTid(): number {
  try {
    return Number(readFileSync('/proc/thread-self/stat', 'utf8').split(' ')[0]) || 0;
  } catch {
    return 0;
  }
}

/** The kernel ids of this process's threads other than the calling one. */
function otherTids(): number[] {
  const own = ownTid();
  try {
    return readdirSync('/proc/self/task').map(Number).filter((tid) => tid > 0 && tid !== own);
  } catch {
    return [];
  }
}

/**
 * Pin the calling thread to `cpu` and every other thread of this process (the runtime's JIT, GC
 * and I/O helpers) to the other allowed CPUs, so the measuring thread has its CPU to itself as a
 * C tool under `taskset` does; threads started later inherit the calling thread's CPU. Returns a
 * function that lets every thread run on all of `allowed` again. Where there is no other CPU,
 * only the calling thread is pinned.
 */
export function pinAlone(cpu: number, allowed: readonly number[]): () => void {
  const others = allowed.filter((c) => c !== cpu);
  const tids = others.length ? otherTids() : [];
  for (const tid of tids) pinThread(tid, others);
  pinThread(0, [cpu]);
  return () => {
    for (const tid of otherTids()) pinThread(tid, allowed);
    pinThread(0, allowed);
  };
}

/**
 * Pin every thread process `pid` has now to `cpus` (threads it starts later inherit their
 * creator's CPUs). For a server peer: its runtime's helper threads stay off the client's CPU.
 */
export function pinProcess(pid: number, cpus: readonly number[]): boolean {
  let tids: number[];
  try {
    tids = readdirSync(`/proc/${pid}/task`).map(Number).filter((tid) => tid > 0);
  } catch {
    tids = [pid];
  }
  let ok = true;
  for (const tid of tids) ok = pinThread(tid, cpus) && ok;
  return ok;
}
