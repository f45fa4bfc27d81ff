/**
 * Region names: what callers write ("orders.q1") and the POSIX name memwire gives the object
 * ("/memwire.u1000.orders.q1"), namespaced by a memwire prefix and the user's uid so that two
 * users on one machine never meet, and stale clean-up only ever looks at one user's objects.
 */
import { libc } from '../../ffi/libc.js';
import { UsageError } from '../errors.js';

export const SHM_DIRECTORY = '/dev/shm';
export const MAX_NAME_LENGTH = 200;
const NAME_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/;

/** The object-name prefix of this user's memwire regions ("memwire.u1000."). */
export function userPrefix(): string {
  return `memwire.u${libc.getuid() as number}.`;
}

/** Throw a UsageError unless `name` is a valid region name. */
export function validateName(name: unknown): asserts name is string {
  if (typeof name !== 'string') throw new UsageError(`region name must be a string, got ${typeof name}`);
  if (name.length === 0) throw new UsageError('region name is empty');
  if (name.length > MAX_NAME_LENGTH) {
    throw new UsageError(`region name is ${name.length} characters long; at most ${MAX_NAME_LENGTH} are allowed`);
  }
  if (name.includes('/')) throw new UsageError(`region name ${JSON.stringify(name)} contains '/'`);
  if (!NAME_PATTERN.test(name)) {
    throw new UsageError(
      `region name ${JSON.stringify(name)} may use only letters, digits, '.', '_' and '-', and may not start with '.' or '-'`,
    );
  }
}

/** The POSIX shm name (with the leading '/') for a caller's region name. */
export function shmNameFor(name: string): string {
  validateName(name);
  return `/${userPrefix()}${name}`;
}
