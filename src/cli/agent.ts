/**
 * `memwire agent --device <dev> [--listen <addr>:<port>] [--node <name>]`: run this node's agent
 * (src/agent/agent.ts) until SIGTERM or SIGINT, then stop it gracefully (BYE to every peer,
 * targets deregistered and removed). Prints "memwire agent: listening on <addr>:<port>" once it
 * accepts connections, then one line per event.
 */
import { readdirSync } from 'node:fs';
import { setPriority } from 'node:os';
import { DEFAULT_AGENT_PORT, NodeAgent } from '../agent/agent.js';
import { deviceAddress, parseEndpoint } from '../agent/discover.js';
import { checkArguments, CommandUsageError } from './usage.js';

/**
 * The agent's default niceness. Its work is the control plane (connections, FIND, liveness,
 * doorbells for readers that sleep); the data plane never needs its CPU. On a machine whose CPUs
 * run busy-polling processes (the rxe guest's two vCPUs), an agent at the same priority took
 * 36–43 % of a vCPU from them (its pump's timer turns cost ~0.4 ms each under TCG) and each round
 * trip of a postbox ping-pong waited for it in the run queue: milliseconds. Niced, it runs in
 * what they leave and never preempts them on a wake-up.
 */
export const AGENT_NICE = 10;

export const AGENT_USAGE = `usage: memwire agent --device <dev> [--listen <addr>:<port>] [--node <name>] [--nice <n>] [--quiet]
  --device   the RDMA device this node's agent serves (e.g. rxe1)
  --listen   IPv4:port to listen on; default the device's own IPv4 address (from its RoCE v2
             GID) and port ${DEFAULT_AGENT_PORT}; ":<port>" keeps the device's address
  --node     the node's name in messages (default: the device name)
  --nice     run at this niceness (default ${AGENT_NICE}; 0 keeps the caller's): the agent serves the
             control plane, so busy-polling processes of the data plane go first
  --quiet    print only the listening line, not one line per event

Runs until SIGTERM or SIGINT, then stops gracefully. Exit status: 0 after a clean stop, 1 when
it failed (to start, or to stop), 2 for a usage mistake.`;

function option(argv: string[], name: string): string | undefined {
  const at = argv.indexOf(name);
  if (at < 0) return undefined;
  const value = argv[at + 1];
  if (value === undefined || value.startsWith('--')) throw new CommandUsageError(`memwire agent: ${name} needs a value\n\n${AGENT_USAGE}`);
  return value;
}

/**
 * Set every thread of this process to niceness `nice` (Linux's niceness is per thread, and the
 * runtime's threads exist already); threads made later inherit it from their creator. Returns
 * why it failed, or undefined.
 */
function lowerPriority(nice: number): string | undefined {
  try {
    let tids: number[];
    try {
      tids = readdirSync('/proc/self/task').map(Number).filter((t) => t > 0);
    } catch {
      tids = [0]; // no /proc: the calling thread
    }
    for (const tid of tids) {
      try {
        setPriority(tid, nice);
      } catch (error) {
        if (tid === tids[0]) throw error; // a thread that ended meanwhile is no failure
      }
    }
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

export async function runAgent(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(AGENT_USAGE);
    return 0;
  }
  checkArguments('agent', argv, ['--device', '--listen', '--node', '--nice'], ['--quiet']);
  const device = option(argv, '--device');
  if (!device) throw new CommandUsageError(`memwire agent needs --device\n\n${AGENT_USAGE}`);
  const listen = option(argv, '--listen');
  const quiet = argv.includes('--quiet');
  let address: string | undefined;
  let port = DEFAULT_AGENT_PORT;
  if (listen !== undefined) {
    const endpoint = parseEndpoint(listen.startsWith(':') ? `${deviceAddress(device).ipv4}${listen}` : listen, '--listen');
    address = endpoint.address;
    port = endpoint.port;
  }
  const niceText = option(argv, '--nice');
  const nice = niceText === undefined ? AGENT_NICE : Number(niceText);
  if (!Number.isInteger(nice) || nice < -20 || nice > 19) throw new CommandUsageError(`memwire agent: --nice takes an integer -20..19, not ${JSON.stringify(niceText)}\n\n${AGENT_USAGE}`);
  const say = (line: string) => console.log(`memwire agent: ${line}`);
  if (nice !== 0) {
    const failed = lowerPriority(nice);
    if (failed) say(`could not set niceness ${nice} (${failed}); running at the caller's`);
  }
  const agent = NodeAgent.start({ device, address, port, node: option(argv, '--node'), log: quiet ? undefined : say });
  say(`listening on ${agent.address}:${agent.port}`);
  return new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      say(`${signal}: stopping`);
      const finish = (code: number) => {
        resolve(code);
        // Nothing of the agent is left; a handle of the runtime must not keep the process up.
        setTimeout(() => process.exit(code), 200).unref();
      };
      agent.stop().then(
        () => finish(0),
        (error: unknown) => {
          console.error(`memwire agent: stop failed: ${(error as Error).message}`);
          finish(1);
        },
      );
    };
    // `on`, not `once`: the handlers stay installed until the process exits, so a second signal
    // during the stop is ignored instead of killing the agent halfway through its clean-up.
    let stopping = false;
    const onSignal = (signal: string) => {
      if (stopping) return say(`${signal}: already stopping`);
      stopping = true;
      stop(signal);
    };
    process.on('SIGTERM', () => onSignal('SIGTERM'));
    process.on('SIGINT', () => onSignal('SIGINT'));
  });
}
