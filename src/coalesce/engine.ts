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
 *    drives the completion queue itself (a poll per turn of the event loop while completions
 *    come, then one a millisecond).
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
import { formatNext, FormattedWr, RequestCursor } from './plan.js';
import { defaultLimits, failWith, validateRequest } from './engine-checks.js';
import type { RemoteRegion, RequestElement, RequestEngineOptions, RequestLimits, RequestOp, SettledRequests, SubmitOptions } from './types.js';

/** wr_id of the engine's work requests: this + a sequence number (below 2^52: a safe integer). */
export const ENGINE_WR_ID = 2 ** 52;

/** How long dispose() polls for the flushes of work requests in flight. */
export const DISPOSE_FLUSH_MS = 5000;

const EAGAIN = 11;

/** Empty polls of the promise form's driver before it polls once a millisecond instead of every turn. */
const IDLE_POLLS = 64;

// Request slot states.
const FREE = 0;
const QUEUED = 1; // submitted, not fully posted (the cursor is not at the end)
const POSTED = 2; // every work request posted; settles when all are accounted for

export class RequestEngine {
  readonly qp: QueuePair;
  readonly limits: RequestLimits;
  /** What the last progress() / handleCompletions() settled (see SettledRequests). */
  readonly settled: SettledRequests;

  // The request table: a ring of slots in submission order; requests settle in that order.
  readonly #state: Uint8Array;
  readonly #isRead: Uint8Array;
  readonly #elements: (readonly RequestElement[] | undefined)[];
  readonly #remoteAddr: Float64Array;
  readonly #rkey: Uint32Array;
  readonly #tag: Float64Array;
  readonly #total: Float64Array;
  readonly #done: Float64Array; // bytes of accounted (completed) work requests
  readonly #posted: Int32Array; // work requests posted
  readonly #accounted: Int32Array; // of those, accounted for (completed, failed or flushed)
  readonly #maxMsg: Float64Array;
  readonly #maxSge: Int32Array;
  readonly #cursors: RequestCursor[]; // seed 002's REQUEST STATE, one per slot
  readonly #errors: (Error | undefined)[];
  readonly #resolve: (((bytes: number) => void) | undefined)[];
  readonly #reject: (((error: Error) => void) | undefined)[];
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

  #failure: MemwireError | undefined; // set once the queue pair failed: later requests flush
  readonly #postOnSubmit: boolean;
  readonly #yieldIdle: boolean;
  #disposed = false;
  #closing = false; // dispose() is flushing the queue pair
  #promised = 0;
  #driving = false;
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
    if (options.idle !== undefined && options.idle !== 'spin' && options.idle !== 'yield') throw new UsageError(`idle must be 'spin' or 'yield', got ${JSON.stringify(options.idle)}`);
    this.#yieldIdle = options.idle === 'yield';
    const n = limits.maxRequests;
    this.#state = new Uint8Array(n);
    this.#isRead = new Uint8Array(n);
    this.#elements = new Array(n).fill(undefined);
    this.#remoteAddr = new Float64Array(n);
    this.#rkey = new Uint32Array(n);
    this.#tag = new Float64Array(n);
    this.#total = new Float64Array(n);
    this.#done = new Float64Array(n);
    this.#posted = new Int32Array(n);
    this.#accounted = new Int32Array(n);
    this.#maxMsg = new Float64Array(n);
    this.#maxSge = new Int32Array(n);
    this.#cursors = Array.from({ length: n }, () => new RequestCursor());
    this.#errors = new Array(n).fill(undefined);
    this.#resolve = new Array(n).fill(undefined);
    this.#reject = new Array(n).fill(undefined);
    this.settled = { count: 0, id: new Int32Array(n), tag: new Float64Array(n), bytes: new Float64Array(n), error: new Array(n).fill(undefined) };

    // Others may post on the same queue pair (a control link's SENDs, RDMA atomics): sendSlots
    // caps what the engine keeps posted so their slots stay free.
    const sendSlots = options.sendSlots;
    if (sendSlots !== undefined && (!Number.isInteger(sendSlots) || sendSlots < 1 || sendSlots > qp.maxSendWr)) {
      throw new UsageError(`sendSlots must be an integer 1..${qp.maxSendWr} (the queue pair's maxSendWr), got ${String(sendSlots)}`);
    }
    const wrCapacity = Math.max(1, sendSlots ?? qp.maxSendWr);
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
    const maxSge = isRead ? this.limits.maxReadSge : this.limits.maxWriteSge;
    let maxMsg = this.limits.maxMessageSize;
    let sges = maxSge;
    if (options) {
      if (options.maxMessageSize !== undefined) {
        if (!Number.isSafeInteger(options.maxMessageSize) || options.maxMessageSize < 1 || options.maxMessageSize > maxMsg) throw new UsageError(`submit: maxMessageSize must be an integer 1..${maxMsg}, got ${options.maxMessageSize}`);
        maxMsg = options.maxMessageSize;
      }
      if (options.maxSge !== undefined) {
        if (!Number.isInteger(options.maxSge) || options.maxSge < 1 || options.maxSge > maxSge) throw new UsageError(`submit: maxSge must be an integer 1..${maxSge}, got ${options.maxSge}`);
        sges = options.maxSge;
      }
    }
    if (this.#count === this.limits.maxRequests) return -EAGAIN;
    const slot = (this.#first + this.#count) % this.limits.maxRequests;
    this.#count++;
    this.#state[slot] = QUEUED;
    this.#isRead[slot] = isRead;
    this.#elements[slot] = elements;
    this.#remoteAddr[slot] = remote.addr;
    this.#rkey[slot] = remote.rkey;
    this.#tag[slot] = tag;
    this.#total[slot] = total;
    this.#done[slot] = 0;
    this.#posted[slot] = 0;
    this.#accounted[slot] = 0;
    this.#maxMsg[slot] = maxMsg;
    this.#maxSge[slot] = sges;
    this.#cursors[slot].reset();
    this.#errors[slot] = undefined;
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
    return this.#promise('write', remote, elements, options);
  }

  /** RDMA READ `remote` into the elements; resolves with the bytes read. Errors as submit / RequestFailure. */
  read(remote: RemoteRegion, elements: readonly RequestElement[], options?: SubmitOptions): Promise<number> {
    return this.#promise('read', remote, elements, options);
  }

  #promise(op: RequestOp, remote: RemoteRegion, elements: readonly RequestElement[], options?: SubmitOptions): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      const id = this.submit(op, remote, elements, 0, options);
      if (id < 0) throw new UsageError(`${op}: ${this.limits.maxRequests} requests are already in flight (maxRequests)`);
      if (this.#state[id] === FREE) {
        // Settled within submit (an empty request, or a failed queue pair): report it now.
        const k = this.settled.count - 1;
        const error = this.settled.error[k];
        if (error) reject(error);
        else resolve(this.settled.bytes[k]);
        return;
      }
      this.#resolve[id] = resolve;
      this.#reject[id] = reject;
      this.#promised++;
      this.#drive();
    });
  }

  /**
   * Drive the CQ while promises wait: progress() once per turn of the event loop (setImmediate)
   * while completions come, then every millisecond (setTimeout) after IDLE_POLLS empty polls, so
   * an idle wait does not spin. Not the CQ's wait(): it polls into the CQ's shared completion
   * array, which any other poll before this loop resumes would overwrite (completions lost).
   */
  #drive(): void {
    if (this.#driving) return;
    this.#driving = true;
    const loop = async () => {
      try {
        let idle = 0;
        while (this.#promised > 0 && !this.#disposed) {
          const settled = this.progress();
          if (this.#promised === 0 || this.#disposed) break;
          idle = settled > 0 ? 0 : idle + 1;
          await new Promise((resolve) => (idle < IDLE_POLLS ? setImmediate(resolve) : setTimeout(resolve, 1)));
        }
      } finally {
        // Synchronously with the last settle: a promise made in its continuation starts a new loop.
        this.#driving = false;
      }
    };
    loop().catch((error: unknown) => {
      const e = error instanceof Error ? error : new Error(String(error));
      for (let k = 0; k < this.#count; k++) {
        const slot = (this.#first + k) % this.limits.maxRequests;
        const reject = this.#reject[slot];
        if (reject) {
          this.#resolve[slot] = this.#reject[slot] = undefined;
          this.#promised--;
          reject(e);
        }
      }
    });
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
      if (!this.#errors[slot]) {
        // A flush under dispose() is the dispose's doing: ClosedError, as for requests never posted.
        if (c.status !== C.IBV_WC_WR_FLUSH_ERR) this.#errors[slot] = completionError(c);
        else this.#errors[slot] = this.#closing ? this.#closed() : new FlushedError(c);
      }
      if (!this.#failure) this.#failure = this.#errors[slot] as MemwireError;
      this.#accountOne(false);
    }
    this.#settleReady();
  }

  #accountOne(ok: boolean): void {
    const i = this.#wrHead % this.#wrSlot.length;
    const slot = this.#wrSlot[i];
    if (ok) this.#done[slot] += this.#wrBytes[i];
    if (this.#wrRead[i]) this.#readsInFlight--;
    this.#accounted[slot]++;
    this.#wrHead++;
  }

  /** Settle the oldest requests while they are fully accounted for (in order). */
  #settleReady(): void {
    const cap = this.limits.maxRequests;
    while (this.#count > 0) {
      const slot = this.#first;
      const state = this.#state[slot];
      const stuck = state === QUEUED && this.#failure !== undefined; // will post nothing more
      if (!(state === POSTED || stuck) || this.#accounted[slot] !== this.#posted[slot]) return;
      if (state === QUEUED) {
        this.#queued--;
        if (this.#queued > 0) this.#posting = (slot + 1) % cap;
      }
      let error = this.#errors[slot];
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
    const opcode = this.#isRead[slot] ? C.IBV_WC_RDMA_READ : C.IBV_WC_RDMA_WRITE;
    return new FlushedError({ wrId: 0, status: C.IBV_WC_WR_FLUSH_ERR, opcode, vendorErr: 0, qpNum: this.qp.qpn });
  }

  #settle(slot: number, error: Error | undefined): void {
    const s = this.settled;
    const k = s.count++;
    s.id[k] = slot;
    s.tag[k] = this.#tag[slot];
    s.bytes[k] = this.#done[slot];
    s.error[k] = error ? failWith(error, this.#done[slot], this.#total[slot], this.qp) : undefined;
    this.#state[slot] = FREE;
    this.#elements[slot] = undefined;
    this.#errors[slot] = undefined;
    this.#first = (this.#first + 1) % this.limits.maxRequests;
    this.#count--;
    const resolve = this.#resolve[slot];
    const reject = this.#reject[slot];
    if (resolve && reject) {
      this.#resolve[slot] = this.#reject[slot] = undefined;
      this.#promised--;
      if (s.error[k]) reject(s.error[k]!);
      else resolve(s.bytes[k]);
    }
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
    while (this.#queued > 0) {
      const free = Math.min(this.qp.sendSlotsFree, wrCap - (this.#wrTail - this.#wrHead));
      const chainMax = Math.min(free, this.limits.postList);
      let k = 0;
      let stop = chainMax === free; // filling every free slot: posting stops after this chain
      while (k < chainMax && this.#queued > 0) {
        const slot = this.#posting;
        const isRead = this.#isRead[slot];
        if (isRead && this.#readsInFlight >= this.limits.maxReadsInFlight) {
          stop = true;
          break;
        }
        const cursor = this.#cursors[slot];
        chain.undoSlot[k] = slot;
        chain.undoElement[k] = cursor.element;
        chain.undoOffset[k] = cursor.offset;
        limits.maxMessageSize = this.#maxMsg[slot];
        limits.maxSge = this.#maxSge[slot];
        const elements = this.#elements[slot]!;
        const finished = formatNext(elements, cursor, limits, out);
        if (out.sgeCount === 0) {
          // Nothing (left) to move: an empty request is posted as soon as it is its turn.
          this.#advancePosting(slot, cap);
          continue;
        }
        const seq = this.#wrTail++;
        const w = seq % wrCap;
        this.#wrSlot[w] = slot;
        this.#wrBytes[w] = out.bytes;
        this.#wrRead[w] = isRead;
        this.#posted[slot]++;
        this.#sinceSignal++;
        let signaled = finished || this.#sinceSignal >= this.limits.signalEvery;
        if (isRead) {
          this.#readsInFlight++;
          this.#readsSinceSignal++;
          if (this.#readsInFlight >= this.limits.maxReadsInFlight || this.#readsSinceSignal * 2 >= this.limits.maxReadsInFlight) signaled = true;
        }
        chain.write(k, elements, out, isRead, this.#remoteAddr[slot], this.#rkey[slot], ENGINE_WR_ID + seq);
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
    this.#state[slot] = POSTED;
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
      this.#posted[slot]--;
      const cursor = this.#cursors[slot];
      cursor.element = this.#chain.undoElement[i];
      cursor.offset = this.#chain.undoOffset[i];
      if (this.#state[slot] === POSTED) {
        this.#state[slot] = QUEUED;
        this.#queued++;
      }
      this.#posting = slot;
    }
    const error = errnoError('ibv_post_send', rc, { qp_num: this.qp.qpn, wr_id: this.#chain.ids[taken] });
    this.#errors[this.#chain.undoSlot[taken]] = error;
    this.#failure = error;
  }

  /** Every unsettled request settles with `error` (the NIC no longer touches them). */
  #closeAll(error: Error): void {
    while (this.#count > 0) {
      const slot = this.#first;
      if (this.#state[slot] === QUEUED) this.#queued--;
      this.#settle(slot, this.#errors[slot] ?? error);
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
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
