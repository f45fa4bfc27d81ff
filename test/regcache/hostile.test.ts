// Seed 004, hostile shared memory: a descriptor table another process scribbled on (bad size,
// two descriptors naming one block, a blockId going backwards or never handed out, a torn entry,
// an impossible state, a block whose header disagrees, an occupancy bitmap that calls a live slot
// empty) is a CorruptionError naming the heap —
// never a mapping or a registration of a bogus range — and the heap keeps working once repaired.
import { afterEach, describe, expect, it } from 'vitest';
import { CorruptionError, RegisteredHeap, SharedRegion } from '../../src/index.js';
import {
  controlGeometry, D_CHECK, D_ID_HI, D_ID_LO, D_SIZE_HI, D_SIZE_LO, D_STATE, D_LIVE, descriptorCheck, DESCRIPTOR_SIZE, K_SLOT,
} from '../../src/regcache/layout.js';
import { uniqueName } from '../helpers.js';
import { CheckingRegistrar } from './checking-registrar.js';

const MAX_MEMBERS = 4;
const MAX_BLOCKS = 8;
const cleanups: (() => void)[] = [];
afterEach(() => {
  const errors: unknown[] = [];
  for (const c of cleanups.splice(0).reverse()) {
    try {
      c();
    } catch (error) {
      errors.push(error);
    }
  }
  if (errors.length) throw errors[0];
});

function setup() {
  const a = RegisteredHeap.create(uniqueName('rchostile'), { blockBytes: 65536, maxBlocks: MAX_BLOCKS, maxMembers: MAX_MEMBERS, keepFreeBlocks: 4 });
  cleanups.push(() => a.dispose());
  const registrar = new CheckingRegistrar();
  const b = RegisteredHeap.open(a.name, { registrar });
  cleanups.push(() => b.dispose());
  const control = SharedRegion.open(a.name);
  cleanups.push(() => control.close());
  const w = control.int32;
  const { descriptorOffset, occupancyOffset } = controlGeometry(MAX_MEMBERS, MAX_BLOCKS);
  const at = (slot: number, field: number) => ((descriptorOffset + slot * DESCRIPTOR_SIZE) >>> 2) + field / 4;
  const saved = (slot: number) => {
    const words = Array.from({ length: DESCRIPTOR_SIZE / 4 }, (_, i) => w[at(slot, 0) + i]);
    return () => words.forEach((v, i) => (w[at(slot, 0) + i] = v));
  };
  /** Rewrite a LIVE descriptor's id/size with a check word that matches (a careful forger). */
  const forge = (slot: number, id: number, size: number) => {
    w[at(slot, D_ID_LO)] = id;
    w[at(slot, D_ID_HI)] = 0;
    w[at(slot, D_SIZE_LO)] = size;
    w[at(slot, D_SIZE_HI)] = 0;
    w[at(slot, D_CHECK)] = descriptorCheck(slot, id, 0, size, 0, D_LIVE);
  };
  const expectRefused = (fn: () => unknown, detail: RegExp) => {
    const before = registrar.byKey.size;
    let thrown: unknown;
    try {
      fn();
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(CorruptionError);
    expect((thrown as CorruptionError).region.startsWith(a.name)).toBe(true); // the heap, or one of its blocks
    expect((thrown as Error).message).toMatch(detail);
    expect(registrar.byKey.size).toBe(before); // nothing registered
    expect(registrar.problems).toEqual([]);
  };
  return { a, b, w, at, saved, forge, expectRefused, registrar, occupancy: occupancyOffset >>> 2 };
}

describe('RegisteredHeap: a hostile descriptor table', () => {
  it('a bad block size (page-misaligned, or not the object’s size) is refused before anything is mapped', () => {
    const { a, b, saved, forge, expectRefused } = setup();
    const x = a.malloc(100)!;
    const restore = saved(x.block);
    forge(x.block, x.blockId, 12345);
    expectRefused(() => b.at(x.block, x.offset), /block size 12345/);
    forge(x.block, x.blockId, 131072);
    expectRefused(() => b.at(x.block, x.offset), /131072 bytes, the object has 65536/);
    restore();
    expect(b.at(x.block, x.offset).blockId).toBe(x.blockId); // repaired: works again
    expect(b.stats().stalePurges).toBe(0);
  });

  it('two descriptors naming one block (overlap) are refused', () => {
    const { a, b, saved, forge, expectRefused } = setup();
    const x = a.malloc(100)!;
    const y = a.malloc(100_000)!; // a block of its own, in the next slot
    expect(y.block).not.toBe(x.block);
    b.at(x.block, x.offset); // B has x's block mapped and registered
    const restore = saved(y.block);
    forge(y.block, x.blockId, 65536);
    expectRefused(() => b.at(y.block, x.offset), /both name block/);
    restore();
    expect(b.at(y.block, y.offset).length).toBe(100_000);
  });

  it('a blockId going backwards, or one never handed out, is refused', () => {
    const { a, b, saved, forge, expectRefused } = setup();
    const first = a.malloc(100)!;
    a.free(first);
    a.trim(); // released: the slot's next block gets a larger blockId
    const x = a.malloc(100)!;
    expect(x.block).toBe(first.block);
    b.lookup(b.at(x.block, x.offset)); // B's entry: blockId 2
    const restore = saved(x.block);
    forge(x.block, first.blockId, 65536);
    expectRefused(() => b.at(x.block, x.offset), /went backwards/);
    forge(x.block, 1000, 65536);
    expectRefused(() => b.at(x.block, x.offset), /only ids below/);
    forge(x.block, 0, 65536);
    expectRefused(() => b.at(x.block, x.offset), /only ids below|blockId 0/);
    restore();
    expect(b.at(x.block, x.offset).blockId).toBe(x.blockId);
  });

  it('a torn entry (check word), an impossible state, a block whose FIG. 3 header names another slot', () => {
    const { a, b, w, at, saved, expectRefused, registrar } = setup();
    const x = a.malloc(100)!;
    const restore = saved(x.block);
    w[at(x.block, D_SIZE_LO)] = 2 * 65536; // size changed, check word not
    expectRefused(() => b.at(x.block, x.offset), /check word/);
    restore();
    w[at(x.block, D_STATE)] = 77;
    expectRefused(() => b.at(x.block, x.offset), /state 77/);
    restore();
    // The block's own header says it belongs to another slot.
    const block = SharedRegion.open(`${a.name}.b${x.blockId}`);
    cleanups.push(() => block.close());
    block.int32[K_SLOT / 4] = x.block + 1;
    expectRefused(() => b.at(x.block, x.offset), /header names slot/);
    block.int32[K_SLOT / 4] = x.block;
    expect(b.at(x.block, x.offset).blockId).toBe(x.blockId);
    expect(registrar.live().map((r) => r.blockId)).toEqual([]); // at() maps; registering waits for a lookup
  });

  it('an occupancy bitmap that calls a live slot empty: growing into it is refused; other forged bits only hide or show slots', () => {
    const { a, b, w, occupancy, expectRefused, registrar } = setup();
    const x = a.malloc(100)!; // slot 0
    expect(x.block).toBe(0);
    const level0 = w[occupancy];
    w[occupancy] = level0 & ~1; // slot 0 "empty" (the free summary already says word 0 has room)
    // A malloc that needs a block of its own grows into the lowest "empty" slot: slot 0, LIVE.
    expectRefused(() => b.malloc(100_000), /occupancy bitmap says slot 0 is empty/);
    w[occupancy] = level0;
    const y = b.malloc(100_000)!;
    expect(y.block).toBe(1);
    // Bits set for empty slots: walked over (their state is checked), never mapped or registered.
    w[occupancy] = -1;
    const z = b.malloc(200)!;
    expect([x.blockId, y.blockId]).toContain(z.blockId); // in a real block
    expect(b.lookup(z).blockId).toBe(z.blockId);
    expect(registrar.problems).toEqual([]);
    b.free(z);
    b.free(y);
    a.free(x);
  });
});
