// The warm-up rule of the latency benches (bench/lib/warmup.ts), driven by made-up rounds on a
// made-up clock: it does not stop on a plateau before its minimum time, it stops once the last
// three rounds agree after that time, it grows short rounds, it is bounded, and the order-check
// note says what it measured.
import { describe, expect, it } from 'vitest';
import { agree, orderCheckNote, warmUntilStable, WARMUP_MAX_ROUNDS, WARMUP_MIN_MS } from '../../bench/lib/warmup.js';

/** A clock that each round advances by `msPerIteration` × its count, and rounds that return `p50s` in turn. */
function scripted(p50s: readonly number[], msPerIteration: number) {
  let clock = 0;
  let i = 0;
  return {
    now: () => clock,
    round: (count: number) => {
      clock += count * msPerIteration;
      return p50s[Math.min(i++, p50s.length - 1)];
    },
  };
}

describe('bench warm-up', () => {
  it('agree: the largest within the tolerance of the smallest', () => {
    expect(agree([100, 104, 102], 0.05)).toBe(true);
    expect(agree([100, 106, 102], 0.05)).toBe(false);
  });

  it('a plateau that holds before the minimum time is not taken for the end of warm-up', async () => {
    // Bun's pattern: flat for a while (99 → 94 → 96, within 5 %), then the top tier (34).
    const run = scripted([309, 99, 94, 96, 79, 82, 72, 42, 34, 34, 33, 34], 0.001); // 50 ms per round of 50 000
    const warm = await warmUntilStable(run.round, 50_000, { now: run.now, pauseMs: 0 });
    expect(warm.stable).toBe(true);
    expect(warm.ms).toBeGreaterThanOrEqual(WARMUP_MIN_MS);
    expect(warm.p50s.slice(-3)).toEqual([34, 34, 33]);
    expect(warm.p50s).toHaveLength(11);
  });

  it('rounds shorter than 20 ms double', async () => {
    const run = scripted([5], 0.001); // 1000 iterations = 1 ms
    const warm = await warmUntilStable(run.round, 1000, { now: run.now, pauseMs: 0 });
    expect(warm.counts.slice(0, 6)).toEqual([1000, 2000, 4000, 8000, 16_000, 32_000]);
    expect(warm.stable).toBe(true);
  });

  it('a figure that never settles stops at the bound and says so', async () => {
    const run = scripted(Array.from({ length: 100 }, (_, i) => (i % 2 ? 10 : 20)), 0.001);
    const warm = await warmUntilStable(run.round, 30_000, { now: run.now, pauseMs: 0 });
    expect(warm.stable).toBe(false);
    expect(warm.p50s.length).toBeLessThanOrEqual(WARMUP_MAX_ROUNDS);
  });

  it('the order-check note gives both figures and first/again', () => {
    expect(orderCheckNote({ label: '64B', first: 0.5, again: 0.25, unit: 'µs' })).toBe(
      'order check: 64B p50 first 0.500 µs, again 0.250 µs after every other case, first/again 2.000 — more than 10 % apart: the first figure may still carry warm-up (or host noise)',
    );
    expect(orderCheckNote({ label: '64B', first: 0.5, again: 0.49, unit: 'µs' })).toMatch(/first\/again 1\.020 — within 10 %/);
    // Figures taken in different machine states (the cache-line probe 3.4× apart) are not judged.
    const changed = orderCheckNote({ label: '64B', first: 0.64, again: 0.2, unit: 'µs', stateFirst: { before: 290, after: 295 }, stateAgain: { before: 86, after: 85 } });
    expect(changed).toMatch(/first\/again 3\.200 — the machine's state changed between them .*not comparable/);
    expect(changed).toMatch(/first 290\/295 ns, again 86\/85 ns$/);
    const same = orderCheckNote({ label: '64B', first: 0.64, again: 0.2, unit: 'µs', stateFirst: { before: 290, after: 295 }, stateAgain: { before: 300, after: null } });
    expect(same).toMatch(/first\/again 3\.200 — more than 10 % apart: the first figure may still carry warm-up/);
  });
});
