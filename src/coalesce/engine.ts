/**
 * RequestEngine: seed 002's RDMA manager on one RC queue pair. A request — a chain of local
 * elements bound for one remote region, READ or WRITE — becomes work requests formatted by the
 * greedy rule of plan.ts (coalesce contiguous remote runs into several SGEs, divide at the
 * largest message), posted as send-queue slots allow, several per ibv_post_send call (a post
 * list, written by chain.ts). Each request keeps its state (current element, offset: seed 002's REQUEST STATE) so it
 * continues when completions free slots (FIG. 9: post, transfer, count completions, post the next
 * descriptors, signal the end).
 *
 * Two forms:
 *  - hot loops: `submit()` returns a request id (or -EAGAIN when the request table is full) and
 *    `progress()` polls, posts what fits and reports the requests that settled in `settled`
 *    (reused arrays): no allocation per request or work request, no exception on the path.
 *    With the option idle 'yield', a poll that finds nothing while work is in flight yields the
 *    CPU (sched_yield) before returning.
 *  - applications: `write()` / `read()` return a promise of the bytes moved; the engine then
 *    drives the completion queue itself (engine-promise.ts).
 * A request moved again and again can be prepared once (`prepare()`, prepared.ts): checked,
 * planned and its SGE lists formatted in native memory, so `submitPrepared()` / `runPrepared()`
 * walk no element and write only each work request's header.
 *
 * Completions and accounting. Each work request's wr_id is ENGINE_WR_ID + a sequence number.
 * Only some ask for a completion: every `signalEvery`-th, the last of each request, the last one
 * posted before posting stops (the send queue full, the READ window full, nothing more to post)
 * — so a completion always comes to free what is posted — and for READs every
 * ⌈maxReadsInFlight / 2⌉-th. Completions of one send queue come in order, so a completion for
 * sequence s accounts every work request up to s (the unsignaled ones included).
 *
 * Failure. An error completion (status ≠ success) at sequence s: the work requests before s
 * completed; the request of s settles with that typed error (RemoteAccessError, …) carrying
 * `bytesCompleted`, `requestBytes` and the queue pair's state (RequestFailure); the queue pair is
 * in the error state, so every later work request is flushed and every later request settles with
 * FlushedError — including those not yet posted and those submitted afterwards. A request
 * settles only when every work request it posted is accounted for (its own completion or a later
 * one, flushes included): until then the NIC may still touch its buffers, and the queue pair
 * keeps their regions referenced.
 *
 * dispose() with work in flight moves the queue pair to the error state, polls until the flushes
 * of every posted work request came (at most DISPOSE_FLUSH_MS), then settles every unsettled
 * request with ClosedError. The queue pair stays usable only if nothing was in flight.
 */
import { libc } from '../../ffi/libc.js';
import { C } from '../../ffi/verbs-layout.js';
import { ClosedError, errnoError, type MemwireError, UsageError } from '../errors.js';
import type { Completion } from '../verbs/completion-queue.js';
import { completionError, FlushedError } from '../verbs/errors.js';
import type { QueuePair } from '../verbs/queue-pair.js';
import { WorkRequestChain } from './chain.js';
import { formatNext, FormattedWr } from './plan.js';
import { checkEngineOptions, defaultLimits, failWith, requestLimits, validateRequest } from './engine-checks.js';
import { RequestWaiters } from './engine-promise.js';
import { PreparedRequest } from './prepared.js';
import { FREE, POSTED, QUEUED, RequestTable } from './request-table.js';
import type { RemoteRegion, RequestElement, RequestEngineOptions, RequestLimits, RequestOp, SettledRequests, SubmitOptions } from './types.js';

/** wr_id of the engine's work requests: this + a sequence number (below 2^52: a safe integer). */
export const ENGINE_WR_ID = 2 ** 52;

/** How long dispose() polls for the flushes of work requests in flight. */
export const DISPOSE_FLUSH_MS = 5000;

const EAGAIN = 11;

export class RequestEngine {
  readonly qp: QueuePair;
  readonly limits: RequestLimits;
  /** What the last progress() / handleCompletions() settled (see SettledRequests). */
  readonly settled: SettledRequests;

  // The request table: a ring of slots in submission order; requests settle in that order.
  readonly #t: RequestTable;
  readonly #waiters: RequestWaiters;
  readonly #preparedHere = new Set<PreparedRequest>(); // disposed with the engine
  #first = 0; // oldest unsettled slot
  #count = 0; // unsettled slots
  #posting = 0; // the slot being posted (first QUEUED), valid while #queued > 0
  #queued = 0;

  // Work requests posted and not yet accounted: a ring indexed by sequence % capacity.
  readonly #wrSlot: Int32Array;
  readonly #wrBytes: Float64Array;
  readonly #wrRead: Uint8Array;
  #wrHead = 0; // oldest unaccounted sequence
  #wrTail = 0; // next sequence
  #readsInFlight = 0;
  #sinceSignal = 0;
  #readsSinceSignal = 0;

  // The chain one ibv_post_send hands over (native, made once) and how to undo a refused post.
  readonly #chain: WorkRequestChain;
  readonly #formatted: FormattedWr;
  readonly #limitsScratch = { maxMessageSize: 0, maxSge: 0 };
  readonly #requestScratch = { maxMessageSize: 0, maxSge: 0 };

  #failure: MemwireError | undefined; // set once the queue pair failed: later requests flush
  readonly #postOnSubmit: boolean;
  readonly #yieldIdle: boolean;
  #disposed = false;
  #closing = false; // dispose() is flushing the queue pair
  readonly #onOther: ((c: Completion) => void) | undefined;

  /**
   * An engine on `qp` (RC, connected or about to be; its send CQ carries the completions).
   * Limits: the device's (port max_msg_sz, the QP's max_send_sge, max_sge_rd, initiator depth),
   * lowered by `options`. `onOtherCompletion` receives the completions progress() polls that are
   * not the engine's (another QP's on a shared CQ, or this QP's own sends). UsageError for a UD
   * queue pair or a limit above the device's; ClosedError for a disposed queue pair.
   */
  constructor(qp: QueuePair, options: RequestEngineOptions & { onOtherCompletion?: (c: Completion) => void } = {}) {
    qp.handle; // ClosedError when disposed
    if (qp.type !== 'RC') throw new UsageError('a RequestEngine needs an RC queue pair (RDMA READ and WRITE)');
    const limits = defaultLimits(qp, options);
    this.qp = qp;
    this.limits = limits;
    this.#onOther = options.onOtherCompletion;
    this.#postOnSubmit = options.postOnSubmit !== false;
    // Others may post on the same queue pair (a control link's SENDs, RDMA atomics): sendSlots
    // caps what the engine keeps posted so their slots stay free.
    const { yieldIdle, sendSlots } = checkEngineOptions(qp, options);
    this.#yieldIdle = yieldIdle;
    const n = limits.maxRequests;
    this.#t = new RequestTable(n);
    this.#waiters = new RequestWaiters(this, n);
    this.settled = { count: 0, id: new Int32Array(n), tag: new Float64Array(n), bytes: new Float64Array(n), error: new Array(n).fill(undefined) };
    const wrCapacity = sendSlots;
    this.#wrSlot = new Int32Array(wrCapacity);
    this.#wrBytes = new Float64Array(wrCapacity);
    this.#wrRead = new Uint8Array(wrCapacity);

    const perWr = Math.max(limits.maxWriteSge, limits.maxReadSge);
    this.#chain = new WorkRequestChain(limits.postList, perWr);
    this.#formatted = new FormattedWr(perWr);
  }

  /** Requests submitted and not yet settled. */
  get pending(): number {
    return this.#count;
  }

  /** Requests submitted and not yet wholly posted (their remaining work requests wait for send slots). */
  get queued(): number {
    return this.#queued;
  }

  /** Work requests of the engine posted and not yet accounted for. */
  get inFlight(): number {
    return this.#wrTail - this.#wrHead;
  }

  get disposed(): boolean {
    return this.#disposed;
  }

  /** Work requests posted since the engine was made (a running count, for tools and benches). */
  get postedWorkRequests(): number {
    return this.#wrTail;
  }

  /** Whether `c` is a completion of one of this engine's work requests. */
  owns(c: Completion): boolean {
    return c.qpNum === this.qp.qpn && c.wrId >= ENGINE_WR_ID;
  }

  /**
   * Submit a request: `op` between the `elements` and `remote` (see RequestElement). Returns its
   * id (≥ 0), or -EAGAIN (-11) when `limits.maxRequests` are unsettled. Posts what fits now
   * (unless `postOnSubmit` is false); progress() does the rest and reports it settled with `tag`. The caller keeps `elements`
   * unchanged and the regions registered until it settles. UsageError for a malformed request
   * (checked whole, before anything is posted); ClosedError once disposed.
   */
  submit(op: RequestOp, remote: RemoteRegion, elements: readonly RequestElement[], tag = 0, options?: SubmitOptions): number {
    if (this.#disposed) throw new ClosedError('request engine');
    const isRead = op === 'read' ? 1 : 0;
    if (!isRead && op !== 'write') throw new UsageError(`submit: op must be 'write' or 'read', got ${JSON.stringify(op)}`);
    const total = validateRequest(this.qp, isRead === 1, remote, elements, 'submit');
    const limits = requestLimits(this.limits, isRead === 1, options, 'submit', this.#requestScratch);
    if (this.#count === this.limits.maxRequests) return -EAGAIN;
    const slot = this.#enqueue(isRead, tag, total);
    this.#t.elements[slot] = elements;
    this.#t.remoteAddr[slot] = remote.addr;
    this.#t.rkey[slot] = remote.rkey;
    this.#t.maxMsg[slot] = limits.maxMessageSize;
    this.#t.maxSge[slot] = limits.maxSge;
    return this.#submitted(slot);
  }

  /**
   * Check, plan and format a request once, for submitting it many times (`submitPrepared`,
   * `runPrepared`): its SGE lists go into native memory now, so each submission walks no element
   * and formats only its work requests' headers. `options` lower the limits as submit's do. The
   * caller keeps the elements' regions registered while the prepared request is used; dispose() it
   * (or the engine) to free its native memory. UsageError / ClosedError as submit.
   */
  prepare(op: RequestOp, remote: RemoteRegion, elements: readonly RequestElement[], options?: SubmitOptions): PreparedRequest {
    if (this.#disposed) throw new ClosedError('request engine');
    if (op !== 'read' && op !== 'write') throw new UsageError(`prepare: op must be 'write' or 'read', got ${JSON.stringify(op)}`);
    const total = validateRequest(this.qp, op === 'read', remote, elements, 'prepare');
    const limits = requestLimits(this.limits, op === 'read', options, 'prepare', { maxMessageSize: 0, maxSge: 0 });
    for (const p of this.#preparedHere) if (p.disposed) this.#preparedHere.delete(p);
    const prepared = new PreparedRequest(this, op, remote, elements, total, limits);
    this.#preparedHere.add(prepared);
    return prepared;
  }

  /**
   * Submit a prepared request (see prepare): as submit(), with nothing checked or planned again
   * but that the prepared request and its regions are alive. The same prepared request may be
   * submitted again before earlier submissions settle. Returns the request id or -EAGAIN (-11).
   * UsageError for another engine's prepared request; ClosedError once it, a region of it or the
   * engine is disposed.
   */
  submitPrepared(prepared: PreparedRequest, tag = 0): number {
    if (this.#disposed) throw new ClosedError('request engine');
    if (prepared.owner !== this) throw new UsageError('submitPrepared: a request prepared by another engine');
    if (this.#count === this.limits.maxRequests) return -EAGAIN;
    prepared.acquire(); // ClosedError for it or a region disposed
    const slot = this.#enqueue(prepared.isRead, tag, prepared.bytes);
    this.#t.prepared[slot] = prepared;
    this.#t.elements[slot] = prepared.elements;
    return this.#submitted(slot);
  }

  /** The next request slot, QUEUED with its accounting reset (the caller checked there is room). */
  #enqueue(isRead: number, tag: number, total: number): number {
    const slot = (this.#first + this.#count) % this.limits.maxRequests;
    this.#count++;
    this.#t.open(slot, isRead, tag, total);
    return slot;
  }

  /** A filled slot joins the posting queue; posts what fits unless postOnSubmit is false. */
  #submitted(slot: number): number {
    if (this.#queued === 0) this.#posting = slot;
    this.#queued++;
    this.settled.count = 0;
    if (this.#postOnSubmit) this.#pump();
    return slot;
  }

  /**
   * Post what fits now: what submit() posts at once unless `postOnSubmit` is false (a caller that
   * gathers several requests into one ibv_post_send submits them, then calls post()). Reports in
   * `settled` what settled meanwhile (an empty request, any after a failure).
   */
  post(): number {
    this.settled.count = 0;
    if (this.#disposed) return 0;
    this.#pump();
    return this.settled.count;
  }

  /**
   * Poll the queue pair's send CQ once, account the engine's completions (others go to
   * onOtherCompletion), post what now fits, and report in `settled` the requests that settled
   * (returns their count). No allocation unless a request fails.
   */
  progress(): number {
    this.settled.count = 0;
    if (this.#disposed) return 0;
    if (this.qp.disposed) {
      this.#closeAll(new ClosedError(`queue pair ${this.qp.qpn} (disposed under its request engine)`));
      return this.settled.count;
    }
    const cq = this.qp.sendCq;
    const n = cq.poll();
    // Nothing came while work is in flight: with idle 'yield', let the thread doing the
    // transfer's work (rxe: ksoftirqd on this CPU) run before the caller polls again.
    if (n === 0 && this.#yieldIdle && this.#wrTail !== this.#wrHead) libc.sched_yield();
    for (let i = 0; i < n; i++) this.#take(cq.completions[i]);
    this.#pump();
    return this.settled.count;
  }

  /**
   * For a caller that polls the CQ itself: account the engine's completions among
   * `completions[0, n)` (others are left alone), post what now fits, report in `settled`.
   */
  handleCompletions(completions: readonly Completion[], n: number): number {
    this.settled.count = 0;
    if (this.#disposed) return 0;
    for (let i = 0; i < n; i++) {
      const c = completions[i];
      if (this.owns(c)) this.#account(c);
    }
    this.#pump();
    return this.settled.count;
  }

  /** RDMA WRITE the elements to `remote`; resolves with the bytes written. Errors as submit / RequestFailure. */
  write(remote: RemoteRegion, elements: readonly RequestElement[], options?: SubmitOptions): Promise<number> {
    return this.#promise(() => this.submit('write', remote, elements, 0, options), 'write');
  }

  /** RDMA READ `remote` into the elements; resolves with the bytes read. Errors as submit / RequestFailure. */
  read(remote: RemoteRegion, elements: readonly RequestElement[], options?: SubmitOptions): Promise<number> {
    return this.#promise(() => this.submit('read', remote, elements, 0, options), 'read');
  }

  /** Submit a prepared request (see prepare); resolves with the bytes moved. Errors as submitPrepared / RequestFailure. */
  runPrepared(prepared: PreparedRequest): Promise<number> {
    return this.#promise(() => this.submitPrepared(prepared), prepared.op);
  }

  #promise(submit: () => number, op: RequestOp): Promise<number> {
    let id: number;
    try {
      id = submit();
    } catch (error) {
      return Promise.reject(error as Error);
    }
    if (id < 0) return Promise.reject(new UsageError(`${op}: ${this.limits.maxRequests} requests are already in flight (maxRequests)`));
    if (this.#t.state[id] === FREE) {
      // Settled within submit (an empty request, or a failed queue pair): report it now.
      const k = this.settled.count - 1;
      const error = this.settled.error[k];
      return error ? Promise.reject(error) : Promise.resolve(this.settled.bytes[k]);
    }
    return this.#waiters.wait(id);
  }

  /** One polled completion: the engine's are accounted, the rest go to onOtherCompletion. */
  #take(c: Completion): void {
    if (this.owns(c)) this.#account(c);
    else this.#onOther?.(c);
  }

  /** Account work requests up to the completion's sequence (see the file comment). */
  #account(c: Completion): void {
    const seq = c.wrId - ENGINE_WR_ID;
    if (seq < this.#wrHead || seq >= this.#wrTail) return; // already accounted (cannot happen in order)
    const ok = c.status === C.IBV_WC_SUCCESS;
    const last = ok ? seq : seq - 1;
    while (this.#wrHead <= last) this.#accountOne(true);
    if (!ok) {
      const slot = this.#wrSlot[seq % this.#wrSlot.length];
      if (!this.#t.errors[slot]) {
        // A flush under dispose() is the dispose's doing: ClosedError, as for requests never posted.
        if (c.status !== C.IBV_WC_WR_FLUSH_ERR) this.#t.errors[slot] = completionError(c);
        else this.#t.errors[slot] = this.#closing ? this.#closed() : new FlushedError(c);
      }
      if (!this.#failure) this.#failure = this.#t.errors[slot] as MemwireError;
      this.#accountOne(false);
    }
    this.#settleReady();
  }

  #accountOne(ok: boolean): void {
    const i = this.#wrHead % this.#wrSlot.length;
    const slot = this.#wrSlot[i];
    if (ok) this.#t.done[slot] += this.#wrBytes[i];
    if (this.#wrRead[i]) this.#readsInFlight--;
    this.#t.accounted[slot]++;
    this.#wrHead++;
  }

  /** Settle the oldest requests while they are fully accounted for (in order). */
  #settleReady(): void {
    const cap = this.limits.maxRequests;
    while (this.#count > 0) {
      const slot = this.#first;
      const state = this.#t.state[slot];
      const stuck = state === QUEUED && this.#failure !== undefined; // will post nothing more
      if (!(state === POSTED || stuck) || this.#t.accounted[slot] !== this.#t.posted[slot]) return;
      if (state === QUEUED) {
        this.#queued--;
        if (this.#queued > 0) this.#posting = (slot + 1) % cap;
      }
      let error = this.#t.errors[slot];
      if (!error && this.#failure) error = this.#flushed(slot);
      this.#settle(slot, error);
    }
  }

  #closed(): ClosedError {
    return new ClosedError('request engine (disposed with requests in flight)');
  }

  /** The FlushedError of a request the failed queue pair never ran (ClosedError under dispose). */
  #flushed(slot: number): Error {
    if (this.#closing) return this.#closed();
    const opcode = this.#t.isRead[slot] ? C.IBV_WC_RDMA_READ : C.IBV_WC_RDMA_WRITE;
    return new FlushedError({ wrId: 0, status: C.IBV_WC_WR_FLUSH_ERR, opcode, vendorErr: 0, qpNum: this.qp.qpn });
  }

  #settle(slot: number, error: Error | undefined): void {
    const s = this.settled;
    const k = s.count++;
    s.id[k] = slot;
    s.tag[k] = this.#t.tag[slot];
    s.bytes[k] = this.#t.done[slot];
    s.error[k] = error ? failWith(error, this.#t.done[slot], this.#t.total[slot], this.qp) : undefined;
    this.#t.close(slot);
    const prepared = this.#t.prepared[slot];
    if (prepared) {
      this.#t.prepared[slot] = undefined;
      prepared.release(); // its SGE lists may go now (if disposed): nothing of it is left to post
    }
    this.#first = (this.#first + 1) % this.limits.maxRequests;
    this.#count--;
    this.#waiters.settle(slot, s.bytes[k], s.error[k]);
  }

  /**
   * Post what fits: chains of up to `postList` work requests while the send queue has free
   * slots, the READ window has room and requests are queued (continuation: seed 002's FIG. 9).
   */
  #pump(): void {
    if (this.#failure || this.#disposed) {
      this.#settleReady();
      return;
    }
    const cap = this.limits.maxRequests;
    const wrCap = this.#wrSlot.length;
    const limits = this.#limitsScratch;
    const out = this.#formatted;
    const chain = this.#chain;
    const t = this.#t;
    while (this.#queued > 0) {
      const free = Math.min(this.qp.sendSlotsFree, wrCap - (this.#wrTail - this.#wrHead));
      const chainMax = Math.min(free, this.limits.postList);
      let k = 0;
      let stop = chainMax === free; // filling every free slot: posting stops after this chain
      while (k < chainMax && this.#queued > 0) {
        const slot = this.#posting;
        const isRead = t.isRead[slot];
        if (isRead && this.#readsInFlight >= this.limits.maxReadsInFlight) {
          stop = true;
          break;
        }
        const cursor = t.cursors[slot];
        chain.undoSlot[k] = slot;
        chain.undoElement[k] = cursor.element;
        chain.undoOffset[k] = cursor.offset;
        const prepared = t.prepared[slot];
        let finished: boolean;
        let bytes: number;
        if (prepared) {
          // Formatted at prepare(): the cursor counts its work requests.
          const i = cursor.element;
          if (i >= prepared.workRequests) {
            this.#advancePosting(slot, cap); // an empty request: settled as soon as it is its turn
            continue;
          }
          cursor.element = i + 1;
          finished = i + 1 === prepared.workRequests;
          bytes = prepared.wrBytes[i];
        } else {
          limits.maxMessageSize = t.maxMsg[slot];
          limits.maxSge = t.maxSge[slot];
          finished = formatNext(t.elements[slot]!, cursor, limits, out);
          if (out.sgeCount === 0) {
            // Nothing (left) to move: an empty request is posted as soon as it is its turn.
            this.#advancePosting(slot, cap);
            continue;
          }
          bytes = out.bytes;
        }
        const seq = this.#wrTail++;
        const w = seq % wrCap;
        this.#wrSlot[w] = slot;
        this.#wrBytes[w] = bytes;
        this.#wrRead[w] = isRead;
        t.posted[slot]++;
        this.#sinceSignal++;
        let signaled = finished || this.#sinceSignal >= this.limits.signalEvery;
        if (isRead) {
          this.#readsInFlight++;
          this.#readsSinceSignal++;
          if (this.#readsInFlight >= this.limits.maxReadsInFlight || this.#readsSinceSignal * 2 >= this.limits.maxReadsInFlight) signaled = true;
        }
        if (prepared) chain.writePrepared(k, prepared, cursor.element - 1, ENGINE_WR_ID + seq);
        else chain.write(k, t.elements[slot]!, out, isRead, t.remoteAddr[slot], t.rkey[slot], ENGINE_WR_ID + seq);
        chain.signaled[k] = signaled ? 1 : 0;
        if (signaled) this.#markSignaled(k, isRead);
        k++;
        if (finished) this.#advancePosting(slot, cap);
      }
      if (k === 0) break;
      if (this.#queued === 0) stop = true;
      // Posting stops after this chain: its last work request must bring a completion back.
      if (stop && !chain.signaled[k - 1]) this.#markSignaled(k - 1, this.#wrRead[(this.#wrTail - 1) % wrCap]);
      const rc = chain.post(this.qp, k);
      if (rc !== 0) {
        this.#postFailed(rc, k);
        break;
      }
      if (stop) break;
    }
    this.#settleReady();
  }

  #markSignaled(k: number, isRead: number): void {
    this.#chain.signaled[k] = 1;
    this.#sinceSignal = 0;
    if (isRead) this.#readsSinceSignal = 0;
  }

  /** The slot being posted is fully formatted: it is POSTED, the next queued one is up. */
  #advancePosting(slot: number, cap: number): void {
    this.#t.state[slot] = POSTED;
    this.#queued--;
    this.#posting = (slot + 1) % cap;
  }

  /**
   * ibv_post_send refused the chain from `qp.badIndex` on: undo those work requests (the cursor of
   * each goes back), and fail the engine with the provider's error — the request it stopped in
   * settles with it once its posted work requests are accounted for; later ones flush.
   */
  #postFailed(rc: number, k: number): void {
    const taken = Math.max(0, Math.min(k, this.qp.badIndex));
    for (let i = k - 1; i >= taken; i--) {
      const slot = this.#chain.undoSlot[i];
      this.#wrTail--;
      const w = this.#wrTail % this.#wrSlot.length;
      if (this.#wrRead[w]) this.#readsInFlight--;
      this.#t.posted[slot]--;
      const cursor = this.#t.cursors[slot];
      cursor.element = this.#chain.undoElement[i];
      cursor.offset = this.#chain.undoOffset[i];
      if (this.#t.state[slot] === POSTED) {
        this.#t.state[slot] = QUEUED;
        this.#queued++;
      }
      this.#posting = slot;
    }
    const error = errnoError('ibv_post_send', rc, { qp_num: this.qp.qpn, wr_id: this.#chain.ids[taken] });
    this.#t.errors[this.#chain.undoSlot[taken]] = error;
    this.#failure = error;
  }

  /** Every unsettled request settles with `error` (the NIC no longer touches them). */
  #closeAll(error: Error): void {
    while (this.#count > 0) {
      const slot = this.#first;
      if (this.#t.state[slot] === QUEUED) this.#queued--;
      this.#settle(slot, this.#t.errors[slot] ?? error);
    }
    this.#queued = 0;
    this.#wrHead = this.#wrTail;
    this.#readsInFlight = 0;
  }

  /**
   * Stop: with work in flight, move the queue pair to the error state and poll until every posted
   * work request is flushed (at most DISPOSE_FLUSH_MS), so no buffer is released while the NIC may
   * touch it; then every unsettled request settles with ClosedError (promises reject; the last
   * `settled` lists them). Idempotent. The native chain block is freed.
   */
  dispose(): void {
    if (this.#disposed) return;
    this.settled.count = 0;
    this.#closing = true;
    if (this.#wrTail > this.#wrHead && !this.qp.disposed) {
      try {
        if (this.qp.queryState() !== 'ERR') this.qp.toError();
        const cq = this.qp.sendCq;
        const deadline = performance.now() + DISPOSE_FLUSH_MS;
        // Until every posted work request is accounted for — or the queue pair has none left
        // unreaped at all (a completion someone else polled is gone, but the NIC is done with it).
        while (this.#wrTail > this.#wrHead && this.qp.sendSlotsFree < this.qp.maxSendWr && performance.now() < deadline) {
          const n = cq.poll();
          for (let i = 0; i < n; i++) {
            const c = cq.completions[i];
            if (this.owns(c)) this.#account(c);
            else this.#onOther?.(c);
          }
        }
      } catch {
        // The QP or CQ went away meanwhile: the NIC no longer touches the memory.
      }
    }
    this.#disposed = true;
    // Requests whose own completion failed keep that error; the rest were closed under them.
    this.#closeAll(this.#closed());
    this.#chain.free();
    for (const p of this.#preparedHere) p.dispose();
    this.#preparedHere.clear();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
