/**
 * Errors of the verbs layer: "no RDMA device" (with the reason told apart), and one class per
 * failed work-completion status, so callers can `catch (e) { if (e instanceof RemoteAccessError) … }`.
 *
 * The hot path (poll) never throws: a Completion carries its numeric `status`; `completionError()`
 * turns a failed one into the typed error when the caller wants to throw.
 */
import { C } from '../../ffi/verbs-layout.js';
import { MemwireError } from '../errors.js';
import { errnoName } from '../errno-names.js';

export type NoDeviceReason = 'no-library' | 'no-kernel-support' | 'no-devices' | 'not-found' | 'error';

/** There is no usable RDMA device: libibverbs missing, a kernel without RDMA, none, or not that one. */
export class NoDeviceError extends MemwireError {
  readonly reason: NoDeviceReason;
  /** The errno ibv_get_device_list left (ENOSYS: the kernel has no RDMA support), or 0. */
  readonly errno: number;
  readonly errnoName: string;
  /** How the caller's situation was read, e.g. "ibv_get_device_list failed with ENOSYS …". */
  readonly detail: string;
  constructor(reason: NoDeviceReason, summary: string, detail: string, errno = 0, options?: { cause?: unknown }) {
    super('ERR_MEMWIRE_NO_DEVICE', `no RDMA device (${summary})${detail ? `: ${detail}` : ''}`, options);
    this.detail = detail;
    this.reason = reason;
    this.errno = errno;
    this.errnoName = errno ? errnoName(errno) : '';
  }
}

/** The names of enum ibv_wc_status, by value. */
export const WC_STATUS_NAMES: Readonly<Record<number, string>> = Object.fromEntries(
  Object.entries(C)
    .filter(([k]) => k.startsWith('IBV_WC_') && k.endsWith('_ERR'))
    .map(([k, v]) => [v, k])
    .concat([[C.IBV_WC_SUCCESS, 'IBV_WC_SUCCESS']]),
);

/** What a failed work completion said. */
export interface CompletionFacts {
  readonly wrId: number;
  readonly status: number;
  readonly opcode: number;
  readonly vendorErr: number;
  readonly qpNum: number;
}

/** A work request completed with a status other than IBV_WC_SUCCESS. */
export class WorkCompletionError extends MemwireError {
  readonly status: number;
  readonly statusName: string;
  readonly wrId: number;
  readonly opcode: number;
  readonly vendorErr: number;
  readonly qpNum: number;
  constructor(facts: CompletionFacts, code = 'ERR_MEMWIRE_WC') {
    const name = WC_STATUS_NAMES[facts.status] ?? `status ${facts.status}`;
    super(
      code,
      `work request ${facts.wrId} on QP ${facts.qpNum} completed with ${name} (${facts.status})` +
        (facts.vendorErr ? `, vendor error 0x${facts.vendorErr.toString(16)}` : ''),
    );
    this.status = facts.status;
    this.statusName = name;
    this.wrId = facts.wrId;
    this.opcode = facts.opcode;
    this.vendorErr = facts.vendorErr;
    this.qpNum = facts.qpNum;
  }
}

/** IBV_WC_REM_ACCESS_ERR: the remote side refused the access (wrong rkey, range, or rights). */
export class RemoteAccessError extends WorkCompletionError {
  constructor(facts: CompletionFacts) {
    super(facts, 'ERR_MEMWIRE_REMOTE_ACCESS');
  }
}

/** IBV_WC_LOC_PROT_ERR / IBV_WC_LOC_ACCESS_ERR: a local buffer is not registered for this use. */
export class LocalProtectionError extends WorkCompletionError {
  constructor(facts: CompletionFacts) {
    super(facts, 'ERR_MEMWIRE_LOCAL_PROTECTION');
  }
}

/** IBV_WC_LOC_LEN_ERR: a received message did not fit the posted receive buffer (or too long). */
export class LocalLengthError extends WorkCompletionError {
  constructor(facts: CompletionFacts) {
    super(facts, 'ERR_MEMWIRE_LOCAL_LENGTH');
  }
}

/** IBV_WC_WR_FLUSH_ERR: the QP went to the error state; the request was flushed, not executed. */
export class FlushedError extends WorkCompletionError {
  constructor(facts: CompletionFacts) {
    super(facts, 'ERR_MEMWIRE_FLUSHED');
  }
}

/** IBV_WC_RETRY_EXC_ERR / IBV_WC_RNR_RETRY_EXC_ERR: the peer did not answer (or had no receive posted). */
export class RetryExceededError extends WorkCompletionError {
  constructor(facts: CompletionFacts) {
    super(facts, 'ERR_MEMWIRE_RETRY_EXCEEDED');
  }
}

/** IBV_WC_REM_INV_REQ_ERR / IBV_WC_REM_OP_ERR: the peer rejected the request as invalid. */
export class RemoteOperationError extends WorkCompletionError {
  constructor(facts: CompletionFacts) {
    super(facts, 'ERR_MEMWIRE_REMOTE_OPERATION');
  }
}

/** The typed error for a failed completion (WorkCompletionError for statuses without a class). */
export function completionError(facts: CompletionFacts): WorkCompletionError {
  switch (facts.status) {
    case C.IBV_WC_REM_ACCESS_ERR:
      return new RemoteAccessError(facts);
    case C.IBV_WC_LOC_PROT_ERR:
    case C.IBV_WC_LOC_ACCESS_ERR:
      return new LocalProtectionError(facts);
    case C.IBV_WC_LOC_LEN_ERR:
      return new LocalLengthError(facts);
    case C.IBV_WC_WR_FLUSH_ERR:
      return new FlushedError(facts);
    case C.IBV_WC_RETRY_EXC_ERR:
    case C.IBV_WC_RNR_RETRY_EXC_ERR:
      return new RetryExceededError(facts);
    case C.IBV_WC_REM_INV_REQ_ERR:
    case C.IBV_WC_REM_OP_ERR:
      return new RemoteOperationError(facts);
    default:
      return new WorkCompletionError(facts);
  }
}
