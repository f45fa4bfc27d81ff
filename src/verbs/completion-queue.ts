/**
 * CompletionQueue (struct ibv_cq) with its own completion channel.
 *
 * Polling (`poll()`) is the hot path: one call of the provider's poll_cq into a preallocated
 * native ibv_wc array, decoded into a reused array of Completion objects; it returns a count
 * and allocates nothing.
 *
 * Waiting (`wait()`) is event-driven so an idle process does not spin and the event loop stays
 * free: arm the CQ (ibv_req_notify_cq), poll once more (a completion may have landed before the
 * arming), then poll(2) the channel's fd off the main thread (koffi: libuv's pool; Bun: a Worker)
 * in slices of at most SLICE_MS so no helper thread is ever parked for long; when the fd is
 * readable, ibv_get_cq_event (the fd is O_NONBLOCK, so it never blocks) and ibv_ack_cq_events,
 * then poll. Measured in the project's Soft-RoCE guest (QEMU TCG, 2 vCPUs; test/rxe/verbs.test.ts
 * "waiting for a completion…", post → wait() resolved, 20 samples, five runs): Node/koffi p50
 * 1.6–5.8 ms, Bun/bun:ffi (the poll runs in a Worker) p50 2.0–7.6 ms; perftest's busy-polling
 * ib_send_lat in the same guest is 31–66 µs (notes/soft-roce-vm.md) — emulation inflates both. Spin on poll() when latency matters
 * more than CPU; wait() when an idle process must not spin. While waiting, koffi holds one libuv
 * pool thread (4 by default) for at most SLICE_MS at a time.
 *
 * Completions of queue pairs attached to this CQ release the memory references those queue
 * pairs kept for the completed work requests (see queue-pair.ts); a receive a queue pair took from
 * a shared receive queue is passed on by that queue pair to its SRQ, which releases it and puts
 * the caller's wrId back into the Completion (see shared-receive-queue.ts).
 */
import { backend } from '../../ffi/backend.js';
import { C, IBV_COMP_CHANNEL, IBV_CQ, IBV_WC } from '../../ffi/verbs-layout.js';
import { ClosedError, errnoError, TimeoutError, UsageError } from '../errors.js';
import type { Context } from './context.js';
import { loadVerbs } from './device.js';
import { completionError, type WorkCompletionError } from './errors.js';
import { countLive } from './live.js';
import { checkPointer, checkStatus, CleanupSteps, getU64, hex, NativeBlock, pollReadable, setNonBlocking } from './native.js';
import type { QueuePair } from './queue-pair.js';

/** Longest single off-thread poll(2) of the channel fd. */
export const SLICE_MS = 250;

export interface CompletionQueueOptions {
  /** Minimum number of entries (the device may round up). Default 256. */
  readonly entries?: number;
  /** Make a completion channel so `wait()` can sleep. Default true. */
  readonly events?: boolean;
  /** Completions decoded per poll() at most (the length of `completions`). Default 32. */
  readonly batch?: number;
}

/** A completion as plain data (a copy, safe to keep). */
export interface CompletionRecord {
  readonly wrId: number;
  readonly status: number;
  /** enum ibv_wc_opcode (valid only when status is IBV_WC_SUCCESS). */
  readonly opcode: number;
  readonly byteLen: number;
  /** Immediate data (host order), when `hasImm`. */
  readonly imm: number;
  readonly hasImm: boolean;
  readonly qpNum: number;
  readonly srcQp: number;
  readonly vendorErr: number;
}

/** One entry of the reused completion array. Copy with `record()` to keep it past the next poll. */
export class Completion implements CompletionRecord {
  wrId = 0;
  status = 0;
  opcode = 0;
  byteLen = 0;
  imm = 0;
  wcFlags = 0;
  qpNum = 0;
  srcQp = 0;
  vendorErr = 0;

  get ok(): boolean {
    return this.status === C.IBV_WC_SUCCESS;
  }
  get hasImm(): boolean {
    return (this.wcFlags & C.IBV_WC_WITH_IMM) !== 0;
  }
  /** Whether this completes a receive (IBV_WC_RECV or IBV_WC_RECV_RDMA_WITH_IMM). */
  get isRecv(): boolean {
    return (this.opcode & C.IBV_WC_RECV) !== 0;
  }
  /** The typed error for a failed status (e.g. RemoteAccessError), or undefined when ok. */
  error(): WorkCompletionError | undefined {
    return this.ok ? undefined : completionError(this);
  }
  record(): CompletionRecord {
    const { wrId, status, opcode, byteLen, imm, hasImm, qpNum, srcQp, vendorErr } = this;
    return { wrId, status, opcode, byteLen, imm, hasImm, qpNum, srcQp, vendorErr };
  }
}

// Scratch layout: [0, batch*48) the ibv_wc array; then the pollfd and two out-pointers.
export class CompletionQueue {
  readonly context: Context;
  /** Reused: poll() fills entries [0, n). */
  readonly completions: readonly Completion[];
  /** Entries the device actually gave the CQ. */
  readonly entries: number;
  #handle: number;
  #channel: number;
  #fd = -1;
  readonly #scratch: NativeBlock;
  readonly #batch: number;
  readonly #pollfdAt: number;
  readonly #outAt: number;
  readonly #pollCq: (cq: number, n: number, wc: number) => number;
  readonly #qps = new Map<number, QueuePair>();
  #armed = false;
  #waiting: Promise<number> | undefined;

  /** @internal use context.createCompletionQueue(). */
  constructor(context: Context, contextHandle: number, options: CompletionQueueOptions) {
    const entries = options.entries ?? 256;
    const batch = options.batch ?? 32;
    if (!Number.isInteger(entries) || entries < 1) throw new UsageError(`entries must be a positive integer, got ${entries}`);
    if (!Number.isInteger(batch) || batch < 1 || batch > 4096) throw new UsageError(`batch must be an integer 1..4096, got ${batch}`);
    const v = loadVerbs();
    this.context = context;
    this.#batch = batch;
    this.#scratch = new NativeBlock(batch * IBV_WC.size + 64, 'completion queue scratch');
    this.#pollfdAt = batch * IBV_WC.size;
    this.#outAt = this.#pollfdAt + 16;
    this.#channel = 0;
    try {
      if (options.events !== false) {
        this.#channel = checkPointer('ibv_create_comp_channel', v.ibv_create_comp_channel(contextHandle) as number, { device: context.device.name });
        countLive('channels', 1);
        this.#fd = new DataView(backend.view(this.#channel, IBV_COMP_CHANNEL.size)).getInt32(IBV_COMP_CHANNEL.fields.fd, true);
        setNonBlocking(this.#fd, 'completion channel');
      }
      this.#handle = checkPointer('ibv_create_cq', v.ibv_create_cq(contextHandle, entries, 0, this.#channel, 0) as number, {
        device: context.device.name,
        cqe: entries,
        channel: hex(this.#channel),
      });
    } catch (error) {
      // Unwind the half-built CQ in reverse.
      if (this.#channel) {
        v.ibv_destroy_comp_channel(this.#channel);
        countLive('channels', -1);
      }
      this.#scratch.free();
      throw error;
    }
    this.entries = new DataView(backend.view(this.#handle, IBV_CQ.size)).getInt32(IBV_CQ.fields.cqe, true);
    this.#pollCq = context.inline.ibv_poll_cq;
    this.completions = Array.from({ length: batch }, () => new Completion());
    countLive('cqs', 1);
  }

  /** The struct ibv_cq address. ClosedError once disposed. */
  get handle(): number {
    if (!this.#handle) throw new ClosedError('completion queue');
    return this.#handle;
  }

  get disposed(): boolean {
    return this.#handle === 0;
  }

  /** @internal a QP whose send or receive completions come here. */
  attach(qpNum: number, qp: QueuePair): void {
    this.#qps.set(qpNum, qp);
  }
  /** @internal */
  detach(qpNum: number): void {
    this.#qps.delete(qpNum);
  }

  /**
   * Poll up to `max` completions (default: the batch size) into `completions`. Returns how many
   * (0 when none). Hot path: no allocation, no exception except ClosedError for a disposed CQ
   * and SystemError if the provider fails.
   */
  poll(max = this.#batch): number {
    const cq = this.#handle;
    if (!cq) throw new ClosedError('completion queue');
    const n = this.#pollCq(cq, max < this.#batch ? max : this.#batch, this.#scratch.address);
    if (n < 0) throw errnoError('ibv_poll_cq', -n, { cq: hex(cq), num_entries: max });
    const dv = this.#scratch.view;
    for (let i = 0; i < n; i++) {
      const o = i * IBV_WC.size;
      const c = this.completions[i];
      c.wrId = getU64(dv, o + IBV_WC.fields.wr_id);
      c.status = dv.getUint32(o + IBV_WC.fields.status, true);
      c.opcode = dv.getUint32(o + IBV_WC.fields.opcode, true);
      c.vendorErr = dv.getUint32(o + IBV_WC.fields.vendor_err, true);
      c.byteLen = dv.getUint32(o + IBV_WC.fields.byte_len, true);
      c.imm = dv.getUint32(o + IBV_WC.fields.imm_data, false); // __be32: network order
      c.qpNum = dv.getUint32(o + IBV_WC.fields.qp_num, true);
      c.srcQp = dv.getUint32(o + IBV_WC.fields.src_qp, true);
      c.wcFlags = dv.getUint32(o + IBV_WC.fields.wc_flags, true);
      const qp = this.#qps.get(c.qpNum);
      if (qp) qp.reap(c);
    }
    return n;
  }

  /**
   * Wait until at least one completion is there and poll it: resolves with the count polled
   * into `completions`, or 0 when `timeoutMs` (default: no limit) passes first. Does not block
   * the event loop. One wait at a time per CQ (a second concurrent call is a UsageError).
   */
  wait(options: { timeoutMs?: number } = {}): Promise<number> {
    if (!this.#handle) return Promise.reject(new ClosedError('completion queue'));
    if (!this.#channel) return Promise.reject(new UsageError('this completion queue was created with events: false; use poll()'));
    if (this.#waiting) return Promise.reject(new UsageError('another wait() on this completion queue is still pending'));
    const waiting = this.#wait(options.timeoutMs ?? Infinity).finally(() => {
      this.#waiting = undefined;
      if (!this.#handle) this.#scratch.free(); // dispose() deferred this while poll(2) could touch it
    });
    this.#waiting = waiting;
    return waiting;
  }

  async #wait(timeoutMs: number): Promise<number> {
    const deadline = performance.now() + timeoutMs;
    const v = loadVerbs();
    for (;;) {
      let n = this.poll();
      if (n > 0) return n;
      if (!this.#armed) {
        checkStatus('ibv_req_notify_cq', this.context.inline.ibv_req_notify_cq(this.#handle, 0), { cq: hex(this.#handle) });
        this.#armed = true;
        n = this.poll(); // a completion that arrived before arming raises no event
        if (n > 0) return n;
      }
      const left = deadline - performance.now();
      if (left <= 0) return 0;
      const readable = await pollReadable(this.#scratch, this.#pollfdAt, this.#fd, left, SLICE_MS);
      if (!this.#handle) throw new ClosedError('completion queue (disposed while waiting)');
      if (readable) this.#drainEvents(v);
    }
  }

  /** Read and acknowledge every pending event of the channel (non-blocking fd). */
  #drainEvents(v: ReturnType<typeof loadVerbs>): void {
    let events = 0;
    const cqOut = this.#scratch.address + this.#outAt;
    while ((v.ibv_get_cq_event(this.#channel, cqOut, cqOut + 8) as number) === 0) events++;
    if (events) {
      v.ibv_ack_cq_events(this.#handle, events);
      this.#armed = false;
    }
  }

  /**
   * @internal For a caller that multiplexes several CQs in one poll(2) (the agent links' pump,
   * src/agent/pump.ts): the channel's fd (-1 without a channel). Arm with armEvents(), poll the CQ
   * once more (a completion that came before the arming raises no event), wait for the fd, then
   * takeEvents() before the next arming. Not to be mixed with wait() on the same CQ.
   */
  get eventFd(): number {
    return this.#handle ? this.#fd : -1;
  }

  /** @internal Ask for an event on the next completion (ibv_req_notify_cq), unless already asked. */
  armEvents(): void {
    if (this.#armed || !this.#handle || !this.#channel) return;
    checkStatus('ibv_req_notify_cq', this.context.inline.ibv_req_notify_cq(this.#handle, 0), { cq: hex(this.#handle) });
    this.#armed = true;
  }

  /** @internal Read and acknowledge the channel's pending events (non-blocking), so its fd is quiet again. */
  takeEvents(): void {
    if (this.#handle && this.#channel) this.#drainEvents(loadVerbs());
  }

  /**
   * The next completion, as a record; a failed status is thrown as its typed error (e.g.
   * RemoteAccessError), a timeout as TimeoutError. For control paths and tests, not the hot path.
   */
  async next(options: { timeoutMs?: number } = {}): Promise<CompletionRecord> {
    const [record] = await this.collect(1, options);
    if (record.status !== C.IBV_WC_SUCCESS) throw completionError(record);
    return record;
  }

  #backlog: CompletionRecord[] = [];

  /**
   * Wait for `count` completions and return them as records, failed ones included (inspect
   * `status`, or `completionError(record)`). TimeoutError if they do not all come in time.
   */
  async collect(count: number, options: { timeoutMs?: number } = {}): Promise<CompletionRecord[]> {
    const timeoutMs = options.timeoutMs ?? 10_000;
    const deadline = performance.now() + timeoutMs;
    const out: CompletionRecord[] = this.#backlog.splice(0, count);
    while (out.length < count) {
      const left = deadline - performance.now();
      const n = left > 0 ? (this.#channel ? await this.wait({ timeoutMs: left }) : this.poll()) : 0;
      for (let i = 0; i < n; i++) {
        if (out.length < count) out.push(this.completions[i].record());
        else this.#backlog.push(this.completions[i].record());
      }
      if (n === 0 && performance.now() >= deadline) {
        this.#backlog.unshift(...out);
        throw new TimeoutError(`completion queue: ${out.length} of ${count} completions within ${timeoutMs} ms`);
      }
      if (n === 0 && !this.#channel) await new Promise((r) => setTimeout(r, 1));
    }
    return out;
  }

  /**
   * Destroy the CQ (after every queue pair that uses it) and its channel. Idempotent. A pending
   * wait() rejects with ClosedError.
   */
  dispose(): void {
    const handle = this.#handle;
    if (!handle) return;
    const steps = new CleanupSteps();
    for (const qp of [...new Set(this.#qps.values())]) steps.run(() => qp.dispose());
    const v = loadVerbs();
    if (this.#channel) this.#drainEvents(v); // unacknowledged events would make destroy hang
    this.#handle = 0;
    steps.run(() => checkStatus('ibv_destroy_cq', v.ibv_destroy_cq(handle) as number, { cq: hex(handle) }));
    if (this.#channel) {
      const channel = this.#channel;
      steps.run(() => checkStatus('ibv_destroy_comp_channel', v.ibv_destroy_comp_channel(channel) as number, { channel: hex(channel) }));
      this.#channel = 0;
      countLive('channels', -1);
    }
    if (!this.#waiting) this.#scratch.free();
    countLive('cqs', -1);
    this.context.forget(this);
    steps.finish();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
