/**
 * Bench `ffi-call`: what one call of a trivial C function costs through the active FFI backend
 * (koffi on Node, bun:ffi on Bun, Deno's own FFI on Deno), against a plain JS function call in
 * the same process.
 * Every per-message FFI call memwire would make pays this, which is why the shared-memory hot
 * path makes none.
 *
 * The C function is libc's abs(): pure, one int in and out, so the number is the crossing itself.
 * The JS anchor is a function of the same shape; the JIT inlines it, as it would any small JS
 * function, so the anchor is close to the loop's own cost.
 *
 * Batches of calls alternate between the two so both see the same noise; p50 is over batches.
 * Each other runtime installed (node on PATH, Bun and Deno from node_modules/.bin) runs the same
 * measurement in a child process and adds its backend's row.
 *
 * It imports memwire's internal FFI layer (ffi/backend.ts, ffi/runtime.ts) on purpose: the FFI
 * crossing is what it measures, and that layer is not part of the public API.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { backend, openLibrary, type FnDecl, type NativeFn } from '../ffi/backend.js';
import { runtimeName } from '../ffi/runtime.js';
import { runtimeCommand } from './lib/environment.js';
import { COMMON_FLAGS, parseFlags, type FlagSpec } from './lib/flags.js';
import { Peer } from './lib/peer.js';
import { judgeTargets, makeRow, newReport, type BenchReport } from './lib/report.js';
import { nowNs, percentiles, progress } from './lib/timing.js';

export const FLAGS: FlagSpec = {
  ...COMMON_FLAGS,
  iterations: { kind: 'count', help: 'calls per batch (default 2000000; --quick 500000)' },
  warmup: { kind: 'count', help: 'warm-up batches, not measured (default 5; --quick 2)' },
  batches: { kind: 'count', help: 'measured batches (default 31; --quick 11)' },
  'no-other-runtime': { kind: 'boolean', help: 'measure this runtime only (by default Node, Bun and Deno each add their row)' },
};

const ABS = { name: 'abs', c: 'int abs(int j)', returns: 'i32', args: ['i32'] } as const satisfies FnDecl;

function jsAbs(x: number): number {
  return x < 0 ? -x : x;
}

// Two loops rather than one taking a function: each call site stays monomorphic. The sum keeps
// the results alive so no call can be dropped.
function nativeBatch(abs: NativeFn, calls: number): number {
  let sum = 0;
  for (let i = 0; i < calls; i++) sum += abs(i - 1000) as number;
  return sum;
}

function jsBatch(calls: number): number {
  let sum = 0;
  for (let i = 0; i < calls; i++) sum += jsAbs(i - 1000);
  return sum;
}

export interface CallCosts {
  runtime: string;
  backend: string;
  /** p50 over batches, ns per call. */
  ffiNs: number;
  jsNs: number;
}

export interface CallPlan {
  calls: number;
  batches: number;
  warmup: number;
}

/** Measure both loops in this process, batches alternating. */
export function measureCallCosts(plan: CallPlan): CallCosts {
  const abs = openLibrary('libc').bind(ABS);
  if (abs(-7) !== 7) throw new Error(`abs(-7) returned ${String(abs(-7))} through ${backend.name}`);
  const ffi = new Float64Array(plan.batches);
  const js = new Float64Array(plan.batches);
  let sink = 0;
  for (let b = -plan.warmup; b < plan.batches; b++) {
    let start = nowNs();
    sink += nativeBatch(abs, plan.calls);
    const ffiNs = Number(nowNs() - start) / plan.calls;
    start = nowNs();
    sink += jsBatch(plan.calls);
    const jsNs = Number(nowNs() - start) / plan.calls;
    if (b >= 0) {
      ffi[b] = ffiNs;
      js[b] = jsNs;
    }
  }
  if (sink === 0.5) progress('impossible'); // keeps `sink` observable
  return { runtime: runtimeName, backend: backend.name, ffiNs: percentiles(ffi, [50])[0], jsNs: percentiles(js, [50])[0] };
}

/** The other runtimes installed beside this one (Node on PATH, Bun and Deno from node_modules/.bin). */
function otherRuntimes(): { name: string; command: string[] }[] {
  return (['node', 'bun', 'deno'] as const)
    .filter((name) => name !== runtimeName)
    .flatMap((name) => {
      const command = runtimeCommand(name);
      return command ? [{ name, command }] : [];
    });
}

async function measureIn(other: { name: string; command: string[] }, plan: CallPlan, report: BenchReport): Promise<CallCosts | null> {
  const script = fileURLToPath(new URL('./ffi-call-peer.js', import.meta.url));
  progress(`ffi-call: the same measurement in ${other.name} (${other.command[0]})`);
  const peer = Peer.start(`${other.name} ffi-call peer`, [...other.command, script, String(plan.calls), String(plan.batches), String(plan.warmup)]);
  try {
    const output = await peer.finish(120_000);
    const costs = JSON.parse(output.trim().split('\n').pop() ?? '') as CallCosts & { version: string };
    report.notes.push(`the ${costs.backend} row was measured by a ${costs.runtime} ${costs.version} child process; its anchor is a JS call in that process`);
    return costs;
  } catch (error) {
    report.notes.push(`the ${other.name} child failed, its row is left out: ${(error as Error).message}`);
    return null;
  } finally {
    await peer.stop();
  }
}

/** Issue targets for Deno's own FFI: ≤ 10 ns a call (absolute, in a note) and ≤ 20× a JS call. */
const DENO_MAX_NS = 10;
const DENO_MAX_RATIO = 20;

export async function run(argv: readonly string[]): Promise<{ report: BenchReport; json: boolean }> {
  const flags = parseFlags(argv, FLAGS);
  const quick = flags.boolean.has('quick');
  const plan: CallPlan = {
    calls: Math.max(1, flags.count.get('iterations') ?? (quick ? 500_000 : 2_000_000)),
    batches: Math.max(1, flags.count.get('batches') ?? (quick ? 11 : 31)),
    warmup: flags.count.get('warmup') ?? (quick ? 2 : 5),
  };
  const report = newReport('ffi-call');
  progress(`ffi-call: ${plan.batches} batches of ${plan.calls} calls (+${plan.warmup} warm-up) through ${backend.name}`);
  const own = measureCallCosts(plan);
  report.rows.push(makeRow(own.backend, 'p50', 'ns', 'lower', own.ffiNs, own.jsNs, `${own.runtime}-js-call`));
  const all = [own];
  if (!flags.boolean.has('no-other-runtime')) {
    for (const other of otherRuntimes()) {
      const costs = await measureIn(other, plan, report);
      if (costs) {
        all.push(costs);
        report.rows.push({ ...makeRow(costs.backend, 'p50', 'ns', 'lower', costs.ffiNs, costs.jsNs, `${costs.runtime}-js-call`), runtime: costs.runtime });
      }
    }
  }
  const deno = all.find((c) => c.backend === 'deno');
  if (deno) {
    report.targets = judgeTargets(report.rows, [
      { case: 'deno', metric: 'p50', anchorName: 'deno-js-call', maxRatio: DENO_MAX_RATIO, text: `Deno's FFI within ${DENO_MAX_RATIO}× a JS call in the same Deno process` },
    ]);
    report.notes.push(`Deno's FFI: ${deno.ffiNs.toFixed(1)} ns a call, target ≤ ${DENO_MAX_NS} ns: ${deno.ffiNs <= DENO_MAX_NS ? 'PASS' : 'MISS'}`);
  }
  report.notes.push(`C function: ${ABS.c} from ${openLibrary('libc').path}; p50 over ${plan.batches} batches of ${plan.calls} calls`);
  return { report, json: flags.boolean.has('json') };
}
