#!/usr/bin/env node
/**
 * The `memwire` command: doctor, demo, bench (and bench report). Every subcommand takes --help.
 */
import { readFileSync } from 'node:fs';
import { platform } from '../platform.js';
import { checkArguments, CommandUsageError } from './usage.js';

const EXIT_CODES = `exit status:
  0  it worked (doctor: shared memory works; bench: it ran — a missed target is reported, not an error)
  1  it failed (doctor: shared memory does not work; demo: a message was lost or the peer failed;
     bench: the benchmark or one run of the report failed)
  2  a usage mistake: unknown command, bench or flag, a missing or bad value
  (agent: runs until SIGTERM or SIGINT, then 0 after a clean stop, 1 if stopping failed)`;

const USAGE = `usage: memwire <command> [options]

commands:
  doctor [--json] [--agent <addr>[:port]]
                                  what this machine offers memwire; exit 0 when shared memory works
                                  (and the agent answers, when --agent is given)
  demo [--rounds N] [--bulk N]    two processes exchange messages through shared memory
  bench <name> [--quick] [--json] run a benchmark against its anchor (memwire bench list)
  bench report [--quick] [--rxe] [--out DIR]
                                  every benchmark on Node, Bun and Deno: report.md, report.json, charts
  agent --device <dev> [--listen <addr>:<port>]   this node's agent for messaging across machines
  help [<command>], --help        this text; memwire <command> --help tells more
  --version                       memwire's version (also -v, version)

${EXIT_CODES}`;

const HELP: Record<string, string> = {
  doctor: `usage: memwire doctor [--json] [--agent <addr>[:port] [--device <dev>]]

Tells what this machine offers memwire: runtime and FFI backend, libc and kernel, /dev/shm space,
the memlock limit, libibverbs and librdmacm (found by soname or MEMWIRE_LIBIBVERBS /
MEMWIRE_LIBRDMACM), RDMA devices. Creates, opens, uses and removes one region to check that
shared memory works.

  --json     the same as one JSON object
  --agent    also check that the node agent at <addr>[:port] (default port 7471) answers: connect
             over RDMA, HELLO, one request; exit 1 when it does not
  --device   the local RDMA device to connect from (default: the one the route to <addr> uses)

${EXIT_CODES}`,
  demo: `usage: memwire demo [--rounds N] [--bulk N]

Starts a peer process; the two exchange messages through one shared-memory region: N round trips
of 64 B (latency), then M messages of 1 MiB checked by the peer (throughput). Removes the region.

  --rounds N   latency round trips (default 200000)
  --bulk M     1 MiB messages (default 2000)

${EXIT_CODES}`,
};

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

function flag(argv: string[], name: string, fallback: number): number {
  const at = argv.indexOf(name);
  if (at < 0) return fallback;
  const value = Number(argv[at + 1]);
  if (!Number.isInteger(value) || value <= 0) throw new CommandUsageError(`memwire demo: ${name} needs a positive integer`);
  return value;
}

const wantsHelp = (argv: readonly string[]) => argv.includes('--help') || argv.includes('-h');

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command && HELP[command] && wantsHelp(rest)) {
    console.log(HELP[command]);
    return 0;
  }
  switch (command) {
    case 'doctor': {
      checkArguments('doctor', rest, ['--agent', '--device'], ['--json']);
      const { runDoctor, formatDoctor } = await import('./doctor.js');
      const report = runDoctor();
      const agentAt = rest.indexOf('--agent');
      if (agentAt < 0 && rest.includes('--device')) throw new CommandUsageError('memwire doctor: --device only goes with --agent (memwire doctor --help)');
      if (agentAt < 0) {
        console.log(rest.includes('--json') ? JSON.stringify(report, null, 2) : formatDoctor(report));
        return report.sharedMemory.ok ? 0 : 1;
      }
      const agentText = rest[agentAt + 1];
      const deviceAt = rest.indexOf('--device');
      const device = deviceAt >= 0 ? rest[deviceAt + 1] : undefined;
      const { checkAgent, formatAgentCheck } = await import('./doctor-agent.js');
      const agent = await checkAgent(agentText, { device });
      console.log(rest.includes('--json') ? JSON.stringify({ ...report, agent }, null, 2) : `${formatDoctor(report)}\n${formatAgentCheck(agent)}`);
      return report.sharedMemory.ok && agent.ok ? 0 : 1;
    }
    case 'demo': {
      checkArguments('demo', rest, ['--rounds', '--bulk']);
      const { runDemo } = await import('./demo.js');
      const result = await runDemo({
        rounds: flag(rest, '--rounds', 200_000),
        bulk: flag(rest, '--bulk', 2_000),
        out: (line) => console.log(line),
        progress: (line) => process.stderr.write(`${line}\n`),
      });
      return result.ok ? 0 : 1;
    }
    case 'agent': return (await import('./agent.js')).runAgent(rest);
    case 'bench': {
      if (rest[0] === 'report') {
        const { runReport, REPORT_USAGE } = await import('./report.js');
        if (wantsHelp(rest.slice(1))) {
          console.log(REPORT_USAGE);
          return 0;
        }
        return runReport(rest.slice(1));
      }
      const { runBench } = await import('../../bench/index.js');
      return runBench(rest[0] ?? 'list', rest.slice(1));
    }
    case '--version':
    case '-v':
    case 'version':
      console.log(version());
      return 0;
    case 'help':
      if (rest[0] !== undefined) return main([rest[0], '--help']);
      console.log(USAGE);
      return 0;
    case '--help':
    case '-h':
      console.log(USAGE);
      return 0;
    case undefined:
      console.error(USAGE); // no command: a usage mistake, told on stderr
      return 2;
    default:
      console.error(`memwire: unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof CommandUsageError) {
      console.error(error.message);
      process.exitCode = 2;
      return;
    }
    console.error(`memwire (${platform.runtime}): ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`);
    process.exitCode = 1;
  },
);
