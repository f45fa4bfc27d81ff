/**
 * Bench `regcache`: the cost of dynamic registration (seed 004, src/regcache/).
 *
 *   1. Lookup hit (any machine, registrar "none"): ns per RegisteredHeap.lookup() of a buffer whose
 *      block this process has registered — the descriptor compare and the result — against a JS
 *      Map.get of the same buffer's key returning a like object, in the same run (anchor).
 *      Batches of --batch lookups are timed; p50 and p99 are of the per-lookup mean of a batch.
 *   2. Regime (needs an RDMA device), per churn size: the median cost of ibv_reg_mr + ibv_dereg_mr
 *      of that size against one WRITE of it posted and waited for, alternating, and the ceiling
 *      they put on the churn ratio when each WRITE is waited for: (write + reg + dereg) / write.
 *      On emulated rxe a 64 KiB WRITE is a software copy through the guest's network stack and
 *      can cost more than registering, so that loop cannot show a 20× ratio whatever the cache does.
 *   3. Churn (needs an RDMA device): a loop of malloc(size) → RDMA WRITE from it → free on its
 *      completion, every wholly free block given back to the OS every --release-every operations
 *      (trim), so blocks really come and go; against register-per-allocation (the same allocation
 *      from the same kind of heap, ibv_reg_mr before the WRITE and ibv_dereg_mr after its
 *      completion). Both sides post the same WRITEs. Three modes: one WRITE at a time; 16 in flight
 *      (the anchor keeps 16 MRs alive and deregisters each on its completion); no WRITE
 *      (malloc → lookup → free against malloc → ibv_reg_mr → ibv_dereg_mr → free: the registration
 *      path alone; in the same rounds the plain loop with no registration at all is timed too, and
 *      its ratio to the anchor is that mode's ceiling). Operations per second, medians of --rounds
 *      alternating rounds; the ratio is the median of the per-round ratios ours / anchor (each
 *      round's loops back to back).
 *   4. ibv_reg_mr and ibv_dereg_mr µs per MiB of shared memory (1–256 MiB, pages touched first),
 *      median of --reps; no anchor (no published rxe figure; UCX's model for real NICs is in the notes).
 */
import { readdirSync, readFileSync } from 'node:fs';
import {
  connectQueuePairs, Context, listDevices, NoDeviceError, RegisteredHeap, SharedRegion, VerbsRegistrar,
  type CompletionQueue, type HeapBuffer, type MemoryRegion, type QueuePair,
} from '../src/index.js';
import { COMMON_FLAGS, parseFlags, sizeLabel, type FlagSpec } from './lib/flags.js';
import { judgeTargets, makeRow, newReport, type BenchReport, type Target } from './lib/report.js';
import { median, pairedRow, roundRatios } from './lib/perftest.js';
import { nowNs, percentiles, progress } from './lib/timing.js';

export const FLAGS: FlagSpec = {
  ...COMMON_FLAGS,
  batch: { kind: 'count', help: 'lookups per timed batch (default 1000)' },
  sizes: { kind: 'sizes', help: 'churn allocation sizes (default 4KiB,64KiB)' },
  'release-every': { kind: 'count', help: 'churn: give free blocks back to the OS every N operations (default 64)' },
  'block-bytes': { kind: 'sizes', help: 'churn: the heap\'s standard block (default 4 × the size, at least 64KiB)' },
  'reg-sizes': { kind: 'sizes', help: 'ibv_reg_mr sizes (default 1MiB,4MiB,16MiB,64MiB,256MiB; --quick up to 64MiB)' },
  reps: { kind: 'count', help: 'ibv_reg_mr repetitions per size (default 5; --quick 3) and regime repetitions (default 31; --quick 9)' },
  rounds: { kind: 'count', help: 'churn: alternating rounds per mode, medians reported (default 5; --quick 1)' },
  device: { kind: 'boolean', help: 'run only the parts that need an RDMA device' },
  host: { kind: 'boolean', help: 'run only the lookup part (no RDMA device needed)' },
  'keep-free': { kind: 'count', help: 'churn: wholly free blocks each heap keeps before giving one back on free (default 64 = all: blocks go back only by trim)' },
  modes: { kind: 'count', help: 'churn modes to run, a bit mask: 1 one WRITE at a time, 2 16 in flight, 4 no WRITE (default 7)' },
  'skip-regmr': { kind: 'boolean', help: 'skip the ibv_reg_mr µs-per-MiB part' },
};

let sink = 0;
const benchName = (label: string) => `bench.regcache.${label}.${process.pid}.${Date.now().toString(36)}`;

// --- 1. lookup hit ------------------------------------------------------------------------------

function lookupHit(report: BenchReport, quick: boolean, batch: number, iterations: number): void {
  const heap = RegisteredHeap.create(benchName('lookup'), { blockBytes: 1 << 20 });
  try {
    const buffers: HeapBuffer[] = [];
    for (let i = 0; i < 64; i++) buffers.push(heap.malloc(64 + ((i * 97) % 4000))!);
    // The anchor: the same buffers found by a number key in a Map, the value a like object.
    const map = new Map<number, { lkey: number; rkey: number; address: number; remoteAddr: number }>();
    const keyOf = (b: HeapBuffer) => b.block * 2 ** 32 + b.offset;
    for (const b of buffers) {
      const r = heap.lookup(b);
      map.set(keyOf(b), { lkey: r.lkey, rkey: r.rkey, address: r.address, remoteAddr: r.remoteAddr });
    }
    const keys = buffers.map(keyOf);
    const ours = new Float64Array(iterations);
    const theirs = new Float64Array(iterations);
    const mask = buffers.length - 1;
    const oursBatch = () => {
      const t0 = nowNs();
      for (let i = 0; i < batch; i++) sink += heap.lookup(buffers[i & mask]).remoteAddr;
      return Number(nowNs() - t0) / batch;
    };
    const theirsBatch = () => {
      const t0 = nowNs();
      for (let i = 0; i < batch; i++) sink += map.get(keys[i & mask])!.remoteAddr;
      return Number(nowNs() - t0) / batch;
    };
    for (let w = 0; w < (quick ? 200 : 1000); w++) {
      oursBatch();
      theirsBatch();
    }
    // Interleaved, so drift of the machine hits both alike.
    for (let i = 0; i < iterations; i++) {
      ours[i] = oursBatch();
      theirs[i] = theirsBatch();
    }
    const [o50, o99] = percentiles(ours, [50, 99]);
    const [t50, t99] = percentiles(theirs, [50, 99]);
    report.rows.push(makeRow('lookup hit', 'p50', 'ns', 'lower', o50, t50, 'Map.get'));
    report.rows.push(makeRow('lookup hit', 'p99', 'ns', 'lower', o99, t99, 'Map.get'));
    const stats = heap.stats();
    const limit = report.runtime === 'bun' ? 60 : 150;
    report.notes.push(
      `lookup hit: ${iterations} batches of ${batch} lookups over 64 buffers, interleaved with the Map.get batches; ` +
        `${stats.hits} hits, ${stats.misses} misses. Absolute target on ${report.runtime}: p50 ≤ ${limit} ns — ${o50 <= limit ? 'met' : 'missed'} (${o50.toFixed(1)} ns)`,
      "published reference: UCX's registration cache hit costs 90–180 ns (its cost model), not measured here",
    );
  } finally {
    heap.dispose();
  }
}

// --- RDMA set-up -----------------------------------------------------------------------------------

/** Most WRITEs in flight in the pipelined churn (and the target's slots: in-flight writes never overlap). */
const WINDOW = 16;

interface Rig {
  ctxs: Context[];
  qp: QueuePair;
  cq: CompletionQueue;
  target: MemoryRegion;
  sourceCtx: Context;
  /** Completions seen so far (for the error report). */
  completed: number;
  /** Each device's hw_counters when the rig was opened. */
  counters: Map<string, number>[];
  /** Who posts now (for the error report). */
  side: string;
  /** What each WRITE still in flight was posted with, by wrId (for the error report). */
  posted: Map<number, PostRecord>;
}

/** One posted WRITE as the error report shows it: the local MR's range and the remote range. */
interface PostRecord {
  side: string;
  mr: MemoryRegion;
  mrAddr: number;
  mrLength: number;
  lkey: number;
  offset: number;
  length: number;
  remoteAddr: number;
}

function openRig(maxSize: number): Rig | string {
  let names: string[];
  try {
    names = listDevices().map((d) => d.name);
  } catch (error) {
    if (error instanceof NoDeviceError) return error.message;
    throw error;
  }
  if (names.length === 0) return 'no RDMA device';
  const a = Context.open(names[0]);
  const b = names.length > 1 ? Context.open(names[1]) : a;
  const ctxs = b === a ? [a] : [a, b];
  try {
    const pdA = a.allocPd();
    const pdB = b === a ? pdA : b.allocPd();
    const cq = a.createCompletionQueue({ entries: 4 * WINDOW });
    const qp = pdA.createQueuePair({ sendCq: cq, maxSendWr: 2 * WINDOW });
    const peerCq = b === a ? cq : b.createCompletionQueue({ entries: 4 * WINDOW });
    const peer = b === a ? qp : pdB.createQueuePair({ sendCq: peerCq });
    if (peer === qp) connectQueuePairs(qp, qp);
    else connectQueuePairs(qp, peer);
    const target = pdB.registerMemory(new Uint8Array(maxSize * WINDOW), { remoteWrite: true });
    return { ctxs, qp, cq, target, sourceCtx: a, completed: 0, counters: ctxs.map((c) => readCounters(c.device.name)), side: '', posted: new Map() };
  } catch (error) {
    for (const c of ctxs) c.dispose();
    throw error;
  }
}

function closeRig(rig: Rig): void {
  for (const c of rig.ctxs.reverse()) c.dispose();
}

/**
 * A failed completion: drain what else the CQ holds and say all of it, with the QP's state (a
 * flush error is only ever the consequence of an earlier one, or of the QP being moved to ERR).
 */
function completionFailure(rig: Rig, first: { wrId: number; status: number; vendorErr: number; message: string }): Error {
  const more: string[] = [];
  const deadline = performance.now() + 1000;
  while (performance.now() < deadline && more.length < 64) {
    const n = rig.cq.poll();
    for (let k = 0; k < n; k++) {
      const c = rig.cq.completions[k];
      more.push(`wr ${c.wrId}: ${c.ok ? 'ok' : c.error()!.message} (vendor ${c.vendorErr})`);
    }
  }
  let state: string;
  try {
    state = rig.qp.queryState();
  } catch (error) {
    state = `unknown (${(error as Error).message})`;
  }
  return new Error(
    `RDMA WRITE wr ${first.wrId} (${rig.side}) failed after ${rig.completed} good completions: ${first.message} (status ${first.status}, vendor ${first.vendorErr}); ` +
      `QP state ${state}; then: ${more.join('; ') || 'nothing more'}; device counters since the start: ${counterDelta(rig)}; ` +
      `the WRITEs in flight as posted: ${[...rig.posted].map(([id, p]) => describePost(rig, id, p)).join('; ')}`,
  );
}

/** A posted WRITE, and whether its ranges were valid when posted and its MR is still alive now. */
function describePost(rig: Rig, wrId: number, p: PostRecord): string {
  const localOk = p.offset >= 0 && p.offset + p.length <= p.mrLength;
  const t = rig.target;
  const remoteOk = p.remoteAddr >= t.addr && p.remoteAddr + p.length <= t.addr + t.length;
  return (
    `wr ${wrId} ${p.side}: local lkey ${p.lkey} mr [0x${p.mrAddr.toString(16)}+${p.mrLength}] offset ${p.offset} length ${p.length} ` +
    `(${localOk ? 'in range' : 'OUT OF RANGE'}, mr ${p.mr.disposed ? 'DISPOSED' : 'alive'}), remote 0x${p.remoteAddr.toString(16)} rkey ${t.rkey} ` +
    `(${remoteOk ? 'in range' : 'OUT OF RANGE'})`
  );
}

/** The device's hw_counters (retransmissions, sequence errors, …) as the kernel's rxe driver keeps them. */
function readCounters(device: string): Map<string, number> {
  const dir = `/sys/class/infiniband/${device}/ports/1/hw_counters`;
  const counters = new Map<string, number>();
  try {
    for (const name of readdirSync(dir)) counters.set(name, Number(readFileSync(`${dir}/${name}`, 'latin1').trim()));
  } catch {
    /* not exposed: no counters */
  }
  return counters;
}

/** Non-zero changes of both devices' counters since the rig was opened. */
function counterDelta(rig: Rig): string {
  const parts: string[] = [];
  rig.ctxs.forEach((ctx, i) => {
    for (const [name, value] of readCounters(ctx.device.name)) {
      const delta = value - (rig.counters[i].get(name) ?? 0);
      if (delta !== 0) parts.push(`${ctx.device.name}.${name} +${delta}`);
    }
  });
  return parts.join(', ') || 'none changed';
}

/** Poll until at least one completion; call `done` for each. Busy-waits (emulated rxe is slow). */
function reapCompletions(rig: Rig, done: (wrId: number) => void): void {
  const deadline = performance.now() + 10_000;
  for (;;) {
    const n = rig.cq.poll();
    for (let k = 0; k < n; k++) {
      const c = rig.cq.completions[k];
      if (!c.ok) throw completionFailure(rig, { wrId: c.wrId, status: c.status, vendorErr: c.vendorErr, message: c.error()!.message });
      rig.completed++;
      rig.posted.delete(c.wrId);
      done(c.wrId);
    }
    if (n > 0) return;
    if (performance.now() > deadline) throw new Error('no RDMA WRITE completed within 10 s');
  }
}

/** Post one signaled WRITE of `length` bytes from `mr` at `offset` into target slot `slot`. */
function postWrite(rig: Rig, wrId: number, mr: MemoryRegion, offset: number, length: number, slot: number): void {
  const remoteAddr = rig.target.addr + slot * length;
  rig.posted.set(wrId, { side: rig.side, mr, mrAddr: mr.addr, mrLength: mr.length, lkey: mr.lkey, offset, length, remoteAddr });
  const rc = rig.qp.postSend({ wrId, opcode: 'write', sge: { mr, offset, length }, remoteAddr, rkey: rig.target.rkey });
  if (rc !== 0) throw new Error(`postSend failed: errno ${rc}`);
}

// --- 2. churn ------------------------------------------------------------------------------------------

/** One side of the churn: take an allocation ready to post from, and give it back after its WRITE. */
interface Side {
  name: string;
  begin(i: number): { mr: MemoryRegion | undefined; offset: number; finish: () => void };
  trim(): void;
}

/**
 * `count` operations of `side`: with `window` 0 no WRITE at all; else each allocation is the
 * source of one WRITE, at most `window` in flight, and is finished (freed; deregistered for the
 * anchor) when its completion arrives. Returns operations per second.
 */
function churnLoop(rig: Rig, side: Side, size: number, count: number, window: number, releaseEvery: number): number {
  rig.side = side.name;
  rig.posted.clear();
  const pending = new Map<number, () => void>();
  const finish = (wrId: number) => {
    pending.get(wrId)!();
    pending.delete(wrId);
  };
  const t0 = nowNs();
  for (let i = 0; i < count; i++) {
    while (pending.size >= Math.max(1, window)) reapCompletions(rig, finish);
    const op = side.begin(i);
    if (window === 0) op.finish();
    else {
      pending.set(i, op.finish);
      postWrite(rig, i, op.mr!, op.offset, size, i % WINDOW);
    }
    if ((i + 1) % releaseEvery === 0) side.trim();
  }
  while (pending.size > 0) reapCompletions(rig, finish);
  return count / (Number(nowNs() - t0) / 1e9);
}

interface ChurnMode {
  /** Row metric. */
  metric: string;
  /** 0: no WRITE; 1: one WRITE at a time (post, wait); > 1: pipelined. */
  window: number;
}

export const CHURN_MODES: readonly ChurnMode[] = [
  { metric: 'malloc+write+free', window: 1 },
  { metric: `malloc+write+free, ${WINDOW} in flight`, window: WINDOW },
  { metric: 'malloc+lookup+free (no write)', window: 0 },
];

/**
 * memwire's registered heap (a block registered once per block, blocks given back to the OS every
 * K ops) against register-per-allocation (the same allocation from an unregistered heap of the
 * same blocks, ibv_reg_mr + ibv_dereg_mr each time), for each mode; the same WRITEs on both sides.
 * `rounds` alternating rounds (ours, theirs, ours, …); the rows carry the medians.
 */
function churn(report: BenchReport, rig: Rig, size: number, ops: number, rounds: number, releaseEvery: number, blockBytes: number | undefined, modes: number, keepFree = 64): void {
  const pd = rig.qp.pd;
  // One allocation or a window of them live at a time: a block of 4 × the size holds one with room to spare.
  const block = blockBytes ?? Math.max(65536, Math.ceil((4 * size) / 4096) * 4096);
  // Blocks go back to the OS only every K operations (trim), not whenever one falls free: with a
  // window of allocations in flight the default policy (keep 1 free block) would release and
  // re-register blocks continually. The same heap parameters on both sides.
  // (--keep-free below 64 brings back the first version's continual release and re-registration
  // of blocks while WRITEs from other blocks are in flight.)
  const shape = { blockBytes: block, maxBlocks: 64, keepFreeBlocks: Math.min(keepFree, 64) };
  const heap = RegisteredHeap.create(benchName('churn'), { ...shape, registrar: new VerbsRegistrar(pd) });
  const plain = RegisteredHeap.create(benchName('plain'), shape);
  let released = 0;
  const ours: Side = {
    name: 'memwire',
    begin(i) {
      const buf = heap.malloc(size)!;
      buf.view[0] = i;
      const r = heap.lookup(buf);
      return { mr: r.mr, offset: r.offset, finish: () => heap.free(buf) };
    },
    trim: () => (released += heap.trim()),
  };
  const floor: Side = {
    name: 'no registration',
    begin(i) {
      const buf = plain.malloc(size)!;
      buf.view[0] = i;
      sink += plain.lookup(buf).address;
      return { mr: undefined, offset: 0, finish: () => plain.free(buf) };
    },
    trim: () => plain.trim(),
  };
  const theirs: Side = {
    name: 'reg-per-alloc',
    begin(i) {
      const buf = plain.malloc(size)!;
      buf.view[0] = i;
      const r = plain.lookup(buf);
      const mr = pd.registerMemory({ address: r.address, length: size });
      return {
        mr,
        offset: 0,
        finish: () => {
          mr.dispose();
          plain.free(buf);
        },
      };
    },
    trim: () => plain.trim(),
  };
  try {
    for (const [m, mode] of CHURN_MODES.entries()) {
      if ((modes & (1 << m)) === 0) continue;
      progress(`regcache churn ${sizeLabel(size)} ${mode.metric}: ${rounds} rounds of ${ops} operations each way`);
      // Without a WRITE, a third side in the same rounds: the same loop with no registration at
      // all (the plain heap's malloc → lookup → free and its block churn) — the floor both sides
      // stand on, so (floor ops/s) / (register-per-allocation ops/s) is the most any registration
      // cache could show here, as the regime row is for the loops with a WRITE.
      const sides = mode.window === 0 ? [ours, theirs, floor] : [ours, theirs];
      for (const side of sides) churnLoop(rig, side, size, Math.min(50, ops), mode.window, releaseEvery); // warm-up
      const per = sides.map(() => new Array<number>(rounds));
      for (let r = 0; r < rounds; r++) sides.forEach((side, k) => (per[k][r] = churnLoop(rig, side, size, ops, mode.window, releaseEvery)));
      const [a, b] = per;
      // Each side's median ops/s; the ratio is the median of the per-round ratios (a round's
      // loops run back to back, so the guest's drift weighs on them alike).
      report.rows.push(pairedRow(`churn ${sizeLabel(size)}`, mode.metric, 'ops/s', a, b, 'reg-per-alloc'));
      report.notes.push(`churn ${sizeLabel(size)} ${mode.metric}: ${a.map((x) => x.toFixed(0)).join(', ')} vs ${b.map((x) => x.toFixed(0)).join(', ')} ops/s${roundRatios(a, b)}`);
      if (per[2]) {
        const f = per[2];
        report.rows.push(pairedRow(`churn ${sizeLabel(size)}`, 'ceiling: no registration at all (no write)', 'ops/s', f, b, 'reg-per-alloc'));
        const of = a.map((x, r) => (x / f[r]).toFixed(2)).join(', ');
        const us = (v: number[]) => (1e6 / median(v)).toFixed(1);
        report.notes.push(
          `churn ${sizeLabel(size)} no write: per operation memwire ${us(a)} µs, no registration ${us(f)} µs, register-per-allocation ${us(b)} µs (medians); ` +
            `memwire / no-registration per round ${of}; the ceiling (no registration / register-per-allocation) per round${roundRatios(f, b).replace('; per-round ratios', '')}`,
        );
      }
    }
    const s = heap.stats();
    report.notes.push(
      `churn ${sizeLabel(size)}: blocks of ${sizeLabel(block)}; memwire registered ${s.registrations} blocks (${s.hits} hits) and gave ${released} back to the OS over all modes and rounds`,
    );
  } finally {
    heap.dispose();
    plain.dispose();
  }
}

/**
 * What bounds the churn with a WRITE: the median cost of ibv_reg_mr + ibv_dereg_mr of `size` bytes
 * of a heap block, and of one signaled `size`-byte WRITE from a registered block (posted, waited
 * for), measured alternately in this run. Even with registration free, a loop that waits for each
 * WRITE can only be (write + reg + dereg) / write times faster than register-per-allocation.
 */
function regime(report: BenchReport, rig: Rig, size: number, reps: number): void {
  progress(`regcache regime ${sizeLabel(size)}: ${reps} × (reg+dereg, WRITE)`);
  const pd = rig.qp.pd;
  rig.side = 'regime';
  rig.posted.clear();
  const region = SharedRegion.create(benchName('regime'), size);
  try {
    for (let i = 0; i < size; i += 4096) region.bytes[i] = 1; // pages present, as a heap block's are
    const source = pd.registerMemory(region);
    const reg = new Float64Array(reps);
    const write = new Float64Array(reps);
    try {
      for (let k = 0; k < reps; k++) {
        const t0 = nowNs();
        pd.registerMemory({ address: region.address, length: size }).dispose();
        const t1 = nowNs();
        postWrite(rig, k, source, 0, size, 0);
        reapCompletions(rig, () => {});
        const t2 = nowNs();
        reg[k] = Number(t1 - t0) / 1000;
        write[k] = Number(t2 - t1) / 1000;
      }
    } finally {
      source.dispose();
    }
    const [r50] = percentiles(reg, [50]);
    const [w50] = percentiles(write, [50]);
    const ceiling = (w50 + r50) / w50;
    report.rows.push(makeRow(`regime ${sizeLabel(size)}`, 'ibv_reg_mr+ibv_dereg_mr', 'µs', 'lower', r50, null, 'none'));
    report.rows.push(makeRow(`regime ${sizeLabel(size)}`, 'one WRITE, posted and waited for', 'µs', 'lower', w50, null, 'none'));
    report.notes.push(
      `regime ${sizeLabel(size)}: reg+dereg ${r50.toFixed(1)} µs vs one WRITE ${w50.toFixed(1)} µs (medians of ${reps}): ` +
        `${r50 > w50 ? 'registration' : 'the WRITE'} dominates; a loop that waits for each WRITE can be at most ` +
        `(write + reg + dereg) / write = ${ceiling.toFixed(2)}× faster than register-per-allocation even if registration cost nothing`,
    );
  } finally {
    region.dispose();
  }
}

// --- 3. ibv_reg_mr cost ----------------------------------------------------------------------------

function regCost(report: BenchReport, rig: Rig, sizes: readonly number[], reps: number): void {
  const pd = rig.qp.pd;
  const largest = Math.max(...sizes);
  const region = SharedRegion.create(benchName('regmr'), largest);
  try {
    const bytes = region.bytes;
    for (let i = 0; i < bytes.length; i += 4096) bytes[i] = 1; // touch every page first
    for (const size of sizes) {
      progress(`regcache ibv_reg_mr: ${sizeLabel(size)} × ${reps}`);
      const reg = new Float64Array(reps);
      const dereg = new Float64Array(reps);
      for (let k = 0; k < reps; k++) {
        const t0 = nowNs();
        const mr = pd.registerMemory({ address: region.address, length: size });
        const t1 = nowNs();
        mr.dispose();
        const t2 = nowNs();
        reg[k] = Number(t1 - t0) / 1000;
        dereg[k] = Number(t2 - t1) / 1000;
      }
      const mib = size / (1 << 20);
      const [r50] = percentiles(reg, [50]);
      const [d50] = percentiles(dereg, [50]);
      report.rows.push(makeRow(`ibv_reg_mr ${sizeLabel(size)}`, 'µs per MiB', 'µs/MiB', 'lower', r50 / mib, null, 'none'));
      report.rows.push(makeRow(`ibv_dereg_mr ${sizeLabel(size)}`, 'µs per MiB', 'µs/MiB', 'lower', d50 / mib, null, 'none'));
    }
    report.notes.push(
      `ibv_reg_mr / ibv_dereg_mr on ${rig.sourceCtx.device.name}: median of ${reps} per size over shared memory already touched; ` +
        "no anchor: no published rxe figure exists; UCX's cost model for real NICs is ≈ 16 µs + 63 µs per MiB",
    );
  } finally {
    region.dispose();
  }
}

export async function run(argv: readonly string[]): Promise<{ report: BenchReport; json: boolean }> {
  const flags = parseFlags(argv, FLAGS);
  const quick = flags.boolean.has('quick');
  const report = newReport('regcache');
  const onlyDevice = flags.boolean.has('device');
  const onlyHost = flags.boolean.has('host');
  if (!onlyDevice) {
    progress('regcache: lookup hit vs Map.get');
    lookupHit(report, quick, flags.count.get('batch') ?? 1000, flags.count.get('iterations') ?? (quick ? 300 : 2000));
  }
  // The lookup target only where the lookup ran (not with --device: it would read "not judged").
  const targets: Target[] = onlyDevice
    ? []
    : [{ case: 'lookup hit', metric: 'p50', anchorName: 'Map.get', maxRatio: 8, text: 'lookup hit p50 ≤ 8× a Map.get of the same key' }];
  if (!onlyHost) {
    const sizes = [...new Set(flags.sizes.get('sizes') ?? [4096, 65536])];
    const regSizes = [...new Set(flags.sizes.get('reg-sizes') ?? (quick ? [1, 4, 16, 64] : [1, 4, 16, 64, 256]).map((m) => m << 20))];
    const rig = openRig(Math.max(...sizes));
    if (typeof rig === 'string') {
      report.notes.push(`churn and ibv_reg_mr parts skipped: ${rig} (run them in the rxe guest: scripts/rxe/run.sh -- node dist/src/cli/main.js bench regcache)`);
    } else {
      try {
        const ops = flags.count.get('iterations') ?? (quick ? 300 : 2000);
        const rounds = flags.count.get('rounds') ?? (quick ? 1 : 5);
        const releaseEvery = flags.count.get('release-every') ?? 64;
        for (const size of sizes) {
          regime(report, rig, size, flags.count.get('reps') ?? (quick ? 9 : 31));
          churn(report, rig, size, ops, rounds, releaseEvery, flags.sizes.get('block-bytes')?.[0], flags.count.get('modes') ?? 7, flags.count.get('keep-free') ?? 64);
        }
        report.notes.push(
          'churn modes: the same allocations and the same WRITEs on both sides. Where the regime row says the WRITE dominates ' +
            '(emulated rxe copies every byte in software), the WRITE rows are bounded by its ceiling whatever registration costs; ' +
            'the no-write row is the registration question itself (identical work but for the registration path)',
        );
        if (!flags.boolean.has('skip-regmr')) regCost(report, rig, regSizes, flags.count.get('reps') ?? (quick ? 3 : 5));
        report.notes.push(`RDMA on ${rig.ctxs.map((c) => c.device.name).join(' → ')}${rig.ctxs.length === 1 ? ' (loopback)' : ''}; device counters over the run: ${counterDelta(rig)}`);
        targets.push(
          { case: 'churn 64KiB', metric: CHURN_MODES[0].metric, anchorName: 'reg-per-alloc', maxRatio: Infinity, minRatio: 20, text: 'churn at 64 KiB ≥ 20× register-per-allocation (WRITE waited for: bounded by the regime row)' },
          { case: 'churn 64KiB', metric: CHURN_MODES[1].metric, anchorName: 'reg-per-alloc', maxRatio: Infinity, minRatio: 20, text: `churn at 64 KiB ≥ 20×, ${WINDOW} WRITEs in flight on both sides` },
          { case: 'churn 64KiB', metric: CHURN_MODES[2].metric, anchorName: 'reg-per-alloc', maxRatio: Infinity, minRatio: 20, text: 'churn at 64 KiB ≥ 20×, registration path alone (same allocations, no WRITE)' },
        );
      } finally {
        closeRig(rig);
      }
    }
  }
  report.targets = judgeTargets(report.rows, targets);
  if (sink === 0.5) report.notes.push(''); // keeps `sink` observable
  return { report, json: flags.boolean.has('json') };
}
