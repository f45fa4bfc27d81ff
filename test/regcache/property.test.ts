// Seed 004, registrar "none" with bookkeeping: random interleavings of malloc / free / release to
// the OS / lookup across several simulated processes (one RegisteredHeap each: its own member
// slot, its own mappings and private registration table). Properties: no use ever goes through a
// registration whose blockId differs from the block's; every registration is of a mapped block,
// one per slot and process, deregistered once; data written by one process is what another reads;
// nothing is left after dispose.
import { readdirSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HeapBuffer, RegisteredHeap } from '../../src/index.js';
import { uniqueName } from '../helpers.js';
import { CheckingRegistrar } from './checking-registrar.js';

const shmObjects = (name: string) => readdirSync('/dev/shm').filter((e) => e.includes(`.${name}`));

type Op =
  | { kind: 'malloc'; p: number; size: number }
  | { kind: 'free'; p: number; i: number }
  | { kind: 'lookup'; p: number; i: number }
  | { kind: 'trim'; p: number };

const op = (processes: number): fc.Arbitrary<Op> => {
  const p = fc.nat({ max: processes - 1 });
  return fc.oneof(
    { weight: 4, arbitrary: fc.record({ kind: fc.constant('malloc' as const), p, size: fc.oneof(fc.integer({ min: 1, max: 3000 }), fc.integer({ min: 3000, max: 40_000 }), fc.integer({ min: 66_000, max: 200_000 })) }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('free' as const), p, i: fc.nat() }) },
    { weight: 4, arbitrary: fc.record({ kind: fc.constant('lookup' as const), p, i: fc.nat() }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('trim' as const), p }) },
  );
};

interface Held {
  buf: HeapBuffer;
  owner: number;
  tag: number;
}

function run(processes: number, keepFreeBlocks: number, ops: Op[], maxBlocks = 16): void {
  const name = uniqueName('rcprop');
  const registrars = Array.from({ length: processes }, () => new CheckingRegistrar());
  const heaps: RegisteredHeap[] = [RegisteredHeap.create(name, { blockBytes: 65536, maxBlocks, keepFreeBlocks, registrar: registrars[0] })];
  try {
    for (let p = 1; p < processes; p++) heaps.push(RegisteredHeap.open(name, { registrar: registrars[p] }));
    const held: Held[] = [];
    let tag = 1;
    // A HeapBuffer of `h` as process `p` names it (the owner's own; others resolve (block, offset)).
    const bufferIn = (p: number, h: Held) => (p === h.owner ? h.buf : heaps[p].at(h.buf.block, h.buf.offset));
    for (const o of ops) {
      const heap = heaps[o.p];
      if (o.kind === 'malloc') {
        const buf = heap.malloc(o.size);
        if (!buf) continue; // descriptor table full: allowed
        expect(buf.length).toBe(o.size);
        buf.view.fill(tag);
        held.push({ buf, owner: o.p, tag });
        tag = (tag % 250) + 1;
        const r = heap.lookup(buf);
        expect(registrars[o.p].byKey.get(r.lkey)).toMatchObject({ live: true, blockId: buf.blockId, slot: buf.block });
      } else if (o.kind === 'free') {
        if (held.length === 0) continue;
        const [h] = held.splice(o.i % held.length, 1);
        heaps[o.p].free(bufferIn(o.p, h));
        expect(() => heaps[o.p].free(bufferIn(o.p, h))).toThrow(); // a double free is refused
      } else if (o.kind === 'lookup') {
        if (held.length === 0) continue;
        const h = held[o.i % held.length];
        const buf = bufferIn(o.p, h);
        expect(buf.blockId).toBe(h.buf.blockId);
        const r = heap.lookup(buf, buf.length - 1);
        // The registration used is live and of the very block the allocation lives in.
        expect(registrars[o.p].byKey.get(r.lkey)).toMatchObject({ live: true, blockId: h.buf.blockId, slot: h.buf.block });
        expect(r.offset).toBe(h.buf.offset + h.buf.length - 1);
        // And this process reads the pages the owner wrote, not a released block's.
        expect(buf.view[0]).toBe(h.tag);
        expect(buf.view[buf.length - 1]).toBe(h.tag);
      } else {
        heap.trim();
      }
      for (const r of registrars) expect(r.problems).toEqual([]);
      // The occupancy bitmap and the wholly free count agree with the descriptors after every step.
      expect(heaps[o.p].auditDerived()).toEqual([]);
    }
    for (const h of held.splice(0)) heaps[h.owner].free(h.buf);
    expect(heaps[0].stats().allocations).toBe(0);
  } finally {
    for (const h of heaps.reverse()) h.dispose();
  }
  for (const r of registrars) {
    expect(r.problems).toEqual([]);
    expect(r.live()).toEqual([]);
  }
  expect(shmObjects(name)).toEqual([]);
}

describe('RegisteredHeap: random interleavings across simulated processes (fast-check)', () => {
  it('registrations always match the descriptor at use; every registered block mapped; nothing left after dispose', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 4 }),
        fc.integer({ min: 0, max: 2 }),
        fc.array(op(4), { minLength: 1, maxLength: 60 }),
        // A table that fills up, one within a bitmap word, and ones spanning several words.
        fc.constantFrom(3, 16, 33, 70),
        (processes, keep, ops, maxBlocks) => run(processes, keep, ops.map((o) => ({ ...o, p: o.p % processes })), maxBlocks),
      ),
      { numRuns: 60 },
    );
  });

  it('a slot released and refilled is purged lazily by every other process (stale purge counted)', () => {
    const name = uniqueName('rcstale');
    const ra = new CheckingRegistrar();
    const rb = new CheckingRegistrar();
    const a = RegisteredHeap.create(name, { blockBytes: 65536, keepFreeBlocks: 0, registrar: ra });
    const b = RegisteredHeap.open(name, { registrar: rb });
    try {
      const x = a.malloc(100)!;
      x.view.fill(1);
      const bx = b.at(x.block, x.offset);
      expect(b.lookup(bx).blockId).toBe(x.blockId);
      a.free(x); // wholly free, keepFreeBlocks 0: released; only a's registration goes
      expect(ra.live()).toEqual([]);
      expect(rb.live().map((r) => r.blockId)).toEqual([x.blockId]); // b's stays ([0025])
      const y = a.malloc(100)!; // a new block, in the same slot, with a new blockId
      expect(y.block).toBe(x.block);
      expect(y.blockId).toBeGreaterThan(x.blockId);
      y.view.fill(2);
      expect(bx.view[0]).toBe(1); // b still maps the released pages until it next uses the slot
      const by = b.at(y.block, y.offset);
      expect(b.stats().stalePurges).toBe(1);
      expect(bx.view[0]).toBe(0); // the old mapping is gone: its view reads zeros, never old pages
      expect(by.view[0]).toBe(2);
      expect(b.lookup(by).blockId).toBe(y.blockId);
      expect(rb.live().map((r) => r.blockId)).toEqual([y.blockId]);
      expect(() => b.lookup(bx)).toThrow(/no longer in the heap/);
      a.free(y);
    } finally {
      b.dispose();
      a.dispose();
    }
    expect(rb.problems).toEqual([]);
    expect(rb.live()).toEqual([]);
    expect(shmObjects(name)).toEqual([]);
  });
});
