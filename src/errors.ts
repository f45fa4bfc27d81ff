/**
 * memwire's error classes. Every thrown error is a MemwireError with a stable `code`:
 *
 *   UsageError        the caller's mistake (bad size, bad name, closed handle): fix the call.
 *     ClosedError     a method of a handle that was closed or disposed.
 *     OwnershipError  a non-owner wrote, freed or transferred a shmem pool block.
 *   SystemError       a C call failed: carries `call`, `errno`, `errnoName` and the arguments.
 *     NotSupportedError  the call failed with EOPNOTSUPP / ENOSYS: the kernel or device lacks it.
 *   CorruptionError   shared memory another process can write holds a value that cannot be
 *                     right (bad magic, out-of-range offset, impossible state). Names the region.
 *   TimeoutError      a bounded wait ran out (e.g. a region that never finished initialising).
 *   ForeignObjectError  a shared-memory object in this user's namespace that another user owns
 *                     or may write: memwire refuses to use it. Names its path, owner and mode.
 *
 * Two helpers build every SystemError: `checkSyscall` for calls that return -1 (or NULL) and set
 * errno, `errnoError` for calls that return an errno value directly.
 */
import { errno as lastErrno, libc } from '../ffi/libc.js';
import { errnoName } from './errno-names.js';

export class MemwireError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

export class UsageError extends MemwireError {
  constructor(message: string, code = 'ERR_MEMWIRE_USAGE') {
    super(code, message);
  }
}

export class ClosedError extends UsageError {
  constructor(what: string) {
    super(`${what} is closed`, 'ERR_MEMWIRE_CLOSED');
  }
}

/**
 * A process that does not own a pool block tried to write, free or give it away (seed 003's
 * ownership: memwire's own, see src/shmem/pool.ts).
 */
export class OwnershipError extends UsageError {
  constructor(message: string) {
    super(message, 'ERR_MEMWIRE_NOT_OWNER');
  }
}

/**
 * The other end of a channel is gone: its process died or closed its endpoint (postbox/). `peer`
 * names it. Messages already placed for it are dropped and their memory reclaimed.
 */
export class PeerGoneError extends MemwireError {
  readonly peer: string;
  constructor(peer: string, detail: string) {
    super('ERR_MEMWIRE_PEER_GONE', `peer ${JSON.stringify(peer)} is gone: ${detail}`);
    this.peer = peer;
  }
}

export type CallArgs = Readonly<Record<string, string | number | bigint | boolean | null>>;

export class SystemError extends MemwireError {
  readonly call: string;
  readonly errno: number;
  readonly errnoName: string;
  readonly args: CallArgs;
  constructor(call: string, errno: number, args: CallArgs = {}, code = 'ERR_MEMWIRE_SYSTEM') {
    const name = errnoName(errno);
    const shown = Object.entries(args)
      .map(([k, v]) => `${k}=${typeof v === 'string' ? JSON.stringify(v) : String(v)}`)
      .join(', ');
    super(code, `${call}(${shown}) failed: ${name} (errno ${errno}): ${describeErrno(errno)}`);
    this.call = call;
    this.errno = errno;
    this.errnoName = name;
    this.args = args;
  }
}

export class NotSupportedError extends SystemError {
  constructor(call: string, errno: number, args: CallArgs = {}) {
    super(call, errno, args, 'ERR_MEMWIRE_NOT_SUPPORTED');
  }
}

export class CorruptionError extends MemwireError {
  readonly region: string;
  constructor(region: string, detail: string) {
    super('ERR_MEMWIRE_CORRUPT', `shared memory ${JSON.stringify(region)} is corrupt: ${detail}`);
    this.region = region;
  }
}

export class TimeoutError extends MemwireError {
  constructor(message: string) {
    super('ERR_MEMWIRE_TIMEOUT', message);
  }
}

/**
 * A shared-memory object memwire was about to create over, open or clean up belongs to another
 * user, or lets other users write it (/dev/shm is world-writable: anyone can plant a file under
 * any name). memwire never maps such an object. `ownerUid` and `mode` are what fstat/lstat said.
 */
export class ForeignObjectError extends MemwireError {
  readonly path: string;
  readonly ownerUid: number;
  readonly mode: number;
  constructor(path: string, ownerUid: number, mode: number, detail: string) {
    super('ERR_MEMWIRE_FOREIGN_OBJECT', `shared-memory object ${path} ${detail}: memwire will not use it`);
    this.path = path;
    this.ownerUid = ownerUid;
    this.mode = mode;
  }
}

const EOPNOTSUPP = 95;
const ENOSYS = 38;

function describeErrno(errno: number): string {
  return (libc.strerror(errno) as string | null) ?? 'unknown error';
}

/** The SystemError (or NotSupportedError) for a call that returned this errno. */
export function errnoError(call: string, errno: number, args: CallArgs = {}): SystemError {
  return errno === EOPNOTSUPP || errno === ENOSYS
    ? new NotSupportedError(call, errno, args)
    : new SystemError(call, errno, args);
}

/**
 * For calls that return -1 and set errno: reads errno at once and throws, or returns the result.
 */
export function checkSyscall(call: string, result: number, args: CallArgs = {}): number {
  if (result === -1) throw errnoError(call, lastErrno(), args);
  return result;
}
