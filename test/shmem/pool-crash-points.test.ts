// Crash points (issue 13, items 1 and 2): a child member SIGKILLs itself at the k-th write to
// shared memory that malloc, free, reap (inside open) and dispose make under the allocator's
// lock, or that open makes claiming its member slot (src/shmem/crash-points.ts), for k = 1, 2, …
// until the operation completes — so every step, including the middle of a block header, is hit. After each kill the pool must be whole:
// reap() and stats() succeed with consistent counters, every block can be freed back into one,
// and a new member can join and allocate. Then random SIGKILLs of a child churning malloc/free.
import { describe, expect, it } from 'vitest';
import { ShmemPool } from '../../src/index.js';
import { uniqueName } from '../helpers.js';
import { usePoolFixtures, type ShmemChild } from './shmem-children.js';

const { adopt, createPool, child } = usePoolFixtures({ maxLocks: 4 });

const HEAP = 64 << 10;

/** The child's fate: killed at its crash point, or the operation completed after `points` points. */
async function outcome(c: ShmemChild): Promise<{ killed: boolean; points: number }> {
  const timer = setTimeout(() => c.process.kill('SIGKILL'), 30_000);
  const { code, signal } = await c.exit;
  clearTimeout(timer);
  const done = c.stdout().match(/^completed (\d+)$/m);
  if (signal === 'SIGKILL' && !done) return { killed: true, points: 0 };
  if (code !== 0 || !done) throw new Error(`crash-at child ended with ${signal ?? code}; stderr: ${c.stderr()}`);
  return { killed: false, points: Number(done[1]) };
}

/** The pool after a death: reaped, consistent, everything freeable into one block, open to newcomers. */
function expectWhole(pool: ShmemPool, mine: number[], left: number[]): void {
  pool.reap();
  expect(pool.members().map((m) => m.self)).toEqual([true]);
  const stats = pool.stats(); // walks the heap and checks the counters against it
  expect(stats.usedBytes + stats.freeBytes).toBe(stats.heapBytes);
  for (const offset of [...mine, ...left]) pool.free(offset);
  expect(pool.stats()).toMatchObject({ usedBlocks: 0, freeBlocks: 1, fragmentation: 0 });
  const newcomer = ShmemPool.open(pool.name);
  try {
    const big = newcomer.malloc(stats.heapBytes - 64);
    expect(big).toBeGreaterThan(0);
    newcomer.free(big);
  } finally {
    newcomer.dispose();
  }
}

interface Start {
  /** Blocks of this process. */
  mine?: number[];
  /** Blocks that must outlive the child (shared with this process): freed here after each run. */
  left?: number[];
}

/**
 * Run `op` in a fresh child for k = 1, 2, … with the pool put back each time into the same
 * starting state (`prepare` builds it once; the region's bytes are copied and restored).
 */
async function everyStep(op: string, prepare: (pool: ShmemPool) => Promise<Start> = async () => ({})) {
  const pool = createPool(`crash-${op}`, HEAP);
  const { mine = [], left = [] } = await prepare(pool);
  const start = pool.region.bytes.slice();
  let kills = 0;
  let repaired = 0; // kills that left a repair to do (the allocator's lock held, or a journal)
  for (let k = 1; ; k++) {
    pool.region.bytes.set(start);
    const startRebuilds = pool.stats().rebuilds;
    const c = child('crash-at', pool, op, k, pool.me);
    const { killed, points } = await outcome(c);
    const leaves = (c.stdout().match(/^leaves (.*)$/m)?.[1] ?? '').split(' ').filter(Boolean).map(Number);
    if (killed) {
      kills++;
      pool.reap();
      if (pool.stats().rebuilds > startRebuilds) repaired++;
    }
    expectWhole(pool, mine, [...left, ...leaves]);
    if (!killed) {
      expect(points).toBe(k - 1); // every point before completion was a kill
      pool.region.bytes.set(start);
      return { kills, repaired, points };
    }
    if (k > 3000) throw new Error(`${op}: no completion after ${k} crash points`);
  }
}

const SLOW = 600_000;

describe('a member SIGKILLed at every step', () => {
  it.each(['malloc-split', 'malloc-whole', 'free-alone', 'free-merge-both'])(
    '%s: the pool is whole after a kill at each of its steps',
    async (op) => {
      const { kills, repaired, points } = await everyStep(op);
      expect(kills).toBe(points);
      expect(points).toBeGreaterThanOrEqual(15); // the steps were really there to hit
      expect(repaired).toBe(kills); // every step is under the allocator's lock: each kill left a repair
    },
    SLOW,
  );

  it(
    'dispose (own, shared, public blocks and an unread message): whole after a kill at each step',
    async () => {
      const { kills, repaired, points } = await everyStep('dispose');
      expect(kills).toBe(points);
      expect(points).toBeGreaterThanOrEqual(50);
      expect(repaired).toBe(kills);
    },
    SLOW,
  );

  it(
    'open, claiming its member slot: after a kill at each step the slot is reclaimed, and the full pool takes a newcomer',
    async () => {
      // A pool with one slot for the child (and one for this process): a slot stranded in
      // CLAIMING would leave the next open ERR_MEMWIRE_POOL_FULL for ever.
      const pool = adopt(ShmemPool.create(uniqueName('crash-claim'), { heapBytes: HEAP, maxMembers: 2, maxLocks: 4 }));
      let kills = 0;
      for (let k = 1; ; k++) {
        const c = child('crash-at', pool, 'open-claim', k, pool.me);
        const { killed, points } = await outcome(c);
        if (killed) {
          kills++;
          expect(pool.reap()).toEqual([]); // the claimant never became a member
        }
        expect(pool.members().map((m) => m.self)).toEqual([true]);
        expectWhole(pool, [], []); // a newcomer takes the slot: open would throw POOL_FULL otherwise
        if (!killed) {
          expect(points).toBe(k - 1);
          expect(kills).toBeGreaterThanOrEqual(9); // every store of the claim, up to LIVE
          return;
        }
        if (k > 100) throw new Error(`open-claim: no completion after ${k} crash points`);
      }
    },
    SLOW,
  );

  it(
    'reap (run by open) of a dead member with own and shared blocks and a message: whole after a kill at each step',
    async () => {
      const { kills, repaired, points } = await everyStep('open-reap', async (pool) => {
        const mine = [pool.malloc(700)];
        const victim = child('own-blocks', pool, 2, pool.me);
        const id = await victim.member();
        const line = await victim.waitForMatch((lines) => lines.find((l) => l.startsWith('blocks ')), '"blocks"');
        const shared = Number(line.split(' ').at(-1));
        expect(pool.send(id, new Uint8Array(100))).toBe(true);
        victim.process.kill('SIGKILL');
        await victim.exit;
        return { mine, left: [shared] };
      });
      expect(kills).toBe(points);
      expect(points).toBeGreaterThanOrEqual(40);
      expect(repaired).toBe(kills);
    },
    SLOW,
  );
});

describe('members SIGKILLed at random moments', () => {
  it(
    'children churning malloc/free, killed at random, while this process allocates too: the pool stays whole',
    async () => {
      const pool = createPool('random-kills', 256 << 10);
      const mine: number[] = [];
      let repaired = 0;
      let rebuilds = pool.stats().rebuilds;
      const kills = 16;
      for (let i = 0; i < kills; i++) {
        const churner = child('churn-forever', pool, 1000 + i);
        await churner.waitFor('churning');
        // Let it churn a random while, allocating here in between (the two contend for lock 0).
        const until = performance.now() + Math.random() * 40;
        while (performance.now() < until) {
          if (mine.length < 8) {
            const offset = pool.malloc(1 + Math.floor(Math.random() * 3000));
            if (offset > 0) mine.push(offset);
          } else pool.free(mine.splice(Math.floor(Math.random() * mine.length), 1)[0]);
          await new Promise((r) => setImmediate(r));
        }
        churner.process.kill('SIGKILL');
        await churner.exit;
        expect(pool.reap()).toHaveLength(1); // (the first to take lock 0 after the kill repairs)
        const stats = pool.stats();
        if (stats.rebuilds > rebuilds) repaired++;
        rebuilds = stats.rebuilds;
        expect(stats.usedBlocks).toBe(mine.length); // the dead churner's blocks were all freed
      }
      expectWhole(pool, mine, []);
      // Not vacuous: the churner spends nearly all its time inside the allocator, so some of the
      // kills must have landed there (each would have left the heap to repair).
      expect(repaired).toBeGreaterThan(0);
    },
    SLOW,
  );
});
