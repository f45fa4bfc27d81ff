/**
 * Checking that a value passed as a `transport` option is one: every mechanism that rides on a
 * Transport (postbox/, segments/) takes it from its caller, and a plain object missing a method
 * must be a UsageError up front, not a TypeError from deep inside a send.
 */
import { UsageError } from '../errors.js';
import type { Transport } from './types.js';

const TRANSPORT_METHODS = [
  'expose', 'openLocal', 'attach', 'find', 'isAlive', 'remove',
  'exposeAsync', 'attachAsync', 'findAsync', 'isAliveAsync', 'removeAsync',
] as const;

/** `transport` if it looks like a Transport (its methods, node and self), else a UsageError. */
export function checkTransport(transport: unknown): Transport {
  const t = transport as Partial<Record<string, unknown>> | null;
  const missing =
    typeof t !== 'object' || t === null
      ? ['everything']
      : [...TRANSPORT_METHODS.filter((m) => typeof t[m] !== 'function'), ...(typeof t.node === 'string' ? [] : ['node']), ...(typeof t.self === 'object' && t.self !== null ? [] : ['self'])];
  if (missing.length > 0) throw new UsageError(`option transport is not a Transport (missing ${missing.join(', ')})`);
  return transport as Transport;
}
