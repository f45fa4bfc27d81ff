/**
 * What the request engine (engine.ts) checks and reads once, off its hot path: the limits it
 * takes from the device and the queue pair (and the options that lower them), the validation of
 * a submitted request, and the facts added to the error a failed request settles with.
 */
import { C } from '../../ffi/verbs-layout.js';
import { ClosedError, UsageError } from '../errors.js';
import type { QueuePair } from '../verbs/queue-pair.js';
import type { RemoteRegion, RequestElement, RequestEngineOptions, RequestFailure, RequestLimits, SubmitOptions } from './types.js';

/** Largest SGE length (struct ibv_sge.length is a u32); also the ceiling of maxMessageSize. */
const MAX_SGE_BYTES = 2 ** 31;

/** The initiator depth assumed for a QP connected by rdma_cm (its default initiatorDepth). */
const RDMA_CM_INITIATOR_DEPTH = 16;

function lowered(name: keyof RequestLimits, device: number, asked: number | undefined, min = 1): number {
  if (asked === undefined) return device;
  if (!Number.isSafeInteger(asked) || asked < min || asked > device) {
    throw new UsageError(`${name} must be an integer ${min}..${device} (the device's limit), got ${asked}`);
  }
  return asked;
}

/**
 * The engine's limits on `qp`: the port's max_msg_sz, the QP's max_send_sge, min(that, the
 * device's max_sge_rd) for READs, the QP's initiator depth (or rdma_cm's default 16, bounded by
 * the device), each lowered by `options`.
 */
export function defaultLimits(qp: QueuePair, options: RequestEngineOptions): RequestLimits {
  const ctx = qp.pd.context;
  const dev = ctx.query();
  const port = ctx.queryPort(qp.port);
  const maxMsg = Math.min(port.maxMessageSize > 0 ? port.maxMessageSize : MAX_SGE_BYTES, MAX_SGE_BYTES);
  const writeSge = qp.maxSendSge;
  const readSge = Math.max(1, Math.min(qp.maxSendSge, dev.maxSgeRd > 0 ? dev.maxSgeRd : qp.maxSendSge));
  const depth = qp.maxRdAtomic > 0 ? qp.maxRdAtomic : Math.max(1, Math.min(RDMA_CM_INITIATOR_DEPTH, dev.maxQpInitRdAtom));
  const sendWr = Math.max(1, qp.maxSendWr);
  return {
    maxMessageSize: lowered('maxMessageSize', maxMsg, options.maxMessageSize),
    maxWriteSge: lowered('maxWriteSge', writeSge, options.maxWriteSge),
    maxReadSge: lowered('maxReadSge', readSge, options.maxReadSge),
    maxReadsInFlight: lowered('maxReadsInFlight', depth, options.maxReadsInFlight),
    // Defaults: a completion every quarter of the send queue (at most every 64), chains of up
    // to 16 work requests, 1024 requests in the table.
    signalEvery: lowered('signalEvery', sendWr, options.signalEvery ?? Math.max(1, Math.min(64, sendWr >> 2))),
    postList: lowered('postList', Math.min(sendWr, 256), options.postList ?? Math.min(16, sendWr)),
    maxRequests: lowered('maxRequests', 1 << 20, options.maxRequests ?? 1024),
  };
}

/**
 * The engine's options that are not limits: `idle` ('spin' or 'yield') and `sendSlots` (1..the
 * queue pair's maxSendWr; default all of them). UsageError otherwise.
 */
export function checkEngineOptions(qp: QueuePair, options: RequestEngineOptions): { yieldIdle: boolean; sendSlots: number } {
  if (options.idle !== undefined && options.idle !== 'spin' && options.idle !== 'yield') throw new UsageError(`idle must be 'spin' or 'yield', got ${JSON.stringify(options.idle)}`);
  const sendSlots = options.sendSlots;
  if (sendSlots !== undefined && (!Number.isInteger(sendSlots) || sendSlots < 1 || sendSlots > qp.maxSendWr)) {
    throw new UsageError(`sendSlots must be an integer 1..${qp.maxSendWr} (the queue pair's maxSendWr), got ${String(sendSlots)}`);
  }
  return { yieldIdle: options.idle === 'yield', sendSlots: Math.max(1, sendSlots ?? qp.maxSendWr) };
}

/**
 * The limits one request is formatted by: the engine's (`limits`), lowered by the request's
 * `options`, written into `out` (no allocation). UsageError for a value above the engine's limit
 * or not a positive integer; `method` names the caller in messages.
 */
export function requestLimits(limits: RequestLimits, isRead: boolean, options: SubmitOptions | undefined, method: string, out: { maxMessageSize: number; maxSge: number }): { maxMessageSize: number; maxSge: number } {
  const maxSge = isRead ? limits.maxReadSge : limits.maxWriteSge;
  const maxMsg = limits.maxMessageSize;
  out.maxMessageSize = maxMsg;
  out.maxSge = maxSge;
  if (options) {
    const m = options.maxMessageSize;
    if (m !== undefined) {
      if (!Number.isSafeInteger(m) || m < 1 || m > maxMsg) throw new UsageError(`${method}: maxMessageSize must be an integer 1..${maxMsg}, got ${m}`);
      out.maxMessageSize = m;
    }
    const g = options.maxSge;
    if (g !== undefined) {
      if (!Number.isInteger(g) || g < 1 || g > maxSge) throw new UsageError(`${method}: maxSge must be an integer 1..${maxSge}, got ${g}`);
      out.maxSge = g;
    }
  }
  return out;
}

/**
 * UsageError / ClosedError unless `elements` is an array of in-range pieces of live regions of
 * the QP's protection domain (READ: registered for local write) whose remote ranges fall inside
 * `remote`. Returns the request's total bytes. `method` names the caller in messages.
 */
export function validateRequest(qp: QueuePair, isRead: boolean, remote: RemoteRegion, elements: readonly RequestElement[], method: string): number {
  qp.handle; // ClosedError for a disposed QP
  if (!remote || typeof remote !== 'object') throw new UsageError(`${method}: remote must be { addr, rkey, length } (a peer's mr.remote())`);
  const { addr, rkey, length } = remote;
  if (!Number.isSafeInteger(addr) || addr < 0) throw new UsageError(`${method}: remote.addr must be a non-negative safe integer, got ${String(addr)}`);
  if (!Number.isInteger(rkey) || rkey < 0 || rkey > 0xffffffff) throw new UsageError(`${method}: remote.rkey must be a u32, got ${String(rkey)}`);
  if (!Number.isSafeInteger(length) || length < 0 || !Number.isSafeInteger(addr + length)) throw new UsageError(`${method}: remote.length must be a non-negative safe integer, got ${String(length)}`);
  if (!Array.isArray(elements)) throw new UsageError(`${method}: elements must be an array of { mr, offset, length, remoteOffset }`);
  let total = 0;
  for (let i = 0; i < elements.length; i++) {
    const e = elements[i];
    const mr = e?.mr;
    if (!mr || typeof mr.lkey !== 'number') throw new UsageError(`${method}: elements[${i}].mr must be a MemoryRegion`);
    if (mr.disposed) throw new ClosedError(`memory region (lkey ${mr.lkey}) of ${method} elements[${i}]`);
    if (mr.pd !== qp.pd) throw new UsageError(`${method}: elements[${i}].mr belongs to another protection domain`);
    if (isRead && !(mr.accessFlags & C.IBV_ACCESS_LOCAL_WRITE)) throw new UsageError(`${method}: elements[${i}].mr is not registered for local write, which a READ needs`);
    const offset = e.offset ?? 0;
    const len = e.length;
    const at = e.remoteOffset;
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(len) || offset < 0 || len < 0 || offset + len > mr.length) {
      throw new UsageError(`${method}: elements[${i}] offset ${offset} + length ${len} is outside its region's ${mr.length} bytes`);
    }
    if (!Number.isSafeInteger(at) || at < 0 || at + len > length) {
      throw new UsageError(`${method}: elements[${i}] remoteOffset ${at} + length ${len} is outside the remote region's ${length} bytes`);
    }
    total += len;
  }
  return total;
}

/**
 * Add RequestFailure's facts to the error a request settles with (it keeps its class, e.g.
 * RemoteAccessError or FlushedError) and say them in its message. Reads the QP's state once.
 */
export function failWith(error: Error, bytesCompleted: number, requestBytes: number, qp: QueuePair | undefined): Error {
  let qpState: string | undefined;
  try {
    if (qp && !qp.disposed) qpState = qp.queryState();
  } catch {
    qpState = undefined; // the state cannot be read (e.g. the device is gone): leave it out
  }
  const facts: RequestFailure = { bytesCompleted, requestBytes, qpState };
  Object.assign(error, facts);
  error.message += ` (request: ${bytesCompleted} of ${requestBytes} bytes known completed${qpState ? `; queue pair ${qp!.qpn} is ${qpState}` : ''})`;
  return error;
}
