/**
 * The machine's state next to a measurement: the one-way cache-line hand-off time between the
 * two CPUs a bench pins to (bench/c/cacheline-pingpong.c, ~10–30 ms a probe).
 *
 * Why: on this project's VM that time flips between about 290 ns and 85 ns for seconds at a
 * time, whatever runs inside the VM (2026-12-07: 35 probes in a row at 286–300 ns, then 86 ns,
 * back to 280 ns, then 80 ns again; the host moves the two vCPUs). Every cross-CPU latency
 * moves with it — UCX's 64 B tag_lat between 0.13 and 0.55 µs, memwire's region ping-pong
 * between 0.20 and 0.76 µs — so two figures taken seconds apart can differ 3× with nothing of
 * ours changed. This is what region-pingpong's order check on Node showed as first/again 3.1–3.9
 * (issue 14). The order check now compares the two figures only when the probe around both
 * agrees, and says so when it does not.
 */
import { spawnSync } from 'node:child_process';
import { buildC } from '../shmem-bench-util.js';

/** Hand-offs per probe: ~6 ms in the slow state, enough for a stable p50. */
const PROBE_HANDOFFS = 20_000;
/** Two probes whose p50s differ by more than this factor are in different states. */
export const STATE_TOLERANCE = 1.25;

let binary: { path: string } | { error: string } | undefined;

/**
 * The p50 one-way cache-line hand-off in ns between `cpus[0]` and `cpus[1]`, or null when the
 * probe cannot run (no gcc, not pinned) — the caller then says nothing about the state.
 */
export function cacheLineNs(cpus: readonly [number, number] | null): number | null {
  if (!cpus) return null;
  binary ??= buildC('cacheline-pingpong', ['-pthread']);
  if ('error' in binary) return null;
  const result = spawnSync(binary.path, [String(PROBE_HANDOFFS), String(cpus[0]), String(cpus[1])], { encoding: 'utf8', timeout: 10_000 });
  if (result.status !== 0) return null;
  try {
    const p50 = (JSON.parse(result.stdout.trim().split('\n').pop() ?? '') as { p50: number }).p50;
    return p50 > 0 ? p50 : null;
  } catch {
    return null;
  }
}

/** The state around a measurement: the probe just before and just after it (ns, or null). */
export interface StateAround {
  before: number | null;
  after: number | null;
}

/** Run `measure` between two probes. */
export async function withState<T>(cpus: readonly [number, number] | null, measure: () => T | Promise<T>): Promise<{ value: T; state: StateAround }> {
  const before = cacheLineNs(cpus);
  const value = await measure();
  return { value, state: { before, after: cacheLineNs(cpus) } };
}

/** Whether every probe of the given states agrees within STATE_TOLERANCE (null when none ran). */
export function sameState(...states: StateAround[]): boolean | null {
  const ns = states.flatMap((s) => [s.before, s.after]).filter((v): v is number => v !== null);
  if (ns.length === 0) return null;
  return Math.max(...ns) <= STATE_TOLERANCE * Math.min(...ns);
}

export function stateText(state: StateAround): string {
  const f = (v: number | null) => (v === null ? '?' : v.toFixed(0));
  return `${f(state.before)}/${f(state.after)} ns`;
}

/**
 * One line for a bench's notes: the state around memwire's and the anchor's measurement of each
 * case, and the cases whose two were taken in different states (their ratio compares two
 * machines, not two libraries).
 */
export function statesNote(anchorName: string, cases: ReadonlyMap<string, { memwire?: StateAround; anchor?: StateAround }>): string | null {
  const parts: string[] = [];
  const differ: string[] = [];
  for (const [label, { memwire, anchor }] of cases) {
    if (!memwire) continue;
    parts.push(`${label} ${stateText(memwire)}${anchor ? ` | ${stateText(anchor)}` : ''}`);
    if (anchor && sameState(memwire, anchor) === false) differ.push(label);
  }
  if (parts.length === 0 || parts.every((p) => p.includes('?/?'))) return null;
  return (
    `machine state (cache-line hand-off between the two CPUs before/after, memwire | ${anchorName}): ${parts.join(', ')}` +
    (differ.length ? `; taken in different states (ratio not comparable): ${differ.join(', ')}` : '; every ratio compares figures taken in the same state')
  );
}
