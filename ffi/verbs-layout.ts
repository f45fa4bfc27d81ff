/**
 * Every C struct layout and constant memwire uses from libibverbs (verbs.h), librdmacm
 * (rdma_cma.h) and the few libc structs beside them, for x86_64 Linux (LP64), rdma-core 44.
 * Nothing else in memwire states an offset.
 *
 * Each struct is `{ c, size, fields }` where every key of `fields` is a C member designator
 * (`wr.rdma.remote_addr`): test/unit/verbs-layout.test.ts compiles a probe with gcc against the
 * installed headers and compares every offset, every size and every constant below with
 * offsetof / sizeof / the enum's value. Keys are exactly the C names so that test needs no map.
 *
 * The structs memwire writes on the hot path, as diagrams (byte offsets):
 *
 *   struct ibv_send_wr (128)                 struct ibv_recv_wr (32)     struct ibv_sge (16)
 *   0   u64 wr_id                            0   u64 wr_id               0  u64 addr
 *   8   ptr next                             8   ptr next                8  u32 length
 *   16  ptr sg_list                          16  ptr sg_list             12 u32 lkey
 *   24  i32 num_sge                          24  i32 num_sge
 *   28  u32 opcode (enum ibv_wr_opcode)      28  (padding)
 *   32  u32 send_flags
 *   36  be32 imm_data | u32 invalidate_rkey
 *   40  union wr:  rdma   { u64 remote_addr @40, u32 rkey @48 }
 *                  atomic { u64 remote_addr @40, u64 compare_add @48, u64 swap @56, u32 rkey @64 }
 *                  ud     { ptr ah @40, u32 remote_qpn @48, u32 remote_qkey @52 }
 *   72  qp_type union, bind_mw/tso union  (unused by memwire; zeroed)
 *
 *   struct ibv_wc (48)
 *   0  u64 wr_id   8 u32 status   12 u32 opcode   16 u32 vendor_err   20 u32 byte_len
 *   24 be32 imm_data | u32 invalidated_rkey        28 u32 qp_num       32 u32 src_qp
 *   36 u32 wc_flags   40 u16 pkey_index   42 u16 slid   44 u8 sl   45 u8 dlid_path_bits
 *
 * struct ibv_context and struct verbs_context (the static-inline verbs call through these):
 *
 *   verbs_context (648 bytes; an ibv_context is its LAST member, at +320)
 *   -320  query_port (...)        first of the "grows up" extended ops
 *   -8    size_t sz               how much of verbs_context the provider filled
 *   0     ibv_context.device      <- the ibv_context * every verb receives points here
 *   8     ibv_context.ops         struct ibv_context_ops: poll_cq +96, req_notify_cq +104,
 *                                  post_srq_recv +168, post_send +208, post_recv +216
 *   264   cmd_fd   268 async_fd   272 num_comp_vectors   280 mutex   320 abi_compat
 *         (abi_compat == (void *)-1 means "extended": a verbs_context surrounds the ibv_context)
 */

export interface StructLayout {
  /** The C type, as the probe names it. */
  readonly c: string;
  readonly size: number;
  /** C member designator -> byte offset. */
  readonly fields: Readonly<Record<string, number>>;
}

function struct<const F extends Record<string, number>>(c: string, size: number, fields: F) {
  return { c, size, fields } as const satisfies StructLayout;
}

export const IBV_DEVICE = struct('struct ibv_device', 664, {
  node_type: 16,
  transport_type: 20,
  name: 24, // char[IBV_SYSFS_NAME_MAX = 64]
});

export const IBV_CONTEXT = struct('struct ibv_context', 328, {
  device: 0,
  ops: 8,
  'ops.poll_cq': 96,
  'ops.req_notify_cq': 104,
  'ops.post_srq_recv': 168,
  'ops.post_send': 208,
  'ops.post_recv': 216,
  cmd_fd: 264,
  async_fd: 268,
  num_comp_vectors: 272,
  abi_compat: 320,
});

export const VERBS_CONTEXT = struct('struct verbs_context', 648, {
  query_port: 0,
  sz: 312,
  context: 320,
});

export const IBV_DEVICE_ATTR = struct('struct ibv_device_attr', 232, {
  fw_ver: 0,
  node_guid: 64,
  sys_image_guid: 72,
  max_mr_size: 80,
  page_size_cap: 88,
  vendor_id: 96,
  vendor_part_id: 100,
  hw_ver: 104,
  max_qp: 108,
  max_qp_wr: 112,
  device_cap_flags: 116,
  max_sge: 120,
  max_sge_rd: 124,
  max_cq: 128,
  max_cqe: 132,
  max_mr: 136,
  max_pd: 140,
  max_qp_rd_atom: 144,
  max_qp_init_rd_atom: 156,
  atomic_cap: 164,
  max_srq: 212,
  max_srq_wr: 216,
  max_srq_sge: 220,
  max_pkeys: 224,
  local_ca_ack_delay: 226,
  phys_port_cnt: 227,
});

export const IBV_PORT_ATTR = struct('struct ibv_port_attr', 52, {
  state: 0,
  max_mtu: 4,
  active_mtu: 8,
  gid_tbl_len: 12,
  port_cap_flags: 16,
  max_msg_sz: 20,
  pkey_tbl_len: 32,
  lid: 34,
  sm_lid: 36,
  lmc: 38,
  active_width: 43,
  active_speed: 44,
  phys_state: 45,
  link_layer: 46,
});

export const IBV_GID_ENTRY = struct('struct ibv_gid_entry', 32, {
  gid: 0, // union ibv_gid: u8 raw[16]
  gid_index: 16,
  port_num: 20,
  gid_type: 24,
  ndev_ifindex: 28,
});

export const IBV_SGE = struct('struct ibv_sge', 16, { addr: 0, length: 8, lkey: 12 });

export const IBV_SEND_WR = struct('struct ibv_send_wr', 128, {
  wr_id: 0,
  next: 8,
  sg_list: 16,
  num_sge: 24,
  opcode: 28,
  send_flags: 32,
  imm_data: 36,
  'wr.rdma.remote_addr': 40,
  'wr.rdma.rkey': 48,
  'wr.atomic.remote_addr': 40,
  'wr.atomic.compare_add': 48,
  'wr.atomic.swap': 56,
  'wr.atomic.rkey': 64,
  'wr.ud.ah': 40,
  'wr.ud.remote_qpn': 48,
  'wr.ud.remote_qkey': 52,
});

export const IBV_RECV_WR = struct('struct ibv_recv_wr', 32, { wr_id: 0, next: 8, sg_list: 16, num_sge: 24 });

export const IBV_WC = struct('struct ibv_wc', 48, {
  wr_id: 0,
  status: 8,
  opcode: 12,
  vendor_err: 16,
  byte_len: 20,
  imm_data: 24,
  qp_num: 28,
  src_qp: 32,
  wc_flags: 36,
  pkey_index: 40,
  slid: 42,
  sl: 44,
  dlid_path_bits: 45,
});

export const IBV_QP_CAP = struct('struct ibv_qp_cap', 20, {
  max_send_wr: 0,
  max_recv_wr: 4,
  max_send_sge: 8,
  max_recv_sge: 12,
  max_inline_data: 16,
});

export const IBV_QP_INIT_ATTR = struct('struct ibv_qp_init_attr', 64, {
  qp_context: 0,
  send_cq: 8,
  recv_cq: 16,
  srq: 24,
  cap: 32,
  'cap.max_send_wr': 32,
  'cap.max_recv_wr': 36,
  'cap.max_send_sge': 40,
  'cap.max_recv_sge': 44,
  'cap.max_inline_data': 48,
  qp_type: 52,
  sq_sig_all: 56,
});

export const IBV_QP_ATTR = struct('struct ibv_qp_attr', 144, {
  qp_state: 0,
  cur_qp_state: 4,
  path_mtu: 8,
  path_mig_state: 12,
  qkey: 16,
  rq_psn: 20,
  sq_psn: 24,
  dest_qp_num: 28,
  qp_access_flags: 32,
  cap: 36,
  'cap.max_send_wr': 36,
  'cap.max_recv_wr': 40,
  'cap.max_send_sge': 44,
  'cap.max_recv_sge': 48,
  'cap.max_inline_data': 52,
  ah_attr: 56,
  'ah_attr.grh.dgid': 56,
  'ah_attr.grh.flow_label': 72,
  'ah_attr.grh.sgid_index': 76,
  'ah_attr.grh.hop_limit': 77,
  'ah_attr.grh.traffic_class': 78,
  'ah_attr.dlid': 80,
  'ah_attr.sl': 82,
  'ah_attr.src_path_bits': 83,
  'ah_attr.static_rate': 84,
  'ah_attr.is_global': 85,
  'ah_attr.port_num': 86,
  alt_ah_attr: 88,
  pkey_index: 120,
  alt_pkey_index: 122,
  en_sqd_async_notify: 124,
  sq_draining: 125,
  max_rd_atomic: 126,
  max_dest_rd_atomic: 127,
  min_rnr_timer: 128,
  port_num: 129,
  timeout: 130,
  retry_cnt: 131,
  rnr_retry: 132,
  alt_port_num: 133,
  alt_timeout: 134,
  rate_limit: 136,
});

export const IBV_AH_ATTR = struct('struct ibv_ah_attr', 32, {
  'grh.dgid': 0,
  'grh.flow_label': 16,
  'grh.sgid_index': 20,
  'grh.hop_limit': 21,
  'grh.traffic_class': 22,
  dlid: 24,
  sl: 26,
  src_path_bits: 27,
  static_rate: 28,
  is_global: 29,
  port_num: 30,
});

/** The 40-byte Global Route Header a UD receive finds at the start of its buffer. */
export const IBV_GRH = struct('struct ibv_grh', 40, { version_tclass_flow: 0, paylen: 4, next_hdr: 6, hop_limit: 7, sgid: 8, dgid: 24 });

export const IBV_PD = struct('struct ibv_pd', 16, { context: 0, handle: 8 });

export const IBV_MR = struct('struct ibv_mr', 48, {
  context: 0,
  pd: 8,
  addr: 16,
  length: 24,
  handle: 32,
  lkey: 36,
  rkey: 40,
});

export const IBV_CQ = struct('struct ibv_cq', 128, { context: 0, channel: 8, cq_context: 16, handle: 24, cqe: 28 });

export const IBV_QP = struct('struct ibv_qp', 160, {
  context: 0,
  qp_context: 8,
  pd: 16,
  send_cq: 24,
  recv_cq: 32,
  srq: 40,
  handle: 48,
  qp_num: 52,
  state: 56,
  qp_type: 60,
});

/**
 * Shared receive queues:
 *
 *   struct ibv_srq_init_attr (24)            struct ibv_srq_attr (12)
 *   0   ptr srq_context                      0  u32 max_wr
 *   8   struct ibv_srq_attr attr             4  u32 max_sge
 *       (max_wr @8, max_sge @12,             8  u32 srq_limit
 *        srq_limit @16; ignored on create)
 *
 * ibv_create_srq writes the granted max_wr / max_sge back into attr. A QP takes its SRQ through
 * ibv_qp_init_attr.srq (above); struct ibv_srq starts with its context, as ibv_post_srq_recv reads.
 */
/** struct ibv_async_event: the union `element` (cq, qp, srq, wq pointer, or int port_num), then the enum. */
export const IBV_ASYNC_EVENT = struct('struct ibv_async_event', 16, { element: 0, event_type: 8 });
export const IBV_SRQ_ATTR = struct('struct ibv_srq_attr', 12, { max_wr: 0, max_sge: 4, srq_limit: 8 });

export const IBV_SRQ_INIT_ATTR = struct('struct ibv_srq_init_attr', 24, {
  srq_context: 0,
  attr: 8,
  'attr.max_wr': 8,
  'attr.max_sge': 12,
  'attr.srq_limit': 16,
});

export const IBV_SRQ = struct('struct ibv_srq', 128, { context: 0, srq_context: 8, pd: 16, handle: 24, events_completed: 120 });

export const IBV_COMP_CHANNEL = struct('struct ibv_comp_channel', 16, { context: 0, fd: 8, refcnt: 12 });

// ---- librdmacm (rdma/rdma_cma.h) ----

export const RDMA_EVENT_CHANNEL = struct('struct rdma_event_channel', 4, { fd: 0 });

export const RDMA_CM_ID = struct('struct rdma_cm_id', 416, {
  verbs: 0,
  channel: 8,
  context: 16,
  qp: 24,
  route: 32,
  'route.addr.src_addr': 32,
  'route.addr.dst_addr': 160,
  ps: 344,
  port_num: 348,
  event: 352,
  send_cq_channel: 360,
  send_cq: 368,
  recv_cq_channel: 376,
  recv_cq: 384,
  srq: 392,
  pd: 400,
  qp_type: 408,
});

export const RDMA_CM_EVENT = struct('struct rdma_cm_event', 80, {
  id: 0,
  listen_id: 8,
  event: 16,
  status: 20,
  'param.conn.private_data': 24,
  'param.conn.private_data_len': 32,
  'param.conn.responder_resources': 33,
  'param.conn.initiator_depth': 34,
  'param.conn.flow_control': 35,
  'param.conn.retry_count': 36,
  'param.conn.rnr_retry_count': 37,
  'param.conn.srq': 38,
  'param.conn.qp_num': 40,
});

export const RDMA_CONN_PARAM = struct('struct rdma_conn_param', 24, {
  private_data: 0,
  private_data_len: 8,
  responder_resources: 9,
  initiator_depth: 10,
  flow_control: 11,
  retry_count: 12,
  rnr_retry_count: 13,
  srq: 14,
  qp_num: 16,
});

// ---- libc structs used beside them ----

export const SOCKADDR_IN = struct('struct sockaddr_in', 16, { sin_family: 0, sin_port: 2, sin_addr: 4 });
export const POLLFD = struct('struct pollfd', 8, { fd: 0, events: 4, revents: 6 });

/** Every layout above, for the layout test. */
export const LAYOUTS: readonly StructLayout[] = [
  IBV_DEVICE, IBV_CONTEXT, VERBS_CONTEXT, IBV_DEVICE_ATTR, IBV_PORT_ATTR, IBV_GID_ENTRY, IBV_SGE,
  IBV_SEND_WR, IBV_RECV_WR, IBV_WC, IBV_QP_CAP, IBV_QP_INIT_ATTR, IBV_QP_ATTR, IBV_AH_ATTR, IBV_GRH, IBV_PD, IBV_MR,
  IBV_CQ, IBV_QP, IBV_ASYNC_EVENT, IBV_SRQ_ATTR, IBV_SRQ_INIT_ATTR, IBV_SRQ, IBV_COMP_CHANNEL, RDMA_EVENT_CHANNEL, RDMA_CM_ID,
  RDMA_CM_EVENT, RDMA_CONN_PARAM, SOCKADDR_IN, POLLFD,
];

/** Bytes in one `union ibv_gid`, and the length of a device name buffer (IBV_SYSFS_NAME_MAX). */
export const GID_SIZE = 16;
export const IBV_SYSFS_NAME_MAX = 64;

/**
 * Constants (enum values and #defines) by their C names; the layout test checks each against
 * the compiler. `__VERBS_ABI_IS_EXTENDED` is `(void *)UINTPTR_MAX`, checked apart (a pointer).
 */
export const C = {
  // enum ibv_node_type / ibv_transport_type
  IBV_NODE_UNKNOWN: -1, IBV_NODE_CA: 1, IBV_NODE_SWITCH: 2, IBV_NODE_ROUTER: 3, IBV_NODE_RNIC: 4,
  IBV_NODE_USNIC: 5, IBV_NODE_USNIC_UDP: 6, IBV_NODE_UNSPECIFIED: 7,
  IBV_TRANSPORT_UNKNOWN: -1, IBV_TRANSPORT_IB: 0, IBV_TRANSPORT_IWARP: 1, IBV_TRANSPORT_USNIC: 2,
  IBV_TRANSPORT_USNIC_UDP: 3, IBV_TRANSPORT_UNSPECIFIED: 4,
  // enum ibv_port_state, ibv_mtu, link layer, gid type
  IBV_PORT_NOP: 0, IBV_PORT_DOWN: 1, IBV_PORT_INIT: 2, IBV_PORT_ARMED: 3, IBV_PORT_ACTIVE: 4,
  IBV_PORT_ACTIVE_DEFER: 5,
  IBV_MTU_256: 1, IBV_MTU_512: 2, IBV_MTU_1024: 3, IBV_MTU_2048: 4, IBV_MTU_4096: 5,
  IBV_LINK_LAYER_UNSPECIFIED: 0, IBV_LINK_LAYER_INFINIBAND: 1, IBV_LINK_LAYER_ETHERNET: 2,
  IBV_GID_TYPE_IB: 0, IBV_GID_TYPE_ROCE_V1: 1, IBV_GID_TYPE_ROCE_V2: 2,
  // enum ibv_access_flags
  IBV_ACCESS_LOCAL_WRITE: 1, IBV_ACCESS_REMOTE_WRITE: 2, IBV_ACCESS_REMOTE_READ: 4,
  IBV_ACCESS_REMOTE_ATOMIC: 8, IBV_ACCESS_MW_BIND: 16, IBV_ACCESS_ZERO_BASED: 32,
  IBV_ACCESS_ON_DEMAND: 64, IBV_ACCESS_RELAXED_ORDERING: 1 << 20,
  // enum ibv_qp_type, ibv_qp_state, ibv_qp_attr_mask
  IBV_QPT_RC: 2, IBV_QPT_UC: 3, IBV_QPT_UD: 4,
  IBV_QPS_RESET: 0, IBV_QPS_INIT: 1, IBV_QPS_RTR: 2, IBV_QPS_RTS: 3, IBV_QPS_SQD: 4, IBV_QPS_SQE: 5,
  IBV_QPS_ERR: 6,
  IBV_QP_STATE: 1 << 0, IBV_QP_CUR_STATE: 1 << 1, IBV_QP_EN_SQD_ASYNC_NOTIFY: 1 << 2,
  IBV_QP_ACCESS_FLAGS: 1 << 3, IBV_QP_PKEY_INDEX: 1 << 4, IBV_QP_PORT: 1 << 5, IBV_QP_QKEY: 1 << 6,
  IBV_QP_AV: 1 << 7, IBV_QP_PATH_MTU: 1 << 8, IBV_QP_TIMEOUT: 1 << 9, IBV_QP_RETRY_CNT: 1 << 10,
  IBV_QP_RNR_RETRY: 1 << 11, IBV_QP_RQ_PSN: 1 << 12, IBV_QP_MAX_QP_RD_ATOMIC: 1 << 13,
  IBV_QP_ALT_PATH: 1 << 14, IBV_QP_MIN_RNR_TIMER: 1 << 15, IBV_QP_SQ_PSN: 1 << 16,
  IBV_QP_MAX_DEST_RD_ATOMIC: 1 << 17, IBV_QP_PATH_MIG_STATE: 1 << 18, IBV_QP_CAP: 1 << 19,
  IBV_QP_DEST_QPN: 1 << 20,
  // enum ibv_srq_attr_mask
  IBV_SRQ_MAX_WR: 1 << 0, IBV_SRQ_LIMIT: 1 << 1,
  // enum ibv_event_type
  IBV_EVENT_CQ_ERR: 0, IBV_EVENT_QP_FATAL: 1, IBV_EVENT_QP_REQ_ERR: 2, IBV_EVENT_QP_ACCESS_ERR: 3,
  IBV_EVENT_COMM_EST: 4, IBV_EVENT_SQ_DRAINED: 5, IBV_EVENT_PATH_MIG: 6, IBV_EVENT_PATH_MIG_ERR: 7,
  IBV_EVENT_DEVICE_FATAL: 8, IBV_EVENT_PORT_ACTIVE: 9, IBV_EVENT_PORT_ERR: 10, IBV_EVENT_LID_CHANGE: 11,
  IBV_EVENT_PKEY_CHANGE: 12, IBV_EVENT_SM_CHANGE: 13, IBV_EVENT_SRQ_ERR: 14,
  IBV_EVENT_SRQ_LIMIT_REACHED: 15, IBV_EVENT_QP_LAST_WQE_REACHED: 16, IBV_EVENT_CLIENT_REREGISTER: 17,
  IBV_EVENT_GID_CHANGE: 18, IBV_EVENT_WQ_FATAL: 19,
  // enum ibv_wr_opcode, ibv_send_flags
  IBV_WR_RDMA_WRITE: 0, IBV_WR_RDMA_WRITE_WITH_IMM: 1, IBV_WR_SEND: 2, IBV_WR_SEND_WITH_IMM: 3,
  IBV_WR_RDMA_READ: 4, IBV_WR_ATOMIC_CMP_AND_SWP: 5, IBV_WR_ATOMIC_FETCH_AND_ADD: 6,
  IBV_SEND_FENCE: 1, IBV_SEND_SIGNALED: 2, IBV_SEND_SOLICITED: 4, IBV_SEND_INLINE: 8,
  // enum ibv_wc_opcode, ibv_wc_flags
  IBV_WC_SEND: 0, IBV_WC_RDMA_WRITE: 1, IBV_WC_RDMA_READ: 2, IBV_WC_COMP_SWAP: 3,
  IBV_WC_FETCH_ADD: 4, IBV_WC_BIND_MW: 5, IBV_WC_LOCAL_INV: 6, IBV_WC_RECV: 128,
  IBV_WC_RECV_RDMA_WITH_IMM: 129,
  IBV_WC_GRH: 1, IBV_WC_WITH_IMM: 2,
  // enum ibv_wc_status
  IBV_WC_SUCCESS: 0, IBV_WC_LOC_LEN_ERR: 1, IBV_WC_LOC_QP_OP_ERR: 2, IBV_WC_LOC_EEC_OP_ERR: 3,
  IBV_WC_LOC_PROT_ERR: 4, IBV_WC_WR_FLUSH_ERR: 5, IBV_WC_MW_BIND_ERR: 6, IBV_WC_BAD_RESP_ERR: 7,
  IBV_WC_LOC_ACCESS_ERR: 8, IBV_WC_REM_INV_REQ_ERR: 9, IBV_WC_REM_ACCESS_ERR: 10,
  IBV_WC_REM_OP_ERR: 11, IBV_WC_RETRY_EXC_ERR: 12, IBV_WC_RNR_RETRY_EXC_ERR: 13,
  IBV_WC_LOC_RDD_VIOL_ERR: 14, IBV_WC_REM_INV_RD_REQ_ERR: 15, IBV_WC_REM_ABORT_ERR: 16,
  IBV_WC_INV_EECN_ERR: 17, IBV_WC_INV_EEC_STATE_ERR: 18, IBV_WC_FATAL_ERR: 19,
  IBV_WC_RESP_TIMEOUT_ERR: 20, IBV_WC_GENERAL_ERR: 21,
  // librdmacm: enum rdma_port_space, rdma_cm_event_type
  RDMA_PS_TCP: 0x0106,
  RDMA_CM_EVENT_ADDR_RESOLVED: 0, RDMA_CM_EVENT_ADDR_ERROR: 1, RDMA_CM_EVENT_ROUTE_RESOLVED: 2,
  RDMA_CM_EVENT_ROUTE_ERROR: 3, RDMA_CM_EVENT_CONNECT_REQUEST: 4, RDMA_CM_EVENT_CONNECT_RESPONSE: 5,
  RDMA_CM_EVENT_CONNECT_ERROR: 6, RDMA_CM_EVENT_UNREACHABLE: 7, RDMA_CM_EVENT_REJECTED: 8,
  RDMA_CM_EVENT_ESTABLISHED: 9, RDMA_CM_EVENT_DISCONNECTED: 10, RDMA_CM_EVENT_DEVICE_REMOVAL: 11,
  RDMA_CM_EVENT_MULTICAST_JOIN: 12, RDMA_CM_EVENT_MULTICAST_ERROR: 13, RDMA_CM_EVENT_ADDR_CHANGE: 14,
  RDMA_CM_EVENT_TIMEWAIT_EXIT: 15,
  // libc: poll(2), fcntl(2), sockets
  POLLIN: 1, F_GETFL: 3, F_SETFL: 4, O_NONBLOCK: 0o4000, AF_INET: 2,
} as const;

/** The headers the layout probe includes. */
export const LAYOUT_HEADERS = ['infiniband/verbs.h', 'rdma/rdma_cma.h', 'netinet/in.h', 'poll.h', 'fcntl.h', 'stddef.h', 'stdio.h'];
