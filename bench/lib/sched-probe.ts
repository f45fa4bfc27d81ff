/**
 * Where the CPUs went during a measurement: a snapshot of every thread's scheduler statistics
 * (/proc/<pid>/task/<tid>/schedstat: time on a CPU, time waiting in a run queue, time slices;
 * /proc/.../status: voluntary and involuntary context switches) and of the RDMA devices' packet
 * counters, and the difference of two snapshots per thread. For the RDMA ping-pong's
 * diagnosis (issue 12): is a busy-polling peer preempted (run-queue wait), by whom (who ran), and
 * how many packets crossed per round trip (a doorbell or a control message is a packet beyond the
 * data's). Reading every thread costs tens of milliseconds under TCG: taken outside the timing.
 */
import { readdirSync, readFileSync } from 'node:fs';

interface ThreadStat {
  pid: number;
  comm: string;
  /** The thread's own name (libuv-worker, V8 DefaultWorke, …). */
  thread: string;
  runNs: number;
  waitNs: number;
  slices: number;
  voluntary: number;
  involuntary: number;
}

export interface SchedSnapshot {
  at: number;
  threads: Map<string, ThreadStat>;
  packets: Map<string, number>;
}

/** One thread's share of an interval; switches per round trip. */
export interface SchedRow {
  name: string;
  /** Percent of one CPU over the interval. */
  cpuPct: number;
  /** Percent of the interval it waited runnable in a run queue. */
  waitPct: number;
  /** Context switches (voluntary + involuntary) and involuntary ones, per round trip. */
  switchesPer: number;
  preemptedPer: number;
}

function read(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function field(status: string, name: string): number {
  const m = new RegExp(`^${name}:\\s*(\\d+)`, 'm').exec(status);
  return m ? Number(m[1]) : 0;
}

export function schedSnapshot(): SchedSnapshot {
  const threads = new Map<string, ThreadStat>();
  let pids: string[] = [];
  try {
    pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  } catch {
    /* no /proc: an empty snapshot */
  }
  for (const pid of pids) {
    let tids: string[] = [];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue; // gone meanwhile
    }
    const comm = read(`/proc/${pid}/comm`).trim();
    for (const tid of tids) {
      const s = read(`/proc/${pid}/task/${tid}/schedstat`).trim().split(/\s+/).map(Number);
      if (s.length < 3 || !Number.isFinite(s[0])) continue;
      const status = read(`/proc/${pid}/task/${tid}/status`);
      threads.set(`${pid}/${tid}`, {
        pid: Number(pid),
        comm,
        thread: tid === pid ? 'main' : read(`/proc/${pid}/task/${tid}/comm`).trim(),
        runNs: s[0],
        waitNs: s[1],
        slices: s[2],
        voluntary: field(status, 'voluntary_ctxt_switches'),
        involuntary: field(status, 'nonvoluntary_ctxt_switches'),
      });
    }
  }
  const packets = new Map<string, number>();
  let devices: string[] = [];
  try {
    devices = readdirSync('/sys/class/infiniband');
  } catch {
    /* no RDMA devices */
  }
  for (const dev of devices) {
    for (const counter of ['sent_pkts', 'rcvd_pkts']) {
      const v = Number(read(`/sys/class/infiniband/${dev}/ports/1/hw_counters/${counter}`).trim());
      if (Number.isFinite(v)) packets.set(`${dev} ${counter}`, v);
    }
  }
  return { at: performance.now(), threads, packets };
}

/**
 * Per thread, what changed between two snapshots; rows using at least `minPct` of a CPU or
 * waiting at least that much, busiest first. `per`: round trips in the interval. `names` labels
 * known pids (e.g. "agent A").
 */
export function schedDelta(before: SchedSnapshot, after: SchedSnapshot, per: number, names: ReadonlyMap<number, string> = new Map(), minPct = 1): { rows: SchedRow[]; packetsPer: Record<string, number> } {
  const ms = Math.max(1e-6, after.at - before.at);
  const rows: SchedRow[] = [];
  // Per thread: a process's helper threads (the libuv pool, V8's workers) run on its CPUs too.
  for (const [key, t] of after.threads) {
    const b = before.threads.get(key);
    const cpuPct = ((t.runNs - (b?.runNs ?? 0)) / 1e6 / ms) * 100;
    const waitPct = ((t.waitNs - (b?.waitNs ?? 0)) / 1e6 / ms) * 100;
    if (cpuPct < minPct && waitPct < minPct) continue;
    const sw = t.voluntary + t.involuntary - (b ? b.voluntary + b.involuntary : 0);
    const inv = t.involuntary - (b?.involuntary ?? 0);
    const tid = key.split('/')[1];
    rows.push({ name: `${names.get(t.pid) ?? t.comm}${t.thread === 'main' ? '' : `/${t.thread}`} (${t.pid === Number(tid) ? t.pid : key})`, cpuPct, waitPct, switchesPer: sw / per, preemptedPer: inv / per });
  }
  rows.sort((x, y) => y.cpuPct - x.cpuPct);
  const packetsPer: Record<string, number> = {};
  for (const [key, v] of after.packets) packetsPer[key] = (v - (before.packets.get(key) ?? 0)) / per;
  return { rows, packetsPer };
}

/** One line per row, for a progress log. */
export function formatSched(d: { rows: SchedRow[]; packetsPer: Record<string, number> }): string {
  const rows = d.rows.map((r) => `${r.name} cpu ${r.cpuPct.toFixed(0)}% wait ${r.waitPct.toFixed(0)}% sw/rt ${r.switchesPer.toFixed(2)} (preempted ${r.preemptedPer.toFixed(2)})`);
  const pk = Object.entries(d.packetsPer).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ');
  return `${rows.join('; ')}${pk ? ` | packets per round trip: ${pk}` : ''}`;
}
