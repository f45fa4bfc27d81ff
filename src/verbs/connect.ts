/**
 * Connecting RC queue pairs from endpoints exchanged out of band ({ gid, qpn, psn, lid, mtu }),
 * for users with their own channel (a TCP socket, a file, a shared region). rdma_cm is in
 * rdma-cm.ts.
 */
import { UsageError } from '../errors.js';
import type { ConnectOptions, QueuePairEndpoint, QueuePair } from './queue-pair.js';

/** An endpoint as JSON text, for any out-of-band channel. */
export function encodeEndpoint(endpoint: QueuePairEndpoint): string {
  const { gid, qpn, psn, lid, mtu } = endpoint;
  return JSON.stringify({ gid, qpn, psn, lid, ...(mtu ? { mtu } : {}) });
}

/** Parse and check an endpoint received from a peer (untrusted input). */
export function decodeEndpoint(text: string): QueuePairEndpoint {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new UsageError(`endpoint is not JSON: ${JSON.stringify(text.slice(0, 80))}`);
  }
  const e = value as Record<string, unknown>;
  const int = (k: string, max: number, optional = false) => {
    const x = e?.[k];
    if (optional && x === undefined) return undefined;
    if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x > max) throw new UsageError(`endpoint.${k} must be an integer 0..${max}, got ${JSON.stringify(x)}`);
    return x;
  };
  if (typeof e?.gid !== 'string') throw new UsageError('endpoint.gid must be a string');
  return { gid: e.gid, qpn: int('qpn', 0xffffff)!, psn: int('psn', 0xffffff)!, lid: int('lid', 0xffff)!, mtu: int('mtu', 4096, true) };
}

/**
 * Connect two queue pairs of this process (e.g. one on each of two devices, or loopback): each
 * goes RESET → INIT → RTR → RTS against the other's endpoint.
 */
export function connectQueuePairs(a: QueuePair, b: QueuePair, options: ConnectOptions = {}): void {
  const ea = a.localEndpoint(options.port);
  const eb = b.localEndpoint(options.port);
  a.connect(eb, options);
  b.connect(ea, options);
}
