/**
 * RegisteredHeap: dynamic RDMA registration (seed 004). A heap shared by the processes of a node
 * that grows by blocks obtained from the OS (each block its own shm object) and shrinks by giving
 * wholly free blocks back; a shared descriptor table lists the blocks (FIG. 2); each process keeps
 * a private registration table index-aligned with it (FIG. 4) and registers a block lazily, the
 * first time it allocates from it or looks it up (claim 1, FIG. 7).
 *
 * Stale registrations (claims 2, 3, [0027]–[0028]): a process compares its entry's blockId with
 * the descriptor's on every use; a blockId is never reused, so a mismatch means the block it
 * registered was released (and maybe another took the slot): it deregisters, unmaps, and maps and
 * registers the current block. Releasing a block deregisters only the releaser's own registration
 * (claim 1's "other registrations remain"): no process ever waits for another ([0025]).
 *
 * Policy for giving memory back: a block whose last allocation is freed is released at once if
 * it is larger than the standard block (a big allocation got a block of its own), or if more
 * than `keepFreeBlocks` wholly free blocks would otherwise stay; trim() releases them all.
 *
 * Concurrency: every change to the descriptor table and to a block's allocator happens under one
 * robust lock in the control region (src/shmem/locks.ts); a process that dies holding it leaves
 * the next holder 'owner-died', which repairs (#repair). The lookup hit path takes no lock: it
 * reads the descriptor's state and blockId words.
 *
 * Only memory freed through this heap is tracked: memory unmapped or reused any other way is
 * invisible to it (the caches of UCX or Open MPI watch munmap/brk for that; this one does not).
 */
import { ClosedError, CorruptionError, SystemError, UsageError } from '../errors.js';
import { SharedRegion } from '../shm/region.js';
import { PoolContext } from '../shmem/context.js';
import { allocatorLockIndex, Locks } from '../shmem/locks.js';
import { abandonedClaim, claimSlot, freeSlot, slotProcessAlive, undoClaim } from '../shmem/members.js';
import { B_OWNERS_HI, B_OWNERS_LO, B_SIZE, GRANULE, MAX_MEMBERS, MEMBER_LEAVING, MEMBER_LIVE, M_STATE } from '../shmem/layout.js';
import { BlockMapping, blockBytesFor, heapGranulesOf, MAX_REQUEST } from './block.js';
import { DescriptorTable } from './descriptors.js';
import { HeapBuffer, type RegisteredHeapOpenOptions, type RegisteredHeapOptions, type RegisteredHeapStats, type RegisteredRange } from './types.js';
import {
  blockRegionName, C_BLOCK_BYTES, C_CREATOR_PID, C_DESCRIPTOR_OFFSET, C_INIT, C_KEEP_FREE, C_LOCK_TABLE, C_MAGIC,
  C_MAX_BLOCKS, C_MAX_MEMBERS, C_NEXT_ID_LO, C_VERSION, controlGeometry, D_EMPTY, D_GROWING, D_ID_HI, D_ID_LO, D_LIVE,
  D_RELEASING, D_STATE, MAX_BLOCK_BYTES, MAX_BLOCKS, MIN_BLOCK_BYTES, PAGE, RC_CONTENT_TAG, RC_LAYOUT_VERSION, RC_MAGIC, READY,
} from './layout.js';
import { noneRegistrar, type Registrar } from './registrar.js';
import type { MemoryRegion } from '../verbs/memory-region.js';

export { HeapBuffer };
export type { RegisteredHeapOpenOptions, RegisteredHeapOptions, RegisteredHeapStats, RegisteredRange };
import { selfPid } from '../shm/process-identity.js';

const DEFAULTS = { blockBytes: 4 << 20, maxBlocks: 256, maxMembers: 16, keepFreeBlocks: 1, mode: 0o600 };
const MAX_NAME = 180;

function checkInt(what: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new UsageError(`${what} must be a whole number within ${min}..${max}, got ${String(value)}`);
  }
  return value;
}

export class RegisteredHeap {
  readonly name: string;
  readonly registrar: Registrar;
  readonly isCreator: boolean;
  readonly blockBytes: number;
  readonly maxBlocks: number;
  readonly keepFreeBlocks: number;
  readonly #control: SharedRegion;
  readonly #ctx: PoolContext;
  readonly #locks: Locks;
  readonly #lockIndex: number;
  readonly #table: DescriptorTable;
  readonly #mode: number;
  /** The private registration table, index-aligned with the descriptor table (FIG. 4). */
  readonly #mine: (BlockMapping | undefined)[];
  #hint = 0;
  #disposed = false;
  readonly #counts = { registrations: 0, deregistrations: 0, hits: 0, misses: 0, stalePurges: 0, releases: 0 };

  private constructor(control: SharedRegion, registrar: Registrar, isCreator: boolean, mode: number) {
    const w = control.int32;
    this.name = control.name;
    this.registrar = registrar;
    this.isCreator = isCreator;
    this.#control = control;
    this.#mode = mode;
    this.blockBytes = w[C_BLOCK_BYTES / 4];
    this.maxBlocks = w[C_MAX_BLOCKS / 4];
    this.keepFreeBlocks = w[C_KEEP_FREE / 4];
    const maxMembers = w[C_MAX_MEMBERS / 4];
    const { lockTableOffset, descriptorOffset } = controlGeometry(maxMembers, this.maxBlocks);
    this.#ctx = new PoolContext(control, { maxMembers, maxLocks: 1, lockTableOffset, heapOffset: descriptorOffset, heapGranules: 0 });
    this.#locks = new Locks(this.#ctx);
    this.#lockIndex = allocatorLockIndex(this.#ctx);
    this.#table = new DescriptorTable(this.name, w, descriptorOffset, this.maxBlocks);
    this.#mine = new Array<BlockMapping | undefined>(this.maxBlocks).fill(undefined);
    if (!claimSlot(this.#ctx)) {
      throw new UsageError(`registered heap ${JSON.stringify(this.name)} has ${maxMembers} processes already; reap() frees the slots of dead ones`, 'ERR_MEMWIRE_HEAP_MEMBERS');
    }
  }

  /**
   * Create the heap's control region `name` (empty: blocks come on the first malloc). The
   * creator owns every name of the heap and removes them all on dispose. UsageError for bad
   * options, SystemError if the region cannot be made (EEXIST if the name is taken).
   */
  static create(name: string, options: RegisteredHeapOptions = {}): RegisteredHeap {
    if (typeof name !== 'string' || name.length > MAX_NAME) throw new UsageError(`heap name must be a string of at most ${MAX_NAME} characters`);
    const blockBytes = checkInt('blockBytes', options.blockBytes ?? DEFAULTS.blockBytes, MIN_BLOCK_BYTES, MAX_BLOCK_BYTES);
    if (blockBytes % PAGE !== 0) throw new UsageError(`blockBytes must be a multiple of ${PAGE}, got ${blockBytes}`);
    const maxBlocks = checkInt('maxBlocks', options.maxBlocks ?? DEFAULTS.maxBlocks, 1, MAX_BLOCKS);
    const maxMembers = checkInt('maxMembers', options.maxMembers ?? DEFAULTS.maxMembers, 1, MAX_MEMBERS);
    const keepFree = checkInt('keepFreeBlocks', options.keepFreeBlocks ?? DEFAULTS.keepFreeBlocks, 0, maxBlocks);
    const mode = options.mode ?? DEFAULTS.mode;
    const { lockTableOffset, descriptorOffset, controlBytes } = controlGeometry(maxMembers, maxBlocks);
    const control = SharedRegion.create(name, controlBytes, { contentTag: RC_CONTENT_TAG, contentVersion: RC_LAYOUT_VERSION, mode });
    try {
      const w = control.int32;
      w[C_MAGIC / 4] = RC_MAGIC;
      w[C_VERSION / 4] = RC_LAYOUT_VERSION;
      w[C_MAX_BLOCKS / 4] = maxBlocks;
      w[C_MAX_MEMBERS / 4] = maxMembers;
      w[C_BLOCK_BYTES / 4] = blockBytes;
      w[C_KEEP_FREE / 4] = keepFree;
      w[C_DESCRIPTOR_OFFSET / 4] = descriptorOffset;
      w[C_LOCK_TABLE / 4] = lockTableOffset;
      w[C_CREATOR_PID / 4] = selfPid;
      w[C_NEXT_ID_LO / 4] = 1; // blockIds start at 1: 0 in a private table means "none" ([0039])
      // Ordering point: every field above is visible before initState says READY.
      Atomics.store(w, C_INIT / 4, READY);
      return new RegisteredHeap(control, options.registrar ?? noneRegistrar, true, mode);
    } catch (error) {
      control.dispose();
      throw error;
    }
  }

  /** Open a heap another process created. CorruptionError for a control region that is not one. */
  static open(name: string, options: RegisteredHeapOpenOptions = {}): RegisteredHeap {
    const timeoutMs = options.timeoutMs ?? 2000;
    const control = SharedRegion.open(name, { contentTag: RC_CONTENT_TAG, contentVersion: RC_LAYOUT_VERSION, timeoutMs });
    try {
      const w = control.int32;
      const deadline = Date.now() + timeoutMs;
      while (Atomics.load(w, C_INIT / 4) !== READY && Date.now() < deadline) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
      // Ordering point: READY was loaded before the parameters below are read.
      if (Atomics.load(w, C_INIT / 4) !== READY) throw new CorruptionError(name, `registered heap not initialised within ${timeoutMs} ms`);
      if (w[C_MAGIC / 4] !== RC_MAGIC || w[C_VERSION / 4] !== RC_LAYOUT_VERSION) throw new CorruptionError(name, 'not a registered heap of this version');
      const maxBlocks = w[C_MAX_BLOCKS / 4];
      const maxMembers = w[C_MAX_MEMBERS / 4];
      const blockBytes = w[C_BLOCK_BYTES / 4];
      if (maxBlocks < 1 || maxBlocks > MAX_BLOCKS || maxMembers < 1 || maxMembers > MAX_MEMBERS) {
        throw new CorruptionError(name, `maxBlocks ${maxBlocks}, maxMembers ${maxMembers}`);
      }
      if (blockBytes < MIN_BLOCK_BYTES || blockBytes > MAX_BLOCK_BYTES || blockBytes % PAGE !== 0) throw new CorruptionError(name, `blockBytes ${blockBytes}`);
      const keepFree = w[C_KEEP_FREE / 4];
      if (keepFree < 0 || keepFree > maxBlocks) throw new CorruptionError(name, `keepFreeBlocks ${keepFree}`);
      const geometry = controlGeometry(maxMembers, maxBlocks);
      if (w[C_DESCRIPTOR_OFFSET / 4] !== geometry.descriptorOffset || w[C_LOCK_TABLE / 4] !== geometry.lockTableOffset || geometry.controlBytes > control.size) {
        throw new CorruptionError(name, 'table offsets do not match the heap parameters');
      }
      const heap = new RegisteredHeap(control, options.registrar ?? noneRegistrar, false, 0o600);
      heap.reap(); // a newcomer notices processes that died since anyone last looked
      return heap;
    } catch (error) {
      control.close();
      throw error;
    }
  }

  get disposed(): boolean {
    return this.#disposed;
  }

  #check(): void {
    if (this.#disposed) throw new ClosedError(`registered heap ${JSON.stringify(this.name)}`);
  }

  // --- allocation ---------------------------------------------------------------------------

  /**
   * Allocate `size` bytes (1 ≤ size ≤ 1 GiB − header). Returns a HeapBuffer whose block is mapped
   * and registered in this process, growing the heap by a block from the OS when no block has
   * room; null when the descriptor table is full. Throws UsageError for a bad size,
   * MemlockLimitError/SystemError if the registration fails (nothing stays allocated then).
   */
  malloc(size: number): HeapBuffer | null {
    this.#check();
    if (typeof size !== 'number' || !Number.isInteger(size) || size < 1 || size > MAX_REQUEST) {
      throw new UsageError(`malloc size must be a whole number of bytes within 1..${MAX_REQUEST}, got ${String(size)}`);
    }
    const lo = this.#ctx.slot < 32 ? 1 << this.#ctx.slot : 0;
    const hi = this.#ctx.slot < 32 ? 0 : 1 << (this.#ctx.slot - 32);
    this.#lock();
    try {
      let found = this.#allocInExisting(size, lo, hi);
      if (!found) {
        const block = this.#grow(size);
        if (!block) return null;
        found = this.#allocIn(block, size, lo, hi);
        if (!found) throw new CorruptionError(this.name, `a fresh block of ${block.region.size} bytes could not hold ${size}`);
      }
      const [block, index] = found;
      try {
        this.#use(block);
      } catch (error) {
        // Nothing stays allocated when this process cannot register the block (e.g. memlock).
        this.#releaseIndex(block, index);
        this.#applyPolicy(block.slot);
        throw error;
      }
      const offset = block.ctx.payloadOffset(index);
      return new HeapBuffer(block.slot, block.blockId, offset, size, block.data(offset, size), block);
    } finally {
      this.#unlock();
    }
  }

  /**
   * Free an allocation. UsageError if it is not one of this heap's live allocations (double free,
   * a block released meanwhile). A block left wholly free may be given back to the OS (policy above).
   */
  free(buffer: HeapBuffer): void {
    this.#check();
    if (!(buffer instanceof HeapBuffer)) throw new UsageError('free needs a HeapBuffer from malloc');
    this.#lock();
    try {
      const block = this.#current(buffer.block);
      if (!block || block.blockId !== buffer.blockId) {
        throw new UsageError(`free: block ${buffer.blockId} of this buffer is no longer in the heap (already freed?)`, 'ERR_MEMWIRE_DOUBLE_FREE');
      }
      if (block !== buffer.owner) throw foreignBuffer('free');
      this.#releaseIndex(block, block.heap.usedIndex(buffer.offset, 'free'));
      this.#applyPolicy(block.slot);
    } finally {
      this.#unlock();
    }
  }

  /**
   * The live allocation at (`block`, `offset`) — as another process of the node names it — as a
   * HeapBuffer over this process's mapping (mapping the block, purging a stale entry). UsageError
   * if no allocation starts there.
   */
  at(block: number, offset: number): HeapBuffer {
    this.#check();
    this.#lock();
    try {
      const mapping = this.#current(block);
      if (!mapping) throw new UsageError(`block slot ${block} holds no block`, 'ERR_MEMWIRE_BAD_OFFSET');
      const index = mapping.heap.usedIndex(offset, 'at');
      const length = mapping.heap.length(index);
      return new HeapBuffer(block, mapping.blockId, offset, length, mapping.data(offset, length), mapping);
    } finally {
      this.#unlock();
    }
  }

  /**
   * Keys and addresses for posting `buffer` (or `length` bytes of it from `at`): a hit compares
   * this process's entry with the descriptor and returns; a miss registers; a stale entry is
   * purged first. UsageError if the buffer's block is gone (it was freed) or the range is outside it.
   */
  lookup(buffer: HeapBuffer, at = 0): RegisteredRange {
    const slot = buffer.block;
    const block = this.#mine[slot];
    const table = this.#table;
    const d = table.at(slot, 0);
    const w = table.w;
    // Hot path: the entry is current iff the descriptor is LIVE with the entry's blockId.
    if (
      block !== undefined &&
      block.registration !== undefined &&
      block === buffer.owner &&
      Atomics.load(w, d + D_STATE / 4) === D_LIVE &&
      w[d + D_ID_LO / 4] === block.idLo &&
      w[d + D_ID_HI / 4] === block.idHi &&
      at >>> 0 === at &&
      at < buffer.length
    ) {
      this.#counts.hits++;
      const r = block.registration;
      // The whole buffer's answer is kept on it: a hit allocates nothing (no GC pauses in posting loops).
      if (at === 0 && buffer.cachedFrom === r) return buffer.cachedRange!;
      const offset = buffer.offset + at;
      const range = { lkey: r.lkey, rkey: r.rkey, address: block.region.address + offset, remoteAddr: r.iova + offset, block: slot, blockId: block.blockId, offset, mr: r.mr };
      if (at === 0) {
        buffer.cachedRange = range;
        buffer.cachedFrom = r;
      }
      return range;
    }
    return this.#lookupSlow(buffer, at);
  }

  #lookupSlow(buffer: HeapBuffer, at: number): RegisteredRange {
    this.#check();
    if (!(buffer instanceof HeapBuffer)) throw new UsageError('lookup needs a HeapBuffer from malloc');
    if (!Number.isInteger(at) || at < 0 || at >= buffer.length) throw new UsageError(`lookup offset ${String(at)} is outside the buffer's ${buffer.length} bytes`);
    this.#lock();
    try {
      const block = this.#current(buffer.block);
      if (!block || block.blockId !== buffer.blockId) {
        throw new UsageError(`lookup: block ${buffer.blockId} of this buffer is no longer in the heap (it was freed)`, 'ERR_MEMWIRE_BAD_OFFSET');
      }
      if (block !== buffer.owner) throw foreignBuffer('lookup');
      const r = this.#use(block);
      const offset = buffer.offset + at;
      return { lkey: r.lkey, rkey: r.rkey, address: block.region.address + offset, remoteAddr: r.iova + offset, block: block.slot, blockId: block.blockId, offset, mr: r.mr };
    } finally {
      this.#unlock();
    }
  }

  /**
   * The whole of block `slot` as registered in this process (mapping and registering it now if
   * needed, purging a stale entry): what an agent exposes to peers. undefined if the slot is empty.
   */
  lookupBlock(slot: number): { blockId: number; bytes: number; lkey: number; rkey: number; iova: number; address: number; mr: MemoryRegion | undefined } | undefined {
    this.#check();
    checkInt('block slot', slot, 0, this.maxBlocks - 1);
    this.#lock();
    try {
      const block = this.#current(slot);
      if (!block) return undefined;
      const r = this.#use(block);
      return { blockId: block.blockId, bytes: block.region.size, lkey: r.lkey, rkey: r.rkey, iova: r.iova, address: block.region.address, mr: r.mr };
    } finally {
      this.#unlock();
    }
  }

  /** Give every wholly free block back to the OS now; returns how many. */
  trim(): number {
    this.#check();
    this.#lock();
    try {
      let released = 0;
      for (let slot = 0; slot < this.maxBlocks; slot++) {
        if (this.#table.state(slot) === D_LIVE && this.#table.allocs(slot) === 0) {
          this.#releaseBlock(slot);
          released++;
        }
      }
      return released;
    } finally {
      this.#unlock();
    }
  }

  /**
   * Find processes of this heap that died, free the allocations they made (their registrations
   * died with them: the kernel frees a dead process's MRs) and free their member slots.
   * Returns how many were reaped.
   */
  reap(): number {
    this.#check();
    const ctx = this.#ctx;
    // A departure runs under this heap's lock from start to end (as a ShmemPool's does), so a
    // LEAVING slot seen under the lock is one whose owner or reaper died mid-departure: finish it.
    this.#lock();
    try {
      const slots: number[] = [];
      for (let slot = 0; slot < ctx.maxMembers; slot++) {
        if (slot === ctx.slot) continue;
        const stateIndex = ctx.memberBase(slot) + M_STATE / 4;
        const state = Atomics.load(ctx.w, stateIndex);
        if (state === MEMBER_LEAVING) slots.push(slot);
        else if (state === MEMBER_LIVE && !slotProcessAlive(ctx, slot)) {
          if (Atomics.compareExchange(ctx.w, stateIndex, MEMBER_LIVE, MEMBER_LEAVING) === MEMBER_LIVE) slots.push(slot);
        } else if (abandonedClaim(ctx, slot, state)) {
          undoClaim(ctx, slot, state); // killed while claiming its slot: it held nothing yet
        }
      }
      if (slots.length === 0) return 0;
      this.#freeOwnedBy(slots);
      for (const slot of slots) freeSlot(ctx, slot);
      return slots.length;
    } finally {
      this.#unlock();
    }
  }

  stats(): RegisteredHeapStats {
    this.#check();
    let liveBlocks = 0;
    let liveBytes = 0;
    let allocations = 0;
    const table = this.#table;
    for (let slot = 0; slot < this.maxBlocks; slot++) {
      if (table.state(slot) !== D_LIVE) continue;
      liveBlocks++;
      liveBytes += table.bytes(slot);
      allocations += table.allocs(slot);
    }
    let mappedBlocks = 0;
    let registeredBlocks = 0;
    let registeredBytes = 0;
    for (const block of this.#mine) {
      if (!block) continue;
      mappedBlocks++;
      if (block.registration) {
        registeredBlocks++;
        registeredBytes += block.region.size;
      }
    }
    return { ...this.#counts, mappedBlocks, registeredBlocks, registeredBytes, liveBlocks, liveBytes, allocations, ...table.counters() };
  }

  /**
   * This process leaves: the allocations it made are freed, every registration it holds is given
   * back and every block unmapped (buffers' views then read zeros). The creator also removes the
   * names of the control region and of every block (processes still mapping them keep their pages
   * until they leave). Idempotent.
   */
  dispose(): void {
    if (this.#disposed) return;
    const errors: unknown[] = [];
    const step = (fn: () => void) => {
      try {
        fn();
      } catch (error) {
        errors.push(error);
      }
    };
    step(() => {
      const ctx = this.#ctx;
      this.#lock();
      try {
        // LIVE → LEAVING → FREE all under the lock: a death between them leaves a LEAVING slot that
        // the next reap() finishes (see reap()).
        const stateIndex = ctx.memberBase(ctx.slot) + M_STATE / 4;
        if (Atomics.compareExchange(ctx.w, stateIndex, MEMBER_LIVE, MEMBER_LEAVING) !== MEMBER_LIVE) return;
        this.#freeOwnedBy([ctx.slot]);
        freeSlot(ctx, ctx.slot);
      } finally {
        this.#unlock();
      }
    });
    for (let slot = 0; slot < this.maxBlocks; slot++) step(() => this.#purge(slot));
    if (this.isCreator) {
      for (let slot = 0; slot < this.maxBlocks; slot++) {
        step(() => {
          if (this.#table.state(slot) !== D_EMPTY) unlinkQuietly(blockRegionName(this.name, this.#table.blockId(slot)));
        });
      }
    }
    this.#disposed = true;
    step(() => this.#control.dispose());
    if (errors.length > 0) throw errors[0];
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  // --- the private registration table ----------------------------------------------------------

  /**
   * This process's entry for the block descriptor `slot` names now (claims 2, 3, FIG. 7): the
   * descriptor is checked (shared memory is untrusted), a stale entry is purged, the current
   * block mapped. undefined when the slot holds no live block. Under the lock.
   */
  #current(slot: number): BlockMapping | undefined {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.maxBlocks) throw new UsageError(`block slot ${String(slot)} is outside 0..${this.maxBlocks - 1}`);
    const table = this.#table;
    const state = table.state(slot);
    const mine = this.#mine[slot];
    if (state !== D_LIVE) {
      table.checkState(slot, state);
      if (mine) this.#purgeStale(slot);
      return undefined;
    }
    if (mine && mine.idLo === table.idLo(slot) && mine.idHi === table.idHi(slot)) return mine;
    const live = table.checkedLive(slot, mine?.blockId);
    for (let other = 0; other < this.maxBlocks; other++) {
      const entry = this.#mine[other];
      if (other !== slot && entry !== undefined && entry.blockId === live.blockId && table.state(other) === D_LIVE && table.blockId(other) === live.blockId) {
        throw table.corrupt(`descriptors ${other} and ${slot} both name block ${live.blockId}`);
      }
    }
    if (mine) this.#purgeStale(slot);
    const block = BlockMapping.open(this.name, slot, live.idLo, live.idHi, live.bytes);
    this.#mine[slot] = block;
    return block;
  }

  /** Register `block` in this process if it is not yet (a miss), else count a hit. */
  #use(block: BlockMapping): NonNullable<BlockMapping['registration']> {
    if (block.registration) {
      this.#counts.hits++;
      return block.registration;
    }
    this.#counts.misses++;
    const registration = this.registrar.register({ region: block.region, blockId: block.blockId, slot: block.slot });
    block.registration = registration;
    this.#counts.registrations++;
    return registration;
  }

  /** Drop this process's entry at `slot` (deregister, unmap): stale, released, or leaving. */
  #purge(slot: number): void {
    const block = this.#mine[slot];
    if (!block) return;
    this.#mine[slot] = undefined;
    const registration = block.registration;
    block.registration = undefined;
    try {
      if (registration) {
        this.#counts.deregistrations++;
        this.registrar.deregister(registration);
      }
    } finally {
      block.close();
    }
  }

  #purgeStale(slot: number): void {
    this.#counts.stalePurges++;
    this.#purge(slot);
  }

  // --- growing, allocating, shrinking (under the lock) ----------------------------------------

  #allocInExisting(size: number, lo: number, hi: number): [BlockMapping, number] | undefined {
    const need = Math.max(3, 2 + Math.ceil(size / GRANULE));
    const table = this.#table;
    for (let k = 0; k < this.maxBlocks; k++) {
      const slot = (this.#hint + k) % this.maxBlocks;
      // The descriptor's counts let full blocks be skipped without mapping them.
      if (table.stateLocked(slot) !== D_LIVE || heapGranulesOf(table.bytes(slot)) - 1 - table.usedGranules(slot) < need) continue;
      const block = this.#current(slot);
      if (!block) continue;
      const found = this.#allocIn(block, size, lo, hi);
      if (found) return found;
    }
    return undefined;
  }

  #allocIn(block: BlockMapping, size: number, lo: number, hi: number): [BlockMapping, number] | undefined {
    const index = block.heap.alloc(size, lo, hi);
    if (index === 0) return undefined;
    this.#table.count(block.slot, 1, block.ctx.w[block.ctx.blockBase(index) + B_SIZE / 4]);
    this.#hint = block.slot;
    return [block, index];
  }

  #releaseIndex(block: BlockMapping, index: number): void {
    const granules = block.ctx.w[block.ctx.blockBase(index) + B_SIZE / 4];
    block.heap.release(index);
    this.#table.count(block.slot, -1, granules);
  }

  /** FIG. 6: obtain a block from the OS and insert its descriptor; undefined when the table is full. */
  #grow(size: number): BlockMapping | undefined {
    const table = this.#table;
    const slot = table.emptySlot();
    if (slot < 0) return undefined;
    const { idLo, idHi } = table.beginGrow(slot);
    // Claim 3: the OS gives this process a block: a different registration at this slot is stale.
    if (this.#mine[slot]) this.#purgeStale(slot);
    const bytes = blockBytesFor(size, this.blockBytes);
    let block: BlockMapping;
    try {
      block = BlockMapping.create(this.name, slot, idLo, idHi, bytes, this.#mode);
    } catch (error) {
      table.empty(slot, false);
      throw error;
    }
    table.finishGrow(slot, bytes);
    this.#mine[slot] = block;
    return block;
  }

  /** After a free left block `slot` wholly free: give it back if the policy says so. */
  #applyPolicy(slot: number): void {
    const table = this.#table;
    if (table.state(slot) !== D_LIVE || table.allocs(slot) !== 0) return;
    if (table.bytes(slot) > this.blockBytes || table.whollyFree() > this.keepFreeBlocks) this.#releaseBlock(slot);
  }

  /**
   * [0046]: release a wholly free block to the OS. Only this process's registration is given
   * back; every other process's stays in its table until its next use finds it stale.
   */
  #releaseBlock(slot: number): void {
    const name = blockRegionName(this.name, this.#table.blockId(slot));
    this.#table.beginRelease(slot);
    if (this.#mine[slot]) {
      this.#counts.releases++;
      this.#purge(slot);
    }
    unlinkQuietly(name);
    this.#table.empty(slot, true);
  }

  /** Free the allocations owned only by member `slots`, dropping them from shared owner sets. */
  #freeOwnedBy(slots: readonly number[]): void {
    let clearLo = 0;
    let clearHi = 0;
    for (const s of slots) {
      if (s < 32) clearLo |= 1 << s;
      else clearHi |= 1 << (s - 32);
    }
    for (let slot = 0; slot < this.maxBlocks; slot++) {
      if (this.#table.state(slot) !== D_LIVE || this.#table.allocs(slot) === 0) continue;
      const block = this.#current(slot);
      if (!block) continue;
      const orphans: number[] = [];
      const w = block.ctx.w;
      block.heap.walk((index, _size, used) => {
        if (!used) return;
        const base = block.ctx.blockBase(index);
        const lo = w[base + B_OWNERS_LO / 4];
        const hi = w[base + B_OWNERS_HI / 4];
        if ((lo & clearLo) === 0 && (hi & clearHi) === 0) return;
        w[base + B_OWNERS_LO / 4] = lo & ~clearLo;
        w[base + B_OWNERS_HI / 4] = hi & ~clearHi;
        if ((lo & ~clearLo) === 0 && (hi & ~clearHi) === 0) orphans.push(index);
      });
      for (const index of orphans) this.#releaseIndex(block, index);
      if (orphans.length > 0) this.#applyPolicy(slot);
    }
  }

  // --- the lock -------------------------------------------------------------------------------

  #lock(): void {
    if (this.#locks.acquireAt(this.#lockIndex) === 'owner-died') {
      try {
        this.#repair();
      } catch (error) {
        this.#locks.releaseAt(this.#lockIndex);
        throw error;
      }
    }
  }

  #unlock(): void {
    this.#locks.releaseAt(this.#lockIndex);
  }

  /**
   * A process died holding the lock: finish what it may have left half done. A block being grown
   * or released is removed (its allocations, if any, were the dead process's to make); every live
   * block's allocator is rebuilt from its block headers and its descriptor's counts recomputed.
   */
  #repair(): void {
    const table = this.#table;
    table.countRepair();
    for (let slot = 0; slot < this.maxBlocks; slot++) {
      const state = table.state(slot);
      if (state === D_GROWING || state === D_RELEASING) {
        unlinkQuietly(blockRegionName(this.name, table.blockId(slot)));
        if (this.#mine[slot]) this.#purgeStale(slot);
        table.empty(slot, state === D_RELEASING);
        continue;
      }
      if (state !== D_LIVE) continue;
      const block = this.#current(slot);
      if (!block) continue;
      block.heap.rebuild();
      let allocs = 0;
      let granules = 0;
      block.heap.walk((_index, size, used) => {
        if (!used) return;
        allocs++;
        granules += size;
      });
      table.setCounts(slot, allocs, granules);
    }
  }
}

const ENOENT = 2;

/** A HeapBuffer of another heap, or of another open of this one (at() resolves it here). */
function foreignBuffer(what: string): UsageError {
  return new UsageError(`${what}: this buffer was made by another RegisteredHeap (or another open of this heap); resolve it here with at(block, offset)`, 'ERR_MEMWIRE_BAD_OFFSET');
}

function unlinkQuietly(name: string): void {
  try {
    SharedRegion.unlink(name);
  } catch (error) {
    if (!(error instanceof SystemError && error.errno === ENOENT)) throw error;
  }
}
