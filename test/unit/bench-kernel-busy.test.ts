/**
 * rdma-write-bw's bandwidth per unit of rxe kernel time (kernelBusy): each side's MB/s with its
 * own machine speed divided out, judged only when most rounds are ksoftirqd-bound on both sides.
 */
import { describe, expect, it } from 'vitest';
import { judgeTargets } from '../../bench/lib/report.js';
import { pairedRow } from '../../bench/lib/perftest.js';
import { kernelBusy, writeBwTarget } from '../../bench/rdma-write-bw.js';

const SIZE = 65536;
/** ksoftirqd µs per write that makes ksoftirqd run `share` of the wall time at `mbs` MB/s. */
const softUs = (mbs: number, share: number) => ((SIZE / (mbs * 1048576)) * 1e6) * share;

describe('rdma-write-bw kernelBusy', () => {
  it('divides out the machine speed: equal shares at very different MB/s give 1', () => {
    const ours = [10, 20, 12];
    const theirs = [20, 10, 18];
    const got = kernelBusy('64KiB', SIZE, ours, ours.map((m) => softUs(m, 0.5)), theirs, theirs.map((m) => softUs(m, 0.5)))!;
    expect(got.judged).toBe(true);
    expect(got.row.ratio).toBeCloseTo(1, 6);
    expect(got.row.case).toBe('64KiB per kernel time');
    expect(got.note).toContain('3 of 3 rounds ksoftirqd-bound');
  });

  it("keeps memwire's own overhead: a side whose loop lengthens the wall time scores lower", () => {
    // Same kernel work per write on both sides, but memwire's wall time is 25 % longer (its loop).
    const ours = [8, 8, 8];
    const theirs = [10, 10, 10];
    const got = kernelBusy('64KiB', SIZE, ours, ours.map(() => softUs(10, 0.5)), theirs, theirs.map((m) => softUs(m, 0.5)))!;
    expect(got.row.ratio).toBeCloseTo(0.8, 6);
  });

  it('is not judged when most rounds ran their work outside ksoftirqd (the plain ratio is)', () => {
    const ours = [25, 26, 24];
    const theirs = [26, 25, 24];
    const got = kernelBusy('4KiB', 4096, ours, [4, 4, 4], theirs, [8, 12, 8])!;
    expect(got.judged).toBe(false);
    expect(got.note).toContain('the plain ratio is judged');
  });

  it('is null without CPU samples', () => {
    expect(kernelBusy('64KiB', SIZE, [10], [NaN], [10], [NaN])).toBeNull();
  });
});

describe('rdma-write-bw judging', () => {
  it('the target goes to the per-kernel-time row when that is judged, to the plain row otherwise, and gets a verdict', () => {
    const ours = [10, 20];
    const theirs = [20, 10];
    const plain = pairedRow('64KiB', 'bandwidth', 'MB/s', ours, theirs, 'ib_write_bw');
    const busy = kernelBusy('64KiB', SIZE, ours, ours.map((m) => softUs(m, 0.5)), theirs, theirs.map((m) => softUs(m, 0.5)))!;
    const [judged] = judgeTargets([plain, busy.row], [writeBwTarget('64KiB', 0.95, '', busy)]);
    expect(judged.case).toBe('64KiB per kernel time');
    expect(judged.pass).toBe(true);
    const [unjudged] = judgeTargets([plain, busy.row], [writeBwTarget('64KiB', 0.95, '', { ...busy, judged: false })]);
    expect(unjudged.case).toBe('64KiB');
    expect(unjudged.pass).not.toBeNull();
  });
});
