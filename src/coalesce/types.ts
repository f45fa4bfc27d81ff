/**
 * The public shapes of RDMA requests (seed 002): a request is a chain of elements — pieces of
 * local registered memory — bound for one remote region, READ or WRITE. The request engine
 * (engine.ts) turns it into work requests: consecutive elements bound for contiguous remote
 * memory coalesce into one work request with several SGEs, up to the SGE limit and the largest
 * message; anything larger divides across work requests (plan.ts). It keeps seed 002's request
 * state — the current element and the offset in it — so a request continues as send-queue slots
 * free up.
 *
 * Who owns what: the caller keeps the elements array and the memory regions unchanged and
 * registered until the request settles; until then the engine (through its queue pair) keeps every
 * region a posted work request names referenced, so no memory the NIC may still touch is
 * collected. A request settles only once the NIC is done with every work request it posted.
 */
import type { MemoryRegion, RemoteMemory } from '../verbs/memory-region.js';

/** WRITE: local elements → remote region. READ: remote region → local elements. */
export type RequestOp = 'write' | 'read';

/** One element of a request: `length` bytes at `offset` in `mr`, and where they go remotely. */
export interface RequestElement {
  /** A region of the engine's protection domain (WRITE: gathered from; READ: scattered into, needs local write). */
  readonly mr: MemoryRegion;
  /** Byte offset into `mr`. Default 0. */
  readonly offset?: number;
  /** Bytes (0 is allowed and moves nothing). */
  readonly length: number;
  /** Byte offset in the remote region (its `addr` + this is the remote address). */
  readonly remoteOffset: number;
}

/**
 * The remote region a request is bound for: what the peer's `mr.remote()` gives, or a descriptor
 * of memory registered with iova 0 (then `addr` is 0 and a remote offset is the target offset).
 * Every element must fall inside `[0, length)`.
 */
export type RemoteRegion = RemoteMemory;

/**
 * The limits the engine formats work requests by. Each is the device's (queried at construction)
 * unless lowered by the engine's options, and any may be lowered again per request.
 */
export interface RequestLimits {
  /** Largest work request in bytes: the port's max_msg_sz (rxe: 8 MiB on older kernels, 2^31 newer). */
  readonly maxMessageSize: number;
  /** SGEs per WRITE work request: the queue pair's max_send_sge. */
  readonly maxWriteSge: number;
  /** SGEs per READ work request: min(the queue pair's max_send_sge, the device's max_sge_rd). */
  readonly maxReadSge: number;
  /** READ work requests in flight at once: the queue pair's initiator depth (max_rd_atomic). */
  readonly maxReadsInFlight: number;
  /** Every how many work requests one asks for a completion (the last of each request always does). */
  readonly signalEvery: number;
  /** Most work requests handed to the provider in one ibv_post_send call (perftest's post list). */
  readonly postList: number;
  /** Requests submitted and not yet settled, at most (the size of the engine's request table). */
  readonly maxRequests: number;
}

/**
 * Options of a RequestEngine: any limit may be lowered (never raised above the device's).
 * `postOnSubmit` (default true): submit() posts what fits at once; false leaves posting to the
 * next progress(), so requests submitted together go out together, up to `postList` work requests
 * per ibv_post_send — on rxe each call does the whole send path in the kernel, so the calls, not
 * the work requests, are what cost.
 */
export type RequestEngineOptions = Partial<RequestLimits> & {
  readonly postOnSubmit?: boolean;
  /**
   * Work requests the engine keeps posted at most (default: the queue pair's maxSendWr). Lower it
   * when others post on the same queue pair, so their work requests always find a free slot.
   */
  readonly sendSlots?: number;
  /**
   * What progress() does when its poll finds nothing while work requests are in flight: 'spin'
   * (default) returns at once; 'yield' first gives the CPU to any other runnable thread
   * (sched_yield). Under a software RDMA device (rxe) the transfer's work runs in the kernel on
   * the posting CPU, partly in ksoftirqd, which a spinning poller shares the CPU with; yielding
   * hands it the CPU (docs/requests.md, "Results": 32 MiB requests 1.00–2.15× as fast as
   * spinning in the same rounds, median 1.13×). With nothing else runnable sched_yield returns
   * at once.
   */
  readonly idle?: 'spin' | 'yield';
};

/** Per-request limits: lower the largest message or the SGEs per work request for this request only. */
export interface SubmitOptions {
  readonly maxMessageSize?: number;
  readonly maxSge?: number;
}

/**
 * What one `progress()` call settled (reused arrays, overwritten by the next call; entries
 * [0, count)). `error[i]` is undefined for a request that completed.
 */
export interface SettledRequests {
  count: number;
  /** The id submit() returned. */
  readonly id: Int32Array;
  /** The tag given to submit() (any number; default 0). */
  readonly tag: Float64Array;
  /**
   * Bytes known to have completed: the whole request on success; on failure, the bytes of its work
   * requests that completed before the failing one (completions of one send queue are in order).
   */
  readonly bytes: Float64Array;
  /** The typed error (see RequestError), or undefined. */
  readonly error: (Error | undefined)[];
}

/** Extra facts on every error a request settles with (the error keeps its class, e.g. RemoteAccessError). */
export interface RequestFailure {
  /** Bytes known to have completed before the failure. */
  readonly bytesCompleted: number;
  /** The request's total bytes. */
  readonly requestBytes: number;
  /** The queue pair's state as ibv_query_qp reported it when the failure was seen ('ERR' after an error completion), if it could be read. */
  readonly qpState?: string;
}
