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
 * Its parts: control.ts (the control header), descriptors.ts (the shared descriptor table),
 * registration-table.ts (this process's private table), block.ts (one block's mapping).
 *
 * Only memory freed through this heap is tracked: memory unmapped or reused any other way is
 * invisible to it (the caches of UCX or Open MPI watch munmap/brk for that; this one does not).
 */
import { ClosedError, CorruptionError, SystemError, UsageError } from '../errors.js';
import { SharedRegion } from '../shm/region.js';
import { PoolContext } from '../shmem/context.js';
import { B_OWNERS_HI, B_OWNERS_LO, B_SIZE, GRANULE, MEMBER_LEAVING, MEMBER_LIVE, M_STATE } from '../shmem/layout.js';
import { crashPoint } from '../shmem/crash-points.js';
import { allocatorLockIndex, Locks } from '../shmem/locks.js';
import { abandonedClaim, claimSlot, freeSlot, slotProcessAlive, undoClaim } from '../shmem/members.js';
import type { MemoryRegion } from '../verbs/memory-region.js';
import { BlockMapping, blockBytesFor, heapGranulesOf, MAX_REQUEST } from './block.js';
import { checkControl, checkInt, formatControl, heapParameters } from './control.js';
import { DescriptorTable } from './descriptors.js';
import {
  blockRegionName, C_BLOCK_BYTES, C_KEEP_FREE, C_MAX_BLOCKS, C_MAX_MEMBERS, controlGeometry, D_EMPTY, D_GROWING, D_ID_HI, D_ID_LO,
  D_LIVE, D_RELEASING, D_STATE, RC_CONTENT_TAG, RC_LAYOUT_VERSION,
} from './layout.js';
import { noneRegistrar, type Registrar } from './registrar.js';
import { RegistrationTable, type RegistrationCounts } from './registration-table.js';
import { HeapBuffer, type RegisteredHeapOpenOptions, type RegisteredHeapOptions, type RegisteredHeapStats, type RegisteredRange } from './types.js';

export { HeapBuffer };
export type { RegisteredHeapOpenOptions, RegisteredHeapOptions, RegisteredHeapStats, RegisteredRange };

const MAX_NAME = 180;

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
  readonly #regs: RegistrationTable;
  /** Its rows (read by the lookup hit path without a call). */
  readonly #mine: (BlockMapping | undefined)[];
  #hint = 0;
  #disposed = false;
  readonly #counts: RegistrationCounts;

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
    const { lockTableOffset, occupancyOffset, descriptorOffset } = controlGeometry(maxMembers, this.maxBlocks);
    this.#ctx = new PoolContext(control, { maxMembers, maxLocks: 1, lockTableOffset, heapOffset: descriptorOffset, heapGranules: 0 });
    this.#locks = new Locks(this.#ctx);
    this.#lockIndex = allocatorLockIndex(this.#ctx);
    this.#table = new DescriptorTable(this.name, w, occupancyOffset, descriptorOffset, this.maxBlocks);
    this.#regs = new RegistrationTable(this.name, this.#table, registrar);
    this.#mine = this.#regs.entries;
    this.#counts = this.#regs.counts;
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
    const parameters = heapParameters(options);
    const mode = options.mode ?? 0o600;
    const { controlBytes } = controlGeometry(parameters.maxMembers, parameters.maxBlocks);
    const control = SharedRegion.create(name, controlBytes, { contentTag: RC_CONTENT_TAG, contentVersion: RC_LAYOUT_VERSION, mode });
    try {
      formatControl(control.int32, parameters);
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
      checkControl(name, control.int32, control.size, timeoutMs);
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
        this.#regs.use(block);
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
      const block = this.#regs.current(buffer.block);
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
      const mapping = this.#regs.current(block);
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
      const block = this.#regs.current(buffer.block);
      if (!block || block.blockId !== buffer.blockId) {
        throw new UsageError(`lookup: block ${buffer.blockId} of this buffer is no longer in the heap (it was freed)`, 'ERR_MEMWIRE_BAD_OFFSET');
      }
      if (block !== buffer.owner) throw foreignBuffer('lookup');
      const r = this.#regs.use(block);
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
      const block = this.#regs.current(slot);
      if (!block) return undefined;
      const r = this.#regs.use(block);
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
      for (let slot = this.#table.nextUsed(0); slot >= 0; slot = this.#table.nextUsed(slot + 1)) {
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
          crashPoint();
          if (Atomics.compareExchange(ctx.w, stateIndex, MEMBER_LIVE, MEMBER_LEAVING) === MEMBER_LIVE) slots.push(slot);
        } else if (abandonedClaim(ctx, slot, state)) {
          undoClaim(ctx, slot, state); // killed while claiming its slot: it held nothing yet
        }
      }
      if (slots.length === 0) return 0;
      this.#freeOwnedBy(slots);
      for (const slot of slots) {
        crashPoint();
        freeSlot(ctx, slot);
      }
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
    const { mappedBlocks, registeredBlocks, registeredBytes } = this.#regs.footprint();
    return { ...this.#counts, mappedBlocks, registeredBlocks, registeredBytes, liveBlocks, liveBytes, allocations, ...table.counters() };
  }

  /** @internal Tests: where the occupancy bitmap and wholly free count disagree with the table (under the lock, so after any repair). */
  auditDerived(): string[] {
    this.#check();
    this.#lock();
    try {
      return this.#table.audit();
    } finally {
      this.#unlock();
    }
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
        crashPoint();
        if (Atomics.compareExchange(ctx.w, stateIndex, MEMBER_LIVE, MEMBER_LEAVING) !== MEMBER_LIVE) return;
        this.#freeOwnedBy([ctx.slot]);
        crashPoint();
        freeSlot(ctx, ctx.slot);
      } finally {
        this.#unlock();
      }
    });
    for (let slot = 0; slot < this.maxBlocks; slot++) step(() => this.#regs.purge(slot));
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

  // --- growing, allocating, shrinking (under the lock) ----------------------------------------

  #allocInExisting(size: number, lo: number, hi: number): [BlockMapping, number] | undefined {
    const need = Math.max(3, 2 + Math.ceil(size / GRANULE));
    const table = this.#table;
    // Occupied slots from the last block used on, then those before it (occupancy.ts): the first
    // one tried is usually the answer, and empty slots are never visited.
    for (let pass = 0, hint = this.#hint; pass < 2; pass++) {
      for (let slot = table.nextUsed(pass === 0 ? hint : 0); slot >= 0 && slot < (pass === 0 ? this.maxBlocks : hint); slot = table.nextUsed(slot + 1)) {
        // The descriptor's counts let full blocks be skipped without mapping them.
        if (table.stateLocked(slot) !== D_LIVE || heapGranulesOf(table.bytes(slot)) - 1 - table.usedGranules(slot) < need) continue;
        const block = this.#regs.current(slot);
        if (!block) continue;
        const found = this.#allocIn(block, size, lo, hi);
        if (found) return found;
      }
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
    crashPoint();
    this.#table.count(block.slot, -1, granules);
  }

  /** FIG. 6: obtain a block from the OS and insert its descriptor; undefined when the table is full. */
  #grow(size: number): BlockMapping | undefined {
    const table = this.#table;
    const slot = table.emptySlot();
    if (slot < 0) return undefined;
    const { idLo, idHi } = table.beginGrow(slot);
    const bytes = blockBytesFor(size, this.blockBytes);
    let block: BlockMapping;
    try {
      block = BlockMapping.create(this.name, slot, idLo, idHi, bytes, this.#mode);
    } catch (error) {
      table.empty(slot, false);
      throw error;
    }
    table.finishGrow(slot, bytes);
    // Claim 3: the OS gave this process a block: a different registration at this slot is stale.
    this.#regs.adopt(block);
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
    crashPoint();
    this.#table.beginRelease(slot);
    this.#regs.purgeReleased(slot);
    crashPoint();
    unlinkQuietly(name);
    crashPoint();
    this.#table.empty(slot, true);
  }

  /**
   * Free the allocations owned only by member `slots`, dropping the slots from shared owner sets.
   * An allocation to be freed keeps its owner bits until the free itself, so a departure killed
   * anywhere in here and done again (by the next reap) finds exactly the allocations still to free
   * (as src/shmem/departures.ts does for a pool).
   */
  #freeOwnedBy(slots: readonly number[]): void {
    let clearLo = 0;
    let clearHi = 0;
    for (const s of slots) {
      if (s < 32) clearLo |= 1 << s;
      else clearHi |= 1 << (s - 32);
    }
    for (let slot = this.#table.nextUsed(0); slot >= 0; slot = this.#table.nextUsed(slot + 1)) {
      if (this.#table.state(slot) !== D_LIVE || this.#table.allocs(slot) === 0) continue;
      const block = this.#regs.current(slot);
      if (!block) continue;
      const orphans: number[] = [];
      const w = block.ctx.w;
      block.heap.walk((index, _size, used) => {
        if (!used) return;
        const base = block.ctx.blockBase(index);
        const lo = w[base + B_OWNERS_LO / 4];
        const hi = w[base + B_OWNERS_HI / 4];
        if ((lo & clearLo) === 0 && (hi & clearHi) === 0) return;
        if ((lo & ~clearLo) === 0 && (hi & ~clearHi) === 0) {
          orphans.push(index);
          return;
        }
        crashPoint();
        w[base + B_OWNERS_LO / 4] = lo & ~clearLo;
        crashPoint();
        w[base + B_OWNERS_HI / 4] = hi & ~clearHi;
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
        if (this.#mine[slot]) this.#regs.purgeStale(slot);
        table.empty(slot, state === D_RELEASING);
        continue;
      }
      if (state !== D_LIVE) continue;
      const block = this.#regs.current(slot);
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
    table.rebuildDerived(); // the occupancy bitmap and the wholly free count, from what is now right
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
