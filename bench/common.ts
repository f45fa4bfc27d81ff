/**
 * What every memwire benchmark shares, in one place: flag parsing, percentiles, the report (a
 * readable table, or one JSON line as the last line of stdout), the versions recorded with a
 * result, CPU pinning, and peer processes that are started, waited for with a timeout and killed
 * on any failure (and at exit, whatever happened).
 *
 * A benchmark measures memwire and its anchor in the same run and reports ratio = memwire /
 * anchor, because this project's machines are noisy and only same-run ratios compare.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism, arch, hostname, loadavg, release, totalmem } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { backend, type NativeFn } from '../ffi/backend.js';
import { libc } from '../ffi/libc.js';
import { runtimeName, runtimeVersion } from '../ffi/runtime.js';
import { platform } from '../src/index.js';

// ---------------------------------------------------------------------------------------------
// Results

export type Better = 'lower' | 'higher';

/** One measurement beside its anchor. Every row has exactly one anchor (null if unavailable). */
export interface Row {
  case: string;
  metric: string;
  unit: string;
  better: Better;
  memwire: number;
  anchor: number | null;
  anchorName: string;
  ratio: number | null;
  /** The runtime that measured this row, where it is not the report's own (ffi-call's children). */
  runtime?: string;
}

/** A goal for one row, printed with a pass/miss marker (never turned into an exit code). */
export interface Target {
  case: string;
  metric: string;
  anchorName: string;
  /** The row passes when its ratio is at most this. */
  maxRatio: number;
  /** For rows where higher is better: the row passes when its ratio is at least this (maxRatio is then ignored). */
  minRatio?: number;
  text: string;
}

export interface BenchReport {
  bench: string;
  runtime: string;
  backend: string;
  versions: Record<string, string | null>;
  rows: Row[];
  /** Human remarks: a missing anchor, what the anchor's columns mean, the timer's cost. */
  notes: string[];
  targets: (Target & { pass: boolean | null })[];
}

export function makeRow(
  caseName: string,
  metric: string,
  unit: string,
  better: Better,
  memwire: number,
  anchor: number | null,
  anchorName: string,
): Row {
  const ratio = anchor !== null && anchor > 0 ? memwire / anchor : null;
  return { case: caseName, metric, unit, better, memwire, anchor, anchorName, ratio };
}

/** Attach each target's verdict (null when its row has no ratio). */
export function judgeTargets(rows: readonly Row[], targets: readonly Target[]): (Target & { pass: boolean | null })[] {
  return targets.map((target) => {
    const row = rows.find((r) => r.case === target.case && r.metric === target.metric && r.anchorName === target.anchorName);
    const pass = row?.ratio == null ? null : target.minRatio !== undefined ? row.ratio >= target.minRatio : row.ratio <= target.maxRatio;
    return { ...target, pass };
  });
}

// ---------------------------------------------------------------------------------------------
// Flags

export class FlagError extends Error {}

export type FlagKind = 'boolean' | 'count' | 'sizes' | 'seconds';
export type FlagSpec = Record<string, { kind: FlagKind; help: string }>;

/** Flags every bench accepts. */
export const COMMON_FLAGS: FlagSpec = {
  quick: { kind: 'boolean', help: 'finish in well under a minute (fewer iterations)' },
  json: { kind: 'boolean', help: 'print one JSON object as the last line of stdout' },
  iterations: { kind: 'count', help: 'measured iterations (per size, where there are sizes)' },
  warmup: { kind: 'count', help: 'warm-up iterations, not measured' },
};

export interface ParsedFlags {
  readonly boolean: ReadonlySet<string>;
  readonly count: ReadonlyMap<string, number>;
  readonly sizes: ReadonlyMap<string, number[]>;
  readonly seconds: ReadonlyMap<string, number>;
}

/** "64" / "4k" / "4KiB" / "1M" → bytes. */
export function parseSize(text: string): number {
  const match = /^(\d+)\s*(b|k|kb|kib|m|mb|mib)?$/i.exec(text.trim());
  if (!match) throw new FlagError(`not a size: ${JSON.stringify(text)} (use e.g. 64, 4KiB, 1MiB)`);
  const unit = (match[2] ?? 'b').toLowerCase();
  const scale = unit.startsWith('m') ? 1 << 20 : unit.startsWith('k') ? 1024 : 1;
  const bytes = Number(match[1]) * scale;
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new FlagError(`size must be positive: ${JSON.stringify(text)}`);
  return bytes;
}

/** 64 → "64B", 1024 → "1KiB", 65536 → "64KiB", 1 MiB → "1MiB". */
export function sizeLabel(bytes: number): string {
  if (bytes >= 1 << 20 && bytes % (1 << 20) === 0) return `${bytes / (1 << 20)}MiB`;
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024}KiB`;
  return `${bytes}B`;
}

/** Parse `--name`, `--name value`, `--name=value` and `--no-name` against `spec`; throws FlagError. */
export function parseFlags(argv: readonly string[], spec: FlagSpec): ParsedFlags {
  const boolean = new Set<string>();
  const count = new Map<string, number>();
  const sizes = new Map<string, number[]>();
  const seconds = new Map<string, number>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) throw new FlagError(`unexpected argument ${JSON.stringify(arg)}`);
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const entry = spec[name];
    if (!entry) throw new FlagError(`unknown flag --${name}`);
    if (entry.kind === 'boolean') {
      if (eq >= 0) throw new FlagError(`--${name} takes no value`);
      boolean.add(name);
      continue;
    }
    const value = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined) throw new FlagError(`--${name} needs a value`);
    if (entry.kind === 'count') {
      const n = Number(value);
      if (!Number.isSafeInteger(n) || n < 0) throw new FlagError(`--${name} needs a whole number ≥ 0, got ${JSON.stringify(value)}`);
      count.set(name, n);
    } else if (entry.kind === 'seconds') {
      const n = Number(value);
      if (!Number.isFinite(n) || n <= 0) throw new FlagError(`--${name} needs a positive number of seconds, got ${JSON.stringify(value)}`);
      seconds.set(name, n);
    } else {
      const list = value.split(',').filter((s) => s.trim() !== '').map(parseSize);
      if (list.length === 0) throw new FlagError(`--${name} needs at least one size`);
      sizes.set(name, list);
    }
  }
  return { boolean, count, sizes, seconds };
}

export function flagHelp(spec: FlagSpec): string {
  return Object.entries(spec)
    .map(([name, { kind, help }]) => {
      const shown = kind === 'boolean' ? `--${name}` : kind === 'sizes' ? `--${name} 64,4KiB` : kind === 'seconds' ? `--${name} S` : `--${name} N`;
      return `  ${shown.padEnd(22)} ${help}`;
    })
    .join('\n');
}

// ---------------------------------------------------------------------------------------------
// Statistics and timing

/** Nearest-rank percentile (q in 0..100) of samples; sorts `samples` in place. */
export function percentiles(samples: Float64Array, qs: readonly number[]): number[] {
  if (samples.length === 0) throw new Error('no samples');
  samples.sort();
  return qs.map((q) => samples[Math.min(samples.length - 1, Math.max(0, Math.ceil((q / 100) * samples.length) - 1))]);
}

/** Nanoseconds on a monotonic clock (process.hrtime.bigint works on Node, Bun and Deno). */
export function nowNs(): bigint {
  return process.hrtime.bigint();
}

/** What one nowNs() plus the Number(delta) that follows costs here, in ns (median of 5 batches). */
export function timerCostNs(): number {
  const batches = new Float64Array(5);
  const n = 200_000;
  for (let b = 0; b < batches.length; b++) {
    const start = process.hrtime.bigint();
    let prev = start;
    let sink = 0;
    for (let i = 0; i < n; i++) {
      const now = process.hrtime.bigint();
      sink += Number(now - prev);
      prev = now;
    }
    batches[b] = Number(prev - start) / n + (sink < 0 ? 1 : 0);
  }
  return percentiles(batches, [50])[0];
}

/** Messages go to stderr, so stdout holds only the report. */
export function progress(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Reject with an Error naming `what` unless `promise` settles within `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: no answer within ${Math.round(ms)} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------------
// Where we run: versions, executables

/** The repository root (bench/ and dist/bench/ both find it by looking for package.json). */
export function projectRoot(): string {
  for (const up of ['../', '../../']) {
    const dir = fileURLToPath(new URL(up, import.meta.url));
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string };
      if (pkg.name === 'memwire') return dir;
    } catch {
      // not here
    }
  }
  return process.cwd();
}

/** The first executable named `name` on PATH (or at one of `extra`), or null. */
export function findExecutable(name: string, extra: readonly string[] = []): string | null {
  const candidates = [...extra, ...(process.env.PATH ?? '').split(delimiter).filter(Boolean).map((dir) => join(dir, name))];
  for (const candidate of candidates) {
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // keep looking
    }
  }
  return null;
}

/**
 * argv that starts a JS program on `runtime` (node from PATH; Bun and Deno from node_modules/.bin,
 * then PATH), or null when that runtime is not installed. Deno runs with --allow-all, as memwire
 * needs under Deno (ffi/deno-permissions.ts).
 */
export function runtimeCommand(runtime: 'node' | 'bun' | 'deno'): string[] | null {
  const local = [join(projectRoot(), 'node_modules/.bin', runtime)];
  if (runtime === 'node') {
    const exe = findExecutable('node');
    return exe ? [exe] : null;
  }
  const exe = findExecutable(runtime, local);
  if (!exe) return null;
  return runtime === 'deno' ? [exe, 'run', '--allow-all'] : [exe];
}

function firstLine(command: string, args: readonly string[], pattern: RegExp): string | null {
  try {
    const result = spawnSync(command, args, { encoding: 'utf8', timeout: 5000 });
    const match = pattern.exec(`${result.stdout ?? ''}\n${result.stderr ?? ''}`);
    return match ? match[1] : null;
  } catch {
    return null;
  }
}

let cachedVersions: Record<string, string | null> | undefined;

/** Machine, kernel, libc, runtime, FFI backend and anchor tool versions, recorded with every result. */
export function collectVersions(): Record<string, string | null> {
  if (cachedVersions) return { ...cachedVersions };
  let cpu: string | null = null;
  try {
    cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? null;
  } catch {
    // not Linux
  }
  let koffi: string | null = null;
  try {
    koffi = (JSON.parse(readFileSync(join(projectRoot(), 'node_modules/koffi/package.json'), 'utf8')) as { version: string }).version;
  } catch {
    // not installed
  }
  const ucxInfo = findExecutable('ucx_info');
  cachedVersions = {
    runtime: `${runtimeName} ${runtimeVersion()}`,
    backend: backend.name,
    koffi: backend.name === 'koffi' ? koffi : null,
    kernel: release(),
    glibc: platform.libc.replace(/^glibc /, ''),
    cpu,
    cpus: String(availableParallelism()),
    arch: arch(),
    memory: `${Math.round(totalmem() / 2 ** 30)} GiB`,
    machine: hostname(),
    // Others' work on a shared box shows up here; compare it between runs before the numbers.
    loadAverage: loadavg()
      .map((l) => l.toFixed(2))
      .join(' '),
    ucx: ucxInfo ? firstLine(ucxInfo, ['-v'], /Version\s+(\S+)/) : null,
  };
  return { ...cachedVersions };
}

// ---------------------------------------------------------------------------------------------
// CPU pinning (one FFI call per process at set-up; never per message)

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

// ---------------------------------------------------------------------------------------------
// Peer processes

/**
 * Whether process `pid` runs, read from /proc (a zombie counts as dead). Synchronous and cheap
 * enough for a busy loop's rare checks, where no 'exit' event can arrive.
 */
export function processRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.charAt(stat.lastIndexOf(')') + 2);
    return state !== 'Z' && state !== 'X';
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
  }
  // /proc unreadable (Deno allows it only with --allow-all): ask the kernel with signal 0,
  // which cannot tell a zombie from a live process.
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const livePeers = new Set<Peer>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Whatever ends this process (an exception, process.exit), no peer outlives it. Peers also
  // watch their parent, for the deaths no hook sees (SIGKILL).
  process.once('exit', () => {
    for (const peer of livePeers) peer.kill();
  });
}

export interface PeerExit {
  code: number | null;
  signal: string | null;
}

/**
 * A child process of a benchmark: started with its stdout captured, waited for with a timeout,
 * killed (SIGKILL) on any failure and at exit.
 */
export class Peer {
  readonly label: string;
  readonly child: ChildProcess;
  readonly exited: Promise<PeerExit>;
  #exit: PeerExit | undefined;
  #stdout = '';
  #stderr = '';
  /** Called on any output and on exit: wakes waitFor(). */
  #onEvent: (() => void) | undefined;

  readonly #ownGroup: boolean;

  private constructor(label: string, child: ChildProcess, ownGroup: boolean) {
    this.label = label;
    this.child = child;
    this.#ownGroup = ownGroup;
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      this.#stdout += chunk;
      this.#onEvent?.();
    });
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      this.#stderr += chunk;
      this.#onEvent?.();
    });
    this.exited = new Promise((resolve) => {
      const done = (exit: PeerExit) => {
        if (this.#exit) return;
        this.#exit = exit;
        livePeers.delete(this);
        resolve(exit);
        this.#onEvent?.();
      };
      child.once('exit', (code, signal) => done({ code, signal }));
      child.once('error', (error) => {
        this.#stderr += `${error.message}\n`;
        done({ code: null, signal: null });
      });
    });
  }

  /**
   * Start `argv` (e.g. from selfCommand). stderr is captured too when `captureStderr` (a C tool
   * whose errors we quote), otherwise it is passed through to ours.
   *
   * `lifetimeSeconds` is for programs that cannot notice our death (a ucx_perftest server waits
   * for its client for ever): they run in their own process group under coreutils `timeout -s
   * KILL`, so they die by then whatever happens to us, and kill() takes the whole group.
   */
  static start(
    label: string,
    argv: readonly string[],
    options: { env?: NodeJS.ProcessEnv; captureStderr?: boolean; lifetimeSeconds?: number } = {},
  ): Peer {
    installExitHook();
    const timeout = options.lifetimeSeconds ? findExecutable('timeout') : null;
    const full = timeout ? [timeout, '-s', 'KILL', String(Math.ceil(options.lifetimeSeconds ?? 0)), ...argv] : argv;
    const [command, ...args] = full;
    const child = spawn(command, args, {
      stdio: ['ignore', 'pipe', options.captureStderr ? 'pipe' : 'inherit'],
      env: options.env ?? process.env,
      detached: timeout !== null,
    });
    const peer = new Peer(label, child, timeout !== null);
    livePeers.add(peer);
    return peer;
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get stdout(): string {
    return this.#stdout;
  }

  get stderr(): string {
    return this.#stderr;
  }

  /** Whether the process has exited, as the event loop has seen it. */
  get hasExited(): boolean {
    return this.#exit !== undefined;
  }

  /**
   * Whether the process is still running, read from /proc now: usable inside a busy loop, where
   * the 'exit' event cannot arrive. An unreaped child (a zombie) counts as dead.
   */
  isRunningNow(): boolean {
    return !this.#exit && processRunning(this.pid);
  }

  /** Resolve when `test` holds (checked on each output and every 5 ms); reject if the peer exits or time runs out. */
  async waitFor(what: string, test: () => boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!test()) {
      if (this.#exit) throw new Error(`${this.label} exited (${describeExit(this.#exit)}) before ${what}${this.#tail()}`);
      if (Date.now() > deadline) throw new Error(`${this.label}: ${what} did not happen within ${timeoutMs} ms${this.#tail()}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 5);
        this.#onEvent = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#onEvent = undefined;
    }
  }

  /** Wait for the peer to exit; an Error on timeout (the caller's finally kills it). */
  async waitExit(timeoutMs: number): Promise<PeerExit> {
    return withTimeout(this.exited, timeoutMs, `${this.label} exit`);
  }

  /** Wait for a clean exit (code 0) and return its stdout; anything else is an Error. */
  async finish(timeoutMs: number): Promise<string> {
    const exit = await this.waitExit(timeoutMs);
    if (exit.code !== 0) throw new Error(`${this.label} failed (${describeExit(exit)})${this.#tail()}`);
    return this.#stdout;
  }

  /** SIGKILL the peer unless it has exited. Safe to call at any time, any number of times. */
  kill(): void {
    if (this.#exit) return;
    try {
      if (this.#ownGroup && this.pid > 0) process.kill(-this.pid, 'SIGKILL');
      else this.child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }

  /** Kill, then wait (boundedly) until the exit is seen, so no process outlives its phase. */
  async stop(timeoutMs = 2000): Promise<void> {
    this.kill();
    await this.waitExit(timeoutMs).catch(() => undefined);
  }

  #tail(): string {
    const text = `${this.#stderr}${this.#stdout}`.trim();
    return text ? `: ${text.split('\n').slice(-5).join(' | ')}` : '';
  }
}

function describeExit(exit: PeerExit): string {
  return exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`;
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('no port'))));
    });
  });
}

/** Whether some socket listens on TCP `port` (IPv4 or IPv6), from /proc/net. */
export function isListening(port: number): boolean {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      // fields[1] is local "ADDR:PORT", fields[3] the state; 0A is LISTEN.
      if (fields.length > 3 && fields[3] === '0A' && fields[1].endsWith(`:${hex}`)) return true;
    }
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// The report

function formatNumber(value: number | null, unit: string): string {
  if (value === null) return '—';
  if (unit === 'ns') return value.toFixed(1);
  if (unit === 'us') return value < 10 ? value.toFixed(3) : value < 1000 ? value.toFixed(2) : value.toFixed(0);
  return Math.abs(value) >= 100 ? value.toFixed(0) : value.toPrecision(3);
}

function table(header: readonly string[], body: readonly string[][], rightAligned: ReadonlySet<number>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i].length)));
  const line = (cells: readonly string[]) =>
    cells.map((cell, i) => (rightAligned.has(i) ? cell.padStart(widths[i]) : cell.padEnd(widths[i]))).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}

/** The human form: a table with ratio and anchor name, the targets, notes and versions. */
export function formatReport(report: BenchReport): string {
  const targetOf = (row: Row) =>
    report.targets.find((t) => t.case === row.case && t.metric === row.metric && t.anchorName === row.anchorName);
  const body = report.rows.map((row) => {
    const target = targetOf(row);
    const verdict = target ? `${target.minRatio !== undefined ? `≥${target.minRatio}` : `≤${target.maxRatio}`}× ${target.pass === null ? '? (no anchor)' : target.pass ? 'PASS' : 'MISS'}` : '';
    return [
      row.runtime ?? report.runtime,
      row.case,
      row.metric,
      row.unit,
      formatNumber(row.memwire, row.unit),
      formatNumber(row.anchor, row.unit),
      row.anchorName,
      row.ratio === null ? '—' : `${row.ratio.toFixed(2)}×`,
      verdict,
    ];
  });
  const lines = [
    `${report.bench} — ${report.versions.runtime ?? report.runtime}, ${report.backend} (ratio = memwire / anchor; ${report.rows[0]?.better ?? 'lower'} is better)`,
    '',
    table(['runtime', 'case', 'metric', 'unit', 'memwire', 'anchor', 'anchorName', 'ratio', 'target'], body, new Set([4, 5, 7])),
  ];
  if (report.targets.length > 0) {
    lines.push('', 'targets:');
    for (const t of report.targets) {
      lines.push(`  ${t.pass === null ? '?   ' : t.pass ? 'PASS' : 'MISS'}  ${t.text}`);
    }
  }
  if (report.notes.length > 0) {
    lines.push('', 'notes:');
    for (const note of report.notes) lines.push(`  - ${note}`);
  }
  lines.push('', 'versions:');
  for (const [key, value] of Object.entries(report.versions)) lines.push(`  ${key.padEnd(13)} ${value ?? '—'}`);
  return lines.join('\n');
}

/** Print the report: the table, or with `json` one JSON object as the last line of stdout. */
export function printReport(report: BenchReport, json: boolean): void {
  if (json) process.stdout.write(`${JSON.stringify(report)}\n`);
  else process.stdout.write(`${formatReport(report)}\n`);
}

/** The skeleton of a report for this runtime and backend. */
export function newReport(bench: string): BenchReport {
  return {
    bench,
    runtime: runtimeName,
    backend: backend.name,
    versions: collectVersions(),
    rows: [],
    notes: [],
    targets: [],
  };
}
