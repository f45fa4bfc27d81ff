/**
 * `memwire bench <name> [--quick] [--json] [flags]`: the benchmark programs, one per pattern.
 * Each measures memwire and its anchor in the same run and reports ratio = memwire / anchor.
 *
 * runBench(name, argv) takes the arguments after the name and returns the exit code: 0 when the
 * bench ran (a missed target is reported, not an error), 1 when it failed, 2 for an unknown name
 * or a bad flag. With --json the last line of stdout is one JSON object; progress goes to stderr.
 * `--runtime node|bun|deno` runs the bench under that runtime instead of this one.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { platform } from '../src/index.js';
import { runtimeCommand } from './lib/environment.js';
import { flagHelp, FlagError, type FlagSpec } from './lib/flags.js';
import { printReport, type BenchReport } from './lib/report.js';
import { inOwnSession } from './lib/session.js';

const RUNTIMES = ['node', 'bun', 'deno'] as const;

/**
 * `--runtime node|bun|deno` (any bench): run the same command under that runtime, in a child
 * process whose output is this one's; without it, or naming this runtime, the bench runs here.
 */
function onOtherRuntime(name: string, argv: string[]): number | null {
  const at = argv.indexOf('--runtime');
  if (at < 0) return null;
  const runtime = argv[at + 1];
  const rest = [...argv.slice(0, at), ...argv.slice(at + 2)];
  if (!(RUNTIMES as readonly string[]).includes(runtime)) {
    console.error(`memwire bench: --runtime takes one of ${RUNTIMES.join(', ')}, not ${JSON.stringify(runtime ?? '')}`);
    return 2;
  }
  if (runtime === platform.runtime) {
    argv.splice(0, argv.length, ...rest);
    return null;
  }
  const command = runtimeCommand(runtime as (typeof RUNTIMES)[number]);
  if (!command) {
    console.error(`memwire bench: --runtime ${runtime}: ${runtime} is not installed (looked in node_modules/.bin and PATH)`);
    return 1;
  }
  const main = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
  const child = spawnSync(command[0], [...command.slice(1), main, 'bench', name, ...rest], { stdio: 'inherit' });
  return child.status ?? 1;
}

interface BenchEntry {
  description: string;
  /** Its anchor runs in sessions of its own: so does the process that measures memwire (lib/session.ts). */
  ownSession?: true;
  load(): Promise<{ FLAGS: FlagSpec; run(argv: readonly string[]): Promise<{ report: BenchReport; json: boolean }> }>;
}

const BENCHES: Record<string, BenchEntry> = {
  'ffi-call': {
    description: 'ns per call of a trivial C function through the FFI backend, vs a JS call',
    load: () => import('./ffi-call.js'),
  },
  'region-pingpong': {
    description: 'one-way latency through a SharedRegion between two processes, vs UCX shm and a Unix socket',
    ownSession: true,
    load: () => import('./region-pingpong.js'),
  },
  'postbox-pingpong': {
    description: 'one-way latency of Postbox messages between two processes, 64 B–1 MiB, vs UCX tag_lat over shm and a Unix socket',
    ownSession: true,
    load: () => import('./postbox-pingpong.js'),
  },
  'postbox-stream': {
    description: 'one-directional Postbox message rate (64 B) and throughput (1 MiB), vs UCX tag_bw over shm',
    ownSession: true,
    load: () => import('./postbox-stream.js'),
  },
  'shmem-lock': {
    description: 'ShmemPool global lock: uncontended pair and contended hand-off between 2 processes, vs a C robust pthread mutex',
    load: () => import('./shmem-lock.js'),
  },
  'shmem-signal': {
    description: 'ShmemPool signal one-way latency between 2 processes, vs a C futex ping-pong',
    load: () => import('./shmem-signal.js'),
  },
  'shmem-alloc': {
    description: 'ShmemPool malloc+free pairs per second, 1 and 2 processes, 64 B–64 KiB (no anchor)',
    load: () => import('./shmem-alloc.js'),
  },
  'rdma-write-bw': {
    description: 'RDMA WRITE bandwidth at 4 KiB and 64 KiB on two RDMA devices (or one, loopback), vs perftest ib_write_bw',
    load: () => import('./rdma-write-bw.js'),
  },
  regcache: {
    description: 'RegisteredHeap: lookup hit vs Map.get; malloc+WRITE+free churn vs ibv_reg_mr per allocation; ibv_reg_mr µs per MiB',
    load: () => import('./regcache.js'),
  },
  'rdma-coalesce': {
    description: 'RDMA requests (seed 002): 32×64 B coalesced vs one WR each, one 32 MiB request divided at max_msg_sz vs ib_write_bw, --post-list 16 vs ib_write_bw -l 16',
    load: () => import('./rdma-coalesce.js'),
  },
  'rdma-lat': {
    description: '2 B RDMA WRITE and SEND one-way latency on two RDMA devices (or one, loopback), vs perftest ib_write_lat / ib_send_lat',
    load: () => import('./rdma-lat.js'),
  },
};

export const benchNames: string[] = Object.keys(BENCHES);

function listing(): string {
  const width = Math.max(...benchNames.map((n) => n.length));
  return [
    'usage: memwire bench <name> [--quick] [--json] [--runtime node|bun|deno] [flags]   (memwire bench <name> --help for its flags)',
    '',
    'benches:',
    ...benchNames.map((name) => `  ${name.padEnd(width)}  ${BENCHES[name].description}`),
  ].join('\n');
}

export async function runBench(name: string, argv: string[]): Promise<number> {
  if (name === 'list' || name === 'help' || name === '--help' || name === '-h') {
    console.log(listing());
    return 0;
  }
  const entry = Object.hasOwn(BENCHES, name) ? BENCHES[name] : undefined;
  if (!entry) {
    console.error(`memwire bench: unknown bench ${JSON.stringify(name)}\n\n${listing()}`);
    return 2;
  }
  const delegated = onOtherRuntime(name, argv);
  if (delegated !== null) return delegated;
  const help = argv.includes('--help') || argv.includes('-h');
  // Not across nodes (`--transport rdma`, in the rxe guest: perftest's anchor is started otherwise).
  const rdma = argv.some((a, i) => a === '--transport=rdma' || (a === '--transport' && argv[i + 1] === 'rdma'));
  if (entry.ownSession && !help && !rdma) {
    const code = await inOwnSession(name, argv);
    if (code !== null) return code;
  }
  const bench = await entry.load();
  if (help) {
    console.log(`usage: memwire bench ${name} [flags]\n${entry.description}\n\nflags:\n${flagHelp(bench.FLAGS)}`);
    return 0;
  }
  try {
    const { report, json } = await bench.run(argv);
    printReport(report, json);
    return 0;
  } catch (error) {
    if (error instanceof FlagError) {
      console.error(`memwire bench ${name}: ${error.message}\n\nflags:\n${flagHelp(bench.FLAGS)}`);
      return 2;
    }
    console.error(`memwire bench ${name} failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    return 1;
  }
}
