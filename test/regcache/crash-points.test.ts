// Crash points of a RegisteredHeap's departures (issue 10): a member SIGKILLs itself at the k-th
// write to shared memory that its dispose() — or the reap() of a dead member that open() runs —
// makes under the heap's lock (src/shmem/crash-points.ts), for k = 1, 2, … until the operation
// completes, so every step is hit. After each kill the heap must be whole: the next lock holder
// repairs, reap() finishes the departure, only this process's allocation is left (its bytes
// intact), a newcomer can join and allocate, and once this process frees its allocation every
// block goes back to the OS — no allocation or shm object is leaked.
import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { RegisteredHeap, SharedRegion } from '../../src/index.js';
import { startFixture, uniqueName, type Child } from '../helpers.js';
import { DrivenChild } from './driven-child.js';

const BLOCK = 64 << 10;

async function outcome(c: Child): Promise<{ killed: boolean; points: number }> {
  const timer = setTimeout(() => c.process.kill('SIGKILL'), 30_000);
  const { code, signal } = await c.exit;
  clearTimeout(timer);
  const done = c.stdout().match(/^completed (\d+)$/m);
  if (signal === 'SIGKILL' && !done) return { killed: true, points: 0 };
  if (code !== 0 || !done) throw new Error(`regcache crash child ended with ${signal ?? code}; stderr: ${c.stderr()}`);
  return { killed: false, points: Number(done[1]) };
}

const blockObjects = (heap: string) => readdirSync('/dev/shm').filter((e) => e.includes(`${heap}.b`));

/** The heap after a death: repaired, reaped, only `mine` left, open to newcomers, nothing leaked. */
function expectWhole(heap: RegisteredHeap): void {
  heap.reap();
  // The derived words (occupancy bitmap, wholly free count) were rebuilt by the repair if the kill
  // fell between one of them and the state or count it mirrors.
  expect(heap.auditDerived()).toEqual([]);
  const stats = heap.stats();
  expect(stats.allocations).toBe(1); // the dead member's allocations were all freed, none leaked
  const newcomer = RegisteredHeap.open(heap.name);
  try {
    const b = newcomer.malloc(60_000)!;
    expect(b).not.toBeNull();
    newcomer.free(b);
  } finally {
    newcomer.dispose();
  }
}

/**
 * For k = 1, 2, …: a fresh heap with one allocation of this process (the block the child shares),
 * `prepare` run, then `op` in a child killed at its k-th crash point.
 */
async function everyStep(op: string, prepare: (heap: RegisteredHeap) => Promise<void> = async () => {}) {
  let kills = 0;
  let repaired = 0;
  for (let k = 1; ; k++) {
    const heap = RegisteredHeap.create(uniqueName(`rccrash-${op}`), { blockBytes: BLOCK, keepFreeBlocks: 0 });
    try {
      const mine = heap.malloc(500)!;
      mine.view.fill(0x5a);
      await prepare(heap);
      const repairsBefore = heap.stats().repairs;
      const { killed, points } = await outcome(startFixture('regcache-crash-child', [heap.name, op, k]));
      if (killed) {
        kills++;
        heap.reap();
        if (heap.stats().repairs > repairsBefore) repaired++;
      }
      expectWhole(heap);
      expect(mine.view.every((x) => x === 0x5a)).toBe(true);
      heap.free(mine);
      heap.trim();
      expect(heap.stats()).toMatchObject({ allocations: 0, liveBlocks: 0 });
      expect(heap.auditDerived()).toEqual([]);
      expect(blockObjects(heap.name)).toEqual([]);
      if (!killed) {
        expect(points).toBe(k - 1); // every point before completion was a kill
        return { kills, repaired, points };
      }
      if (k > 2000) throw new Error(`${op}: no completion after ${k} crash points`);
    } finally {
      heap.dispose();
    }
  }
}

const SLOW = 600_000;

describe('a RegisteredHeap member SIGKILLed at every step of a departure', () => {
  it(
    'dispose (an allocation in a shared block, one in a block of its own): whole after a kill at each step',
    async () => {
      const { kills, repaired, points } = await everyStep('dispose');
      expect(kills).toBe(points);
      expect(points).toBeGreaterThanOrEqual(20); // the steps were really there to hit
      expect(repaired).toBe(kills); // every step is under the heap's lock: each kill left a repair
    },
    SLOW,
  );

  it(
    'reap (run by open) of a dead member: whole after a kill at each step',
    async () => {
      const { kills, repaired, points } = await everyStep('open-reap', async (heap) => {
        const victim = startFixture('regcache-crash-child', [heap.name, 'victim']);
        await victim.waitFor('ready');
        victim.process.kill('SIGKILL');
        await victim.exit;
        expect(heap.stats().allocations).toBe(3); // its two and this process's one, until reaped
      });
      expect(kills).toBe(points);
      expect(points).toBeGreaterThanOrEqual(20);
      expect(repaired).toBe(kills);
    },
    SLOW,
  );
});

describe('SharedRegion.listStale and a heap whose blocks outlive their growers', () => {
  it('a block grown by a process that has exited is not "creator-dead" while the heap uses it', async () => {
    const heap = RegisteredHeap.create(uniqueName('rcstale'), { blockBytes: BLOCK });
    try {
      const child = new DrivenChild([heap.name]);
      try {
        expect(await child.next()).toBe('ready');
        const [slot, blockId] = (await child.ask('malloc 1000 7')).map(Number); // the child grows the block
        const mine = heap.malloc(1000)!; // and this process allocates in it
        expect([mine.block, mine.blockId]).toEqual([slot, blockId]);
        expect(await child.ask('exit')).toEqual([]);
        await child.kill(); // (waits for its exit)
        const blockName = `${heap.name}.b${blockId}`;
        expect(blockObjects(heap.name)).toHaveLength(1);
        expect(SharedRegion.listStale().map((s) => s.name)).not.toContain(blockName);
        // Its own creator is dead (so without its heap it would be stale): the control region decides.
        expect(SharedRegion.listStale().map((s) => s.name)).not.toContain(heap.name);
        heap.free(mine);
      } finally {
        await child.kill();
      }
    } finally {
      heap.dispose();
    }
    expect(blockObjects(heap.name)).toEqual([]);
  });
});
