/**
 * Postboxes between two nodes on real rxe (issue 12): node A on DEV0 and node B on DEV1, each its
 * own mount namespace and /dev/shm, an agent and two processes a1, a2 / b1, b2 running a Postbox
 * over RdmaTransport. All-to-all (both directions, the same-node pairs too): every pair sends a
 * ladder of sizes from 0 B to 5 MiB — a1 and b1 up to 64 MiB, above the 1 MiB cyclic transaction
 * size in 64 pieces — then random sizes; each receiver checks every message byte for byte (its
 * number, the pair's pattern, a checksum) and in order, and every sender's flush() returns only
 * when the acknowledgments crossed back. Counts printed: lost, duplicated, corrupted, reordered.
 */
import { describe, expect, it } from 'vitest';
import { backend } from '../../ffi/backend.js';
import { runtimeName } from '../../ffi/runtime.js';
import { DEV0, DEV1, skipReason, suffix } from './helpers.js';
import { allToAll, checkCounts, nodesWithAgents } from './postbox-xnode.js';

const PORT = 7481;
const MiB = 1 << 20;
// Every size class of the postbox: empty, below/at/above the inline limit (240 B with 256-byte
// slots), one block, several blocks, just below/at/above the cyclic transaction size, chunked.
const LADDER = [0, 1, 7, 8, 12, 17, 239, 240, 241, 4095, 4096, 65536, MiB - 1, MiB, MiB + 1, 5 * MiB + 3];

describe.skipIf(!!skipReason)(`postbox all-to-all across two nodes ${DEV0} / ${DEV1} over RdmaTransport (${runtimeName}, ${backend.name})${suffix}`, () => {
  const nodes = nodesWithAgents(PORT);

  it('2 + 2 processes, 0 B – 64 MiB, byte-exact and in order per pair, acks crossing back: nothing lost, duplicated, corrupted or reordered', async () => {
    const results = await allToAll(...nodes(), PORT, { ladder: LADDER, bigLadder: [...LADDER, 64 * MiB], count: 200, maxRandom: 64 * 1024, timeoutMs: 420_000 }, 'sizes');
    checkCounts(results);
    // The 64 MiB messages went both across (a1 → b1, b2; b1 → a1, a2) and within a node.
    for (const [from, to] of [['a1', 'b1'], ['a1', 'b2'], ['b1', 'a1'], ['b1', 'a2'], ['a1', 'a2'], ['b1', 'b2']]) {
      expect(results.find((r) => r.from === from && r.to === to)?.max, `${from} -> ${to}`).toBe(64 * MiB);
    }
  }, 480_000);
});
