/**
 * MemoryRegion (struct ibv_mr): memory registered with the NIC. Holds a strong reference to the
 * JS memory it covers (ArrayBuffer, view, SharedRegion) for as long as the region exists, and
 * the queue pairs keep the region itself reachable until every work request that uses it has
 * completed — so no memory the NIC may still DMA is ever collected.
 */
import { backend } from '../../ffi/backend.js';
import { C, IBV_MR } from '../../ffi/verbs-layout.js';
import { ClosedError, UsageError } from '../errors.js';
import { loadVerbs } from './device.js';
import { countLive } from './live.js';
import { checkPointer, checkStatus, getU64, hex } from './native.js';
import type { ProtectionDomain } from './protection-domain.js';

/** Native memory: an address and a length (the caller keeps it mapped while registered). */
export interface RawMemory {
  readonly address: number;
  readonly length: number;
}
/** Anything with a data address and size, e.g. a SharedRegion. */
export interface SizedMemory {
  readonly address: number;
  readonly size: number;
  readonly closed?: boolean;
}
export type Registrable = ArrayBuffer | ArrayBufferView | SizedMemory | RawMemory;

/**
 * Access rights. Default: `{ localWrite: true }` only. Remote write and remote atomic imply local
 * write (the verbs rule); asking for them with `localWrite: false` is a UsageError.
 */
export interface MemoryAccess {
  readonly localWrite?: boolean;
  readonly remoteRead?: boolean;
  readonly remoteWrite?: boolean;
  readonly remoteAtomic?: boolean;
  /**
   * The address peers (and SGEs) use for the first byte (ibv_reg_mr_iova2). Default: the memory's
   * own address. 0 makes a remote address an offset into the memory, so it can be announced
   * without revealing where it is mapped.
   */
  readonly iova?: number;
}

/** What a peer needs to RDMA into or out of a region. */
export interface RemoteMemory {
  readonly addr: number;
  readonly rkey: number;
  readonly length: number;
}

function accessFlags(access: MemoryAccess | undefined): number {
  const a = access ?? {};
  const needsLocalWrite = a.remoteWrite || a.remoteAtomic;
  if (needsLocalWrite && a.localWrite === false) {
    throw new UsageError('remoteWrite and remoteAtomic need localWrite (IBV_ACCESS_LOCAL_WRITE); do not set localWrite: false with them');
  }
  let flags = 0;
  if (a.localWrite !== false || needsLocalWrite) flags |= C.IBV_ACCESS_LOCAL_WRITE;
  if (a.remoteRead) flags |= C.IBV_ACCESS_REMOTE_READ;
  if (a.remoteWrite) flags |= C.IBV_ACCESS_REMOTE_WRITE;
  if (a.remoteAtomic) flags |= C.IBV_ACCESS_REMOTE_ATOMIC;
  return flags;
}

function describeAccess(flags: number): string {
  const names: string[] = [];
  if (flags & C.IBV_ACCESS_LOCAL_WRITE) names.push('LOCAL_WRITE');
  if (flags & C.IBV_ACCESS_REMOTE_READ) names.push('REMOTE_READ');
  if (flags & C.IBV_ACCESS_REMOTE_WRITE) names.push('REMOTE_WRITE');
  if (flags & C.IBV_ACCESS_REMOTE_ATOMIC) names.push('REMOTE_ATOMIC');
  return names.join('|') || '0';
}

function resolve(target: Registrable): { address: number; length: number; kind: string } {
  if (target instanceof ArrayBuffer) {
    if (target.byteLength === 0) throw new UsageError('cannot register an empty ArrayBuffer');
    return { address: backend.addressOf(target), length: target.byteLength, kind: 'ArrayBuffer' };
  }
  if (ArrayBuffer.isView(target)) {
    if (target.byteLength === 0) throw new UsageError(`cannot register an empty ${target.constructor.name}`);
    return { address: backend.addressOf(target), length: target.byteLength, kind: target.constructor.name };
  }
  if (target && typeof target === 'object' && typeof (target as RawMemory).address === 'number') {
    const t = target as Partial<RawMemory & SizedMemory>;
    if (t.closed) throw new ClosedError('memory to register (its region is closed)');
    const length = typeof t.length === 'number' ? t.length : t.size;
    if (!Number.isSafeInteger(t.address) || t.address! <= 0) throw new UsageError(`address must be a positive integer, got ${t.address}`);
    if (!Number.isSafeInteger(length) || length! <= 0) throw new UsageError(`length must be a positive integer, got ${length}`);
    return { address: t.address!, length: length!, kind: typeof t.length === 'number' ? 'raw memory' : (target.constructor?.name ?? 'memory') };
  }
  throw new UsageError('registerMemory needs an ArrayBuffer, a TypedArray/Buffer/DataView, a SharedRegion or { address, length }');
}

export class MemoryRegion {
  readonly pd: ProtectionDomain;
  /** Start address of the registered memory (what `addr` fields of SGEs and RDMA ops use). */
  readonly addr: number;
  readonly length: number;
  readonly lkey: number;
  readonly rkey: number;
  /** IBV_ACCESS_* flags it was registered with. */
  readonly accessFlags: number;
  /** The JS object it covers: kept reachable while the region lives (and while posted). */
  readonly target: Registrable;
  #handle: number;

  /** @internal use pd.registerMemory(). */
  constructor(pd: ProtectionDomain, pdHandle: number, target: Registrable, access?: MemoryAccess) {
    const flags = accessFlags(access);
    const { address, length, kind } = resolve(target);
    const iova = access?.iova;
    if (iova !== undefined && (!Number.isSafeInteger(iova) || iova < 0)) throw new UsageError(`iova must be a non-negative safe integer, got ${iova}`);
    const v = loadVerbs();
    const handle = checkPointer(
      iova === undefined ? 'ibv_reg_mr' : 'ibv_reg_mr_iova2',
      (iova === undefined ? v.ibv_reg_mr(pdHandle, address, length, flags) : v.ibv_reg_mr_iova2(pdHandle, address, length, iova, flags)) as number,
      { pd: hex(pdHandle), addr: hex(address), length, ...(iova === undefined ? {} : { iova }), access: describeAccess(flags), memory: kind },
    );
    this.pd = pd;
    this.target = target;
    this.#handle = handle;
    this.accessFlags = flags;
    const mr = new DataView(backend.view(handle, IBV_MR.size));
    // struct ibv_mr's addr is the process address even with an iova; SGEs and peers use the iova.
    this.addr = iova ?? getU64(mr, IBV_MR.fields.addr);
    this.length = getU64(mr, IBV_MR.fields.length);
    this.lkey = mr.getUint32(IBV_MR.fields.lkey, true);
    this.rkey = mr.getUint32(IBV_MR.fields.rkey, true);
    countLive('mrs', 1);
  }

  /** The struct ibv_mr address. ClosedError once disposed. */
  get handle(): number {
    if (!this.#handle) throw new ClosedError('memory region');
    return this.#handle;
  }

  get disposed(): boolean {
    return this.#handle === 0;
  }

  /** What a peer needs to reach this region ({ addr, rkey, length }), to send out of band. */
  remote(): RemoteMemory {
    this.handle;
    return { addr: this.addr, rkey: this.rkey, length: this.length };
  }

  /** Deregister (ibv_dereg_mr). Idempotent. Work requests still in flight fail with a protection error. */
  dispose(): void {
    const handle = this.#handle;
    if (!handle) return;
    this.#handle = 0;
    countLive('mrs', -1);
    this.pd.forget(this);
    checkStatus('ibv_dereg_mr', loadVerbs().ibv_dereg_mr(handle) as number, { mr: hex(handle), lkey: this.lkey });
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
