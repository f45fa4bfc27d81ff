// Seed 004 with real processes (registrar "none"): a block released to the OS by one process and
// replaced in its slot is purged lazily by another; a dead process's allocations are reclaimed;
// a process that died holding the heap's lock leaves a repairable heap.
import { afterEach, describe, expect, it } from 'vitest';
import { RegisteredHeap, SharedRegion } from '../../src/index.js';
import { controlGeometry, D_GROWING, D_ID_LO, D_STATE, DESCRIPTOR_SIZE } from '../../src/regcache/layout.js';
import { lockTagOf, MEMBER_LIVE, M_GEN, M_PID, M_STATE, MEMBER_SLOT_SIZE, MEMBER_TABLE_OFFSET } from '../../src/shmem/layout.js';
import { uniqueName } from '../helpers.js';
import { DrivenChild } from './driven-child.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  const errors: unknown[] = [];
  for (const c of cleanups.splice(0).reverse()) {
    try {
      await c();
    } catch (error) {
      errors.push(error);
    }
  }
  if (errors.length) throw errors[0];
});

function heap(label: string, options: Parameters<typeof RegisteredHeap.create>[1]): RegisteredHeap {
  const h = RegisteredHeap.create(uniqueName(label), options);
  cleanups.push(() => h.dispose());
  return h;
}

async function child(name: string): Promise<DrivenChild> {
  const c = new DrivenChild([name]);
  cleanups.push(() => c.kill());
  expect(await c.next()).toBe('ready');
  return c;
}

describe('RegisteredHeap across real processes', () => {
  it('A releases a block and a new one takes its slot: B keeps its old registration until its next use purges it, then maps the new block', async () => {
    const a = heap('rcproc', { blockBytes: 65536, keepFreeBlocks: 0 });
    const x = a.malloc(100)!;
    x.view.fill(11);
    const b = await child(a.name);
    expect(await b.ask(`at ${x.block} ${x.offset}`)).toEqual([String(x.blockId), '100', '11']);
    expect(await b.ask('lookup')).toEqual([String(x.blockId), '0']);
    a.free(x); // wholly free: released to the OS; only A's own registration is dropped
    expect(a.stats()).toMatchObject({ releases: 1, liveBlocks: 0, mappedBlocks: 0 });
    const y = a.malloc(100)!;
    y.view.fill(22);
    expect(y.block).toBe(x.block);
    expect(y.blockId).toBeGreaterThan(x.blockId);
    // B was never asked to do anything: its entry for the slot is still the released block's.
    expect(JSON.parse((await b.ask('stats'))[0])).toMatchObject({ registrations: 1, stalePurges: 0, mappedBlocks: 1 });
    expect(await b.ask('read')).toEqual(['11', '11']); // the old pages, still mapped by B alone
    // B's next use of the slot finds the blockId changed: purge (deregister, unmap), map the new block.
    expect(await b.ask(`at ${y.block} ${y.offset}`)).toEqual([String(y.blockId), '100', '22']);
    expect(JSON.parse((await b.ask('stats'))[0])).toMatchObject({ stalePurges: 1, deregistrations: 1, mappedBlocks: 1 });
    expect(await b.ask('lookup')).toEqual([String(y.blockId), '0']);
    expect(await b.ask('read')).toEqual(['22', '22']);
    expect(JSON.parse((await b.ask('stats'))[0])).toMatchObject({ registrations: 2, misses: 2 });
    expect(await b.ask('exit')).toEqual([]);
    a.free(y);
  });

  it('a process killed while holding allocations: reap() frees them and the blocks go back to the OS by the policy', async () => {
    const a = heap('rcreap', { blockBytes: 65536, keepFreeBlocks: 1 });
    const b = await child(a.name);
    await b.ask('malloc 1000 1');
    await b.ask('malloc 30000 2');
    const [bigSlot] = await b.ask('malloc 200000 3'); // larger than a standard block: a block of its own
    expect(a.stats()).toMatchObject({ allocations: 3, liveBlocks: 2 });
    await b.kill();
    expect(a.reap()).toBe(1);
    const s = a.stats();
    expect(s).toMatchObject({ allocations: 0, liveBlocks: 1, blocksReleased: 1 }); // the big block went at once, one standard block kept
    const again = a.malloc(200_000)!; // the big block's slot is reusable, with a fresh blockId
    expect(again.block).toBe(Number(bigSlot));
    a.free(again);
  });

  it('a process that died holding the heap lock mid-grow: the next locker repairs (removes the half-made block, rebuilds the allocators)', async () => {
    const a = heap('rcrepair', { blockBytes: 65536, maxMembers: 4, maxBlocks: 8 });
    const kept = a.malloc(500)!;
    kept.view.fill(5);
    const b = await child(a.name);
    const control = SharedRegion.open(a.name);
    cleanups.push(() => control.close());
    const w = control.int32;
    const { lockTableOffset, descriptorOffset } = controlGeometry(4, 8);
    let slot = -1;
    for (let s = 0; s < 4; s++) {
      const base = (MEMBER_TABLE_OFFSET + s * MEMBER_SLOT_SIZE) >>> 2;
      if (w[base + M_STATE / 4] === MEMBER_LIVE && w[base + M_PID / 4] === b.process.pid) slot = s;
    }
    expect(slot).toBeGreaterThanOrEqual(0);
    // What B would leave if it died inside #grow: the lock held by B, a descriptor GROWING.
    const gen = w[((MEMBER_TABLE_OFFSET + slot * MEMBER_SLOT_SIZE) >>> 2) + M_GEN / 4];
    const d = (descriptorOffset + 5 * DESCRIPTOR_SIZE) >>> 2;
    w[d + D_ID_LO / 4] = 1;
    Atomics.store(w, d + D_STATE / 4, D_GROWING);
    Atomics.store(w, lockTableOffset >>> 2, lockTagOf(slot, gen));
    await b.kill();
    const next = a.malloc(100)!; // acquires: the holder is gone → 'owner-died' → repair
    expect(a.stats()).toMatchObject({ repairs: 1, liveBlocks: 1, allocations: 2 });
    expect(Atomics.load(w, d + D_STATE / 4)).toBe(0);
    expect(kept.view[0]).toBe(5);
    a.free(next);
    a.free(kept);
  });
});
