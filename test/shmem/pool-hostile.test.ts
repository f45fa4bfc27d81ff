// Hostile memory (fast-check): random words written into a pool's control region — the pool
// header (allocator counters, bins, journal), the member table, the lock table and the heap's
// block headers — by "someone else". Every pool method of two members (and a newcomer's open)
// may then only end in a typed memwire error (CorruptionError above all; TimeoutError when a
// forged lock word names a live member), never a plain RangeError/TypeError, a crash or a hang:
// every wait here is bounded (allocatorTimeoutMs, timeoutMs), so a hang fails the test's timeout.
//
// Runs: MEMWIRE_FUZZ_RUNS, else 400 under CI=1 (on every runtime), else 150; and
// MEMWIRE_FUZZ_SEED to replay a failure fast-check reported.
import { readdirSync } from 'node:fs';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { CorruptionError, MemwireError, ShmemPool } from '../../src/index.js';
import {
  BLOCK_HEADER_SIZE,
  LOCK_ENTRY_SIZE,
  MEMBER_SLOT_SIZE,
  MEMBER_TABLE_OFFSET,
  P_JOURNAL,
  POOL_HEADER_SIZE,
} from '../../src/shmem/layout.js';
import { fuzzRuns, uniqueName } from '../helpers.js';

const RUNS = fuzzRuns(150);
const SEED = process.env.MEMWIRE_FUZZ_SEED === undefined ? undefined : Number(process.env.MEMWIRE_FUZZ_SEED);
const BOUND = { allocatorTimeoutMs: 20 };
const MAX_MEMBERS = 4;
const MAX_LOCKS = 4;

const open: ShmemPool[] = [];
afterEach(() => {
  for (const pool of open.splice(0)) {
    try {
      pool.dispose();
    } catch {
      // a hostile pool may refuse a clean leave; the mapping is gone either way
    }
  }
});

type Area = 'header' | 'journal' | 'members' | 'locks' | 'blockHeaders';
const AREAS: Area[] = ['header', 'journal', 'members', 'locks', 'blockHeaders'];

interface Write {
  area: Area;
  at: number; // scaled into the area
  value: number;
}

/** Interesting words: zero, small, negative, the magics and states memwire uses, anything. */
const word = fc.oneof(
  fc.constantFrom(0, 1, 2, 3, -1, 7, 0x7fffffff, -0x80000000, 0x4d575553, 0x4d574652, 0x4d574d47),
  fc.integer({ min: 0, max: 4096 }),
  fc.integer({ min: -0x80000000, max: 0x7fffffff }),
);
const writes = fc.array(fc.record({ area: fc.constantFrom(...AREAS), at: fc.nat(), value: word }), { minLength: 1, maxLength: 4 });

/** Byte offset (4-aligned) of a write, inside its area of this pool. */
function placeOf(pool: ShmemPool, blocks: number[], write: Write): number {
  const lockTable = pool.region.int32[16 / 4];
  switch (write.area) {
    case 'header':
      return (write.at % (POOL_HEADER_SIZE / 4)) * 4;
    case 'journal':
      return P_JOURNAL + (write.at % 8) * 4;
    case 'members':
      return MEMBER_TABLE_OFFSET + (write.at % ((MAX_MEMBERS * MEMBER_SLOT_SIZE) / 4)) * 4;
    case 'locks':
      return lockTable + (write.at % ((MAX_LOCKS * LOCK_ENTRY_SIZE) / 4)) * 4;
    case 'blockHeaders': {
      const block = blocks[write.at % blocks.length];
      return block - BLOCK_HEADER_SIZE + ((write.at >>> 8) % (BLOCK_HEADER_SIZE / 4)) * 4;
    }
  }
}

/** Run `fn`; a typed memwire error is fine (counted), anything else fails the property. */
function typed(errors: Map<string, number>, fn: () => unknown): void {
  try {
    fn();
  } catch (error) {
    if (!(error instanceof MemwireError)) throw error;
    errors.set(error.constructor.name, (errors.get(error.constructor.name) ?? 0) + 1);
  }
}

describe('hostile words in a pool’s control region', () => {
  it(`every method ends in a typed error or works — never a crash, a plain JS error or a hang (${RUNS} runs)`, async () => {
    const errors = new Map<string, number>();
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(writes, async (scribbles) => {
        runs++;
        const a = ShmemPool.create(uniqueName('hostile'), { heapBytes: 64 << 10, maxMembers: MAX_MEMBERS, maxLocks: MAX_LOCKS, ...BOUND });
        open.push(a);
        const b = ShmemPool.open(a.name, BOUND);
        open.push(b);
        // A pool in use: blocks of each member, a shared and a public one, a message, a lock.
        const blocks = [a.malloc(100), a.malloc(3000, { owners: [a.me, b.me] }), b.malloc(200), b.malloc(64, { owners: [] }), a.malloc(500)];
        a.free(blocks[4]); // a free block between used ones
        blocks.pop();
        expect(a.send(b.me, new Uint8Array(32).fill(9))).toBe(true);
        const lock = a.reserveLock();
        const w = a.region.int32;
        for (const s of scribbles) w[placeOf(a, blocks, s) >>> 2] = s.value;
        for (const [me, other] of [
          [a, b],
          [b, a],
        ] as const) {
          typed(errors, () => me.stats());
          typed(errors, () => me.members());
          typed(errors, () => me.reap());
          typed(errors, () => me.malloc(100));
          typed(errors, () => me.malloc(20_000));
          for (const block of blocks) {
            typed(errors, () => me.sizeOf(block));
            typed(errors, () => me.read(block, new Uint8Array(8)));
            typed(errors, () => me.owners(block));
          }
          typed(errors, () => me.free(blocks[me === a ? 0 : 2]));
          typed(errors, () => me.tryReceive()?.release());
          typed(errors, () => me.testLock(lock));
          typed(errors, () => me.setLock(lock, { timeoutMs: 10 }));
          typed(errors, () => me.clearLock(lock));
          typed(errors, () => me.signal(other.me));
          typed(errors, () => me.signalAll());
          typed(errors, () => me.waitSignal({ timeoutMs: 0 }));
          typed(errors, () => me.send(other.me, new Uint8Array(10)));
          typed(errors, () => me.sendAll(new Uint8Array(10)));
          typed(errors, () => me.waitUntil(blocks[1], 0, 'eq', 12345, { timeoutMs: 0 }));
        }
        typed(errors, () => ShmemPool.open(a.name, { timeoutMs: 20, ...BOUND }).dispose());
        typed(errors, () => b.dispose());
        typed(errors, () => a.dispose());
      }),
      { numRuns: RUNS, seed: SEED },
    );
    expect(runs).toBe(RUNS);
    if (process.env.MEMWIRE_FUZZ_VERBOSE) console.log(Object.fromEntries(errors));
    // Not vacuous: the forged words were caught as corruption (how often varies with the seed).
    expect(errors.get(CorruptionError.name) ?? 0).toBeGreaterThan(RUNS / 10);
    // And no pool was left behind in /dev/shm, whatever the dispose() calls threw.
    expect(readdirSync('/dev/shm').filter((n) => n.includes(`.hostile.${process.pid}.`))).toEqual([]);
  }, 600_000);
});
