/**
 * What a queue pair writes into native memory for a state transition (the ibv_qp_attr fields and
 * the attribute mask of RESET → INIT, INIT → RTR and RTR → RTS, each value checked first) and for
 * one send work request. queue-pair.ts calls ibv_modify_qp / ibv_post_send with them.
 */
import { C, IBV_QP_ATTR, IBV_SEND_WR } from '../../ffi/verbs-layout.js';
import { ClosedError, UsageError } from '../errors.js';
import { gidText, mtuBytes, mtuEnum, parseGid } from './context.js';
import { setU64, setU64Any } from './native.js';
import type { ProtectionDomain } from './protection-domain.js';
import { sgeList, writeSgeList, type PostedRing } from './queue-pair-posting.js';
import { DEFAULT_QKEY, intIn, OPCODES, type InitOptions, type QueuePairType, type RtrOptions, type RtsOptions, type SendRequest } from './queue-pair-types.js';

/** @internal An ibv_modify_qp to make: the attribute mask, and the values an error names. */
export interface Transition {
  readonly mask: number;
  readonly shown: Record<string, string | number>;
}

/**
 * @internal RESET → INIT (`dv` zeroed at `at`): port, P_Key index, and the remote access the QP
 * allows (RC) or its Q_Key (UD).
 */
export function initAttributes(dv: DataView, at: number, type: QueuePairType, options: InitOptions): Transition & { port: number; qkey: number } {
  const port = options.port ?? 1;
  intIn('port', port, 1, 255);
  intIn('pkeyIndex', options.pkeyIndex, 0, 0xffff);
  const f = IBV_QP_ATTR.fields;
  if (type === 'UD') {
    const qkey = options.qkey ?? DEFAULT_QKEY;
    intIn('qkey', qkey, 0, 0xffffffff);
    dv.setUint16(at + f.pkey_index, options.pkeyIndex ?? 0, true);
    dv.setUint8(at + f.port_num, port);
    dv.setUint32(at + f.qkey, qkey, true);
    return { mask: C.IBV_QP_PKEY_INDEX | C.IBV_QP_PORT | C.IBV_QP_QKEY, shown: { port_num: port, pkey_index: options.pkeyIndex ?? 0, qkey }, port, qkey };
  }
  let access = 0;
  if (options.remoteRead !== false) access |= C.IBV_ACCESS_REMOTE_READ;
  if (options.remoteWrite !== false) access |= C.IBV_ACCESS_REMOTE_WRITE;
  if (options.remoteAtomic !== false) access |= C.IBV_ACCESS_REMOTE_ATOMIC;
  dv.setUint16(at + f.pkey_index, options.pkeyIndex ?? 0, true);
  dv.setUint8(at + f.port_num, port);
  dv.setUint32(at + f.qp_access_flags, access, true);
  return { mask: C.IBV_QP_PKEY_INDEX | C.IBV_QP_PORT | C.IBV_QP_ACCESS_FLAGS, shown: { port_num: port, pkey_index: options.pkeyIndex ?? 0, qp_access_flags: access }, port, qkey: 0 };
}

/** What rtrAttributes needs of the QP's context (ProtectionDomain['context']). */
type VerbsContext = ProtectionDomain['context'];

/**
 * @internal INIT → RTR of an RC QP (`dv` zeroed at `at`): the path to the remote QP (GID, QPN,
 * its PSN), MTU, responder resources. `defaultPort`: the port toInit chose.
 */
export function rtrAttributes(ctx: VerbsContext, dv: DataView, at: number, defaultPort: number, options: RtrOptions): Transition {
  const remote = options?.remote;
  if (!remote || typeof remote !== 'object') throw new UsageError('toRtr needs { remote: { gid, qpn, psn, lid } }');
  intIn('remote.qpn', remote.qpn, 1, 0xffffff);
  intIn('remote.psn', remote.psn, 0, 0xffffff);
  intIn('remote.lid', remote.lid ?? 0, 0, 0xffff);
  const dgid = parseGid(remote.gid);
  const port = options.port ?? defaultPort;
  intIn('port', port, 1, 255);
  const portAttr = ctx.queryPort(port);
  const localMtu = portAttr.activeMtu;
  const pathMtu = options.pathMtu ?? Math.min(localMtu, remote.mtu ?? localMtu);
  const mtu = mtuEnum(pathMtu);
  if (pathMtu > localMtu) throw new UsageError(`pathMtu ${pathMtu} exceeds the active MTU ${localMtu} of ${ctx.device.name} port ${port}`);
  const table = ctx.gidTable(port);
  const sgidIndex = options.sgidIndex ?? ctx.gid(port).index;
  if (!table.some((e) => e.index === sgidIndex)) {
    throw new UsageError(`sgidIndex ${sgidIndex} is not a valid GID of ${ctx.device.name} port ${port} (valid: ${table.map((e) => e.index).join(', ')})`);
  }
  const dev = ctx.query();
  const maxDestRdAtomic = options.maxDestRdAtomic ?? Math.min(dev.maxQpRdAtom, 16);
  intIn('maxDestRdAtomic', maxDestRdAtomic, 0, Math.min(dev.maxQpRdAtom, 255));
  const minRnrTimer = options.minRnrTimer ?? 12;
  intIn('minRnrTimer', minRnrTimer, 0, 31);
  const hopLimit = options.hopLimit ?? 64;
  intIn('hopLimit', hopLimit, 0, 255);
  intIn('trafficClass', options.trafficClass, 0, 255);
  intIn('serviceLevel', options.serviceLevel, 0, 15);

  const f = IBV_QP_ATTR.fields;
  dv.setUint32(at + f.path_mtu, mtu, true);
  dv.setUint32(at + f.dest_qp_num, remote.qpn, true);
  dv.setUint32(at + f.rq_psn, remote.psn, true);
  dv.setUint8(at + f.max_dest_rd_atomic, maxDestRdAtomic);
  dv.setUint8(at + f.min_rnr_timer, minRnrTimer);
  new Uint8Array(dv.buffer, dv.byteOffset, dv.byteLength).set(dgid, at + f['ah_attr.grh.dgid']);
  dv.setUint8(at + f['ah_attr.grh.sgid_index'], sgidIndex);
  dv.setUint8(at + f['ah_attr.grh.hop_limit'], hopLimit);
  dv.setUint8(at + f['ah_attr.grh.traffic_class'], options.trafficClass ?? 0);
  dv.setUint16(at + f['ah_attr.dlid'], remote.lid ?? 0, true);
  dv.setUint8(at + f['ah_attr.sl'], options.serviceLevel ?? 0);
  dv.setUint8(at + f['ah_attr.is_global'], 1);
  dv.setUint8(at + f['ah_attr.port_num'], port);
  return {
    mask: C.IBV_QP_AV | C.IBV_QP_PATH_MTU | C.IBV_QP_DEST_QPN | C.IBV_QP_RQ_PSN | C.IBV_QP_MAX_DEST_RD_ATOMIC | C.IBV_QP_MIN_RNR_TIMER,
    shown: {
      path_mtu: mtuBytes(mtu),
      dest_qp_num: remote.qpn,
      rq_psn: remote.psn,
      dgid: gidText(dgid),
      dlid: remote.lid ?? 0,
      sgid_index: sgidIndex,
      hop_limit: hopLimit,
      port_num: port,
      max_dest_rd_atomic: maxDestRdAtomic,
      min_rnr_timer: minRnrTimer,
    },
  };
}

/**
 * @internal RTR → RTS of an RC QP (`dv` zeroed at `at`): timeouts, retries, this side's send PSN,
 * initiator depth (`maxRdAtomic`).
 */
export function rtsAttributes(ctx: VerbsContext, dv: DataView, at: number, psn: number, options: RtsOptions): Transition & { maxRdAtomic: number } {
  const timeout = options.timeout ?? 14;
  const retryCount = options.retryCount ?? 7;
  const rnrRetry = options.rnrRetry ?? 7;
  const dev = ctx.query();
  const maxRdAtomic = options.maxRdAtomic ?? Math.min(dev.maxQpInitRdAtom, 16);
  intIn('timeout', timeout, 0, 31);
  intIn('retryCount', retryCount, 0, 7);
  intIn('rnrRetry', rnrRetry, 0, 7);
  intIn('maxRdAtomic', maxRdAtomic, 0, Math.min(dev.maxQpInitRdAtom, 255));
  const f = IBV_QP_ATTR.fields;
  dv.setUint8(at + f.timeout, timeout);
  dv.setUint8(at + f.retry_cnt, retryCount);
  dv.setUint8(at + f.rnr_retry, rnrRetry);
  dv.setUint32(at + f.sq_psn, psn, true);
  dv.setUint8(at + f.max_rd_atomic, maxRdAtomic);
  return {
    mask: C.IBV_QP_TIMEOUT | C.IBV_QP_RETRY_CNT | C.IBV_QP_RNR_RETRY | C.IBV_QP_SQ_PSN | C.IBV_QP_MAX_QP_RD_ATOMIC,
    shown: { timeout, retry_cnt: retryCount, rnr_retry: rnrRetry, sq_psn: psn, max_rd_atomic: maxRdAtomic },
    maxRdAtomic,
  };
}

/** @internal What writeSendWr needs of its queue pair. */
export interface SendWrOwner {
  readonly pd: ProtectionDomain;
  readonly type: QueuePairType;
  readonly maxSendSge: number;
  readonly maxInlineData: number;
  readonly qkey: number;
}

/**
 * @internal Write one send work request at `at` in `dv` (its SGEs at `sgeAt`, its sg_list already
 * pointing there), record it in `ring`'s `slot`; `next` is the next WR's address or 0.
 */
export function writeSendWr(qp: SendWrOwner, signalAll: boolean, wr: SendRequest, dv: DataView, at: number, sgeAt: number, next: number, ring: PostedRing, slot: number): void {
  const f = IBV_SEND_WR.fields;
  const opName = wr.opcode ?? 'send';
  const opcode = OPCODES[opName];
  if (opcode === undefined) throw new UsageError(`postSend: unknown opcode ${JSON.stringify(opName)}`);
  const wrId = wr.wrId ?? 0;
  if (!Number.isSafeInteger(wrId) || wrId < 0) throw new UsageError(`postSend: wrId must be a non-negative safe integer, got ${wrId}`);
  writeSgeList(qp.pd, wr.sge, dv, sgeAt, qp.maxSendSge, ring, slot, 'postSend', opName, "this queue pair's");
  const n = sgeList.count;
  const bytes = sgeList.bytes;
  let flags = 0;
  if (wr.signaled !== false || signalAll) flags |= C.IBV_SEND_SIGNALED;
  if (wr.fence) flags |= C.IBV_SEND_FENCE;
  if (wr.solicited) flags |= C.IBV_SEND_SOLICITED;
  if (wr.inline) {
    if (opcode === C.IBV_WR_RDMA_READ || opcode >= C.IBV_WR_ATOMIC_CMP_AND_SWP) throw new UsageError(`postSend: ${opName} cannot be inline`);
    if (bytes > qp.maxInlineData) throw new UsageError(`postSend: ${bytes} inline bytes exceed maxInlineData ${qp.maxInlineData}`);
    flags |= C.IBV_SEND_INLINE;
  }
  setU64(dv, at + f.wr_id, wrId);
  setU64(dv, at + f.next, next);
  dv.setInt32(at + f.num_sge, n, true);
  dv.setUint32(at + f.opcode, opcode, true);
  dv.setUint32(at + f.send_flags, flags, true);
  if (opcode === C.IBV_WR_SEND_WITH_IMM || opcode === C.IBV_WR_RDMA_WRITE_WITH_IMM) {
    const imm = wr.imm ?? 0;
    if (!Number.isInteger(imm) || imm < 0 || imm > 0xffffffff) throw new UsageError(`postSend: imm must be a u32, got ${imm}`);
    dv.setUint32(at + f.imm_data, imm, false); // __be32: network order
  } else {
    dv.setUint32(at + f.imm_data, 0, true);
  }
  if (qp.type === 'UD') {
    if (opcode !== C.IBV_WR_SEND && opcode !== C.IBV_WR_SEND_WITH_IMM) throw new UsageError(`postSend ${opName}: a UD queue pair only sends`);
    const ah = wr.ah;
    if (!ah || ah.disposed) throw ah ? new ClosedError('address handle in postSend') : new UsageError('postSend on a UD queue pair needs ah and remoteQpn');
    if (ah.pd !== qp.pd) throw new UsageError('postSend: ah belongs to another protection domain');
    const remoteQpn = wr.remoteQpn;
    if (remoteQpn === undefined || !Number.isInteger(remoteQpn) || remoteQpn < 1 || remoteQpn > 0xffffff) {
      throw new UsageError(`postSend: remoteQpn must be an integer 1..0xffffff, got ${remoteQpn}`);
    }
    setU64(dv, at + f['wr.ud.ah'], ah.handle);
    dv.setUint32(at + f['wr.ud.remote_qpn'], remoteQpn, true);
    dv.setUint32(at + f['wr.ud.remote_qkey'], (wr.remoteQkey ?? qp.qkey) >>> 0, true);
    ring.ahs[slot] = ah;
  } else if (opcode !== C.IBV_WR_SEND && opcode !== C.IBV_WR_SEND_WITH_IMM) {
    const remote = wr.remoteAddr;
    const rkey = wr.rkey;
    if (remote === undefined || rkey === undefined || !Number.isInteger(rkey) || rkey < 0 || rkey > 0xffffffff) {
      throw new UsageError(`postSend ${opName}: remoteAddr and rkey (u32) are required`);
    }
    setU64Any(dv, at + f['wr.rdma.remote_addr'], remote);
    if (opcode >= C.IBV_WR_ATOMIC_CMP_AND_SWP) {
      if (n !== 1 || bytes !== 8) throw new UsageError(`postSend ${opName}: needs exactly one 8-byte SGE for the old value`);
      if (Number(typeof remote === 'bigint' ? remote & 7n : remote % 8) !== 0) throw new UsageError(`postSend ${opName}: remoteAddr must be 8-byte aligned`);
      if (wr.compareAdd === undefined) throw new UsageError(`postSend ${opName}: compareAdd is required`);
      if (opcode === C.IBV_WR_ATOMIC_CMP_AND_SWP && wr.swap === undefined) throw new UsageError('postSend compare-swap: swap is required');
      setU64Any(dv, at + f['wr.atomic.compare_add'], wr.compareAdd);
      setU64Any(dv, at + f['wr.atomic.swap'], wr.swap ?? 0);
      dv.setUint32(at + f['wr.atomic.rkey'], rkey, true);
    } else {
      dv.setUint32(at + f['wr.rdma.rkey'], rkey, true);
    }
  }
  ring.wrIds[slot] = wrId;
  ring.signaled[slot] = flags & C.IBV_SEND_SIGNALED ? 1 : 0;
}
