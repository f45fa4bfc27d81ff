/**
 * ShmemPool: the shared-memory node API of seed 003 for the processes of one machine — a named
 * pool with an allocator, ownership, global locks, signals and messages, all inside one
 * SharedRegion (layout.ts). Each method names the claim it implements.
 *
 * Names: where OpenSHMEM has the concept, its users' names —
 *   malloc / free                      (shmem_malloc / shmem_free)
 *   setLock / testLock / clearLock     (shmem_set_lock / shmem_test_lock / shmem_clear_lock)
 *   waitUntil, signalSet / signalAdd   (shmem_wait_until, SHMEM_SIGNAL_SET / _ADD)
 *   me, members()                      (shmem_my_pe, shmem_n_pes)
 * and memwire's own where it has none: own / transfer / owners (ownership), reserveLock /
 * releaseLockId (lock ids), signal / signalAll / waitSignal (signals to a process), send /
 * sendAll / receive (messages), reap (dead members).
 *
 * Who owns what: a block belongs to its owner set (default: the process that allocated it; an
 * empty set makes it public). Only an owner may write it through the API (write, view,
 * signalSet/Add), free it, or change its owners; anyone may read it. A member that leaves or
 * dies loses its ownership; a block left with no owner is freed. A raw view of the region
 * (pool.region) bypasses all this: ownership is enforced by the API, not by the MMU.
 *
 * Lifetime: dispose() leaves the pool (frees what this process alone owned and its unread
 * messages) and unmaps it; the creator's dispose also unlinks the name (processes still
 * attached keep their mapping). Idempotent; Symbol.dispose does the same.
 *
 * Deaths: a member may be killed at any instruction — inside malloc, free, reap or dispose —
 * and the pool stays whole: the allocator journals its updates (heap.ts), the next holder of
 * its lock repairs the heap (heap-lock.ts), departures are finished by the next reap()
 * (departures.ts). docs/shmem-recovery.md says what survives a kill where.
 *
 * Making and opening the pool's region (its header, checked on open) is pool-setup.ts.
 */
import { ClosedError, OwnershipError, UsageError } from '../errors.js';
import type { SharedRegion } from '../shm/region.js';
import { checkWaitOptions } from '../shm/futex.js';
import type { PoolContext, MemberId } from './context.js';
import { Heap, type HeapStats } from './heap.js';
import { BLOCK_KIND_MESSAGE, B_OWNERS_HI, B_OWNERS_LO, MSG_HEADER_SIZE, M_INBOX } from './layout.js';
import { leave, reapDeparted } from './departures.js';
import { HeapLock } from './heap-lock.js';
import { Locks, type LockWaitOptions, type SetLockResult, type TestLockResult } from './locks.js';
import { claimSlot, liveSlots, maskOf, membersOfMask, slotPid, type MemberInfo } from './members.js';
import { Inbox, Message } from './messages.js';
import { createPoolRegion, openPoolRegion, type PoolCreateOptions, type PoolOpenOptions } from './pool-setup.js';
import { checkComparison, Signals, type Comparison, type SignalWaitOptions } from './signals.js';

export type { PoolCreateOptions, PoolOpenOptions };

export interface MallocOptions {
  /** Who owns the block: default [this process]; [] makes it public (anyone may write or free it). */
  owners?: readonly MemberId[];
}

export interface PoolStats extends HeapStats {
  /** Members in the table (live, or dead and not yet reaped). */
  members: number;
}

export class ShmemPool {
  /** The pool's region: raw views bypass ownership checks (see the file comment). */
  readonly region: SharedRegion;
  readonly #ctx: PoolContext;
  readonly #heap: Heap;
  readonly #locks: Locks;
  readonly #signals: Signals;
  readonly #inbox: Inbox;
  readonly #heapLock: HeapLock;
  readonly #release = (offset: number) => this.free(offset);
  #disposed = false;

  /**
   * Claim 7: create a new pool named `name` (UsageError for a bad name or option, SystemError
   * EEXIST if the name is taken). The creator is its first member.
   */
  static create(name: string, options: PoolCreateOptions = {}): ShmemPool {
    const { ctx, allocatorTimeoutMs } = createPoolRegion(name, options);
    try {
      return new ShmemPool(ctx, allocatorTimeoutMs);
    } catch (error) {
      ctx.region.dispose();
      throw error;
    }
  }

  /**
   * Claim 7: open an existing pool and join it as a member. Waits up to `timeoutMs` for the
   * creator (TimeoutError); a region that is not a pool, or whose pool header is impossible, is
   * a CorruptionError; UsageError if all member slots are taken by live processes.
   */
  static open(name: string, options: PoolOpenOptions = {}): ShmemPool {
    const { ctx, allocatorTimeoutMs } = openPoolRegion(name, options);
    try {
      return new ShmemPool(ctx, allocatorTimeoutMs);
    } catch (error) {
      ctx.region.close();
      throw error;
    }
  }

  private constructor(ctx: PoolContext, allocatorTimeoutMs: number) {
    this.#ctx = ctx;
    this.region = ctx.region;
    this.#heap = new Heap(ctx);
    this.#locks = new Locks(ctx);
    this.#signals = new Signals(ctx);
    this.#inbox = new Inbox(ctx, this.#heap);
    this.#heapLock = new HeapLock(ctx, this.#locks, this.#heap, allocatorTimeoutMs);
    if (!claimSlot(ctx)) {
      throw new UsageError(
        `pool ${JSON.stringify(ctx.name)} has no free member slot (${ctx.maxMembers} members); a member's reap() frees the slots of dead ones`,
        'ERR_MEMWIRE_POOL_FULL',
      );
    }
    this.#signals.attach();
    this.#inbox.attach();
    this.reap(); // a newcomer notices members that died since anyone last looked
  }

  get name(): string {
    return this.#ctx.name;
  }

  /** This process's MemberId (OpenSHMEM: shmem_my_pe). */
  get me(): MemberId {
    return this.#ctx.me;
  }

  get disposed(): boolean {
    return this.#disposed;
  }

  #check(): void {
    if (this.#disposed) throw new ClosedError(`pool ${JSON.stringify(this.#ctx.name)}`);
  }

  // --- members -----------------------------------------------------------------------------

  /** The members in the table (OpenSHMEM: shmem_n_pes is its length). Dead ones stay until reap(). */
  members(): MemberInfo[] {
    this.#check();
    return liveSlots(this.#ctx).map((slot) => ({ id: this.#ctx.idOfSlot(slot), pid: slotPid(this.#ctx, slot), self: slot === this.#ctx.slot }));
  }

  /**
   * Find members whose process died (pid + start time), free what they alone owned and their
   * unread messages, drop them from every owner set and free their slots; also finish the
   * departures of members or reapers killed (or failed) half-way. Returns their ids.
   * Locks they held are taken over by their next acquirer ('owner-died') independently.
   * TimeoutError if the allocator's lock stays held (PoolOpenOptions.allocatorTimeoutMs).
   */
  reap(): MemberId[] {
    this.#check();
    return reapDeparted(this.#ctx, this.#heap, this.#heapLock);
  }

  // --- allocation: claims 8–12 -----------------------------------------------------------

  /**
   * Claims 8–10: reserve `size` contiguous bytes in the pool, shared by every member. Returns
   * the block's offset (in `region`, the same in every process), or -1 when no free block is
   * large enough now (after reaping dead members once). UsageError for a size that is not a
   * positive whole number or could never fit; the bytes are not zeroed.
   */
  malloc(size: number, options: MallocOptions = {}): number {
    this.#check();
    const bytes = this.#checkSize(size);
    const [lo, hi] = options.owners === undefined ? this.#myMask() : maskOf(this.#ctx, options.owners);
    this.#heapLock.lock();
    let index: number;
    try {
      index = this.#heap.alloc(bytes, lo, hi);
    } finally {
      this.#heapLock.unlock();
    }
    if (index === 0 && this.reap().length > 0) return this.malloc(size, options);
    return index === 0 ? -1 : this.#ctx.payloadOffset(index);
  }

  /**
   * Claims 11–12: release a block. UsageError ERR_MEMWIRE_BAD_OFFSET for an offset that is not
   * a block of this pool, ERR_MEMWIRE_DOUBLE_FREE for one already freed; OwnershipError if this
   * process does not own it.
   */
  free(offset: number): void {
    this.#check();
    this.#heapLock.lock();
    try {
      const index = this.#heap.usedIndex(offset, 'free');
      this.#requireOwner(index, offset, 'free');
      this.#heap.release(index);
    } finally {
      this.#heapLock.unlock();
    }
  }

  /** The usable size of a block (the size malloc was given). */
  sizeOf(offset: number): number {
    this.#check();
    return this.#heap.length(this.#heap.usedIndex(offset, 'sizeOf'));
  }

  /** A writable view of a block (owners only: OwnershipError otherwise). Valid until freed. */
  view(offset: number): Uint8Array {
    this.#check();
    const index = this.#heap.usedIndex(offset, 'view');
    this.#requireOwner(index, offset, 'view');
    return this.#ctx.region.view('uint8', offset, this.#heap.length(index));
  }

  /** Copy `data` into a block at byte `at` (owners only). */
  write(offset: number, data: Uint8Array, at = 0): void {
    this.#check();
    const index = this.#heap.usedIndex(offset, 'write');
    this.#requireOwner(index, offset, 'write');
    this.#checkRange(index, at, data.length);
    this.#ctx.region.bytes.set(data, offset + at);
  }

  /** Copy from a block at byte `at` into `into` (anyone may read). Returns the bytes copied. */
  read(offset: number, into: Uint8Array, at = 0): number {
    this.#check();
    const index = this.#heap.usedIndex(offset, 'read');
    const length = this.#heap.length(index);
    this.#checkRange(index, at, 0);
    const n = Math.min(into.length, length - at);
    into.set(this.#ctx.region.bytes.subarray(offset + at, offset + at + n));
    return n;
  }

  /** How the heap is used, with fragmentation (see HeapStats). Walks and checks the heap. */
  stats(): PoolStats {
    this.#check();
    this.#heapLock.lock();
    try {
      return { ...this.#heap.stats(), members: liveSlots(this.#ctx).length };
    } finally {
      this.#heapLock.unlock();
    }
  }

  // --- ownership: claims 13–16 (memwire's own) ---------------------------------------------

  /**
   * Claims 13–14: mark a block exclusive to `members` (default: this process). Allowed on a
   * public block, or by an owner; [] makes the block public again. OwnershipError otherwise.
   */
  own(offset: number, members: readonly MemberId[] = [this.me]): void {
    this.#check();
    const [lo, hi] = maskOf(this.#ctx, members);
    this.#heapLock.lock();
    try {
      const index = this.#heap.usedIndex(offset, 'own');
      this.#requireOwner(index, offset, 'own');
      this.#setOwners(index, lo, hi);
    } finally {
      this.#heapLock.unlock();
    }
  }

  /**
   * Claims 15–16: transfer a block from its current owner set to `to` (a non-empty set of live
   * members). Only an owner may: OwnershipError for anyone else, and for a public block.
   */
  transfer(offset: number, to: readonly MemberId[]): void {
    this.#check();
    if (!Array.isArray(to) || to.length === 0) throw new UsageError('transfer needs at least one new owner');
    const [lo, hi] = maskOf(this.#ctx, to);
    this.#heapLock.lock();
    try {
      const index = this.#heap.usedIndex(offset, 'transfer');
      const [curLo, curHi] = this.#owners(index);
      if (curLo === 0 && curHi === 0) throw new OwnershipError(`transfer: block ${offset} is public; own() it first`);
      this.#requireOwner(index, offset, 'transfer');
      this.#setOwners(index, lo, hi);
    } finally {
      this.#heapLock.unlock();
    }
  }

  /** The owners of a block ([] for a public block). */
  owners(offset: number): MemberId[] {
    this.#check();
    const [lo, hi] = this.#owners(this.#heap.usedIndex(offset, 'owners'));
    return membersOfMask(this.#ctx, lo, hi);
  }

  /** Whether this process may write a block (owner, or the block is public). */
  mayWrite(offset: number): boolean {
    this.#check();
    return this.#isOwner(this.#heap.usedIndex(offset, 'mayWrite'));
  }

  // --- global locks: claims 17–25 -----------------------------------------------------------

  /** Claims 18–19: reserve a global lock id (memwire's own; OpenSHMEM locks are symmetric variables). */
  reserveLock(): number {
    this.#check();
    return this.#locks.reserve();
  }

  /** Claims 20–21: release a lock id (UsageError while the lock is held by a live process). */
  releaseLockId(id: number): void {
    this.#check();
    this.#locks.releaseId(id);
  }

  /**
   * Claims 22–23 (shmem_set_lock): acquire lock `id`, blocking this thread. 'owner-died' means
   * the previous holder died holding it (EOWNERDEAD): the lock is now ours, the data it guards
   * may be half-updated. 'timed-out' only with `timeoutMs`. UsageError for an unknown id
   * (ERR_MEMWIRE_BAD_LOCK) or one this process already holds.
   */
  setLock(id: number, options?: LockWaitOptions): SetLockResult {
    this.#check();
    return this.#locks.acquire(id, options);
  }

  /** setLock without blocking the event loop. */
  setLockAsync(id: number, options?: LockWaitOptions): Promise<SetLockResult> {
    this.#check();
    return this.#locks.acquireAsync(id, options);
  }

  /** shmem_test_lock: acquire lock `id` if free (or its holder is gone), else 'busy'. Never waits. */
  testLock(id: number): TestLockResult {
    this.#check();
    return this.#locks.tryAcquire(id);
  }

  /** Claims 24–25 (shmem_clear_lock): release lock `id`; UsageError ERR_MEMWIRE_NOT_HOLDER if not ours. */
  clearLock(id: number): void {
    this.#check();
    this.#locks.release(id);
  }

  // --- signals: claims 26–30 ----------------------------------------------------------------

  /** Claims 27–28: signal one member (memwire's own; adds 1 to its signal counter). */
  signal(member: MemberId): void {
    this.#check();
    this.#signals.signalSlot(this.#ctx.slotOf(member));
  }

  /** Claims 29–30: signal every member (not this one unless `includeSelf`). Returns how many. */
  signalAll(options: { includeSelf?: boolean } = {}): number {
    this.#check();
    return this.#signals.signalAll(options.includeSelf ?? false);
  }

  /** Wait for signals to this process: returns how many arrived since the last wait (0 on timeout). */
  waitSignal(options?: SignalWaitOptions): number {
    this.#check();
    return this.#signals.wait(options);
  }

  /** waitSignal without blocking the event loop. */
  waitSignalAsync(options?: SignalWaitOptions): Promise<number> {
    this.#check();
    return this.#signals.waitAsync(options);
  }

  /**
   * shmem_wait_until / shmem_signal_wait_until: wait until the int32 at byte `at` of block
   * `offset` compares true against `value`. Returns false on timeout. Anyone may wait.
   */
  waitUntil(offset: number, at: number, cmp: Comparison, value: number, options: SignalWaitOptions = {}): boolean {
    this.#check();
    checkComparison(cmp);
    return this.#signals.waitUntil(this.#wordIndex(offset, at, false), cmp, value | 0, options);
  }

  waitUntilAsync(offset: number, at: number, cmp: Comparison, value: number, options: SignalWaitOptions = {}): Promise<boolean> {
    this.#check();
    checkComparison(cmp);
    checkWaitOptions(options);
    return this.#signals.waitUntilAsync(this.#wordIndex(offset, at, false), cmp, value | 0, options);
  }

  /** SHMEM_SIGNAL_SET on the int32 at byte `at` of block `offset` (owners only), waking waitUntil. */
  signalSet(offset: number, at: number, value: number): number {
    this.#check();
    return this.#signals.update(this.#wordIndex(offset, at, true), value | 0, false);
  }

  /** SHMEM_SIGNAL_ADD: add `value` to that int32 (owners only), waking waitUntil; returns the old value. */
  signalAdd(offset: number, at: number, value: number): number {
    this.#check();
    return this.#signals.update(this.#wordIndex(offset, at, true), value | 0, true);
  }

  // --- messages: claims 31–36 (memwire's own) -------------------------------------------------

  /**
   * Claims 31–33: send `data` to one member: reserve a block, copy, give it to the receiver,
   * push it onto its inbox, signal. Returns false when the pool has no room now. UsageError if
   * `to` is not a live member.
   */
  send(to: MemberId, data: Uint8Array): boolean {
    this.#check();
    const slot = this.#ctx.slotOf(to);
    const bytes = this.#checkSize(MSG_HEADER_SIZE + this.#checkData(data).length);
    this.#heapLock.lock();
    let sent = false;
    try {
      // Re-checked under the lock: a member being reaped is LEAVING, and gets nothing more.
      this.#ctx.slotOf(to);
      const index = this.#heap.alloc(bytes, slot < 32 ? 1 << slot : 0, slot < 32 ? 0 : 1 << (slot - 32), BLOCK_KIND_MESSAGE);
      if (index !== 0) {
        this.#inbox.fillAndPush(index, slot, data);
        sent = true;
      }
    } finally {
      this.#heapLock.unlock();
    }
    if (sent) this.#wakeInbox(slot);
    return sent;
  }

  /**
   * Claims 34–36: send `data` to every member (not this one unless `includeSelf`), each its own
   * copy. All or nothing: returns how many members got it, or -1 when the pool has no room for
   * every copy now.
   */
  sendAll(data: Uint8Array, options: { includeSelf?: boolean } = {}): number {
    this.#check();
    const bytes = this.#checkSize(MSG_HEADER_SIZE + this.#checkData(data).length);
    const includeSelf = options.includeSelf ?? false;
    let targets: number[] = [];
    this.#heapLock.lock();
    try {
      targets = liveSlots(this.#ctx).filter((slot) => includeSelf || slot !== this.#ctx.slot);
      const blocks: number[] = [];
      for (const slot of targets) {
        const index = this.#heap.alloc(bytes, slot < 32 ? 1 << slot : 0, slot < 32 ? 0 : 1 << (slot - 32), BLOCK_KIND_MESSAGE);
        if (index === 0) break;
        blocks.push(index);
      }
      if (blocks.length < targets.length) {
        for (const index of blocks) this.#heap.release(index);
        return -1;
      }
      for (let i = 0; i < targets.length; i++) this.#inbox.fillAndPush(blocks[i], targets[i], data);
    } finally {
      this.#heapLock.unlock();
    }
    for (const slot of targets) this.#wakeInbox(slot);
    return targets.length;
  }

  /** The oldest message for this process, or null. Release it (or `using`) to free its block. */
  tryReceive(): Message | null {
    this.#check();
    return this.#inbox.take(this.#release);
  }

  /** Wait (spin, then futex) for a message; null on timeout. */
  receive(options: SignalWaitOptions = {}): Message | null {
    this.#check();
    const first = this.#inbox.take(this.#release);
    if (first) return first;
    const woke = this.#signals.waitUntil(this.#inbox.headIndex, 'ne', 0, options, this.#inbox.waitersIndex);
    return woke ? this.#inbox.take(this.#release) : null;
  }

  /** receive() without blocking the event loop. */
  async receiveAsync(options: SignalWaitOptions = {}): Promise<Message | null> {
    this.#check();
    const first = this.#inbox.take(this.#release);
    if (first) return first;
    const woke = await this.#signals.waitUntilAsync(this.#inbox.headIndex, 'ne', 0, options, this.#inbox.waitersIndex);
    return woke ? this.#inbox.take(this.#release) : null;
  }

  // --- lifetime ---------------------------------------------------------------------------------

  /**
   * Leave the pool and unmap it; the creator also unlinks the name. Frees the blocks only this
   * process owned and its unread messages. Idempotent. The pool is unmapped even if leaving
   * fails: a TimeoutError (the allocator's lock stayed held) or CorruptionError then leaves this
   * member's slot to the next reap() of another member.
   */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    try {
      if (!this.region.closed) leave(this.#ctx, this.#heap, this.#heapLock);
    } finally {
      this.region.dispose();
    }
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  // --- internals ----------------------------------------------------------------------------------

  #myMask(): [number, number] {
    const slot = this.#ctx.slot;
    return slot < 32 ? [1 << slot, 0] : [0, 1 << (slot - 32)];
  }

  #owners(index: number): [number, number] {
    const base = this.#ctx.blockBase(index);
    return [this.#ctx.w[base + B_OWNERS_LO / 4], this.#ctx.w[base + B_OWNERS_HI / 4]];
  }

  #isOwner(index: number): boolean {
    const [lo, hi] = this.#owners(index);
    if (lo === 0 && hi === 0) return true; // public
    const slot = this.#ctx.slot;
    return (slot < 32 ? lo & (1 << slot) : hi & (1 << (slot - 32))) !== 0;
  }

  #requireOwner(index: number, offset: number, what: string): void {
    if (!this.#isOwner(index)) {
      const [lo, hi] = this.#owners(index);
      throw new OwnershipError(
        `${what}: block ${offset} of pool ${JSON.stringify(this.#ctx.name)} belongs to member(s) ${membersOfMask(this.#ctx, lo, hi).join(', ')}, not to ${this.me}`,
      );
    }
  }

  #setOwners(index: number, lo: number, hi: number): void {
    const base = this.#ctx.blockBase(index);
    this.#ctx.w[base + B_OWNERS_LO / 4] = lo;
    this.#ctx.w[base + B_OWNERS_HI / 4] = hi;
  }

  #checkSize(size: number): number {
    if (typeof size !== 'number' || !Number.isInteger(size) || size <= 0) {
      throw new UsageError(`size must be a positive whole number of bytes, got ${String(size)}`);
    }
    if (size > this.#heap.maxRequest) {
      throw new UsageError(`${size} bytes can never fit in pool ${JSON.stringify(this.#ctx.name)} (largest block ${this.#heap.maxRequest})`);
    }
    return size;
  }

  #checkData(data: Uint8Array): Uint8Array {
    if (!(data instanceof Uint8Array)) throw new UsageError('data must be a Uint8Array');
    return data;
  }

  #checkRange(index: number, at: number, length: number): void {
    const size = this.#heap.length(index);
    if (!Number.isInteger(at) || at < 0 || at + length > size) {
      throw new UsageError(`range ${String(at)}..${at + length} is outside the block's ${size} bytes`);
    }
  }

  /** Word index of the int32 at byte `at` of block `offset`, checked (and write permission if `write`). */
  #wordIndex(offset: number, at: number, write: boolean): number {
    const index = this.#heap.usedIndex(offset, write ? 'signal' : 'waitUntil');
    if (write) this.#requireOwner(index, offset, 'signal');
    if (!Number.isInteger(at) || at % 4 !== 0) throw new UsageError(`word offset ${String(at)} must be a multiple of 4`);
    this.#checkRange(index, at, 4);
    return (offset + at) >>> 2;
  }

  #wakeInbox(slot: number): void {
    if (this.#inbox.hasWaiter(slot)) this.#ctx.futex(this.#ctx.memberOffset(slot) + M_INBOX).wake();
  }

}

