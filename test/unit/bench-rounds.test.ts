// The rounds helpers of the RDMA benches (bench/lib/perftest.ts): a comparison made in rounds
// reports each side's median and, as its ratio, the median of the per-round ratios.
import { describe, expect, it } from 'vitest';
import { median, pairedRow, roundRatios } from '../../bench/lib/perftest.js';

describe('bench rounds', () => {
  it('the ratio is the median of the per-round ratios, not the ratio of the medians', () => {
    // Round ratios 2, 0.5, 3 (median 2); the medians 20 / 20 would say 1.
    const ours = [20, 10, 30];
    const theirs = [10, 20, 10];
    const row = pairedRow('c', 'bandwidth', 'MB/s', ours, theirs, 'anchor');
    expect(row.memwire).toBe(20);
    expect(row.anchor).toBe(10);
    expect(row.ratio).toBe(2);
    expect(row.better).toBe('higher');
    expect(roundRatios(ours, theirs)).toBe('; per-round ratios 2.00, 0.50, 3.00 (the ratio reported is their median)');
  });

  it('a round the anchor failed in (NaN) is left out of the ratio, and no anchor at all gives no ratio', () => {
    const row = pairedRow('c', 'm', 'u', [10, 40, 12], [5, NaN, 4], 'anchor');
    expect(row.ratio).toBe(2.5); // rounds 1 and 3: 2 and 3
    expect(median([5, NaN, 4])).toBe(4.5);
    const none = pairedRow('c', 'm', 'u', [10, 12], [NaN, NaN], 'anchor');
    expect(none.anchor).toBeNull();
    expect(none.ratio).toBeNull();
    expect(roundRatios([10], [NaN])).toBe('');
  });
});
