/**
 * Where a node's agent listens and where its clients connect from, found from the RDMA device
 * itself: a RoCE port's GID table holds one IPv4-mapped RoCE v2 entry per IPv4 address of the
 * device's network interface (its netdev), so the device's address needs no configuration.
 */
import { readFileSync } from 'node:fs';
import { UsageError } from '../errors.js';
import { Context } from '../verbs/context.js';
import { listDevices } from '../verbs/device.js';

export interface DeviceAddress {
  readonly device: string;
  readonly port: number;
  /** The IPv4 address of the device's netdev, from its RoCE v2 GID (::ffff:a.b.c.d). */
  readonly ipv4: string;
  readonly gidIndex: number;
  /** The netdev's interface index. */
  readonly ifindex: number;
}

/**
 * The IPv4 address of `device` (port `port`): the first RoCE v2 GID that is IPv4-mapped.
 * UsageError when the device has none (give its netdev an IPv4 address; the GID appears a
 * moment after the address does). NoDeviceError when there is no such device.
 */
export function deviceAddress(device: string, port = 1): DeviceAddress {
  const context = Context.open(device);
  try {
    const table = context.gidTable(port);
    const entry = table.find((e) => e.type === 'RoCE v2' && e.ipv4 !== undefined) ?? table.find((e) => e.ipv4 !== undefined);
    if (!entry?.ipv4) {
      throw new UsageError(`RDMA device ${device} port ${port} has no IPv4 GID (its network interface has no IPv4 address yet); GIDs: ${table.map((e) => `${e.index}=${e.gid}`).join(', ') || 'none'}`);
    }
    return { device, port, ipv4: entry.ipv4, gidIndex: entry.index, ifindex: entry.ifindex };
  } finally {
    context.dispose();
  }
}

/** Parse "a.b.c.d:port" (the agent's --listen and a peer's address). UsageError otherwise. */
export function parseEndpoint(text: string, what = 'address'): { address: string; port: number } {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(text ?? '');
  const port = m ? Number(m[2]) : NaN;
  if (!m || m[1].split('.').some((p) => Number(p) > 255) || port > 0xffff) {
    throw new UsageError(`${what} must look like 192.0.2.2:7471 (IPv4:port), got ${JSON.stringify(text)}`);
  }
  return { address: m[1], port };
}

/** One IPv4 route of the main table (/proc/net/route). */
interface Route {
  readonly iface: string;
  readonly destination: number;
  readonly mask: number;
  readonly metric: number;
}

function ipv4Number(address: string): number {
  return address.split('.').reduce((n, part) => n * 256 + Number(part), 0);
}

// /proc/net/route prints addresses as the kernel's u32 in host order (little-endian here): reverse the bytes.
function routeHex(text: string): number {
  const v = parseInt(text, 16) >>> 0;
  return (((v & 0xff) << 24) | ((v >>> 8 & 0xff) << 16) | ((v >>> 16 & 0xff) << 8) | (v >>> 24)) >>> 0;
}

function readRoutes(): Route[] {
  let text: string;
  try {
    text = readFileSync('/proc/net/route', 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f.length >= 8)
    .map((f) => ({ iface: f[0], destination: routeHex(f[1]), mask: routeHex(f[7]), metric: Number(f[6]) }));
}

function ifindexOf(iface: string): number {
  try {
    return Number(readFileSync(`/sys/class/net/${iface}/ifindex`, 'utf8').trim());
  } catch {
    return -1;
  }
}

/**
 * The local RDMA device (and its IPv4 address) to reach `address` from: the device whose network
 * interface the main routing table sends `address` to (longest prefix, then lowest metric); when
 * no device's interface has such a route, the first device with an IPv4 GID. UsageError when no
 * device has an IPv4 address; NoDeviceError when there is no RDMA device at all.
 */
export function sourceFor(address: string): DeviceAddress & { readonly how: string } {
  const target = ipv4Number(parseEndpoint(`${address}:0`, 'the address to reach').address);
  const candidates: DeviceAddress[] = [];
  for (const { name } of listDevices()) {
    try {
      candidates.push(deviceAddress(name));
    } catch {
      /* a device without an IPv4 address cannot be a source */
    }
  }
  if (!candidates.length) throw new UsageError(`no RDMA device of this machine has an IPv4 address (GID) to connect to ${address} from`);
  const routes = readRoutes()
    .filter((r) => ((target & r.mask) >>> 0) === r.destination)
    .sort((a, b) => b.mask - a.mask || a.metric - b.metric);
  for (const route of routes) {
    const ifindex = ifindexOf(route.iface);
    const device = candidates.find((c) => c.ifindex === ifindex);
    if (device) return { ...device, how: `the route to ${address} goes through ${route.iface}` };
  }
  return { ...candidates[0], how: `no route to ${address} names an RDMA device's interface: the first device with an IPv4 address` };
}
