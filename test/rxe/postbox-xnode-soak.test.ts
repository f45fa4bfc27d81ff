/**
 * The postbox soak across two nodes (issue 12): the all-to-all of postbox-xnode.test.ts — node A
 * and node B each an agent and two processes, every process sending to the three others over
 * RdmaTransport (RDMA across, shm within a node) — for MEMWIRE_XNODE_SOAK_MS (default 120 000 ms)
 * of random sizes (0 B – 4 MiB: mostly small, some chunked above the 1 MiB cyclic transaction
 * size), after a short ladder of every size class. Prints the counts per pair and in total; fails
 * on any lost, duplicated, corrupted or reordered message. 120 s on Node, 20 s on Bun and Deno
 * (MEMWIRE_XNODE_SOAK_MS overrides both).
 */
import { describe, expect, it } from 'vitest';
import { backend } from '../../ffi/backend.js';
import { runtimeName } from '../../ffi/runtime.js';
import { DEV0, DEV1, skipReason, suffix } from './helpers.js';
import { allToAll, checkCounts, nodesWithAgents } from './postbox-xnode.js';

const PORT = 7483;
const MiB = 1 << 20;
// The 2-minute soak is Node's; Bun and Deno run the same soak for 20 s (the all-to-all of
// postbox-xnode.test.ts covers their sizes), so the tier stays within CI's time.
const DURATION_MS = Number(process.env.MEMWIRE_XNODE_SOAK_MS ?? (runtimeName === 'node' ? 120_000 : 20_000));
const why = skipReason;

describe.skipIf(!!why)(`postbox soak across two nodes ${DEV0} / ${DEV1}, ${DURATION_MS} ms (${runtimeName}, ${backend.name})${why ? ` (skipped: ${why})` : suffix}`, () => {
  const nodes = nodesWithAgents(PORT);

  it('all-to-all for the whole duration: counts printed, nothing lost, duplicated, corrupted or reordered', async () => {
    expect(Number.isFinite(DURATION_MS) && DURATION_MS > 0, `MEMWIRE_XNODE_SOAK_MS=${process.env.MEMWIRE_XNODE_SOAK_MS}`).toBe(true);
    const started = Date.now();
    const results = await allToAll(...nodes(), PORT, { ladder: [0, 1, 8, 241, 4096, MiB + 1], durationMs: DURATION_MS, maxRandom: 4 * MiB, timeoutMs: DURATION_MS + 180_000 }, 'soak');
    process.stdout.write(`soak: ${Date.now() - started} ms\n`);
    checkCounts(results);
  }, DURATION_MS + 240_000);
});
