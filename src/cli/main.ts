#!/usr/bin/env node
/**
 * The `memwire` command: doctor, demo, bench.
 */
import { platform } from '../platform.js';

const USAGE = `usage: memwire <command> [options]

commands:
  doctor [--json]                 what this machine offers memwire; exit 0 when shared memory works
  demo [--rounds N] [--bulk N]    two processes exchange messages through shared memory
  bench <name> [--quick] [--json] run a benchmark against its anchor (memwire bench list)
  agent --device <dev> [--listen <addr>:<port>]   this node's agent for messaging across machines
  help                            this text`;

function flag(argv: string[], name: string, fallback: number): number {
  const at = argv.indexOf(name);
  if (at < 0) return fallback;
  const value = Number(argv[at + 1]);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} needs a positive integer`);
  return value;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'doctor': {
      const { runDoctor, formatDoctor } = await import('./doctor.js');
      const report = runDoctor();
      console.log(rest.includes('--json') ? JSON.stringify(report, null, 2) : formatDoctor(report));
      return report.sharedMemory.ok ? 0 : 1;
    }
    case 'demo': {
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
      const { runBench } = await import('../../bench/index.js');
      return runBench(rest[0] ?? 'list', rest.slice(1));
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE);
      return command === undefined ? 2 : 0;
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
    console.error(`memwire (${platform.runtime}): ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`);
    process.exitCode = 1;
  },
);
