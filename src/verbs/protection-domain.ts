/**
 * ProtectionDomain (struct ibv_pd): the parent of memory regions, address handles, shared receive
 * queues and queue pairs. dispose() destroys its queue pairs, then its shared receive queues (a
 * QP that uses an SRQ goes first), then its address handles, then deregisters its memory
 * regions, then frees the PD.
 */
import { ClosedError } from '../errors.js';
import { AddressHandle, type AddressHandleOptions } from './address-handle.js';
import type { Context } from './context.js';
import { loadVerbs } from './device.js';
import { countLive } from './live.js';
import { MemoryRegion, type MemoryAccess, type Registrable } from './memory-region.js';
import { checkPointer, checkStatus, CleanupSteps, hex } from './native.js';
import { QueuePair, type QueuePairOptions } from './queue-pair.js';
import { SharedReceiveQueue, type SharedReceiveQueueOptions } from './shared-receive-queue.js';

export class ProtectionDomain {
  readonly context: Context;
  #handle: number;
  readonly #mrs = new Set<MemoryRegion>();
  readonly #qps = new Set<QueuePair>();
  readonly #ahs = new Set<AddressHandle>();
  readonly #srqs = new Set<SharedReceiveQueue>();

  /** @internal use context.allocPd(). */
  constructor(context: Context, contextHandle: number) {
    this.context = context;
    this.#handle = checkPointer('ibv_alloc_pd', loadVerbs().ibv_alloc_pd(contextHandle) as number, { device: context.device.name });
    countLive('pds', 1);
  }

  /** The struct ibv_pd address. ClosedError once disposed. */
  get handle(): number {
    if (!this.#handle) throw new ClosedError('protection domain');
    return this.#handle;
  }

  get disposed(): boolean {
    return this.#handle === 0;
  }

  /**
   * Register memory for the NIC (ibv_reg_mr). `target` is an ArrayBuffer, a TypedArray/Buffer/
   * DataView, a SharedRegion (its data area), or `{ address, length }` for raw native memory.
   * Access defaults to local write only (least privilege): ask for `remoteRead`, `remoteWrite`
   * or `remoteAtomic` explicitly. The region keeps the JS memory reachable until it is disposed.
   */
  registerMemory(target: Registrable, access?: MemoryAccess): MemoryRegion {
    const mr = new MemoryRegion(this, this.handle, target, access);
    this.#mrs.add(mr);
    return mr;
  }

  /**
   * Create a shared receive queue (ibv_create_srq): receives posted once to it serve every queue
   * pair created with `{ srq }`. UsageError for bad options (maxWr 1..2^20, maxSge 1..255),
   * SystemError when the device refuses them (e.g. beyond context.query().maxSrqWr / maxSrqSge).
   */
  createSharedReceiveQueue(options: SharedReceiveQueueOptions): SharedReceiveQueue {
    const srq = new SharedReceiveQueue(this, this.handle, options);
    this.#srqs.add(srq);
    return srq;
  }

  /**
   * Create a queue pair (RC by default) whose completions go to the given CQs, and whose
   * receives come from `srq` when one is given.
   */
  createQueuePair(options: QueuePairOptions): QueuePair {
    const qp = QueuePair.create(this, this.handle, options);
    this.#qps.add(qp);
    return qp;
  }

  /** An address handle for UD sends to `gid` (ibv_create_ah). */
  createAddressHandle(options: AddressHandleOptions): AddressHandle {
    const ah = new AddressHandle(this, this.handle, options);
    this.#ahs.add(ah);
    return ah;
  }

  /** @internal the live queue pair or shared receive queue at this struct address, if it is one of ours. */
  findChild(address: number): QueuePair | SharedReceiveQueue | undefined {
    for (const qp of this.#qps) if (!qp.disposed && qp.handle === address) return qp;
    for (const srq of this.#srqs) if (!srq.disposed && srq.handle === address) return srq;
    return undefined;
  }

  /** @internal */
  adopt(qp: QueuePair): void {
    this.#qps.add(qp);
  }

  /** @internal */
  forget(child: MemoryRegion | QueuePair | AddressHandle | SharedReceiveQueue): void {
    if (child instanceof MemoryRegion) this.#mrs.delete(child);
    else if (child instanceof AddressHandle) this.#ahs.delete(child);
    else if (child instanceof SharedReceiveQueue) this.#srqs.delete(child);
    else this.#qps.delete(child);
  }

  /** @internal dispose the queue pairs only (the context does this before its CQs). */
  disposeQueuePairs(): void {
    const steps = new CleanupSteps();
    for (const qp of [...this.#qps]) steps.run(() => qp.dispose());
    steps.finish();
  }

  /**
   * Destroy the queue pairs, then the shared receive queues, the address handles, deregister the
   * memory regions, free the PD. Idempotent.
   */
  dispose(): void {
    const handle = this.#handle;
    if (!handle) return;
    const steps = new CleanupSteps();
    steps.run(() => this.disposeQueuePairs());
    for (const srq of [...this.#srqs]) steps.run(() => srq.dispose());
    for (const ah of [...this.#ahs]) steps.run(() => ah.dispose());
    for (const mr of [...this.#mrs]) steps.run(() => mr.dispose());
    this.#handle = 0;
    steps.run(() => checkStatus('ibv_dealloc_pd', loadVerbs().ibv_dealloc_pd(handle) as number, { pd: hex(handle) }));
    countLive('pds', -1);
    this.context.forget(this);
    steps.finish();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
