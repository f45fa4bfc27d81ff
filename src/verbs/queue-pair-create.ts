/**
 * What creating a QueuePair takes (queue-pair.ts): the caller's options checked and completed
 * with their defaults, and the struct ibv_qp_init_attr written from them. Kept apart from the
 * object so queue-pair.ts holds the QP's life — transitions and posting — only.
 */
import { C, IBV_QP_INIT_ATTR } from '../../ffi/verbs-layout.js';
import { UsageError } from '../errors.js';
import type { CompletionQueue } from './completion-queue.js';
import { setU64 } from './native.js';
import type { ProtectionDomain } from './protection-domain.js';
import { intIn, type QueuePairOptions, type QueuePairType } from './queue-pair-types.js';
import type { SharedReceiveQueue } from './shared-receive-queue.js';

/** The options of a queue pair to create, checked, with every default filled in. */
export interface CreateSpec {
  readonly sendCq: CompletionQueue;
  readonly recvCq: CompletionQueue;
  readonly srq: SharedReceiveQueue | undefined;
  readonly maxSendWr: number;
  readonly maxRecvWr: number;
  readonly maxSendSge: number;
  readonly maxRecvSge: number;
  readonly maxInline: number;
  readonly type: QueuePairType;
  readonly maxChain: number;
  readonly signalAll: boolean;
}

/** Check `options` for a queue pair of `pd` (UsageError naming what is wrong) and complete them. */
export function checkCreateOptions(pd: ProtectionDomain, options: QueuePairOptions): CreateSpec {
  const o = options ?? ({} as QueuePairOptions);
  const sendCq = o.sendCq;
  const recvCq = o.recvCq ?? o.sendCq;
  if (!sendCq || typeof sendCq.poll !== 'function') throw new UsageError('createQueuePair needs { sendCq } (a CompletionQueue)');
  if (sendCq.context !== pd.context || recvCq.context !== pd.context) throw new UsageError('the completion queues must belong to the protection domain\'s context');
  const srq = o.srq;
  if (srq !== undefined) {
    if (!srq || typeof srq.postRecv !== 'function') throw new UsageError('srq must be a SharedReceiveQueue');
    // Same PD, so the PD's dispose() (and a Context's) can destroy the QPs before the SRQ.
    if (srq.pd !== pd) throw new UsageError('the shared receive queue must belong to the queue pair\'s protection domain');
  }
  // With an SRQ the receive queue capacities are the SRQ's; the QP asks for none (C callers
  // leave them 0 too; providers ignore them when init_attr.srq is set).
  const maxSendWr = o.maxSendWr ?? 128;
  const maxRecvWr = srq ? 0 : (o.maxRecvWr ?? 128);
  const maxSendSge = o.maxSendSge ?? 4;
  const maxRecvSge = srq ? 0 : (o.maxRecvSge ?? 4);
  const maxInline = o.maxInlineData ?? 64;
  intIn('maxSendWr', maxSendWr, 1, 1 << 20);
  if (!srq) intIn('maxRecvWr', maxRecvWr, 1, 1 << 20);
  intIn('maxSendSge', maxSendSge, 1, 255);
  if (!srq) intIn('maxRecvSge', maxRecvSge, 1, 255);
  intIn('maxInlineData', maxInline, 0, 1 << 16);
  const type = o.type ?? 'RC';
  if (type !== 'RC' && type !== 'UD') throw new UsageError(`type must be 'RC' or 'UD', got ${JSON.stringify(type)}`);
  const maxChain = o.maxChain ?? Math.min(Math.max(maxSendWr, maxRecvWr), 32);
  intIn('maxChain', maxChain, 1, 4096);
  return { sendCq, recvCq, srq, maxSendWr, maxRecvWr, maxSendSge, maxRecvSge, maxInline, type, maxChain, signalAll: o.signalAll === true };
}

/** Write the struct ibv_qp_init_attr for `spec` at `at` (the CQ and SRQ handles already taken). */
export function writeInitAttr(dv: DataView, at: number, spec: CreateSpec, sendCqHandle: number, recvCqHandle: number, srqHandle: number): void {
  const f = IBV_QP_INIT_ATTR.fields;
  setU64(dv, at + f.send_cq, sendCqHandle);
  setU64(dv, at + f.recv_cq, recvCqHandle);
  setU64(dv, at + f.srq, srqHandle);
  dv.setUint32(at + f['cap.max_send_wr'], spec.maxSendWr, true);
  dv.setUint32(at + f['cap.max_recv_wr'], spec.maxRecvWr, true);
  dv.setUint32(at + f['cap.max_send_sge'], spec.maxSendSge, true);
  dv.setUint32(at + f['cap.max_recv_sge'], spec.maxRecvSge, true);
  dv.setUint32(at + f['cap.max_inline_data'], spec.maxInline, true);
  dv.setUint32(at + f.qp_type, spec.type === 'UD' ? C.IBV_QPT_UD : C.IBV_QPT_RC, true);
  dv.setInt32(at + f.sq_sig_all, spec.signalAll ? 1 : 0, true);
}
