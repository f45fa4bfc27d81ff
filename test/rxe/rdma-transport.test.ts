/**
 * RdmaTransport across two nodes of the guest (test/rxe/two-node.ts): node B (DEV1) runs an agent
 * and reader processes in its own mount namespace; this test process connects from node A's
 * address (DEV0) and reaches B's memory only through RDMA. What B's target holds is read through
 * B's namespace (/proc/<holder>/root/dev/shm), or by a reader process of B.
 *
 * Covered: random element chains written through the request engine (coalesced; a write larger
 * than the largest message divided) arriving byte-exact and read back by RDMA READ; publish
 * ordered after the writes before it (a reader of B checks every value it sees); notify waking a
 * sleeping reader; RDMA atomics (fetch-and-add, compare-and-swap, contended from two
 * connections, ordered after a write); a bad rkey and a write outside the target as typed
 * errors; dispose with writes in flight.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backend } from '../../ffi/backend.js';
import { runtimeName } from '../../ffi/runtime.js';
import { ClosedError, PeerGoneError, PostStatus, RdmaImage, RdmaTransport, RemoteAccessError, targetRegionName, UsageError, type SegmentDescriptor } from '../../src/index.js';
import { DEV0, DEV1, pattern, skipReason, suffix } from './helpers.js';
import { asleepInFutex, twoNodes, type Proc, type TwoNodeNode } from './two-node.js';

const PORT = 7481;
const WATCHER = fileURLToPath(new URL('../../dist/test/fixtures/rdma-transport-process.js', import.meta.url));
const HEADER = 128; // a SharedRegion's data starts after its 128-byte header
let A: TwoNodeNode;
let B: TwoNodeNode;
let agentB: Proc;
const transports: RdmaTransport[] = [];

function transport(): RdmaTransport {
  const t = new RdmaTransport({ node: 'A', agents: { B: { address: B.address, port: PORT } }, source: A.address, timeoutMs: 20_000 });
  transports.push(t);
  return t;
}

/** What B's target `name` holds now, read through B's mount namespace. */
function targetBytes(name: string): Uint8Array {
  const file = readFileSync(`/proc/${B.holderPid}/root/dev/shm/memwire.u${process.getuid!()}.${targetRegionName(name)}`);
  return new Uint8Array(file.buffer, file.byteOffset + HEADER, file.length - HEADER);
}

function firstDifference(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

/** A target of `size` bytes on B, allocated by B's agent for transport `on`. */
async function onB(on: RdmaTransport, name: string, size: number): Promise<SegmentDescriptor> {
  return (await on.exposeAsync(name, size, { node: 'B' })).descriptor;
}

const POSTED = PostStatus.POSTED;

async function until(test: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

describe.skipIf(!!skipReason)(`RdmaTransport ${DEV0} → ${DEV1} (${runtimeName}, ${backend.name})${suffix}`, () => {
  let t: RdmaTransport;

  beforeAll(async () => {
    [A, B] = await twoNodes();
    agentB = await B.startAgent(PORT);
    t = transport();
  }, 90_000);

  afterAll(async () => {
    for (const x of transports) x.dispose();
    await new Promise((r) => setTimeout(r, 200)); // the connections close on the next turns
    await A?.dispose();
    await B?.dispose();
    // Nothing of the transports' source heaps is left in this process's /dev/shm.
    expect(readdirSync('/dev/shm').filter((n) => n.includes(`rdmasrc.${process.pid}.`))).toEqual([]);
  }, 60_000);

  it('exposes on B, finds, removes; isAlive through B\'s agent', async () => {
    const name = `x.${process.pid}`;
    const exposed = await t.exposeAsync(name, 8192, { node: 'B' });
    const d = exposed.descriptor;
    expect(d).toMatchObject({ transport: 'rdma', node: 'B', name, size: 8192 });
    expect(B.shm()).toContain(`memwire.u${process.getuid!()}.${targetRegionName(name)}`);
    expect(await t.findAsync(name, 'B')).toMatchObject({ transport: 'rdma', node: 'B', name, size: 8192 });
    expect(await t.findAsync(`none.${process.pid}`, 'B')).toBeUndefined();
    expect(await t.isAliveAsync({ pid: process.pid, start: 0n }, 'B')).toBe(true);
    expect(await t.isAliveAsync({ pid: 4_194_000, start: 0n }, 'B')).toBe(false);
    exposed.dispose(); // the owner gives the name up: B's agent removes it
    exposed.dispose();
    await until(() => !B.shm().includes(`memwire.u${process.getuid!()}.${targetRegionName(name)}`), 10_000, 'the target removed on B');
    expect(await t.findAsync(name, 'B')).toBeUndefined();
    await t.removeAsync(name, 'B'); // a missing name is not an error
    const d2 = await onB(t, name, 4096);
    await t.removeAsync(name, 'B');
    expect(await t.findAsync(name, 'B')).toBeUndefined();
    await expect(t.attachAsync(d2)).rejects.toThrow(/NOT_FOUND/);
    await expect(t.attachAsync({ ...d, transport: 'shm' })).rejects.toBeInstanceOf(UsageError);
    await expect(t.exposeAsync(`y.${process.pid}`, 4096, { node: 'C' })).rejects.toBeInstanceOf(UsageError);
    await expect(t.findAsync(name, 'C')).rejects.toBeInstanceOf(UsageError);
  });

  it('random element chains arrive byte-exact (coalesced; a write above the largest message divided); RDMA READ reads them back', async () => {
    const name = `c.${process.pid}`;
    const image = await t.attachAsync(await onB(t, name, 9 * 1024 * 1024 + 4096));
    const size = image.size;
    const engine = image.channel.engine;
    const model = new Uint8Array(size);
    const next = rng(0x12345);

    // One write of everything: larger than rxe's 8 MiB max_msg_sz, so it divides.
    for (let i = 0; i < size; i++) model[i] = next() & 0xff;
    image.source.set(model);
    let wr = engine.postedWorkRequests;
    expect(image.write(0, size)).toBe(POSTED);
    await image.settled();
    expect(engine.postedWorkRequests - wr).toBeGreaterThanOrEqual(Math.ceil(size / engine.limits.maxMessageSize));
    expect(engine.limits.maxMessageSize).toBeLessThan(size);

    // Chains of 1–12 pieces, about half of them directly after the one before (those coalesce).
    wr = engine.postedWorkRequests;
    let pieces = 0;
    for (let round = 0; round < 60; round++) {
      const ranges: number[] = [];
      let at = next() % (size - 100_000);
      const n = 1 + (next() % 12);
      for (let j = 0; j < n; j++) {
        const length = 1 + (next() % 5000);
        ranges.push(at, length);
        for (let i = at; i < at + length; i++) image.source[i] = model[i] = next() & 0xff;
        at += length + (next() % 2 ? 0 : next() % 3000);
      }
      pieces += n;
      expect(image.writev(ranges)).toBe(POSTED);
      if (round % 20 === 19) await image.settled(); // source bytes may change only after their write completed
    }
    await image.settled();
    const chained = engine.postedWorkRequests - wr;
    expect(chained).toBeGreaterThan(0);
    expect(chained).toBeLessThan(pieces); // coalesced: fewer work requests than pieces

    expect(firstDifference(targetBytes(name), model)).toBe(-1);
    const back = new Uint8Array(size);
    await image.readAsync(0, back);
    expect(firstDifference(back, model)).toBe(-1);
    const part = new Uint8Array(12_345);
    await image.readAsync(777_777, part);
    expect(firstDifference(part, model.subarray(777_777, 777_777 + part.length))).toBe(-1);
    image.dispose();
    await t.removeAsync(name, 'B');
  }, 180_000);

  it('publish is ordered after the writes before it; notify wakes a reader asleep on B', async () => {
    const regions = 24;
    const regionBytes = 32 * 1024;
    const name = `o.${process.pid}`;
    const image = await t.attachAsync(await onB(t, name, 64 + regions * regionBytes));
    const watcher = B.run(['watch', name, regions, regionBytes, 120_000], WATCHER);
    await watcher.line(/^watching$/, 60_000);
    for (let k = 0; k < regions; k++) {
      expect(image.put(64 + k * regionBytes, pattern(regionBytes, k + 1))).toBe(POSTED);
      expect(image.publish(0, k + 1)).toBe(POSTED);
    }
    await image.settled();
    const seen = await watcher.line(/^ordered .*$/, 120_000);
    expect(seen[0]).toMatch(/^ordered ok \d+ \d+$/);

    const bytes = 100_000;
    const name2 = `n.${process.pid}`;
    const image2 = await t.attachAsync(await onB(t, name2, 64 + bytes));
    const reader = B.run(['wait-read', name2, bytes, 11, 60_000]);
    await reader.line(/^waiting$/, 60_000);
    await asleepInFutex(reader.child.pid!); // so 'ok' below can only come from the doorbell
    expect(image2.put(64, pattern(bytes, 11))).toBe(POSTED);
    expect(image2.publish(0, 1)).toBe(POSTED);
    expect(image2.notify(0)).toBe(POSTED);
    await image2.settled();
    expect((await reader.line(/^read .*$/, 60_000))[0]).toBe('read ok 1 ok'); // woken by the doorbell, not a timeout
    image.dispose();
    image2.dispose();
  }, 240_000);

  it('RDMA atomics on 8-aligned 64-bit words: fetch-and-add, compare-and-swap, contended from two connections, ordered after writes', async () => {
    const name = `a.${process.pid}`;
    const d = await onB(t, name, 4096);
    const image = await t.attachAsync(d);
    expect(await image.fetchAdd(8, 5n)).toBe(0n);
    expect(await image.load64(8)).toBe(5n);
    expect(await image.compareSwap(8, 5n, 1n << 40n)).toBe(5n);
    expect(await image.compareSwap(8, 7n, 9n)).toBe(1n << 40n); // not equal: unchanged
    expect(await image.load64(8)).toBe(1n << 40n);
    expect(new DataView(targetBytes(name).slice(8, 16).buffer).getBigUint64(0, true)).toBe(1n << 40n);
    expect(await image.fetchAdd(16, -1n)).toBe(0n); // wraps: the word is a u64
    expect(await image.load64(16)).toBe(2n ** 64n - 1n);

    // An atomic after a write on the same connection sees the write.
    const word = new Uint8Array(8);
    new DataView(word.buffer).setBigUint64(0, 41n, true);
    expect(image.put(32, word)).toBe(POSTED);
    expect(await image.fetchAdd(32, 1n)).toBe(42n - 1n);

    // Contended: this connection and another each add 1, 100 times: no increment is lost and
    // every old value 0..199 comes back exactly once.
    const other = await transport().attachAsync(d);
    const olds = await Promise.all([
      ...Array.from({ length: 100 }, () => image.fetchAdd(24, 1n)),
      ...Array.from({ length: 100 }, () => other.fetchAdd(24, 1n)),
    ]);
    expect(await image.load64(24)).toBe(200n);
    expect(olds.map(Number).sort((x, y) => x - y)).toEqual(Array.from({ length: 200 }, (_, i) => i));

    // The interface's 32-bit forms on the low half of a word (signed, as Atomics on an Int32Array).
    expect(await image.addAsync(40, 0x7fffffff)).toBe(0);
    expect(await image.addAsync(40, 1)).toBe(0x7fffffff);
    expect(await image.loadAsync(40)).toBe(-0x80000000);
    expect(await image.compareExchangeAsync(48, 0, 7)).toBe(0);
    expect(await image.compareExchangeAsync(48, 8, 9)).toBe(7);
    expect(await image.loadAsync(48)).toBe(7);
    expect(() => image.load(48)).toThrow(UsageError); // synchronous forms: this node only
    expect(() => image.read(0, new Uint8Array(1))).toThrow(UsageError);

    await expect(image.fetchAdd(4, 1n)).rejects.toBeInstanceOf(UsageError); // not 8-aligned
    await expect(image.compareSwap(4096, 0n, 1n)).rejects.toBeInstanceOf(UsageError); // outside
    image.dispose();
    other.dispose();
  }, 120_000);

  it('a write outside the target or under a bad rkey is a typed error on that image; its connection ends, the transport connects anew', async () => {
    const name = `e.${process.pid}`;
    const d = await onB(t, name, 65536);
    const image = await t.attachAsync(d);
    expect(() => image.write(65536 - 2, 4)).toThrow(UsageError);
    expect(() => image.writev([0, 4, 65536, 1])).toThrow(UsageError);
    expect(() => image.publish(2, 1)).toThrow(UsageError);

    const t3 = transport();
    const good = await t3.attachAsync(d);
    const client = await t3.client('B');
    const target = await client.find(name);
    const forged = RdmaImage.open(good.channel, { ...target, rkey: target.rkey ^ 0xff });
    expect(forged.put(0, pattern(4096, 3))).toBe(POSTED);
    await expect(forged.settled()).rejects.toBeInstanceOf(RemoteAccessError);
    expect(() => forged.write(0, 4)).toThrow(RemoteAccessError); // every later call
    expect(() => good.write(0, 4)).toThrow(PeerGoneError); // the RC queue pair is in error: the connection is gone
    const again = await t3.attachAsync(d); // a new connection
    expect(again.put(0, pattern(4096, 4))).toBe(POSTED);
    await again.settled();

    // A descriptor claiming more than the target has: the NIC refuses the bytes beyond it.
    const client2 = await t3.client('B');
    const lying = RdmaImage.open(again.channel, { ...(await client2.find(name)), size: 65536 + 8192 });
    expect(lying.write(65536, 4096)).toBe(POSTED);
    await expect(lying.settled()).rejects.toBeInstanceOf(RemoteAccessError);
    expect(firstDifference(targetBytes(name).subarray(0, 4096), pattern(4096, 4))).toBe(-1); // nothing else changed
    t3.dispose();

    // The first connection was never touched: it works.
    expect(image.put(64, pattern(64, 5))).toBe(POSTED);
    await image.settled();
    image.dispose();
  }, 120_000);

  it('dispose with writes in flight: later calls throw ClosedError, the source is freed only after its writes completed; a transport disposed mid-write settles them', async () => {
    const name = `d.${process.pid}`;
    const size = 8 * 1024 * 1024;
    const d = await onB(t, name, size);
    const image = await t.attachAsync(d);
    const heap = image.channel.heap;
    image.source.fill(7);
    expect(image.write(0, size)).toBe(POSTED);
    const allocated = heap.stats().allocations;
    image.dispose();
    image.dispose();
    expect(image.closed).toBe(true);
    expect(() => image.write(0, 1)).toThrow(ClosedError);
    expect(heap.stats().allocations).toBe(allocated); // still in flight: still allocated
    await until(() => heap.stats().allocations < allocated, 60_000, 'the disposed image\'s source freed after its write');

    const other = await t.attachAsync(d);
    expect(other.put(0, pattern(1000, 6))).toBe(POSTED);
    const back = new Uint8Array(1000);
    await other.readAsync(0, back); // ordered after the write
    expect(firstDifference(back, pattern(1000, 6))).toBe(-1);
    expect(targetBytes(name)[size - 1]).toBe(7);
    other.dispose();

    const t4 = transport();
    const im = await t4.attachAsync(d);
    expect(im.write(0, size)).toBe(POSTED);
    const settled = im.settled().then(
      () => undefined,
      (e: unknown) => e,
    );
    t4.dispose();
    const outcome = await Promise.race([settled, new Promise((r) => setTimeout(() => r('hang'), 30_000))]);
    expect(outcome === undefined || outcome instanceof ClosedError || outcome instanceof PeerGoneError, String(outcome)).toBe(true);
    expect(agentB.child.exitCode).toBe(null);
  }, 180_000);
});
