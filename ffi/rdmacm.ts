/**
 * librdmacm as memwire uses it: connection set-up between machines (address and route
 * resolution, listen, connect, accept with private data, disconnect) through an event channel.
 * One declaration per C function with its C prototype. C names, integers and addresses only;
 * meaning lives in src/verbs/rdma-cm.ts. Layouts: ffi/verbs-layout.ts.
 *
 * These functions return 0, or -1 with errno set (read it at once). librdmacm has a single
 * symbol version (RDMACM_1.0 … 1.3, one per function), so plain binding is exact.
 */
import { openLibrary } from './backend.js';
import type { FnDecl, NativeFn } from './types.js';

export const RDMACM = {
  rdma_create_event_channel: { name: 'rdma_create_event_channel', c: 'struct rdma_event_channel *rdma_create_event_channel(void)', returns: 'ptr', args: [] },
  rdma_destroy_event_channel: { name: 'rdma_destroy_event_channel', c: 'void rdma_destroy_event_channel(struct rdma_event_channel *channel)', returns: 'void', args: ['ptr'] },
  rdma_create_id: { name: 'rdma_create_id', c: 'int rdma_create_id(struct rdma_event_channel *channel, struct rdma_cm_id **id, void *context, enum rdma_port_space ps)', returns: 'i32', args: ['ptr', 'ptr', 'ptr', 'i32'] },
  rdma_destroy_id: { name: 'rdma_destroy_id', c: 'int rdma_destroy_id(struct rdma_cm_id *id)', returns: 'i32', args: ['ptr'] },
  rdma_migrate_id: { name: 'rdma_migrate_id', c: 'int rdma_migrate_id(struct rdma_cm_id *id, struct rdma_event_channel *channel)', returns: 'i32', args: ['ptr', 'ptr'] },
  rdma_bind_addr: { name: 'rdma_bind_addr', c: 'int rdma_bind_addr(struct rdma_cm_id *id, struct sockaddr *addr)', returns: 'i32', args: ['ptr', 'ptr'] },
  rdma_resolve_addr: { name: 'rdma_resolve_addr', c: 'int rdma_resolve_addr(struct rdma_cm_id *id, struct sockaddr *src_addr, struct sockaddr *dst_addr, int timeout_ms)', returns: 'i32', args: ['ptr', 'ptr', 'ptr', 'i32'] },
  rdma_resolve_route: { name: 'rdma_resolve_route', c: 'int rdma_resolve_route(struct rdma_cm_id *id, int timeout_ms)', returns: 'i32', args: ['ptr', 'i32'] },
  rdma_listen: { name: 'rdma_listen', c: 'int rdma_listen(struct rdma_cm_id *id, int backlog)', returns: 'i32', args: ['ptr', 'i32'] },
  rdma_connect: { name: 'rdma_connect', c: 'int rdma_connect(struct rdma_cm_id *id, struct rdma_conn_param *conn_param)', returns: 'i32', args: ['ptr', 'ptr'] },
  rdma_accept: { name: 'rdma_accept', c: 'int rdma_accept(struct rdma_cm_id *id, struct rdma_conn_param *conn_param)', returns: 'i32', args: ['ptr', 'ptr'] },
  rdma_reject: { name: 'rdma_reject', c: 'int rdma_reject(struct rdma_cm_id *id, const void *private_data, uint8_t private_data_len)', returns: 'i32', args: ['ptr', 'ptr', 'u32'] },
  rdma_disconnect: { name: 'rdma_disconnect', c: 'int rdma_disconnect(struct rdma_cm_id *id)', returns: 'i32', args: ['ptr'] },
  rdma_create_qp: { name: 'rdma_create_qp', c: 'int rdma_create_qp(struct rdma_cm_id *id, struct ibv_pd *pd, struct ibv_qp_init_attr *qp_init_attr)', returns: 'i32', args: ['ptr', 'ptr', 'ptr'] },
  rdma_destroy_qp: { name: 'rdma_destroy_qp', c: 'void rdma_destroy_qp(struct rdma_cm_id *id)', returns: 'void', args: ['ptr'] },
  rdma_get_cm_event: { name: 'rdma_get_cm_event', c: 'int rdma_get_cm_event(struct rdma_event_channel *channel, struct rdma_cm_event **event)', returns: 'i32', args: ['ptr', 'ptr'] },
  rdma_ack_cm_event: { name: 'rdma_ack_cm_event', c: 'int rdma_ack_cm_event(struct rdma_cm_event *event)', returns: 'i32', args: ['ptr'] },
  rdma_event_str: { name: 'rdma_event_str', c: 'const char *rdma_event_str(enum rdma_cm_event_type event)', returns: 'cstr', args: ['i32'] },
} as const satisfies Record<string, FnDecl>;

type Bound = { [K in keyof typeof RDMACM]: NativeFn };
let bound: Bound | undefined;

/** Load librdmacm and bind its functions; throws if the library cannot be loaded. */
export function rdmacm(): Bound {
  if (!bound) {
    const lib = openLibrary('rdmacm');
    bound = Object.fromEntries(Object.entries(RDMACM).map(([k, d]) => [k, lib.bind(d)])) as Bound;
  }
  return bound;
}

/** Load librdmacm and check a symbol binds; throws if it cannot. */
export function probeRdmacm(): void {
  openLibrary('rdmacm').bind(RDMACM.rdma_create_event_channel);
}
