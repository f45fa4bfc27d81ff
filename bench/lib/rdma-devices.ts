/**
 * Which RDMA devices and CPUs the RDMA benches use. Roles, as perftest's: the server is a peer
 * process on dev0, pinned to the first CPU; the client is the bench process itself on dev1,
 * pinned to the second CPU. With one device the benches run in loopback (dev0 = dev1). The
 * device's GID and IPv4 address are found from the device itself (MEMWIRE_RXE_DEV0/1 may name
 * the devices, never required).
 */
import { Context, listDevices, NoDeviceError } from '../../src/index.js';
import { allowedCpus } from './cpu.js';
import { FlagError, type FlagSpec, type ParsedFlags } from './flags.js';

export const DEVICE_FLAGS: FlagSpec = {
  // --dev0/--dev1 take a name: takeDeviceNames() removes them before parseFlags (which has no
  // string kind); listed here for the help text.
  dev0: { kind: 'boolean', help: 'NAME: server device (default MEMWIRE_RXE_DEV0, else the first device)' },
  dev1: { kind: 'boolean', help: 'NAME: client device (default MEMWIRE_RXE_DEV1, else the second; one device: loopback)' },
  'gid-index': { kind: 'count', help: 'GID index on both devices (default: the RoCE v2 IPv4 one)' },
  'no-perftest': { kind: 'boolean', help: 'skip the perftest anchor' },
  'no-pin': { kind: 'boolean', help: 'do not pin the two sides to two CPUs' },
};

/** Pull `--dev0 NAME` / `--dev1 NAME` out of argv (parseFlags knows no string flags). */
export function takeDeviceNames(argv: readonly string[]): { rest: string[]; dev0?: string; dev1?: string } {
  const rest: string[] = [];
  const out: { dev0?: string; dev1?: string } = {};
  for (let i = 0; i < argv.length; i++) {
    const match = /^--(dev0|dev1)(?:=(.*))?$/.exec(argv[i]);
    if (!match) {
      rest.push(argv[i]);
      continue;
    }
    const value = match[2] ?? argv[++i];
    if (!value) throw new FlagError(`--${match[1]} needs a device name`);
    out[match[1] as 'dev0' | 'dev1'] = value;
  }
  return { rest, ...out };
}

export interface DevicePair {
  dev0: string;
  dev1: string;
  gidIndex: number;
  /** dev0's IPv4 address (where perftest's client connects), or 127.0.0.1. */
  serverIp: string;
  loopback: boolean;
}

function noDevice(detail: string): Error {
  const message =
    `${detail.startsWith("no RDMA device") ? detail : `no RDMA device: ${detail}`}. These benches need two RDMA devices (or one, in loopback), e.g. ` +
    'Soft-RoCE: `rdma link add rxe0 type rxe netdev eth0`; on a machine without RDMA in its kernel run them ' +
    'in the project\'s guest: scripts/rxe/run.sh -- node dist/src/cli/main.js bench <name>';
  const error = new Error(message);
  error.stack = message; // a plain statement, not a stack trace
  return error;
}

/** Find the device pair (flags, then MEMWIRE_RXE_DEV0/1, then the first two devices). */
export function pickDevices(names: { dev0?: string; dev1?: string }, flags: ParsedFlags): DevicePair {
  let found: string[];
  try {
    found = listDevices().map((d) => d.name);
  } catch (error) {
    if (error instanceof NoDeviceError) throw noDevice(error.message);
    throw error;
  }
  if (found.length === 0) throw noDevice('ibv_get_device_list found none');
  const dev0 = names.dev0 ?? process.env.MEMWIRE_RXE_DEV0 ?? found[0];
  const dev1 = names.dev1 ?? process.env.MEMWIRE_RXE_DEV1 ?? found[1] ?? dev0;
  for (const dev of [dev0, dev1]) if (!found.includes(dev)) throw noDevice(`no device named ${dev} (found: ${found.join(', ')})`);
  const fixed = flags.count.get('gid-index');
  const ctx = Context.open({ device: dev0, gidIndex: fixed });
  try {
    const gid = ctx.gid();
    return { dev0, dev1, gidIndex: gid.index, serverIp: gid.ipv4 ?? '127.0.0.1', loopback: dev0 === dev1 };
  } finally {
    ctx.dispose();
  }
}

/** The CPUs the two sides run on (server, client), or null with the reason in `notes`. */
export function pickCpus(noPin: boolean, notes: string[]): [number, number] | null {
  if (noPin) {
    notes.push('not pinned (--no-pin): the scheduler places both sides');
    return null;
  }
  const cpus = allowedCpus();
  if (cpus.length >= 2) return [cpus[0], cpus[1]];
  notes.push(`only ${cpus.length} CPU available: both busy-polling sides share it, so latency is scheduler time slices`);
  return null;
}
