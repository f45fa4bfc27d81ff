/**
 * The child of bench `ffi-call` that runs the measurement under another runtime (Node, Bun or
 * Deno) and prints one JSON line: its CallCosts.
 *
 * argv: <calls per batch> <batches> <warm-up batches>
 */
import { runtimeVersion } from '../ffi/runtime.js';
import { measureCallCosts } from './ffi-call.js';

const [calls, batches, warmup] = process.argv.slice(2, 5).map(Number);
if (![calls, batches, warmup].every((n) => Number.isSafeInteger(n) && n >= 0) || calls === 0 || batches === 0) {
  process.stderr.write('usage: ffi-call-peer.js <calls per batch> <batches> <warm-up batches>\n');
  process.exit(2);
}
const costs = measureCallCosts({ calls, batches, warmup });
process.stdout.write(`${JSON.stringify({ ...costs, version: runtimeVersion() })}\n`);
