/**
 * `memwire bench report [--rxe] [--quick] [--out DIR] [--only a,b] [--runtimes node,bun,deno]`: runs
 * every benchmark on every runtime this checkout has (Node with koffi, Bun with bun:ffi, Deno with
 * its own FFI), each as
 * its own `memwire bench <name> --json` process, and writes DIR/report.md, DIR/report.json and
 * DIR/charts/*.svg. With --rxe the RDMA benchmarks run too (the rdma-* ones, and regcache's device
 * part), inside the Soft-RoCE guest (scripts/rxe/run.sh, one boot for all of them); without it, on
 * a host with no RDMA device, they are listed as skipped.
 *
 * The guest part is this same command with --guest-part: before each run it prints a
 * GUEST_START_MARK line and after it a GUEST_RUN_MARK line (the run and the bench's log), each one
 * JSON object, on its stdout, which run.sh streams to ours; the host picks them out of the stream
 * for progress and writes each log under DIR/logs/ as for a host run. A run the guest never
 * reported (it died, run.sh timed out) is a failed run naming the guest's log.
 *
 * Each run's JSON is kept as the bench printed it; report.json holds it unchanged, so the report
 * never shows a figure the bench did not print. Progress (which bench, which runtime, elapsed,
 * what is left) goes to stderr; each bench's own output goes to DIR/logs/.
 *
 * Exit status: 0 when every run that was attempted printed its report (missed targets are
 * reported, not failures), 1 when one failed, 2 for a bad flag, 130/143 when SIGINT/SIGTERM
 * stopped it (the report so far is written, the unfinished runs marked).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadRenderer, writeCharts } from './report-charts.js';
import { renderMarkdown } from './report-markdown.js';
import { needsRdmaDevice, rxeFlags, type BenchReport, type BenchRun, type FullReport, type Place } from './report-model.js';
import { CommandUsageError } from './usage.js';

export const REPORT_USAGE = `usage: memwire bench report [--quick] [--rxe] [--out DIR] [--only NAME,…] [--runtimes node,bun,deno]

Runs every benchmark on Node, Bun and Deno, each against its anchor, and writes DIR/report.md
(tables, ratios, targets met or missed, machine and versions), DIR/report.json (every bench's own
JSON report, unchanged) and DIR/charts/*.svg. Progress goes to stderr.

  --quick          each bench with --quick (a few minutes in all)
  --rxe            also the RDMA benches (rdma-*, regcache's device part) in the Soft-RoCE
                   guest (scripts/rxe/run.sh; one boot; --quick on node and bun: see bench/README.md)
  --out DIR        where to write (default: ./memwire-report)
  --only a,b       only these benches (memwire bench list)
  --runtimes a,b   only these runtimes (default: node,bun,deno — those found)
  --timeout SEC    per bench run (default: 300 with --quick, else 1800)

exit status: 0 every attempted run reported; 1 a run failed; 2 a bad flag;
130/143 interrupted by SIGINT/SIGTERM (the report so far is written)`;

/** The markers before the lines the guest part prints on stdout, so the host can pick them out of the guest's stream. */
const GUEST_START_MARK = 'memwire-report-start ';
const GUEST_RUN_MARK = 'memwire-report-run ';

const PROJECT_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = join(PROJECT_ROOT, 'dist', 'src', 'cli', 'main.js');

export interface ReportOptions {
  quick: boolean;
  rxe: boolean;
  out: string;
  only: string[] | null;
  runtimes: string[] | null;
  timeoutSeconds: number;
  /** Internal: run the RDMA benches here and print each run after GUEST_RUN_MARK (the guest side of --rxe). */
  guestPart: boolean;
}

export class ReportUsageError extends CommandUsageError {}

export function parseReportArgs(argv: readonly string[]): ReportOptions {
  const options: ReportOptions = { quick: false, rxe: false, out: 'memwire-report', only: null, runtimes: null, timeoutSeconds: 0, guestPart: false };
  const list = (value: string | undefined, flag: string) => {
    if (!value || value.startsWith('--')) throw new ReportUsageError(`${flag} needs a comma-separated list`);
    return value.split(',').map((s) => s.trim()).filter(Boolean);
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--quick') options.quick = true;
    else if (arg === '--rxe') options.rxe = true;
    else if (arg === '--guest-part') options.guestPart = true;
    else if (arg === '--out') {
      const value = argv[++i];
      if (!value || value.startsWith('--')) throw new ReportUsageError('--out needs a directory');
      options.out = value;
    } else if (arg === '--only') options.only = list(argv[++i], '--only');
    else if (arg === '--runtimes') options.runtimes = list(argv[++i], '--runtimes');
    else if (arg === '--timeout') {
      const value = Number(argv[++i]);
      if (!Number.isInteger(value) || value <= 0) throw new ReportUsageError('--timeout needs a positive number of seconds');
      options.timeoutSeconds = value;
    } else throw new ReportUsageError(`unknown flag ${JSON.stringify(arg)}`);
  }
  options.timeoutSeconds ||= options.quick ? 300 : 1800;
  return options;
}

interface Runtime {
  name: string;
  /** The command that runs a JS file under this runtime. */
  command: string[];
}

const RUNTIMES = ['node', 'bun', 'deno'];

/** The runtimes of this checkout: Node (this one, or node on PATH), Bun and Deno (their npm packages' binaries). */
function findRuntimes(wanted: string[] | null): { runtimes: Runtime[]; missing: string[] } {
  const binary = (name: string) => join(PROJECT_ROOT, 'node_modules', '.bin', name);
  const all: Runtime[] = [
    { name: 'node', command: [process.versions.bun || typeof (globalThis as { Deno?: unknown }).Deno !== 'undefined' ? 'node' : process.execPath] },
    ...(existsSync(binary('bun')) ? [{ name: 'bun', command: [binary('bun'), '--bun'] }] : []),
    // Deno opens /dev/shm, /proc and /sys to --allow-all only (docs/deno.md).
    ...(existsSync(binary('deno')) ? [{ name: 'deno', command: [binary('deno'), 'run', '--allow-all'] }] : []),
  ];
  const names = wanted ?? RUNTIMES;
  const unknown = names.filter((n) => !RUNTIMES.includes(n));
  if (unknown.length) throw new ReportUsageError(`unknown runtime ${unknown.join(', ')} (${RUNTIMES.join(', ')})`);
  const runtimes = all.filter((r) => names.includes(r.name));
  return { runtimes, missing: names.filter((n) => !runtimes.some((r) => r.name === n)) };
}

function hasRdmaDevice(): boolean {
  try {
    return readdirSync('/sys/class/infiniband').length > 0;
  } catch {
    return false;
  }
}

function clock(ms: number): string {
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

interface Spawned {
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** The process groups of the commands running now, so an interrupted report takes them down with it. */
const running = new Set<(signal: NodeJS.Signals) => void>();

/** The signal that interrupted the report, if one did: what is left is not started. */
let interrupted: NodeJS.Signals | null = null;

/**
 * On SIGINT/SIGTERM: TERM every running command's group (run.sh's trap then stops QEMU and removes
 * its files: a KILL would leave them); the report then writes what it has, the runs it did not
 * finish marked as such, and exits 130/143. If that takes more than 20 s, it exits anyway.
 */
function onInterrupt(signal: NodeJS.Signals): void {
  interrupted = signal;
  process.stderr.write(`memwire bench report: ${signal}: stopping the running bench, then writing the report so far\n`);
  for (const kill of running) kill('SIGTERM');
  setTimeout(() => {
    for (const kill of running) kill('SIGKILL');
    process.exit(signal === 'SIGINT' ? 130 : 143);
  }, 20_000).unref();
}

/** Run a command with a time limit; on timeout its whole process group is killed (benches start peers). */
function run(command: readonly string[], timeoutMs: number, onStdoutLine?: (line: string) => void, onStderrLine?: (line: string) => void): Promise<Spawned> {
  return new Promise((resolvePromise) => {
    const child = spawn(command[0], command.slice(1), { cwd: PROJECT_ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    /** Calls `each` with every whole line of a stream as it comes. */
    const lines = (each?: (line: string) => void) => {
      let pending = '';
      return (chunk: string) => {
        if (!each) return;
        pending += chunk;
        const whole = pending.split('\n');
        pending = whole.pop() ?? '';
        whole.forEach(each);
      };
    };
    const outLines = lines(onStdoutLine);
    const errLines = lines(onStderrLine);
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      outLines(chunk);
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      errLines(chunk);
    });
    const kill = (signal: NodeJS.Signals) => {
      try {
        process.kill(-child.pid!, signal);
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      kill('SIGTERM');
      setTimeout(() => kill('SIGKILL'), 5000).unref();
    }, timeoutMs);
    // If the report itself ends or is interrupted, its bench goes with it.
    const onExit = () => kill('SIGKILL');
    process.once('exit', onExit);
    running.add(kill);
    child.on('error', (error) => {
      stderr += `\n${error.message}`;
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      process.off('exit', onExit);
      running.delete(kill);
      resolvePromise({ code, stdout, stderr, timedOut });
    });
  });
}

/** The bench's report: the last stdout line, parsed, if it is one. */
export function lastJsonReport(stdout: string): BenchReport | null {
  const last = stdout.trimEnd().split('\n').pop() ?? '';
  try {
    const parsed = JSON.parse(last) as BenchReport;
    return typeof parsed === 'object' && parsed !== null && typeof parsed.bench === 'string' && Array.isArray(parsed.rows) ? parsed : null;
  } catch {
    return null;
  }
}

/** The line of a bench's stderr that says what went wrong: its "failed" line, else the last line that is not a stack frame. */
export function failureLine(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter(Boolean);
  return lines.find((l) => / failed: /.test(l)) ?? lines.filter((l) => !l.startsWith('at ')).pop() ?? '';
}

/** The log of one run: the command, the bench's stdout and its stderr. */
function logText(args: readonly string[], result: Spawned): string {
  return `$ ${args.join(' ')}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`;
}

const logName = (bench: string, runtime: string, place: Place) => join('logs', `${bench}.${runtime}${place === 'rxe' ? '.rxe' : ''}.log`);

async function runOne(bench: string, runtime: Runtime, options: ReportOptions, place: Place, flags: readonly string[]): Promise<{ result: BenchRun; log: string }> {
  const started = Date.now();
  const args = [...runtime.command, CLI, 'bench', bench, '--json', ...(options.quick ? ['--quick'] : []), ...flags];
  const spawned = await run(args, options.timeoutSeconds * 1000);
  const seconds = (Date.now() - started) / 1000;
  const report = spawned.code === 0 ? lastJsonReport(spawned.stdout) : null;
  const error = interrupted && !report
    ? `interrupted (${interrupted}) after ${seconds.toFixed(0)} s`
    : spawned.timedOut
    ? `timed out after ${options.timeoutSeconds} s`
    : report
      ? null
      : spawned.code === 0
        ? 'no JSON report on the last line of stdout'
        : `exit ${spawned.code}: ${failureLine(spawned.stderr)}`.slice(0, 300);
  const result: BenchRun = { bench, runtime: runtime.name, place, status: report ? 'ok' : 'failed', exitCode: spawned.code, seconds, report, error, log: logName(bench, runtime.name, place) };
  if (flags.length) result.flags = [...flags];
  return { result, log: logText(args, spawned) };
}

const skipped = (bench: string, runtime: string, place: Place, error: string): BenchRun => ({
  bench,
  runtime,
  place,
  status: 'skipped',
  exitCode: null,
  seconds: 0,
  report: null,
  error,
  log: null,
});

/** The guest side of --rxe: run the RDMA benches here, announcing each and then printing it (with its log) as one marked JSON line. */
async function guestPart(options: ReportOptions, benches: string[], runtimes: Runtime[]): Promise<number> {
  let failed = 0;
  for (const bench of benches) {
    for (const runtime of runtimes) {
      process.stdout.write(`${GUEST_START_MARK}${JSON.stringify({ bench, runtime: runtime.name })}\n`);
      const { result, log } = await runOne(bench, runtime, options, 'rxe', rxeFlags(bench) ?? []);
      if (result.status !== 'ok') failed++;
      process.stdout.write(`${GUEST_RUN_MARK}${JSON.stringify({ run: result, log })}\n`);
    }
  }
  return failed ? 1 : 0;
}

/** The progress line after a run: its status, time, rows and targets, or why it failed. */
function outcome(result: BenchRun): string {
  const targets = result.report?.targets ?? [];
  return (
    `    ${result.status} in ${result.seconds.toFixed(1)} s` +
    (result.report ? `: ${result.report.rows.length} rows, targets ${targets.filter((t) => t.pass).length} met / ${targets.filter((t) => t.pass === false).length} missed` : `: ${result.error}`)
  );
}

export async function runReport(argv: readonly string[]): Promise<number> {
  let options: ReportOptions;
  let found: ReturnType<typeof findRuntimes>;
  let benches: string[];
  try {
    options = parseReportArgs(argv);
    found = findRuntimes(options.runtimes);
    const { benchNames } = await import('../../bench/index.js');
    const unknown = (options.only ?? []).filter((name) => !benchNames.includes(name));
    if (unknown.length) throw new ReportUsageError(`unknown bench ${unknown.join(', ')} (memwire bench list)`);
    benches = options.only ?? benchNames;
  } catch (error) {
    if (!(error instanceof ReportUsageError)) throw error;
    console.error(`memwire bench report: ${error.message}\n\n${REPORT_USAGE}`);
    return 2;
  }
  const { runtimes, missing } = found;
  if (options.guestPart) return guestPart(options, benches.filter((b) => rxeFlags(b) !== null), runtimes);
  process.once('SIGINT', onInterrupt);
  process.once('SIGTERM', onInterrupt);

  const outDir = resolve(options.out);
  const logDir = join(outDir, 'logs');
  mkdirSync(logDir, { recursive: true });
  const startedAt = new Date();
  const deviceHere = hasRdmaDevice();
  const hostBenches = benches.filter((b) => !needsRdmaDevice(b) || deviceHere);
  const guestBenches = options.rxe ? benches.filter((b) => rxeFlags(b) !== null) : [];
  const runs: BenchRun[] = [];
  for (const name of missing) for (const bench of benches) runs.push(skipped(bench, name, 'host', `${name} not found in this checkout`));
  for (const bench of benches.filter((b) => needsRdmaDevice(b) && !deviceHere && !options.rxe)) {
    for (const runtime of runtimes) runs.push(skipped(bench, runtime.name, 'host', 'no RDMA device here: run with --rxe for the Soft-RoCE guest'));
  }

  const plan = hostBenches.flatMap((bench) => runtimes.map((runtime) => ({ bench, runtime })));
  const guestPlan = guestBenches.flatMap((bench) => runtimes.map((runtime) => `${bench}/${runtime.name}`));
  const total = plan.length + guestPlan.length;
  let done = 0;
  const say = (line: string) => process.stderr.write(`${line}\n`);
  say(`memwire bench report: ${total} runs (${hostBenches.length} benches × ${runtimes.map((r) => r.name).join(', ')}${guestBenches.length ? `; ${guestBenches.join(', ')} in the rxe guest` : ''}) → ${outDir}`);
  for (const [index, { bench, runtime }] of plan.entries()) {
    if (interrupted) {
      runs.push(skipped(bench, runtime.name, 'host', `not started: the report was interrupted (${interrupted})`));
      continue;
    }
    const left = plan.slice(index + 1).map((p) => `${p.bench}/${p.runtime.name}`);
    say(`[${done + 1}/${total} · ${clock(Date.now() - startedAt.getTime())}] ${bench} on ${runtime.name} — left after it: ${left.length ? left.join(' ') : 'none'}${guestBenches.length ? ' + rxe guest' : ''}`);
    const { result, log } = await runOne(bench, runtime, options, 'host', []);
    writeFileSync(join(outDir, result.log!), log);
    runs.push(result);
    done++;
    const targets = result.report?.targets ?? [];
    say(outcome(result));
  }

  if (guestBenches.length && interrupted) {
    for (const run of guestPlan) {
      const [bench, runtime] = run.split('/');
      runs.push(skipped(bench, runtime, 'rxe', `not started: the report was interrupted (${interrupted})`));
    }
  } else if (guestBenches.length) {
    const guestRunSeconds = options.timeoutSeconds * guestPlan.length;
    say(`[${done + 1}/${total} · ${clock(Date.now() - startedAt.getTime())}] booting the rxe guest for ${guestPlan.join(' ')} (at most ${clock(guestRunSeconds * 1000)} in the guest)`);
    const guestCommand = [
      join(PROJECT_ROOT, 'scripts', 'rxe', 'run.sh'),
      '--timeout',
      String(guestRunSeconds),
      '--',
      'node',
      CLI,
      'bench',
      'report',
      '--guest-part',
      '--only',
      guestBenches.join(','),
      '--runtimes',
      runtimes.map((r) => r.name).join(','),
      '--timeout',
      String(options.timeoutSeconds),
      ...(options.quick ? ['--quick'] : []),
    ];
    const got: BenchRun[] = [];
    const guestLog = join('logs', 'rxe-guest.log');
    const onGuestLine = (line: string) => {
      try {
        if (line.startsWith(GUEST_START_MARK)) {
          const { bench, runtime } = JSON.parse(line.slice(GUEST_START_MARK.length)) as { bench: string; runtime: string };
          const left = guestPlan.slice(guestPlan.indexOf(`${bench}/${runtime}`) + 1);
          say(`[${done + 1}/${total} · ${clock(Date.now() - startedAt.getTime())}] rxe guest: ${bench} on ${runtime} — left after it: ${left.length ? left.join(' ') : 'none'}`);
        } else if (line.startsWith(GUEST_RUN_MARK)) {
          const { run: guestRun, log } = JSON.parse(line.slice(GUEST_RUN_MARK.length)) as { run: BenchRun; log: string };
          writeFileSync(join(outDir, guestRun.log ?? logName(guestRun.bench, guestRun.runtime, 'rxe')), log);
          got.push(guestRun);
          done++;
          say(outcome(guestRun));
        }
      } catch (error) {
        // A marked line cut or mangled on its way out of the guest: the run counts as not reported (below).
        say(`    a line from the guest could not be read (${(error as Error).message}): ${line.slice(0, 120)}`);
      }
    };
    // run.sh's own lines (boot, set-up, a timeout) are progress too.
    const onGuestError = (line: string) => {
      if (line.startsWith('rxe-vm:')) say(`    ${line}`);
    };
    const result = await run(guestCommand, (guestRunSeconds + 300) * 1000, onGuestLine, onGuestError);
    writeFileSync(join(outDir, guestLog), logText(guestCommand, result));
    runs.push(...got);
    for (const bench of guestBenches) {
      for (const runtime of runtimes) {
        if (!got.some((r) => r.bench === bench && r.runtime === runtime.name)) {
          const why = interrupted ? `interrupted (${interrupted})` : result.timedOut ? 'timed out' : result.code === 124 ? 'run.sh --timeout reached' : `exit ${result.code}`;
          runs.push({ ...skipped(bench, runtime.name, 'rxe', ''), status: 'failed', exitCode: result.code, log: guestLog, error: `the guest did not report it (run.sh: ${why}; see ${guestLog})` });
        }
      }
    }
  }

  const renderer = await loadRenderer();
  const charts = typeof renderer === 'string' ? [] : await writeCharts(outDir, runs, renderer);
  const full: FullReport = {
    tool: 'memwire bench report',
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    options: { quick: options.quick, rxe: options.rxe, only: options.only, runtimes: runtimes.map((r) => r.name) },
    runs,
    charts,
    chartsNote: typeof renderer === 'string' ? renderer : null,
  };
  writeFileSync(join(outDir, 'report.json'), `${JSON.stringify(full, null, 2)}\n`);
  writeFileSync(join(outDir, 'report.md'), renderMarkdown(full));
  const failed = runs.filter((r) => r.status === 'failed');
  say(
    `done in ${clock(Date.now() - startedAt.getTime())}: ${runs.filter((r) => r.status === 'ok').length} ran, ${failed.length} failed, ${runs.filter((r) => r.status === 'skipped').length} skipped; ${charts.length} charts` +
      `\n  ${join(outDir, 'report.md')}\n  ${join(outDir, 'report.json')}` +
      (failed.length ? `\n  failed: ${failed.map((r) => `${r.bench}/${r.runtime}${r.place === 'rxe' ? ' (rxe)' : ''}: ${r.error}`).join('\n          ')}` : ''),
  );
  if (interrupted) return interrupted === 'SIGINT' ? 130 : 143;
  return failed.length ? 1 : 0;
}
