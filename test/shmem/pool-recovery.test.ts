// ShmemPool after members die inside the allocator, inside dispose() and inside reap() (issue 13,
// items 1, 2 and 11): real processes, real /dev/shm, SIGKILL. Each test here failed before the
// allocator journal and the departures under lock 0 (src/shmem/heap.ts, departures.ts).
import { describe, expect, it } from 'vitest';
import { CorruptionError, ShmemPool } from '../../src/index.js';
import { finished, uniqueName } from '../helpers.js';
import { usePoolFixtures } from './shmem-children.js';

const { adopt, createPool, child } = usePoolFixtures({ maxLocks: 8 });

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Everything is recoverable: after this process frees `own`, the heap is one free block again. */
function expectAllRecoverable(pool: ShmemPool, own: number[]): void {
  for (const offset of own) pool.free(offset);
  expect(pool.stats()).toMatchObject({ usedBlocks: 0, usedBytes: 0, freeBlocks: 1, fragmentation: 0 });
}

describe('a member killed inside the allocator', () => {
  it('the torn state of a kill inside free() (neighbour marked merged, block not rewritten, lock held): the next caller rebuilds', async () => {
    const pool = createPool('torn-free');
    const kept = pool.malloc(1000);
    const torn = child('torn-free', pool);
    const id = await torn.member();
    await torn.waitForMatch((lines) => lines.find((l) => l.startsWith('holding ')), '"holding"');
    torn.process.kill('SIGKILL');
    await torn.exit;
    const stats = pool.stats(); // takes the dead member's lock: 'owner-died', then a rebuild
    expect(stats.rebuilds).toBe(1);
    expect(stats.usedBlocks).toBe(3); // kept, and the dead member's a and c (its free of a never happened)
    expect(pool.reap()).toEqual([id]);
    expect(pool.stats().usedBlocks).toBe(1);
    const newcomer = adopt(ShmemPool.open(pool.name));
    newcomer.free(newcomer.malloc(5000));
    newcomer.dispose();
    expectAllRecoverable(pool, [kept]);
  });
});

describe('a member killed while it leaves', () => {
  it('SIGKILLed inside dispose() (waiting for the allocator): reaped like any dead member, its blocks freed, its slot reused', async () => {
    const pool = adopt(ShmemPool.create(uniqueName('dispose-killed'), { maxMembers: 3, heapBytes: 256 << 10 }));
    const leaver = child('dispose-waiting', pool);
    const leaverId = await leaver.member();
    await leaver.waitFor('ready');
    const holder = child('hold-allocator', pool);
    const holderId = await holder.member();
    await holder.waitFor('holding');
    pool.signal(leaverId);
    await leaver.waitFor('disposing');
    await pause(200); // inside dispose(), blocked on the allocator's lock
    leaver.process.kill('SIGKILL');
    await leaver.exit;
    holder.process.kill('SIGKILL');
    await holder.exit;
    expect(pool.reap().sort()).toEqual([holderId, leaverId].sort());
    expect(pool.members()).toHaveLength(1);
    expect(pool.stats()).toMatchObject({ usedBlocks: 0, freeBlocks: 1, rebuilds: 1 });
    // Both slots are free again: the pool holds 3 members.
    adopt(ShmemPool.open(pool.name));
    adopt(ShmemPool.open(pool.name));
  });

  it('a reap() whose clean-up threw leaves no slot stuck: the next reap() finishes the job', async () => {
    const pool = createPool('reap-threw');
    const victim = child('own-blocks', pool, 3);
    const victimId = await victim.member();
    const line = await victim.waitForMatch((lines) => lines.find((l) => l.startsWith('blocks ')), '"blocks"');
    const [, second] = line.slice('blocks '.length).split(' ').map(Number);
    victim.process.kill('SIGKILL');
    await victim.exit;
    // A header the clean-up walk reads is scribbled: the reap fails with a CorruptionError.
    const w = pool.region.int32;
    const checkWord = (second - 32 + 12) / 4;
    const original = w[checkWord];
    w[checkWord] = original ^ 0x5a5a;
    expect(() => pool.reap()).toThrow(CorruptionError);
    w[checkWord] = original;
    expect(pool.reap()).toEqual([victimId]);
    expect(pool.members()).toHaveLength(1);
    expectAllRecoverable(pool, []);
  });

  it('dispose() is bounded when the allocator’s lock names a live member that never lets go (TimeoutError)', async () => {
    const pool = createPool('dispose-bounded');
    const holder = child('hold-allocator', pool);
    await holder.waitFor('holding');
    const leaver = child('dispose-bounded', pool, 300);
    await leaver.waitFor('timed-out', 10_000);
    await finished(leaver);
    holder.process.kill('SIGKILL');
    await holder.exit;
    expect(pool.reap()).toHaveLength(2); // the holder, and the leaver (its slot stayed LIVE: it could not leave)
    expect(pool.stats()).toMatchObject({ usedBlocks: 0, freeBlocks: 1 });
  });
});
