/**
 * The types and options of queue pairs (queue-pair.ts): states, connection endpoints, send and
 * receive requests, the options of each state transition, and the small checks they share.
 */
import { C } from '../../ffi/verbs-layout.js';
import { UsageError } from '../errors.js';
import type { AddressHandle } from './address-handle.js';
import type { CompletionQueue } from './completion-queue.js';
import type { MemoryRegion } from './memory-region.js';
import type { SharedReceiveQueue } from './shared-receive-queue.js';

export type QueuePairState = 'RESET' | 'INIT' | 'RTR' | 'RTS' | 'SQD' | 'SQE' | 'ERR';
/** @internal enum ibv_qp_state, by value. */
export const STATE_NAMES: QueuePairState[] = ['RESET', 'INIT', 'RTR', 'RTS', 'SQD', 'SQE', 'ERR'];

export type QueuePairType = 'RC' | 'UD';

/** The Q_Key UD queue pairs use unless told otherwise. */
export const DEFAULT_QKEY = 0x11111111;

export interface QueuePairOptions {
  readonly sendCq: CompletionQueue;
  /** 'RC' (default): reliable connected. 'UD': datagrams to address handles; receives start with a 40-byte GRH. */
  readonly type?: QueuePairType;
  /** Default: sendCq. */
  readonly recvCq?: CompletionQueue;
  /** Default 128 each. */
  readonly maxSendWr?: number;
  readonly maxRecvWr?: number;
  /** Default 4 each. */
  readonly maxSendSge?: number;
  readonly maxRecvSge?: number;
  /** Default 64 bytes. */
  readonly maxInlineData?: number;
  /** Every send WR generates a completion (sq_sig_all). Default false: each WR says. */
  readonly signalAll?: boolean;
  /** Most work requests in one postSend/postRecv chain. Default min(maxSendWr, 32). */
  readonly maxChain?: number;
  /**
   * Receive through this shared receive queue (of the same protection domain) instead of a
   * receive queue of the QP's own: maxRecvWr and maxRecvSge are then ignored, and postRecv /
   * prepareRecv on the QP are UsageErrors (post to the SRQ). Disposing the SRQ disposes this QP.
   */
  readonly srq?: SharedReceiveQueue;
}

/** What two sides exchange out of band to connect RC queue pairs. */
export interface QueuePairEndpoint {
  /** GID as IPv6 text (RoCE v2: ::ffff:a.b.c.d). */
  readonly gid: string;
  readonly qpn: number;
  /** The first packet sequence number this side sends with (24 bits). */
  readonly psn: number;
  /** LID (InfiniBand; 0 on RoCE). */
  readonly lid: number;
  /** Active MTU in bytes; the connection uses the smaller of the two. */
  readonly mtu?: number;
}

export interface Sge {
  readonly mr: MemoryRegion;
  /** Byte offset into the region. Default 0. */
  readonly offset?: number;
  /** Default: the rest of the region. */
  readonly length?: number;
}

export type SendOpcode = 'send' | 'send-with-imm' | 'write' | 'write-with-imm' | 'read' | 'fetch-add' | 'compare-swap';

export interface SendRequest {
  /** Returned in the completion. A safe integer. Default 0. */
  readonly wrId?: number;
  /** Default 'send'. */
  readonly opcode?: SendOpcode;
  /** Local buffers (gather for sends and writes, scatter for reads and atomics' result). */
  readonly sge?: Sge | readonly Sge[];
  /** Generate a completion. Default true (always, if the QP has signalAll). */
  readonly signaled?: boolean;
  /** Copy the data into the WQE at post time (sends and writes, up to maxInlineData). */
  readonly inline?: boolean;
  readonly fence?: boolean;
  readonly solicited?: boolean;
  /** Immediate data for *-with-imm (u32, sent in network order). */
  readonly imm?: number;
  /** UD only: where the datagram goes (address handle, remote QPN, its Q_Key — default this QP's). */
  readonly ah?: AddressHandle;
  readonly remoteQpn?: number;
  readonly remoteQkey?: number;
  /** Remote address and rkey for write, read and atomics. */
  readonly remoteAddr?: number | bigint;
  readonly rkey?: number;
  /** fetch-add: the addend; compare-swap: the value compared. */
  readonly compareAdd?: number | bigint;
  /** compare-swap: the value stored when equal. */
  readonly swap?: number | bigint;
}

export interface RecvRequest {
  readonly wrId?: number;
  readonly sge?: Sge | readonly Sge[];
}

export interface InitOptions {
  readonly port?: number;
  readonly pkeyIndex?: number;
  /** Remote access the QP allows (memory regions still gate each access). Default: all three. */
  readonly remoteRead?: boolean;
  readonly remoteWrite?: boolean;
  readonly remoteAtomic?: boolean;
  /** UD: the Q_Key datagrams to this QP must carry. Default DEFAULT_QKEY. */
  readonly qkey?: number;
}

export interface RtrOptions {
  readonly remote: QueuePairEndpoint;
  readonly port?: number;
  /** Path MTU in bytes. Default: the smaller of this port's active MTU and remote.mtu. */
  readonly pathMtu?: number;
  /** Source GID index. Default: context.gid(port).index (the RoCE v2 IPv4 GID). */
  readonly sgidIndex?: number;
  readonly hopLimit?: number;
  readonly trafficClass?: number;
  readonly serviceLevel?: number;
  /** Responder resources (incoming READ/atomic). Default min(device max, 16). */
  readonly maxDestRdAtomic?: number;
  /** 0..31 (12 = 0.64 ms). Default 12. */
  readonly minRnrTimer?: number;
}

export interface RtsOptions {
  /** Local ACK timeout exponent 0..31 (4.096 µs · 2^timeout). Default 14. */
  readonly timeout?: number;
  /** 0..7. Default 7. */
  readonly retryCount?: number;
  /** 0..7 (7 = infinite). Default 7. */
  readonly rnrRetry?: number;
  /** Initiator depth (outgoing READ/atomic). Default min(device max, 16). */
  readonly maxRdAtomic?: number;
}

export type ConnectOptions = InitOptions & Omit<RtrOptions, 'remote'> & RtsOptions;

/** @internal enum ibv_wr_opcode, by name. */
export const OPCODES: Record<SendOpcode, number> = {
  send: C.IBV_WR_SEND,
  'send-with-imm': C.IBV_WR_SEND_WITH_IMM,
  write: C.IBV_WR_RDMA_WRITE,
  'write-with-imm': C.IBV_WR_RDMA_WRITE_WITH_IMM,
  read: C.IBV_WR_RDMA_READ,
  'fetch-add': C.IBV_WR_ATOMIC_FETCH_AND_ADD,
  'compare-swap': C.IBV_WR_ATOMIC_CMP_AND_SWP,
};

const MASK_NAMES: [number, string][] = Object.entries(C)
  .filter(([k]) => k.startsWith('IBV_QP_') && !k.startsWith('IBV_QPT_') && !k.startsWith('IBV_QPS_'))
  .map(([k, v]) => [v as number, k.slice(7)]);

/** @internal the names of the IBV_QP_* attribute bits in `mask`. */
export function maskText(mask: number): string {
  return MASK_NAMES.filter(([bit]) => mask & bit).map(([, name]) => name).join('|');
}

/** @internal UsageError unless `value` (when given) is an integer in min..max. */
export function intIn(name: string, value: number | undefined, min: number, max: number): void {
  if (value === undefined) return;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new UsageError(`${name} must be an integer ${min}..${max}, got ${String(value)}`);
  }
}
