/**
 * memwire's public surface. Everything a user imports comes from here.
 */
export { SharedRegion } from './shm/region.js';
export type { CreateOptions, OpenOptions, StaleRegion, TypedArrayKind } from './shm/region.js';
export { FutexWord, DEFAULT_SPIN, SLICE_MS } from './shm/futex.js';
export type { WaitOptions, WaitResult } from './shm/futex.js';
export { MAX_NAME_LENGTH } from './shm/names.js';
export { Mailbox } from './shm/mailbox.js';
export { MAX_REGION_DATA_SIZE } from './shm/region-layout.js';
export {
  ClosedError,
  CorruptionError,
  ForeignObjectError,
  MemwireError,
  NotSupportedError,
  SystemError,
  TimeoutError,
  UsageError,
} from './errors.js';
export { platform } from './platform.js';
// RDMA verbs (libibverbs through FFI): see src/verbs/.
export { listDevices } from './verbs/device.js';
export type { DeviceInfo, NodeType, TransportType } from './verbs/device.js';
export { Context } from './verbs/context.js';
export type { ContextOptions, DeviceAttributes, GidEntry, GidType, LinkLayer, PortAttributes, PortState } from './verbs/context.js';
export { ProtectionDomain } from './verbs/protection-domain.js';
export { MemoryRegion } from './verbs/memory-region.js';
export type { MemoryAccess, RawMemory, Registrable, RemoteMemory, SizedMemory } from './verbs/memory-region.js';
export { Completion, CompletionQueue } from './verbs/completion-queue.js';
export type { CompletionQueueOptions, CompletionRecord } from './verbs/completion-queue.js';
export type { AsyncEvent } from './verbs/async-events.js';
export { DEFAULT_QKEY, PreparedRecv, PreparedSend, QueuePair } from './verbs/queue-pair.js';
export { AddressHandle } from './verbs/address-handle.js';
export { PreparedSharedRecv, SharedReceiveQueue } from './verbs/shared-receive-queue.js';
export type { SharedReceiveQueueAttributes, SharedReceiveQueueOptions } from './verbs/shared-receive-queue.js';
export type { AddressHandleOptions } from './verbs/address-handle.js';
export type {
  ConnectOptions, QueuePairEndpoint, InitOptions, QueuePairOptions, QueuePairState, RecvRequest, RtrOptions, RtsOptions,
  QueuePairType, SendOpcode, SendRequest, Sge,
} from './verbs/queue-pair.js';
export { connectQueuePairs, decodeEndpoint, encodeEndpoint } from './verbs/connect.js';
export {
  completionError, FlushedError, LocalLengthError, LocalProtectionError, NoDeviceError, RemoteAccessError,
  RemoteOperationError, RetryExceededError, WorkCompletionError,
} from './verbs/errors.js';
export { liveVerbsObjects } from './verbs/live.js';
export type { LiveVerbsObjects } from './verbs/live.js';
// The shared-memory node API (seed 003): see src/shmem/.
export { ShmemPool } from './shmem/pool.js';
// ShmemPool limits (create refuses more with a UsageError).
export { MAX_HEAP_BYTES, MAX_LOCKS, MAX_MEMBERS } from './shmem/layout.js';
export type { MallocOptions, PoolCreateOptions, PoolOpenOptions, PoolStats } from './shmem/pool.js';
export type { MemberId } from './shmem/context.js';
export type { MemberInfo } from './shmem/members.js';
export { Message } from './shmem/messages.js';
export type { LockStatus, LockWaitOptions, SetLockResult, TestLockResult } from './shmem/locks.js';
export type { Comparison, SignalWaitOptions } from './shmem/signals.js';
export type { HeapStats } from './shmem/heap.js';
export { OwnershipError } from './errors.js';
export { CmConnection, CmListener, ConnectionError, rdmaConnect, MAX_ACCEPT_PRIVATE_DATA, MAX_CONNECT_PRIVATE_DATA } from './verbs/rdma-cm.js';
export type { CmConnectionOptions, ConnectTarget, ListenOptions } from './verbs/rdma-cm.js';
// Messaging on one machine (seeds 000, 001): transports, postboxes, segment groups.
export { PeerGoneError } from './errors.js';
export type { Exposed, Image, OpenTargetOptions, ProcessIdentity, SegmentDescriptor, Target, Transport, ExposeOptions } from './transport/types.js';
export { PostStatus } from './transport/types.js';
export { ShmTransport } from './transport/shm.js';
export { Fabric, InProcessTransport } from './transport/inproc.js';
export { Claim, Postbox, LIVENESS_BOUND_MS, MAX_MESSAGE_BYTES, SendStatus } from './postbox/postbox.js';
// Postbox limits (Postbox.open refuses more with a UsageError): size pools and postboxes by these.
export { MAX_INCOMING, MAX_POOL_BYTES, MAX_POSTBOX_BYTES, MAX_POSTBOXES, MAX_SLOT_BYTES, MAX_SLOTS } from './postbox/postbox.js';
export type { PostboxOptions, PostboxState, Message as PostboxMessage, MessageHandler, ReceiveOptions } from './postbox/postbox.js';
export { RECEIVER_CHECK_MS, RECEIVER_TRUST_MS, SENDER_CHECK_MS, SegmentReceiver, SegmentSender } from './segments/segments.js';
// Segment-group limits (SegmentReceiver.open refuses more with a UsageError).
export { MAX_PARTITIONS, MAX_SEGMENT_BYTES, MAX_SEGMENT_SENDERS } from './segments/layout.js';
export type { GroupSpec, SegmentGroupInfo, SegmentHandler, SegmentInfo, SegmentOptions } from './segments/segments.js';
// Dynamic RDMA registration (seed 004): a growable shared heap of OS blocks, registered lazily.
export { HeapBuffer, RegisteredHeap } from './regcache/registered-heap.js';
export type { RegisteredHeapOpenOptions, RegisteredHeapOptions, RegisteredHeapStats, RegisteredRange } from './regcache/registered-heap.js';
export { MemlockLimitError, memlockLimit, noneRegistrar, VerbsRegistrar } from './regcache/registrar.js';
export type { BlockMemory, Registrar, Registration } from './regcache/registrar.js';
// RDMA requests (seed 002): coalesce small elements, divide large ones, continue as slots free up.
export { DISPOSE_FLUSH_MS, ENGINE_WR_ID, RequestEngine } from './coalesce/engine.js';
export { PreparedRequest } from './coalesce/prepared.js';
export { countWorkRequests, planRequest } from './coalesce/plan.js';
export type { PlanElement, PlanLimits, PlannedWr } from './coalesce/plan.js';
export type {
  RemoteRegion, RequestElement, RequestEngineOptions, RequestFailure, RequestLimits, RequestOp, SettledRequests, SubmitOptions,
} from './coalesce/types.js';
// Across machines (seeds 000, 001): the node agent and its client. See docs/across-machines.md.
export { DEFAULT_AGENT_PORT, NodeAgent, targetRegionName } from './agent/agent.js';
export type { NodeAgentOptions } from './agent/agent.js';
export { AgentClient, AgentError } from './agent/client.js';
export type { AgentClientOptions, TargetDescriptor } from './agent/client.js';
export { deviceAddress } from './agent/discover.js';
export type { DeviceAddress } from './agent/discover.js';
export { ProtocolError } from './agent/wire.js';
export { PUBLISH_SLOTS, RdmaImage } from './transport/rdma-image.js';
export { RdmaTransport, type RdmaTransportOptions } from './transport/rdma-transport.js';
export type { AsyncImage } from './transport/rdma-types.js';
