/**
 * Asynchronous events of an RDMA device (ibv_get_async_event): a queue pair or SRQ gone to the
 * error state, an SRQ's low watermark reached, a completion queue overrun, a port going up or
 * down, the device failing. They are not completions: they arrive on the context's async_fd.
 *
 * Waiting for the next one never blocks the event loop: the fd is made O_NONBLOCK, and the wait
 * is a poll(2) of it off the main thread (koffi: libuv's pool; Bun: a Worker) in slices of at
 * most ASYNC_SLICE_MS, then ibv_get_async_event, which then cannot block. Each event is
 * acknowledged (ibv_ack_async_event) as soon as what it names is resolved: rdma-core's destroy of
 * a QP, CQ or SRQ waits until every event read for it has been acknowledged.
 */
import { backend } from '../../ffi/backend.js';
import { errno as lastErrno } from '../../ffi/libc.js';
import { C, IBV_ASYNC_EVENT, IBV_CONTEXT } from '../../ffi/verbs-layout.js';
import { ClosedError, errnoError, UsageError } from '../errors.js';
import type { CompletionQueue } from './completion-queue.js';
import { loadVerbs } from './device.js';
import { getU64, NativeBlock, pollReadable, setNonBlocking } from './native.js';
import type { QueuePair } from './queue-pair.js';
import type { SharedReceiveQueue } from './shared-receive-queue.js';

/** The longest a pool thread is parked in one poll(2) of the async fd. */
export const ASYNC_SLICE_MS = 250;

const EINTR = 4;
const EAGAIN = 11;

/** One asynchronous event, already acknowledged. */
export interface AsyncEvent {
  /** enum ibv_event_type, e.g. `C.IBV_EVENT_SRQ_LIMIT_REACHED` (15). */
  readonly code: number;
  /** Its C name, e.g. 'IBV_EVENT_SRQ_LIMIT_REACHED' ('IBV_EVENT_<code>' for one this build does not know). */
  readonly name: string;
  /** The queue pair it concerns (QP_FATAL, QP_REQ_ERR, QP_ACCESS_ERR, COMM_EST, SQ_DRAINED, PATH_MIG*, QP_LAST_WQE_REACHED). */
  readonly qp?: QueuePair;
  /** The completion queue it concerns (CQ_ERR). */
  readonly cq?: CompletionQueue;
  /** The shared receive queue it concerns (SRQ_ERR, SRQ_LIMIT_REACHED). */
  readonly srq?: SharedReceiveQueue;
  /** The port it concerns (PORT_ACTIVE, PORT_ERR, LID/PKEY/SM/GID_CHANGE, CLIENT_REREGISTER). */
  readonly port?: number;
  /**
   * The address of the struct the event names (ibv_qp, ibv_cq, ibv_srq or ibv_wq), also when no
   * live object of this context is at that address (e.g. one created outside memwire).
   */
  readonly element?: number;
}

type ElementKind = 'qp' | 'cq' | 'srq' | 'wq' | 'port' | 'device';

/** What the `element` union of each event type holds (verbs.h, enum ibv_event_type). */
function elementKind(code: number): ElementKind {
  switch (code) {
    case C.IBV_EVENT_CQ_ERR:
      return 'cq';
    case C.IBV_EVENT_QP_FATAL:
    case C.IBV_EVENT_QP_REQ_ERR:
    case C.IBV_EVENT_QP_ACCESS_ERR:
    case C.IBV_EVENT_COMM_EST:
    case C.IBV_EVENT_SQ_DRAINED:
    case C.IBV_EVENT_PATH_MIG:
    case C.IBV_EVENT_PATH_MIG_ERR:
    case C.IBV_EVENT_QP_LAST_WQE_REACHED:
      return 'qp';
    case C.IBV_EVENT_SRQ_ERR:
    case C.IBV_EVENT_SRQ_LIMIT_REACHED:
      return 'srq';
    case C.IBV_EVENT_WQ_FATAL:
      return 'wq';
    case C.IBV_EVENT_DEVICE_FATAL:
      return 'device';
    default:
      return 'port'; // PORT_ACTIVE, PORT_ERR, LID/PKEY/SM/GID_CHANGE, CLIENT_REREGISTER
  }
}

const EVENT_NAMES = new Map<number, string>(
  Object.entries(C)
    .filter(([name]) => name.startsWith('IBV_EVENT_'))
    .map(([name, code]) => [code as number, name]),
);

/** Finds the live memwire object at a struct address, if there is one. */
export type ElementResolver = (kind: 'qp' | 'cq' | 'srq', address: number) => QueuePair | CompletionQueue | SharedReceiveQueue | undefined;

// Layout of the reader's native block: struct pollfd, then struct ibv_async_event.
const POLLFD_AT = 0;
const EVENT_AT = 16;

/**
 * The async-event side of one Context (see context.nextAsyncEvent). Owns a small native block
 * that a pool thread may be polling through; close() frees it at once, or when the pending wait
 * ends.
 */
export class AsyncEventReader {
  readonly #owner: string;
  readonly #resolve: ElementResolver;
  #block: NativeBlock | undefined;
  #fd = -1;
  #waiting: Promise<AsyncEvent | null> | undefined;
  #closed = false;

  constructor(owner: string, resolve: ElementResolver) {
    this.#owner = owner;
    this.#resolve = resolve;
  }

  /** See Context.nextAsyncEvent. `contextHandle` throws ClosedError once the context is disposed. */
  next(contextHandle: () => number, timeoutMs: number): Promise<AsyncEvent | null> {
    if (this.#closed) return Promise.reject(new ClosedError(this.#owner));
    if (!(timeoutMs >= 0)) return Promise.reject(new UsageError(`timeoutMs must be a number >= 0 (or Infinity), got ${timeoutMs}`));
    if (this.#waiting) return Promise.reject(new UsageError(`another nextAsyncEvent() on ${this.#owner} is still pending`));
    const waiting = this.#wait(contextHandle, timeoutMs).finally(() => {
      this.#waiting = undefined;
      if (this.#closed) this.#free(); // close() deferred this while poll(2) could touch it
    });
    this.#waiting = waiting;
    return waiting;
  }

  /** The context is being disposed: no further waits; the block goes now or after the pending one. */
  close(): void {
    this.#closed = true;
    if (!this.#waiting) this.#free();
  }

  #free(): void {
    this.#block?.free();
    this.#block = undefined;
  }

  async #wait(contextHandle: () => number, timeoutMs: number): Promise<AsyncEvent | null> {
    const deadline = performance.now() + timeoutMs;
    const v = loadVerbs();
    for (;;) {
      if (this.#closed) throw new ClosedError(`${this.#owner} (disposed while waiting for an asynchronous event)`);
      const handle = contextHandle();
      const block = this.#prepare(handle);
      const event = block.address + EVENT_AT;
      if ((v.ibv_get_async_event(handle, event) as number) === 0) return this.#take(block, event);
      const err = lastErrno();
      if (err !== EAGAIN && err !== EINTR) throw errnoError('ibv_get_async_event', err, { device: this.#owner, async_fd: this.#fd });
      const left = deadline - performance.now();
      if (left <= 0) return null;
      await pollReadable(block, POLLFD_AT, this.#fd, left, ASYNC_SLICE_MS);
    }
  }

  /** The native block, and the context's async_fd made O_NONBLOCK (once). */
  #prepare(contextHandle: number): NativeBlock {
    if (!this.#block) this.#block = new NativeBlock(EVENT_AT + IBV_ASYNC_EVENT.size, 'async event scratch');
    if (this.#fd < 0) {
      const fd = new DataView(backend.view(contextHandle, IBV_CONTEXT.size)).getInt32(IBV_CONTEXT.fields.async_fd, true);
      setNonBlocking(fd, 'async_fd');
      this.#fd = fd;
    }
    return this.#block;
  }

  /** Decode the event just read, resolve what it names, acknowledge it. */
  #take(block: NativeBlock, event: number): AsyncEvent {
    const dv = block.view;
    const code = dv.getUint32(EVENT_AT + IBV_ASYNC_EVENT.fields.event_type, true);
    const name = EVENT_NAMES.get(code) ?? `IBV_EVENT_${code}`;
    const kind = elementKind(code);
    let result: AsyncEvent;
    if (kind === 'port') {
      result = { code, name, port: dv.getInt32(EVENT_AT + IBV_ASYNC_EVENT.fields.element, true) };
    } else if (kind === 'device') {
      result = { code, name };
    } else {
      const element = getU64(dv, EVENT_AT + IBV_ASYNC_EVENT.fields.element);
      const found = kind === 'wq' ? undefined : this.#resolve(kind, element);
      result = found ? { code, name, element, [kind]: found } : { code, name, element };
    }
    loadVerbs().ibv_ack_async_event(event);
    return result;
  }
}
