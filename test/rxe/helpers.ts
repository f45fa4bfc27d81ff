/**
 * Helpers of the rxe tier: which two devices to use (MEMWIRE_RXE_DEV0/DEV1, default rxe0/rxe1),
 * why the tier skips when there is no device, and a connected RC pair (one QP per device, both
 * in this process).
 */
import { expect } from 'vitest';
import {
  connectQueuePairs,
  Context,
  listDevices,
  liveVerbsObjects,
  NoDeviceError,
  type CompletionQueue,
  type ProtectionDomain,
  type QueuePair,
  type QueuePairOptions,
} from '../../src/index.js';

export const DEV0 = process.env.MEMWIRE_RXE_DEV0 || 'rxe0';
export const DEV1 = process.env.MEMWIRE_RXE_DEV1 || 'rxe1';
export const IP0 = process.env.MEMWIRE_RXE_IP0 || '';
export const IP1 = process.env.MEMWIRE_RXE_IP1 || '';

function findSkipReason(): string {
  try {
    const names = listDevices().map((d) => d.name);
    if (!names.includes(DEV0) || !names.includes(DEV1)) {
      return `needs RDMA devices ${DEV0} and ${DEV1} (MEMWIRE_RXE_DEV0/DEV1); found: ${names.join(', ') || 'none'}`;
    }
    return '';
  } catch (error) {
    if (error instanceof NoDeviceError) return error.message;
    throw error;
  }
}

/** Empty when the devices are there, else why the rxe tests skip. */
export const skipReason = findSkipReason();
export const suffix = skipReason ? ` (skipped: ${skipReason})` : '';

export function expectNothingLive(): void {
  expect(liveVerbsObjects()).toEqual({ contexts: 0, pds: 0, mrs: 0, cqs: 0, qps: 0, srqs: 0, channels: 0, cmIds: 0, ahs: 0 });
}

export interface Side {
  ctx: Context;
  pd: ProtectionDomain;
  cq: CompletionQueue;
  qp: QueuePair;
}

/** One side per device, connected RC. Dispose with disposePair. */
export function connectedPair(qpOptions: Partial<QueuePairOptions> = {}): [Side, Side] {
  const make = (dev: string): Side => {
    const ctx = Context.open(dev);
    try {
      const pd = ctx.allocPd();
      const cq = ctx.createCompletionQueue({ entries: 64 });
      const qp = pd.createQueuePair({ sendCq: cq, ...qpOptions });
      return { ctx, pd, cq, qp };
    } catch (error) {
      ctx.dispose();
      throw error;
    }
  };
  const a = make(DEV0);
  let b: Side;
  try {
    b = make(DEV1);
  } catch (error) {
    a.ctx.dispose();
    throw error;
  }
  try {
    connectQueuePairs(a.qp, b.qp);
  } catch (error) {
    a.ctx.dispose();
    b.ctx.dispose();
    throw error;
  }
  return [a, b];
}

export function disposePair(pair: [Side, Side] | undefined): void {
  if (!pair) return;
  pair[0].ctx.dispose();
  pair[1].ctx.dispose();
}

export { pattern } from '../fixtures/pattern.js';

/**
 * Runs a chain of `turns` macrotasks, each scheduled by the one before (setTimeout), and returns
 * for each whether `pending()` still held when it ran. A call that held the event loop would let
 * none of them run: proof by order, not by counting timer ticks in a window (a count depends on
 * how fast the guest runs).
 */
export async function macrotaskTurns(pending: () => boolean, turns = 5): Promise<boolean[]> {
  const seen: boolean[] = [];
  await new Promise<void>((resolve) => {
    const turn = () => {
      seen.push(pending());
      if (seen.length < turns) setTimeout(turn, 1);
      else resolve();
    };
    setTimeout(turn, 1);
  });
  return seen;
}
