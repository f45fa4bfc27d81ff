/**
 * Members leaving a pool — by dispose(), or reaped because their process died — from start to
 * end under the allocator's lock (lock 0), so a death at any step is recovered:
 *
 *   1. slot LIVE → LEAVING (the member itself on dispose; a reaper for a dead process)
 *   2. drop the slot from every owner set; free the blocks left with no owner (its unread
 *      messages among them): a block is freed whole or keeps the bit, so doing it again is safe
 *   3. empty its inbox, slot → FREE
 *
 * Because LEAVING exists only under lock 0, whoever holds lock 0 and sees a LEAVING slot knows
 * the member or reaper that started its departure died (or threw) before finishing it, and
 * finishes it (reap() does). A member killed before step 1 is still LIVE with a dead process:
 * reaped like any other. One killed inside open, before its slot went LIVE, left a claim word
 * naming its dead pid: put back to FREE (members.ts). The heap updates of step 2 are journalled (heap.ts); a death inside
 * one is repaired by the next holder of lock 0 (heap-lock.ts).
 */
import type { MemberId, PoolContext } from './context.js';
import { crashPoint } from './crash-points.js';
import type { Heap } from './heap.js';
import type { HeapLock } from './heap-lock.js';
import { B_OWNERS_HI, B_OWNERS_LO, MEMBER_LEAVING, MEMBER_LIVE, M_INBOX, M_STATE } from './layout.js';
import { abandonedClaim, freeSlot, slotProcessAlive, undoClaim } from './members.js';

/**
 * Cheap, without the lock: is there a departure to finish (a LEAVING slot) or to start (a LIVE
 * slot whose process died)?
 */
export function departuresPending(ctx: PoolContext): boolean {
  for (let slot = 0; slot < ctx.maxMembers; slot++) {
    if (slot === ctx.slot) continue;
    const state = Atomics.load(ctx.w, ctx.memberBase(slot) + M_STATE / 4);
    if (state === MEMBER_LEAVING) return true;
    if (state === MEMBER_LIVE && !slotProcessAlive(ctx, slot)) return true;
    if (abandonedClaim(ctx, slot, state)) return true;
  }
  return false;
}

/**
 * reap(): finish every abandoned departure and start one for every dead member, then clean them
 * all up. Returns their ids.
 */
export function reapDeparted(ctx: PoolContext, heap: Heap, heapLock: HeapLock): MemberId[] {
  if (!departuresPending(ctx)) return [];
  heapLock.lock();
  try {
    const slots: number[] = [];
    for (let slot = 0; slot < ctx.maxMembers; slot++) {
      if (slot === ctx.slot) continue;
      const stateIndex = ctx.memberBase(slot) + M_STATE / 4;
      const state = Atomics.load(ctx.w, stateIndex);
      if (state === MEMBER_LEAVING) {
        slots.push(slot); // abandoned: see the file comment
      } else if (state === MEMBER_LIVE && !slotProcessAlive(ctx, slot)) {
        crashPoint();
        if (Atomics.compareExchange(ctx.w, stateIndex, MEMBER_LIVE, MEMBER_LEAVING) === MEMBER_LIVE) slots.push(slot);
      } else if (abandonedClaim(ctx, slot, state)) {
        undoClaim(ctx, slot, state); // killed inside open: it held nothing, so nothing to clean up
      }
    }
    const ids = slots.map((slot) => ctx.idOfSlot(slot));
    cleanUp(ctx, heap, slots);
    for (const slot of slots) finish(ctx, slot);
    return ids;
  } finally {
    heapLock.unlock();
  }
}

/**
 * dispose(): this process leaves (TimeoutError if the allocator's lock stays held). Its slot goes
 * FREE while it still holds lock 0 (so LEAVING is never seen outside the lock); from that moment
 * another acquirer may take the lock over as 'owner-died' (its holder looks gone — seen under load
 * on Deno, when every member of a pool left at once), so the release tolerates having lost it.
 */
export function leave(ctx: PoolContext, heap: Heap, heapLock: HeapLock): void {
  heapLock.lock();
  let finished = false;
  try {
    const stateIndex = ctx.memberBase(ctx.slot) + M_STATE / 4;
    crashPoint();
    if (Atomics.compareExchange(ctx.w, stateIndex, MEMBER_LIVE, MEMBER_LEAVING) !== MEMBER_LIVE) return;
    cleanUp(ctx, heap, [ctx.slot]);
    finish(ctx, ctx.slot);
    finished = true;
  } finally {
    if (finished) heapLock.unlockLeaving();
    else heapLock.unlock();
  }
}

/**
 * Drop `slots` from every owner set; free the blocks that had no other owner. A block to be
 * freed keeps its owner bits until the free, so a clean-up interrupted anywhere, done again,
 * finds exactly the blocks still to free.
 */
function cleanUp(ctx: PoolContext, heap: Heap, slots: readonly number[]): void {
  let clearLo = 0;
  let clearHi = 0;
  for (const slot of slots) {
    if (slot < 32) clearLo |= 1 << slot;
    else clearHi |= 1 << (slot - 32);
  }
  if (clearLo === 0 && clearHi === 0) return;
  const w = ctx.w;
  const orphans: number[] = [];
  const shared: number[] = [];
  heap.walk((index, _size, used) => {
    if (!used) return;
    const base = ctx.blockBase(index);
    const lo = w[base + B_OWNERS_LO / 4];
    const hi = w[base + B_OWNERS_HI / 4];
    if ((lo & clearLo) === 0 && (hi & clearHi) === 0) return;
    if ((lo & ~clearLo) === 0 && (hi & ~clearHi) === 0) orphans.push(index);
    else shared.push(index);
  });
  for (const index of shared) {
    const base = ctx.blockBase(index);
    crashPoint();
    w[base + B_OWNERS_LO / 4] &= ~clearLo;
    crashPoint();
    w[base + B_OWNERS_HI / 4] &= ~clearHi;
  }
  for (const index of orphans) heap.release(index);
}

/** The last step of a departure: empty inbox, slot FREE (claimable again). */
function finish(ctx: PoolContext, slot: number): void {
  crashPoint();
  Atomics.store(ctx.w, ctx.memberBase(slot) + M_INBOX / 4, 0);
  crashPoint();
  freeSlot(ctx, slot);
}
