/**
 * libibverbs as memwire uses it: the exported verbs (one declaration per C function, with the C
 * prototype beside it) and one named shim per static-inline verb of verbs.h, calling through
 * `ctx->ops` or `struct verbs_context` exactly as the header does. C names, integers and
 * addresses only; meaning lives in src/verbs. Struct layouts: ffi/verbs-layout.ts.
 *
 * Symbol versions: core verbs exist twice, as (IBVERBS_1.0) and @@IBVERBS_1.1. Binding by plain
 * name (dlsym) gives the default version, @@IBVERBS_1.1 — the one a C program compiled against
 * today's verbs.h links to (the SRQ verbs ibv_create_srq / ibv_modify_srq / ibv_query_srq /
 * ibv_destroy_srq too, and ibv_get_async_event / ibv_ack_async_event: rdma-core 44 exports each
 * as (IBVERBS_1.0) and @@IBVERBS_1.1, checked with `objdump -T libibverbs.so.1`).
 * `_ibv_query_gid_ex` has only IBVERBS_1.11.
 *
 * Every function returns what C returns; errno (or the returned errno value) is turned into an
 * error by src/.
 */
import { backend, openLibrary } from './backend.js';
import type { FnDecl, NativeFn } from './types.js';
import { IBV_CONTEXT, IBV_PORT_ATTR, IBV_GID_ENTRY, VERBS_CONTEXT } from './verbs-layout.js';

/** Exported functions of libibverbs.so.1, bound by their default symbol version. */
export const VERBS = {
  ibv_get_device_list: { name: 'ibv_get_device_list', c: 'struct ibv_device **ibv_get_device_list(int *num_devices)', returns: 'ptr', args: ['buf'] },
  ibv_free_device_list: { name: 'ibv_free_device_list', c: 'void ibv_free_device_list(struct ibv_device **list)', returns: 'void', args: ['ptr'] },
  ibv_get_device_name: { name: 'ibv_get_device_name', c: 'const char *ibv_get_device_name(struct ibv_device *device)', returns: 'cstr', args: ['ptr'] },
  ibv_get_device_guid: { name: 'ibv_get_device_guid', c: '__be64 ibv_get_device_guid(struct ibv_device *device)', returns: 'u64', args: ['ptr'] },
  ibv_open_device: { name: 'ibv_open_device', c: 'struct ibv_context *ibv_open_device(struct ibv_device *device)', returns: 'ptr', args: ['ptr'] },
  ibv_close_device: { name: 'ibv_close_device', c: 'int ibv_close_device(struct ibv_context *context)', returns: 'i32', args: ['ptr'] },
  ibv_query_device: { name: 'ibv_query_device', c: 'int ibv_query_device(struct ibv_context *context, struct ibv_device_attr *device_attr)', returns: 'i32', args: ['ptr', 'ptr'] },
  // The exported ibv_query_port takes the old (compat) port_attr; the ibv_query_port shim below
  // prefers verbs_context->query_port, as the header's ___ibv_query_port does.
  ibv_query_port: { name: 'ibv_query_port', c: 'int ibv_query_port(struct ibv_context *context, uint8_t port_num, struct _compat_ibv_port_attr *port_attr)', returns: 'i32', args: ['ptr', 'u32', 'ptr'] },
  ibv_query_gid: { name: 'ibv_query_gid', c: 'int ibv_query_gid(struct ibv_context *context, uint8_t port_num, int index, union ibv_gid *gid)', returns: 'i32', args: ['ptr', 'u32', 'i32', 'ptr'] },
  _ibv_query_gid_ex: { name: '_ibv_query_gid_ex', c: 'int _ibv_query_gid_ex(struct ibv_context *context, uint32_t port_num, uint32_t gid_index, struct ibv_gid_entry *entry, uint32_t flags, size_t entry_size)', returns: 'i32', args: ['ptr', 'u32', 'u32', 'ptr', 'u32', 'u64'] },
  _ibv_query_gid_table: { name: '_ibv_query_gid_table', c: 'ssize_t _ibv_query_gid_table(struct ibv_context *context, struct ibv_gid_entry *entries, size_t max_entries, uint32_t flags, size_t entry_size)', returns: 'i64', args: ['ptr', 'ptr', 'u64', 'u32', 'u64'] },
  ibv_alloc_pd: { name: 'ibv_alloc_pd', c: 'struct ibv_pd *ibv_alloc_pd(struct ibv_context *context)', returns: 'ptr', args: ['ptr'] },
  ibv_dealloc_pd: { name: 'ibv_dealloc_pd', c: 'int ibv_dealloc_pd(struct ibv_pd *pd)', returns: 'i32', args: ['ptr'] },
  // ibv_reg_mr is also a macro (__ibv_reg_mr) that calls this exported function unless
  // IBV_ACCESS_OPTIONAL_RANGE bits are set, which memwire never sets.
  ibv_reg_mr: { name: 'ibv_reg_mr', c: 'struct ibv_mr *ibv_reg_mr(struct ibv_pd *pd, void *addr, size_t length, int access)', returns: 'ptr', args: ['ptr', 'ptr', 'u64', 'i32'] },
  // The same with the address the peer names byte 0 by (IBVERBS_1.8); memwire's node agent
  // registers targets with iova 0 so a remote offset is the target offset.
  ibv_reg_mr_iova2: { name: 'ibv_reg_mr_iova2', c: 'struct ibv_mr *ibv_reg_mr_iova2(struct ibv_pd *pd, void *addr, size_t length, uint64_t iova, unsigned int access)', returns: 'ptr', args: ['ptr', 'ptr', 'u64', 'u64', 'u32'] },
  ibv_dereg_mr: { name: 'ibv_dereg_mr', c: 'int ibv_dereg_mr(struct ibv_mr *mr)', returns: 'i32', args: ['ptr'] },
  ibv_create_comp_channel: { name: 'ibv_create_comp_channel', c: 'struct ibv_comp_channel *ibv_create_comp_channel(struct ibv_context *context)', returns: 'ptr', args: ['ptr'] },
  ibv_destroy_comp_channel: { name: 'ibv_destroy_comp_channel', c: 'int ibv_destroy_comp_channel(struct ibv_comp_channel *channel)', returns: 'i32', args: ['ptr'] },
  ibv_create_cq: { name: 'ibv_create_cq', c: 'struct ibv_cq *ibv_create_cq(struct ibv_context *context, int cqe, void *cq_context, struct ibv_comp_channel *channel, int comp_vector)', returns: 'ptr', args: ['ptr', 'i32', 'ptr', 'ptr', 'i32'] },
  ibv_destroy_cq: { name: 'ibv_destroy_cq', c: 'int ibv_destroy_cq(struct ibv_cq *cq)', returns: 'i32', args: ['ptr'] },
  ibv_get_cq_event: { name: 'ibv_get_cq_event', c: 'int ibv_get_cq_event(struct ibv_comp_channel *channel, struct ibv_cq **cq, void **cq_context)', returns: 'i32', args: ['ptr', 'ptr', 'ptr'] },
  ibv_ack_cq_events: { name: 'ibv_ack_cq_events', c: 'void ibv_ack_cq_events(struct ibv_cq *cq, unsigned int nevents)', returns: 'void', args: ['ptr', 'u32'] },
  // Asynchronous events: read from context->async_fd (a read(2), EAGAIN when it is O_NONBLOCK and empty).
  ibv_get_async_event: { name: 'ibv_get_async_event', c: 'int ibv_get_async_event(struct ibv_context *context, struct ibv_async_event *event)', returns: 'i32', args: ['ptr', 'ptr'] },
  ibv_ack_async_event: { name: 'ibv_ack_async_event', c: 'void ibv_ack_async_event(struct ibv_async_event *event)', returns: 'void', args: ['ptr'] },
  ibv_create_qp: { name: 'ibv_create_qp', c: 'struct ibv_qp *ibv_create_qp(struct ibv_pd *pd, struct ibv_qp_init_attr *qp_init_attr)', returns: 'ptr', args: ['ptr', 'ptr'] },
  ibv_modify_qp: { name: 'ibv_modify_qp', c: 'int ibv_modify_qp(struct ibv_qp *qp, struct ibv_qp_attr *attr, int attr_mask)', returns: 'i32', args: ['ptr', 'ptr', 'i32'] },
  ibv_query_qp: { name: 'ibv_query_qp', c: 'int ibv_query_qp(struct ibv_qp *qp, struct ibv_qp_attr *attr, int attr_mask, struct ibv_qp_init_attr *init_attr)', returns: 'i32', args: ['ptr', 'ptr', 'i32', 'ptr'] },
  ibv_destroy_qp: { name: 'ibv_destroy_qp', c: 'int ibv_destroy_qp(struct ibv_qp *qp)', returns: 'i32', args: ['ptr'] },
  // Shared receive queues (basic SRQs; XRC and tag-matching SRQs go through ibv_create_srq_ex).
  ibv_create_srq: { name: 'ibv_create_srq', c: 'struct ibv_srq *ibv_create_srq(struct ibv_pd *pd, struct ibv_srq_init_attr *srq_init_attr)', returns: 'ptr', args: ['ptr', 'ptr'] },
  ibv_modify_srq: { name: 'ibv_modify_srq', c: 'int ibv_modify_srq(struct ibv_srq *srq, struct ibv_srq_attr *srq_attr, int srq_attr_mask)', returns: 'i32', args: ['ptr', 'ptr', 'i32'] },
  ibv_query_srq: { name: 'ibv_query_srq', c: 'int ibv_query_srq(struct ibv_srq *srq, struct ibv_srq_attr *srq_attr)', returns: 'i32', args: ['ptr', 'ptr'] },
  ibv_destroy_srq: { name: 'ibv_destroy_srq', c: 'int ibv_destroy_srq(struct ibv_srq *srq)', returns: 'i32', args: ['ptr'] },
  ibv_create_ah: { name: 'ibv_create_ah', c: 'struct ibv_ah *ibv_create_ah(struct ibv_pd *pd, struct ibv_ah_attr *attr)', returns: 'ptr', args: ['ptr', 'ptr'] },
  ibv_destroy_ah: { name: 'ibv_destroy_ah', c: 'int ibv_destroy_ah(struct ibv_ah *ah)', returns: 'i32', args: ['ptr'] },
  ibv_node_type_str: { name: 'ibv_node_type_str', c: 'const char *ibv_node_type_str(enum ibv_node_type node_type)', returns: 'cstr', args: ['i32'] },
  ibv_port_state_str: { name: 'ibv_port_state_str', c: 'const char *ibv_port_state_str(enum ibv_port_state port_state)', returns: 'cstr', args: ['i32'] },
  ibv_wc_status_str: { name: 'ibv_wc_status_str', c: 'const char *ibv_wc_status_str(enum ibv_wc_status status)', returns: 'cstr', args: ['i32'] },
} as const satisfies Record<string, FnDecl>;

type Bound = { [K in keyof typeof VERBS]: NativeFn };
let bound: Bound | undefined;

/** Load libibverbs and bind its functions; throws if the library cannot be loaded. */
export function verbs(): Bound {
  if (!bound) {
    const lib = openLibrary('ibverbs');
    bound = Object.fromEntries(Object.entries(VERBS).map(([k, d]) => [k, lib.bind(d)])) as Bound;
  }
  return bound;
}

// ---- the static-inline verbs ----

/**
 * The static-inline verbs of one ibv_context, resolved once (ops pointers read from the context,
 * callables made with fnFromPointer) and cached per context address. Each member says which
 * inline it mirrors; arguments and results are exactly the C ones.
 */
export interface InlineVerbs {
  /** `static inline int ibv_post_send(qp, wr, bad_wr)`: `qp->context->ops.post_send(qp, wr, bad_wr)`; returns an errno value. */
  readonly ibv_post_send: (qp: number, wr: number, badWr: number) => number;
  /** `static inline int ibv_post_recv(qp, wr, bad_wr)`: `qp->context->ops.post_recv(qp, wr, bad_wr)`; returns an errno value. */
  readonly ibv_post_recv: (qp: number, wr: number, badWr: number) => number;
  /** `static inline int ibv_post_srq_recv(srq, recv_wr, bad_recv_wr)`: `srq->context->ops.post_srq_recv(srq, wr, bad_wr)`; returns an errno value. */
  readonly ibv_post_srq_recv: (srq: number, wr: number, badWr: number) => number;
  /** `static inline int ibv_poll_cq(cq, num_entries, wc)`: `cq->context->ops.poll_cq(cq, n, wc)`; count or negative. */
  readonly ibv_poll_cq: (cq: number, numEntries: number, wc: number) => number;
  /** `static inline int ibv_req_notify_cq(cq, solicited_only)`: `cq->context->ops.req_notify_cq(cq, s)`. */
  readonly ibv_req_notify_cq: (cq: number, solicitedOnly: number) => number;
  /**
   * `static inline int ___ibv_query_port(context, port_num, port_attr)` (the macro
   * `ibv_query_port`): `verbs_get_ctx_op(context, query_port)->query_port(context, port, attr,
   * sizeof(*attr))` when the provider has it, else memset + the exported compat ibv_query_port.
   */
  readonly ibv_query_port: (context: number, port: number, attr: number) => number;
  /** `static inline ssize_t ibv_query_gid_table(context, entries, max_entries, flags)`: `_ibv_query_gid_table(..., sizeof(*entries))`. */
  readonly ibv_query_gid_table: (context: number, entries: number, maxEntries: number, flags: number) => number;
  /** `static inline int ibv_query_gid_ex(context, port, index, entry, flags)`: `_ibv_query_gid_ex(..., sizeof(*entry))`. */
  readonly ibv_query_gid_ex: (context: number, port: number, index: number, entry: number, flags: number) => number;
}

const inlineCache = new Map<number, InlineVerbs>();

function readPtr(dv: DataView, offset: number): number {
  return dv.getUint32(offset, true) + dv.getUint32(offset + 4, true) * 0x1_0000_0000;
}

/**
 * The inline verbs of the ibv_context at `context`. The first call per context reads its ops
 * table (and, if extended, the surrounding verbs_context) and makes the callables; later calls
 * return the cached object. Call `forgetInlineVerbs` before the context is closed.
 */
export function inlineVerbs(context: number): InlineVerbs {
  let cached = inlineCache.get(context);
  if (cached) return cached;
  const v = verbs();
  const ctx = new DataView(backend.view(context, IBV_CONTEXT.size));
  const op = (field: keyof typeof IBV_CONTEXT.fields, returns: 'i32', args: readonly ('ptr' | 'i32')[]) => {
    const address = readPtr(ctx, IBV_CONTEXT.fields[field]);
    if (!address) {
      // The header would call through NULL; say which op the provider lacks instead.
      return (() => {
        throw new Error(`libibverbs provider has no ${field} (NULL in ibv_context at 0x${context.toString(16)})`);
      }) as NativeFn;
    }
    return backend.fnFromPointer(address, returns, args);
  };
  const postSend = op('ops.post_send', 'i32', ['ptr', 'ptr', 'ptr']);
  const postRecv = op('ops.post_recv', 'i32', ['ptr', 'ptr', 'ptr']);
  const postSrqRecv = op('ops.post_srq_recv', 'i32', ['ptr', 'ptr', 'ptr']);
  const pollCq = op('ops.poll_cq', 'i32', ['ptr', 'i32', 'ptr']);
  const reqNotify = op('ops.req_notify_cq', 'i32', ['ptr', 'i32']);

  // verbs_get_ctx_op(ctx, query_port): extended context, sz large enough, op non-NULL.
  let queryPort: NativeFn | undefined;
  const abiCompatLo = ctx.getUint32(IBV_CONTEXT.fields.abi_compat, true);
  const abiCompatHi = ctx.getUint32(IBV_CONTEXT.fields.abi_compat + 4, true);
  if (abiCompatLo === 0xffff_ffff && abiCompatHi === 0xffff_ffff) {
    const vctxAddress = context - VERBS_CONTEXT.fields.context;
    const vctx = new DataView(backend.view(vctxAddress, VERBS_CONTEXT.size));
    const sz = readPtr(vctx, VERBS_CONTEXT.fields.sz);
    const fn = readPtr(vctx, VERBS_CONTEXT.fields.query_port);
    if (sz >= VERBS_CONTEXT.size - VERBS_CONTEXT.fields.query_port && fn) {
      queryPort = backend.fnFromPointer(fn, 'i32', ['ptr', 'u32', 'ptr', 'u64']);
    }
  }
  const extendedQueryPort = queryPort;
  cached = {
    ibv_post_send: postSend,
    ibv_post_recv: postRecv,
    ibv_post_srq_recv: postSrqRecv,
    ibv_poll_cq: pollCq,
    ibv_req_notify_cq: reqNotify,
    ibv_query_port: extendedQueryPort
      ? (c, port, attr) => extendedQueryPort(c, port, attr, IBV_PORT_ATTR.size) as number
      : (c, port, attr) => {
          new Uint8Array(backend.view(attr, IBV_PORT_ATTR.size)).fill(0);
          return v.ibv_query_port(c, port, attr) as number;
        },
    ibv_query_gid_table: (c, entries, max, flags) => v._ibv_query_gid_table(c, entries, max, flags, IBV_GID_ENTRY.size) as number,
    ibv_query_gid_ex: (c, port, index, entry, flags) => v._ibv_query_gid_ex(c, port, index, entry, flags, IBV_GID_ENTRY.size) as number,
  };
  inlineCache.set(context, cached);
  return cached;
}

/** Drop the cached inline verbs of a context about to be closed (its address may be reused). */
export function forgetInlineVerbs(context: number): void {
  inlineCache.delete(context);
}
