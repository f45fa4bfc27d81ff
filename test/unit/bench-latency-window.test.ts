/**
 * memwire's latency taken the way ucx_perftest takes its own (bench/anchors.ts latencyLikeUcx):
 * percentiles within windows of 2048 round trips ending at the last one, the upper median over the
 * windows judged, the last window and every round trip beside.
 */
import { describe, expect, it } from 'vitest';
import { latencyLikeUcx, UCX_TIMING_QUEUE } from '../../bench/anchors.js';

/** `windows` windows of UCX_TIMING_QUEUE samples (ns), window w filled by `value(w, i)`. */
function samples(windows: number, value: (w: number, i: number) => number, extra = 0): Float64Array {
  const out = new Float64Array(extra + windows * UCX_TIMING_QUEUE).fill(1e9); // a leading remainder no window holds
  for (let w = 0; w < windows; w++) for (let i = 0; i < UCX_TIMING_QUEUE; i++) out[extra + w * UCX_TIMING_QUEUE + i] = value(w, i);
  return out;
}

describe('latencyLikeUcx', () => {
  it('one window: exactly the percentiles of the last 2048, like UCX', () => {
    const l = latencyLikeUcx(samples(1, (_, i) => (i < 2000 ? 1000 : 50_000), 100));
    expect(l.windows).toBe(1);
    expect(l.p50).toBe(1); // µs
    expect(l.p99).toBe(50); // 48 of 2048 slow: above the 99th percentile's 21
    expect(l.last).toEqual({ p50: 1, p99: 50 });
    expect(l.all!.p99).toBe(1e6); // the 100 leading samples are in `all` only
  });

  it('several windows: a window hit by a stall does not make the judged p99, but shows in all and last', () => {
    // Window 2 (the last) has 100 slow round trips; windows 0 and 1 none.
    const l = latencyLikeUcx(samples(3, (w, i) => (w === 2 && i < 100 ? 30_000 : 500 + (i % 10))));
    expect(l.windows).toBe(3);
    expect(l.p99).toBeCloseTo(0.509, 6);
    expect(l.last!.p99).toBe(30);
    expect(l.all!.p99).toBe(30); // 100 of 6144 is 1.6 %: above the 99th percentile
  });

  it('two windows: the worse one (upper median)', () => {
    const l = latencyLikeUcx(samples(2, (w) => (w === 0 ? 2000 : 1000)));
    expect(l.p50).toBe(2);
    expect(l.p99).toBe(2);
  });
});
