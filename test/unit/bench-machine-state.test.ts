/**
 * The benches' machine-state probe (bench/lib/machine-state.ts): the C cache-line ping-pong runs
 * and gives a plausible hand-off time, and the state comparison and note say which figures were
 * taken in different states. No timing is asserted beyond "positive and below a millisecond".
 */
import { describe, expect, it } from 'vitest';
import { cacheLineNs, sameState, statesNote } from '../../bench/lib/machine-state.js';
import { allowedCpus } from '../../bench/lib/cpu.js';

describe('bench machine state', () => {
  const cpus = allowedCpus();
  it.skipIf(cpus.length < 2)('the probe measures a hand-off between two CPUs', () => {
    const ns = cacheLineNs([cpus[0], cpus[1]]);
    expect(ns).not.toBeNull();
    expect(ns!).toBeGreaterThan(0);
    expect(ns!).toBeLessThan(1e6);
  });

  it('says nothing without pinned CPUs', () => {
    expect(cacheLineNs(null)).toBeNull();
    expect(sameState({ before: null, after: null })).toBeNull();
  });

  it('states more than 1.25× apart are different', () => {
    expect(sameState({ before: 290, after: 300 }, { before: 295, after: 286 })).toBe(true);
    expect(sameState({ before: 290, after: 300 }, { before: 86, after: 300 })).toBe(false);
  });

  it('the note names the cases whose memwire and anchor figures come from different states', () => {
    const note = statesNote(
      'ucx-posix',
      new Map([
        ['64B', { memwire: { before: 290, after: 291 }, anchor: { before: 85, after: 86 } }],
        ['1KiB', { memwire: { before: 290, after: 291 }, anchor: { before: 295, after: 296 } }],
      ]),
    );
    expect(note).toBe(
      'machine state (cache-line hand-off between the two CPUs before/after, memwire | ucx-posix): 64B 290/291 ns | 85/86 ns, 1KiB 290/291 ns | 295/296 ns; taken in different states (ratio not comparable): 64B',
    );
  });
});
