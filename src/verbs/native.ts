/**
 * Native scratch memory for the verbs objects and the helpers that read and write C structs in
 * it. Structs handed to libibverbs (work requests, SGE lists, work completions, attribute
 * structs) live in anonymous mmap'd pages made once per object, never in per-call JS buffers:
 * their addresses are fixed, the hot path only writes numbers into them through a DataView.
 *
 * Also: the two helpers that turn a verbs failure into a SystemError (verbs functions return
 * NULL and set errno, or return an errno value directly), and the two that every event fd of the
 * verbs (completion channel, async fd, rdma_cm channel) is waited on with (one fd, or several at
 * once for the agent links' pump).
 */
import { errno as lastErrno, libc, pollAsync } from '../../ffi/libc.js';
import { C, POLLFD } from '../../ffi/verbs-layout.js';
import type { NativeBlock } from '../native-block.js';
export { NativeBlock } from '../native-block.js';
import { errnoError, type CallArgs, type SystemError } from '../errors.js';

const TWO_32 = 0x1_0000_0000;

/** Write a pointer (or any integer below 2^53) as a little-endian u64, without a BigInt. */
export function setU64(view: DataView, offset: number, value: number): void {
  view.setUint32(offset, value >>> 0, true);
  view.setUint32(offset + 4, Math.floor(value / TWO_32) >>> 0, true);
}

/** Read a little-endian u64 that is known to be below 2^53 (a pointer, a size). */
export function getU64(view: DataView, offset: number): number {
  return view.getUint32(offset, true) + view.getUint32(offset + 4, true) * TWO_32;
}

/** Write a u64 given as a number (a safe integer) or a bigint. */
export function setU64Any(view: DataView, offset: number, value: number | bigint): void {
  if (typeof value === 'bigint') view.setBigUint64(offset, BigInt.asUintN(64, value), true);
  else setU64(view, offset, value);
}

/** For verbs that return a pointer, or NULL with errno set. */
export function checkPointer(call: string, result: number, args: CallArgs = {}): number {
  if (!result) throw errnoError(call, lastErrno() || 5 /* EIO if the library left none */, args);
  return result;
}

/** For verbs that return 0, or an errno value (positive), or -1 with errno set. */
export function checkStatus(call: string, result: number, args: CallArgs = {}): void {
  if (result === 0) return;
  throw statusError(call, result, args);
}

export function statusError(call: string, result: number, args: CallArgs = {}): SystemError {
  const code = result > 0 ? result : lastErrno() || -result;
  return errnoError(call, code, args);
}

/** Make an event fd non-blocking (fcntl O_NONBLOCK), so its read can never block the thread; SystemError naming `what` otherwise. */
export function setNonBlocking(fd: number, what: string): void {
  const flags = libc.fcntl(fd, C.F_GETFL, 0) as number;
  if (flags === -1 || (libc.fcntl(fd, C.F_SETFL, flags | C.O_NONBLOCK) as number) === -1) {
    throw errnoError('fcntl', lastErrno(), { fd, cmd: 'F_SETFL', flag: 'O_NONBLOCK', for: what });
  }
}

/**
 * One bounded wait for `fd` to become readable, off the main thread (koffi: libuv's pool; Bun: a
 * Worker): a struct pollfd written into `block` at `at` (the block must outlive the wait), then
 * poll(2) for min(`maxSliceMs`, `leftMs`) ms, at least 1, so no helper thread is parked for long.
 * Resolves true when the fd is readable, false when the slice ran out or a signal came (EINTR);
 * SystemError for any other poll failure.
 */
export async function pollReadable(block: NativeBlock, at: number, fd: number, leftMs: number, maxSliceMs: number): Promise<boolean> {
  const dv = block.view;
  dv.setInt32(at + POLLFD.fields.fd, fd, true);
  dv.setInt16(at + POLLFD.fields.events, C.POLLIN, true);
  dv.setInt16(at + POLLFD.fields.revents, 0, true);
  const slice = Math.max(1, Math.min(maxSliceMs, Math.ceil(leftMs)));
  const r = await pollAsync(block.address + at, 1, slice);
  if (r.value < 0 && r.errno !== 4 /* EINTR */) throw errnoError('poll', r.errno, { fd, timeout: slice });
  return r.value > 0;
}

/**
 * One bounded wait for any of `fds` to become readable, off the main thread (as pollReadable):
 * an array of struct pollfd written into `block` at `at` (the block must outlive the wait; room
 * for fds.length entries of POLLFD.size), poll(2) for `timeoutMs` (at least 1). Resolves with one
 * flag per fd (readable, or POLLERR/POLLHUP/POLLNVAL: its owner finds out on its next call); all
 * false when the time ran out or a signal came (EINTR). SystemError for any other poll failure.
 */
export async function pollAny(block: NativeBlock, at: number, fds: readonly number[], timeoutMs: number): Promise<boolean[]> {
  const dv = block.view;
  for (let i = 0; i < fds.length; i++) {
    const o = at + i * POLLFD.size;
    dv.setInt32(o + POLLFD.fields.fd, fds[i], true);
    dv.setInt16(o + POLLFD.fields.events, C.POLLIN, true);
    dv.setInt16(o + POLLFD.fields.revents, 0, true);
  }
  const slice = Math.max(1, Math.ceil(timeoutMs));
  const r = await pollAsync(block.address + at, fds.length, slice);
  if (r.value < 0 && r.errno !== 4 /* EINTR */) throw errnoError('poll', r.errno, { nfds: fds.length, timeout: slice });
  const out: boolean[] = [];
  for (let i = 0; i < fds.length; i++) out.push(r.value > 0 && dv.getInt16(at + i * POLLFD.size + POLLFD.fields.revents, true) !== 0);
  return out;
}

/** Format an address for messages. */
export function hex(address: number): string {
  return `0x${address.toString(16)}`;
}

/**
 * Clean-up steps that must all run (a parent disposing its children, then itself): a step that
 * throws does not stop the others; the first error is rethrown once every step has run.
 */
export class CleanupSteps {
  #first: unknown;
  #failed = false;

  run(step: () => void): void {
    try {
      step();
    } catch (error) {
      if (!this.#failed) {
        this.#failed = true;
        this.#first = error;
      }
    }
  }

  /** Throw the first error a step threw, if any. */
  finish(): void {
    if (this.#failed) throw this.#first;
  }
}
