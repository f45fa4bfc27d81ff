/**
 * The second process of `memwire demo`: attaches to the demo's region and answers it.
 * argv: <region name> <latency rounds> <bulk count>
 */
import { SharedRegion } from '../shm/region.js';
import { BULK_SIZE, checksum, mailboxes, SMALL_SIZE } from './demo-protocol.js';

const [name, roundsArg, bulkArg] = process.argv.slice(2);
const rounds = Number(roundsArg);
const bulk = Number(bulkArg);
const region = SharedRegion.open(name);
const { toPeer, toDemo } = mailboxes(region);
const spin = { spin: 1 << 20, timeoutMs: 30_000 };

const small = new Uint8Array(SMALL_SIZE);
const smallWords = new Int32Array(small.buffer);
let badStamps = 0;
for (let i = 0; i < rounds; i++) {
  if (toPeer.take(small, spin) !== SMALL_SIZE) throw new Error(`latency message ${i} did not arrive`);
  if (smallWords[0] !== i) badStamps++;
  toDemo.put(small, spin);
}

const big = new Uint8Array(BULK_SIZE);
const bigWords = new Int32Array(big.buffer);
let intact = 0;
for (let i = 0; i < bulk; i++) {
  if (toPeer.take(big, spin) !== BULK_SIZE) throw new Error(`bulk message ${i} did not arrive`);
  if (bigWords[0] === i && bigWords[1] === checksum(bigWords, BULK_SIZE / 4)) intact++;
}
toDemo.put(new Uint8Array(new Int32Array([badStamps, intact]).buffer), spin);
region.close();
