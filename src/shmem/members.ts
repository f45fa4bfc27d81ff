/**
 * The member table: every process that opens a pool claims a slot with its pid and start time,
 * so "all processes" means the live members, a dead one is recognised even after its pid is
 * reused, and owners, lock holders and message receivers are named by slot.
 *
 * A slot goes FREE → CLAIMING|pid (compareExchange: one claimant wins, and the word names it) → LIVE
 * (after pid, start time and a new generation are written); a claimant killed before LIVE leaves
 * CLAIMING|pid, which a reaper under the allocator's lock puts back to FREE once that pid is gone
 * (abandonedClaim, undoClaim) → LEAVING (the member itself on dispose, or a reaper that
 * found its process dead: compareExchange, so one reaper wins) → FREE (after its blocks, inbox
 * and owner bits are cleaned up). LEAVING → FREE happens under the allocator's lock from start
 * to end (departures.ts), so a LEAVING slot seen under that lock is an abandoned departure.
 */
import { UsageError } from '../errors.js';
import { isProcessAlive, selfPid, selfStartTime } from '../shm/process-identity.js';
import type { MemberId, PoolContext } from './context.js';
import { crashPoint } from './crash-points.js';
import {
  CLAIM_PID_MASK,
  GEN_MASK,
  MEMBER_CLAIMING,
  MEMBER_FREE,
  MEMBER_LEAVING,
  MEMBER_LIVE,
  M_GEN,
  M_INBOX,
  M_INBOX_WAITERS,
  M_PID,
  M_SIGNALS,
  M_SIGNAL_WAITERS,
  M_START_HI,
  M_START_LO,
  M_STATE,
  lockTagOf,
} from './layout.js';

export interface MemberInfo {
  readonly id: MemberId;
  readonly pid: number;
  /** Whether this is the calling process. */
  readonly self: boolean;
}

/** Claim a free slot for this process; false when every slot is taken. Sets ctx.slot/gen/me. */
export function claimSlot(ctx: PoolContext): boolean {
  const w = ctx.w;
  for (let slot = 0; slot < ctx.maxMembers; slot++) {
    const base = ctx.memberBase(slot);
    if (Atomics.load(w, base + M_STATE / 4) !== MEMBER_FREE) continue;
    const claim = MEMBER_CLAIMING | (selfPid & CLAIM_PID_MASK);
    if (Atomics.compareExchange(w, base + M_STATE / 4, MEMBER_FREE, claim) !== MEMBER_FREE) continue;
    // A kill between any two of these stores leaves the claim word naming a dead pid: undone by
    // the next reap (crash points let a test stop the claimant at each).
    crashPoint('claim');
    Atomics.store(w, base + M_PID / 4, selfPid);
    crashPoint('claim');
    Atomics.store(w, base + M_START_LO / 4, Number(selfStartTime & 0xffffffffn) | 0);
    crashPoint('claim');
    Atomics.store(w, base + M_START_HI / 4, Number(selfStartTime >> 32n) | 0);
    let gen = (Atomics.load(w, base + M_GEN / 4) + 1) & GEN_MASK;
    if (gen === 0) gen = 1;
    crashPoint('claim');
    Atomics.store(w, base + M_GEN / 4, gen);
    crashPoint('claim');
    Atomics.store(w, base + M_INBOX / 4, 0);
    crashPoint('claim');
    Atomics.store(w, base + M_INBOX_WAITERS / 4, 0);
    crashPoint('claim');
    Atomics.store(w, base + M_SIGNAL_WAITERS / 4, 0);
    crashPoint('claim');
    Atomics.store(w, base + M_SIGNALS / 4, 0); // a new member starts with no signal pending
    ctx.slot = slot;
    ctx.gen = gen;
    ctx.lockTag = lockTagOf(slot, gen);
    ctx.me = (gen << 6) | slot;
    // Ordering point: identity is visible before the slot says LIVE.
    crashPoint('claim');
    Atomics.store(w, base + M_STATE / 4, MEMBER_LIVE);
    return true;
  }
  return false;
}

/**
 * Whether slot `slot` holds a claim whose claimant no longer runs (killed inside open before its
 * slot went LIVE). `state` is the slot's state word as just loaded. The pid alone is checked (the
 * claimant had not written its start time yet): a claim whose pid was reused by a live process
 * stays until that process exits — never undone early.
 */
export function abandonedClaim(ctx: PoolContext, slot: number, state: number): boolean {
  if (slot === ctx.slot || (state & ~CLAIM_PID_MASK) !== MEMBER_CLAIMING) return false;
  const pid = state & CLAIM_PID_MASK;
  return pid === 0 || !isProcessAlive(pid, 0n);
}

/**
 * Undo an abandoned claim (abandonedClaim said so for `state`): the slot back to FREE. Only under
 * the allocator's lock, so no two reapers race; the claimant is dead, so nothing else changes the
 * word meanwhile. The claimant held nothing yet (no blocks, locks or messages: it was never LIVE).
 */
export function undoClaim(ctx: PoolContext, slot: number, state: number): boolean {
  crashPoint();
  return Atomics.compareExchange(ctx.w, ctx.memberBase(slot) + M_STATE / 4, state, MEMBER_FREE) === state;
}

export function slotPid(ctx: PoolContext, slot: number): number {
  return Atomics.load(ctx.w, ctx.memberBase(slot) + M_PID / 4);
}

/** Whether the process in a slot still runs: pid + start time, and not a zombie (isProcessAlive). */
export function slotProcessAlive(ctx: PoolContext, slot: number): boolean {
  const w = ctx.w;
  const base = ctx.memberBase(slot);
  const pid = Atomics.load(w, base + M_PID / 4);
  const start = (BigInt(Atomics.load(w, base + M_START_HI / 4) >>> 0) << 32n) | BigInt(Atomics.load(w, base + M_START_LO / 4) >>> 0);
  return isProcessAlive(pid, start);
}

export function isLiveSlot(ctx: PoolContext, slot: number): boolean {
  return Atomics.load(ctx.w, ctx.memberBase(slot) + M_STATE / 4) === MEMBER_LIVE;
}

/** Slots that are LIVE in the table (dead processes included until reaped). */
export function liveSlots(ctx: PoolContext): number[] {
  const slots: number[] = [];
  for (let slot = 0; slot < ctx.maxMembers; slot++) if (isLiveSlot(ctx, slot)) slots.push(slot);
  return slots;
}

/** The last step of leaving or reaping (after the clean-up): the slot may be claimed again. */
export function freeSlot(ctx: PoolContext, slot: number): void {
  const base = ctx.memberBase(slot);
  Atomics.store(ctx.w, base + M_INBOX / 4, 0);
  Atomics.store(ctx.w, base + M_STATE / 4, MEMBER_FREE);
}

/** Owner masks (lo, hi) of a list of MemberIds, each checked to name a live member. */
export function maskOf(ctx: PoolContext, members: readonly MemberId[]): [number, number] {
  if (!Array.isArray(members)) throw new UsageError('owners must be an array of MemberIds');
  let lo = 0;
  let hi = 0;
  for (const id of members) {
    const slot = ctx.slotOf(id);
    if (slot < 32) lo |= 1 << slot;
    else hi |= 1 << (slot - 32);
  }
  return [lo, hi];
}

/** MemberIds of the slots in an owner mask. */
export function membersOfMask(ctx: PoolContext, lo: number, hi: number): MemberId[] {
  const ids: MemberId[] = [];
  for (let slot = 0; slot < ctx.maxMembers; slot++) {
    const bit = slot < 32 ? lo & (1 << slot) : hi & (1 << (slot - 32));
    if (bit !== 0) ids.push(ctx.idOfSlot(slot));
  }
  return ids;
}

