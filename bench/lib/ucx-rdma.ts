/**
 * UCX as the library anchor of the RDMA postbox benches: `ucx_perftest` (UCX 1.13, Debian's
 * ucx-utils) between the same two devices and CPUs as memwire and perftest — server on dev0 /
 * first CPU, client on dev1 / second CPU connecting to dev0's IPv4 address.
 *
 * The setting, found in the rxe guest (bench/README.md, "UCX on rxe", lists every one tried):
 * UCX_TLS=rc_verbs,tcp,self with UCX_NET_DEVICES=<dev>:1,<its netdev> on each side. UCP's
 * rc_verbs lanes need an auxiliary transport for wire-up; UD is the usual one, and UD does not
 * work on this rxe pair (every ud_verbs setting ended in UCX's UD endpoint timeout, ~30 s), so
 * TCP over the devices' own network interfaces carries the wire-up. That TCP could also carry
 * the data if UCX chose it, so every run checks rxe's own packet counter on the client's device:
 * fewer packets sent than messages means RC did not carry them, and the run counts as failed.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { parseUcxPercentile, parseUcxStream } from '../anchors.js';
import { findExecutable } from './environment.js';
import { freePort, isListening, Peer } from './peer.js';
import type { DevicePair } from './rdma-devices.js';

export const UCX_RDMA_TLS = 'rc_verbs,tcp,self';
export const ANCHOR_UCX_RC = 'ucx-rc_verbs';

/** The network interface under RDMA device `device` (port 1), from sysfs. */
export function netdevOf(device: string): string {
  const dir = `/sys/class/infiniband/${device}/ports/1/gid_attrs/ndevs`;
  for (const entry of readdirSync(dir)) {
    try {
      const name = readFileSync(`${dir}/${entry}`, 'utf8').trim();
      if (name) return name;
    } catch {
      // an empty GID slot
    }
  }
  throw new Error(`${device} has no network interface in ${dir}`);
}

function sentPackets(device: string): number {
  return Number(readFileSync(`/sys/class/infiniband/${device}/ports/1/hw_counters/sent_pkts`, 'utf8').trim());
}

/** One ucx_perftest run (client output), RC verified by the client device's packet counter. */
async function runUcxRdma(pair: DevicePair, testArgs: readonly string[], messages: number, cpus: [number, number] | null, timeoutMs: number): Promise<string> {
  const exe = findExecutable('ucx_perftest');
  if (!exe) throw new Error('ucx_perftest is not installed (Debian package ucx-utils)');
  const env = (dev: string) => ({ ...process.env, UCX_TLS: UCX_RDMA_TLS, UCX_NET_DEVICES: `${dev}:1,${netdevOf(dev)}` });
  const port = await freePort();
  const lifetimeSeconds = timeoutMs / 1000 + 15;
  const server = Peer.start('ucx_perftest server', [exe, '-p', String(port), ...(cpus ? ['-c', String(cpus[0])] : [])], { env: env(pair.dev0), captureStderr: true, lifetimeSeconds });
  try {
    await server.waitFor(`listening on port ${port}`, () => isListening(port), 20_000);
    const before = sentPackets(pair.dev1);
    const client = Peer.start('ucx_perftest client', [exe, pair.serverIp, '-p', String(port), ...testArgs, '-f', ...(cpus ? ['-c', String(cpus[1])] : [])], {
      env: env(pair.dev1),
      captureStderr: true,
      lifetimeSeconds,
    });
    try {
      const output = await client.finish(timeoutMs);
      await server.waitExit(10_000);
      const sent = sentPackets(pair.dev1) - before;
      if (sent < messages) throw new Error(`${pair.dev1} sent ${sent} RoCE packets for ${messages} messages: UCX did not carry them over rc_verbs`);
      return output;
    } finally {
      await client.stop();
    }
  } finally {
    await server.stop();
  }
}

/** `ucx_perftest -t tag_lat` one-way p50 (µs) between the pair. */
export async function ucxRdmaLatency(pair: DevicePair, size: number, iterations: number, warmup: number, cpus: [number, number] | null, timeoutMs: number): Promise<number> {
  const args = ['-t', 'tag_lat', '-s', String(size), '-n', String(iterations), '-w', String(warmup), '-R', '50'];
  return parseUcxPercentile(await runUcxRdma(pair, args, iterations, cpus, timeoutMs), 50, iterations);
}

/** `ucx_perftest -t tag_bw` (client → server) overall bandwidth, MB/s as ucx_perftest prints it. */
export async function ucxRdmaStream(pair: DevicePair, size: number, iterations: number, warmup: number, cpus: [number, number] | null, timeoutMs: number): Promise<number> {
  const args = ['-t', 'tag_bw', '-s', String(size), '-n', String(iterations), '-w', String(warmup)];
  return parseUcxStream(await runUcxRdma(pair, args, iterations, cpus, timeoutMs), iterations).megabytesPerSecond;
}
