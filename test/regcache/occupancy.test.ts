// The occupancy bitmap of a registered heap (src/regcache/occupancy.ts) against a plain array of
// booleans: random set/clear sequences over tables of 1…4096 slots (partial last words, several
// summary words), then firstFree() and nextUsed() from every interesting point agree with the
// model, and the summaries agree with level 0. Also: forged words never send it out of its table.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Occupancy, occupancyWords } from '../../src/regcache/occupancy.js';

function fresh(maxBlocks: number): { occ: Occupancy; w: Int32Array; words: number } {
  const { level0, summary } = occupancyWords(maxBlocks);
  const words = level0 + 2 * summary;
  const w = new Int32Array(8 + words + 8); // guard words either side: nothing outside is touched
  const occ = new Occupancy(w, 32, maxBlocks);
  occ.rebuild(() => false);
  return { occ, w, words };
}

const modelFirstFree = (m: boolean[]) => m.indexOf(false);
const modelNextUsed = (m: boolean[], from: number) => {
  for (let s = from; s < m.length; s++) if (m[s]) return s;
  return -1;
};

describe('Occupancy: the two-level bitmap of occupied descriptor slots', () => {
  it('agrees with a model after random sets and clears (1…4096 slots)', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.integer({ min: 1, max: 70 }), fc.constantFrom(1023, 1024, 1025, 4096)),
        fc.array(fc.tuple(fc.nat(), fc.boolean()), { maxLength: 300 }),
        fc.boolean(),
        (maxBlocks, ops, fillFirst) => {
          const { occ, w } = fresh(maxBlocks);
          const model = new Array<boolean>(maxBlocks).fill(false);
          if (fillFirst) {
            for (let s = 0; s < maxBlocks; s++) occ.set(s, true);
            model.fill(true);
          }
          for (const [n, on] of ops) {
            const s = n % maxBlocks;
            occ.set(s, on);
            model[s] = on;
            expect(occ.firstFree()).toBe(modelFirstFree(model));
          }
          expect(occ.disagreements((s) => model[s])).toEqual([]);
          const points = new Set([0, maxBlocks - 1, maxBlocks, ...ops.map(([n]) => n % maxBlocks), ...ops.map(([n]) => (n % maxBlocks) + 1)]);
          for (const from of points) expect(occ.nextUsed(from)).toBe(modelNextUsed(model, from));
          // Walking used slots visits exactly the model's.
          const walked: number[] = [];
          for (let s = occ.nextUsed(0); s >= 0; s = occ.nextUsed(s + 1)) walked.push(s);
          expect(walked).toEqual(model.flatMap((on, s) => (on ? [s] : [])));
          // The guard words either side were never written.
          expect(Array.from(w.subarray(0, 8))).toEqual(new Array(8).fill(0));
          expect(Array.from(w.subarray(w.length - 8))).toEqual(new Array(8).fill(0));
          // A rebuild from the model gives the same words.
          const copy = Int32Array.from(w);
          occ.rebuild((s) => model[s]);
          expect(Array.from(w)).toEqual(Array.from(copy));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('forged words: answers stay inside the table and a walk ends', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 200 }), fc.array(fc.integer(), { minLength: 1, maxLength: 40 }), (maxBlocks, junk) => {
        const { occ, w, words } = fresh(maxBlocks);
        for (let i = 0; i < words; i++) w[8 + i] = junk[i % junk.length];
        const free = occ.firstFree();
        expect(free).toBeGreaterThanOrEqual(-1);
        expect(free).toBeLessThan(maxBlocks);
        let steps = 0;
        for (let s = occ.nextUsed(0); s >= 0; s = occ.nextUsed(s + 1)) {
          expect(s).toBeLessThan(maxBlocks);
          expect(++steps).toBeLessThanOrEqual(maxBlocks);
        }
      }),
      { numRuns: 200 },
    );
  });
});
