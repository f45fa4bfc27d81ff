/**
 * Where a node's agent listens and where its clients connect from, found from the RDMA device
 * itself: a RoCE port's GID table holds one IPv4-mapped RoCE v2 entry per IPv4 address of the
 * device's network interface (its netdev), so the device's address needs no configuration.
 */
import { UsageError } from '../errors.js';
import { Context } from '../verbs/context.js';

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
