/**
 * The request planner of seed 002 (src/coalesce/plan.ts) as a pure function: element chains and
 * limits → work requests. Property tests (fast-check): every byte covered exactly once and in
 * order; no work request above maxMessageSize or with more SGEs than allowed; a work request
 * never spans remote memory that is not contiguous; the number of work requests is the fewest
 * possible (an exhaustive search on small chains) and each one is as long as the rule allows.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { countWorkRequests, formatNext, FormattedWr, planRequest, RequestCursor, type PlanElement, type PlanLimits } from '../../src/coalesce/plan.js';
import { UsageError } from '../../src/errors.js';

/** Three fake regions, compared by identity as the planner does. */
const REGIONS = [{ name: 'a' }, { name: 'b' }, { name: 'c' }];

interface Gen {
  elements: PlanElement[];
  limits: PlanLimits;
}

/**
 * Chains whose elements are often remotely contiguous (gap 0) and often locally adjacent in the
 * same region, so coalescing, SGE merging and dividing all happen.
 */
function chains(maxLen: number, maxCount: number, maxMsg: number, maxSge: number): fc.Arbitrary<Gen> {
  const element = fc.record({
    length: fc.oneof(fc.integer({ min: 0, max: maxLen }), fc.constant(0), fc.integer({ min: 1, max: 3 })),
    remoteGap: fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 1, max: 50 })),
    region: fc.integer({ min: 0, max: REGIONS.length - 1 }),
    adjacent: fc.boolean(),
    localGap: fc.integer({ min: 1, max: 64 }),
  });
  return fc
    .record({
      raw: fc.array(element, { minLength: 0, maxLength: maxCount }),
      maxMessageSize: fc.integer({ min: 1, max: maxMsg }),
      maxSge: fc.integer({ min: 1, max: maxSge }),
      start: fc.integer({ min: 0, max: 1000 }),
    })
    .map(({ raw, maxMessageSize, maxSge, start }) => {
      const elements: PlanElement[] = [];
      let remote = start;
      const localEnd = [0, 0, 0];
      for (const r of raw) {
        remote += r.remoteGap;
        const offset = r.adjacent ? localEnd[r.region] : localEnd[r.region] + r.localGap;
        elements.push({ length: r.length, remoteOffset: remote, mr: REGIONS[r.region], offset });
        localEnd[r.region] = offset + r.length;
        remote += r.length;
      }
      return { elements, limits: { maxMessageSize, maxSge } };
    });
}

/** Per byte of the request, in order: [remote offset, region, local offset]. */
function bytesOf(elements: readonly PlanElement[]): [number, unknown, number][] {
  const out: [number, unknown, number][] = [];
  for (const e of elements) for (let i = 0; i < e.length; i++) out.push([e.remoteOffset + i, e.mr, (e.offset ?? 0) + i]);
  return out;
}

/** The fewest work requests any split in order can use (exhaustive, by bytes): for small chains. */
function fewestWorkRequests(elements: readonly PlanElement[], limits: PlanLimits): number {
  const bytes = bytesOf(elements);
  const n = bytes.length;
  // Does [i, j) fit in one work request? Contiguous remote, ≤ maxMessageSize, ≤ maxSge SGEs.
  const fits = (i: number, j: number): boolean => {
    if (j - i > limits.maxMessageSize) return false;
    let sges = 1;
    for (let k = i + 1; k < j; k++) {
      if (bytes[k][0] !== bytes[k - 1][0] + 1) return false;
      if (bytes[k][1] !== bytes[k - 1][1] || bytes[k][2] !== bytes[k - 1][2] + 1) sges++;
    }
    return sges <= limits.maxSge;
  };
  const best = new Array<number>(n + 1).fill(Infinity);
  best[n] = 0;
  for (let i = n - 1; i >= 0; i--) {
    for (let j = i + 1; j <= n && fits(i, j); j++) best[i] = Math.min(best[i], 1 + best[j]);
  }
  return best[0];
}

describe('request planner (seed 002: coalesce and divide)', () => {
  it('covers every byte exactly once, in order, within the limits and contiguous remote ranges', () => {
    fc.assert(
      fc.property(chains(300, 12, 200, 5), ({ elements, limits }) => {
        const plan = planRequest(elements, limits);
        const want = bytesOf(elements);
        const got: [number, unknown, number][] = [];
        for (const wr of plan) {
          expect(wr.bytes).toBeGreaterThan(0);
          expect(wr.bytes).toBeLessThanOrEqual(limits.maxMessageSize);
          expect(wr.sges.length).toBeGreaterThanOrEqual(1);
          expect(wr.sges.length).toBeLessThanOrEqual(limits.maxSge);
          expect(wr.sges.reduce((s, x) => s + x.length, 0)).toBe(wr.bytes);
          // One remote range per work request: its bytes land at remoteOffset, remoteOffset+1, ...
          let remote = wr.remoteOffset;
          for (const sge of wr.sges) {
            for (let i = 0; i < sge.length; i++) got.push([remote++, elements[sge.element].mr, sge.offset + i]);
          }
        }
        expect(got).toEqual(want);
      }),
      { numRuns: 400 },
    );
  });

  it('uses the fewest work requests possible (exhaustive search on small chains)', () => {
    fc.assert(
      fc.property(chains(12, 7, 16, 4), ({ elements, limits }) => {
        expect(planRequest(elements, limits).length).toBe(fewestWorkRequests(elements, limits));
        expect(countWorkRequests(elements, limits)).toBe(fewestWorkRequests(elements, limits));
      }),
      { numRuns: 400 },
    );
  });

  it('makes each work request as long as the rule allows: the next byte would break a limit or a remote run', () => {
    fc.assert(
      fc.property(chains(300, 12, 200, 5), ({ elements, limits }) => {
        const plan = planRequest(elements, limits);
        for (let w = 0; w + 1 < plan.length; w++) {
          const wr = plan[w];
          const next = plan[w + 1];
          const contiguous = next.remoteOffset === wr.remoteOffset + wr.bytes;
          const lastSge = wr.sges[wr.sges.length - 1];
          const firstNext = next.sges[0];
          const mergeable = elements[lastSge.element].mr === elements[firstNext.element].mr && lastSge.offset + lastSge.length === firstNext.offset;
          const full = wr.bytes === limits.maxMessageSize || (wr.sges.length === limits.maxSge && !mergeable);
          expect(!contiguous || full).toBe(true);
        }
      }),
      { numRuns: 400 },
    );
  });

  it('divides one large element at maxMessageSize and coalesces small contiguous ones (FIG. 7, FIG. 8)', () => {
    const [a, b, c] = REGIONS;
    // FIG. 8: buffer 200 larger than one transfer, buffer 202 coalesced with its second part.
    const fig8 = planRequest([{ mr: a, length: 150, remoteOffset: 0 }, { mr: b, length: 30, remoteOffset: 150 }], { maxMessageSize: 100, maxSge: 4 });
    expect(fig8).toEqual([
      { remoteOffset: 0, bytes: 100, sges: [{ element: 0, offset: 0, length: 100 }] },
      { remoteOffset: 100, bytes: 80, sges: [{ element: 0, offset: 100, length: 50 }, { element: 1, offset: 0, length: 30 }] },
    ]);
    // 32 × 64 B from scattered local places to contiguous remote memory: one WR of 32 SGEs.
    const small = Array.from({ length: 32 }, (_, i) => ({ mr: c, offset: i * 128, length: 64, remoteOffset: i * 64 }));
    expect(planRequest(small, { maxMessageSize: 1 << 23, maxSge: 32 }).map((w) => w.sges.length)).toEqual([32]);
    expect(planRequest(small, { maxMessageSize: 1 << 23, maxSge: 5 }).map((w) => w.sges.length)).toEqual([5, 5, 5, 5, 5, 5, 2]);
    // Locally adjacent pieces of one region share an SGE.
    const adjacent = Array.from({ length: 32 }, (_, i) => ({ mr: c, offset: i * 64, length: 64, remoteOffset: i * 64 }));
    expect(planRequest(adjacent, { maxMessageSize: 1 << 23, maxSge: 1 })).toEqual([{ remoteOffset: 0, bytes: 2048, sges: [{ element: 0, offset: 0, length: 2048 }] }]);
    // A remote gap ends a work request even with room left.
    expect(planRequest([{ mr: a, length: 10, remoteOffset: 0 }, { mr: b, length: 10, remoteOffset: 11 }], { maxMessageSize: 100, maxSge: 4 }).length).toBe(2);
    // 32 MiB in one element at the 8 MiB limit: four work requests.
    expect(countWorkRequests([{ mr: a, length: 32 << 20, remoteOffset: 0 }], { maxMessageSize: 8 << 20, maxSge: 32 })).toBe(4);
  });

  it('keeps the request state (current element, offset) between calls and reports the end', () => {
    const cursor = new RequestCursor();
    const out = new FormattedWr(2);
    const elements = [{ mr: REGIONS[0], length: 5, remoteOffset: 0 }, { mr: REGIONS[1], length: 0, remoteOffset: 99 }, { mr: REGIONS[1], length: 7, remoteOffset: 5 }];
    expect(formatNext(elements, cursor, { maxMessageSize: 4, maxSge: 2 }, out)).toBe(false);
    expect([cursor.element, cursor.offset, out.bytes]).toEqual([0, 4, 4]);
    expect(formatNext(elements, cursor, { maxMessageSize: 4, maxSge: 2 }, out)).toBe(false);
    expect([cursor.element, cursor.offset, out.bytes, out.sgeCount]).toEqual([2, 3, 4, 2]);
    expect(formatNext(elements, cursor, { maxMessageSize: 4, maxSge: 2 }, out)).toBe(true);
    expect(out.bytes).toBe(4);
    expect(formatNext(elements, cursor, { maxMessageSize: 4, maxSge: 2 }, out)).toBe(true);
    expect(out.sgeCount).toBe(0);
    expect(planRequest([], { maxMessageSize: 1, maxSge: 1 })).toEqual([]);
    expect(planRequest([{ length: 0, remoteOffset: 0 }], { maxMessageSize: 1, maxSge: 1 })).toEqual([]);
  });

  it('refuses limits that are not positive integers', () => {
    expect(() => planRequest([], { maxMessageSize: 0, maxSge: 1 })).toThrow(UsageError);
    expect(() => planRequest([], { maxMessageSize: 1, maxSge: 0 })).toThrow(UsageError);
    expect(() => planRequest([], { maxMessageSize: 1.5, maxSge: 1 })).toThrow(UsageError);
  });
});
