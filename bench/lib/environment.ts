/**
 * Where a benchmark runs: the repository root, executables on PATH, the command that starts each
 * runtime, and the machine, kernel, libc, runtime and anchor versions recorded with every result.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants as fsConstants, readFileSync } from 'node:fs';
import { availableParallelism, arch, hostname, loadavg, release, totalmem } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { platform } from '../../src/index.js';

/** The repository root (bench/lib/ and dist/bench/lib/ both find it by looking for package.json). */
export function projectRoot(): string {
  for (const up of ['../../', '../../../']) {
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
    runtime: `${platform.runtime} ${platform.runtimeVersion}`,
    backend: platform.backend,
    koffi: platform.backend === 'koffi' ? koffi : null,
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

/**
 * argv that runs `script` in a new process of this runtime (Deno with the flags memwire needs).
 * memwire's own helper, re-exported so bench programs start their peers the way memwire's demo
 * and tests do; starting processes is not part of memwire's public API.
 */
export { selfCommand } from '../../ffi/runtime.js';
