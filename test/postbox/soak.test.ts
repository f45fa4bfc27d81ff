// Soak: 4 processes all-to-all, 12 pairs × 83,334 = 1,000,008 messages of 0 B–4 MiB with
// checksums (size distribution: test/fixtures/postbox-messages.ts — mostly small, a tail of
// chunked messages up to 4 MiB, ~1.3 GB in all). Each receiver checks size, sequence number and
// checksum of every message of every sender: nothing lost, duplicated, corrupted or reordered per
// pair. Default geometry (64 slots, 4 MiB pool, 1 MiB cyclic transaction size). About 10 s on
// Node and 20 s on Bun on this project's 2-core machines; the timeout is a backstop, not a goal.
import { afterEach, describe, expect, it } from 'vitest';
import { SharedRegion } from '../../src/index.js';
import { finished, type Child } from '../helpers.js';
import { startPostboxChild } from './helpers.js';

const PER_PEER = 83_334;
const NAMES = ['s0', 's1', 's2', 's3'];

const children: Child[] = [];
let domain = '';
afterEach(async () => {
  for (const c of children.splice(0)) {
    c.process.kill('SIGKILL');
    await c.exit;
  }
  for (const stale of SharedRegion.listStale()) if (stale.name.startsWith(`pb.${domain}.`)) SharedRegion.unlink(stale.name);
});

describe('soak', () => {
  it('4 processes all-to-all, ≥ 10^6 checked messages of 0 B–4 MiB: nothing lost, duplicated, corrupted or reordered', async () => {
    domain = `soak${process.pid}${Date.now().toString(36)}`;
    const procs = NAMES.map((n) => startPostboxChild('soak', domain, n, NAMES.join(','), String(PER_PEER), '{}'));
    children.push(...procs);
    await Promise.all(procs.map((p) => finished(p, 170_000)));
    let total = 0;
    for (const p of procs) {
      const summary = JSON.parse(p.stdout().trim().split('\n').pop()!) as { sent: number; received: number };
      expect(summary.sent).toBe(PER_PEER * 3);
      expect(summary.received).toBe(PER_PEER * 3);
      total += summary.received;
    }
    expect(total).toBeGreaterThanOrEqual(1_000_000);
  }, 180_000);
});
