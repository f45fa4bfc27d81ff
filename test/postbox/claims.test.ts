// Postboxes (seed 001), claim group by claim group, on the in-process transport (several
// simulated processes and nodes in this one; an image there is a separate buffer, so a mechanism
// that forgot a write() would lose its bytes), plus the user API and bad input.
import { afterEach, describe, expect, it } from 'vitest';
import { ClosedError, CorruptionError, PeerGoneError, TimeoutError, UsageError } from '../../src/index.js';
import { Postbox, SendStatus, type PostboxOptions } from '../../src/postbox/postbox.js';
import { ackBytes, AK_BLOCK_BYTES, AK_FIRST_BLOCK } from '../../src/postbox/layout.js';
import { Fabric } from '../../src/transport/inproc.js';

const open: Postbox[] = [];
afterEach(() => {
  for (const e of open.splice(0)) e.close();
});

function world() {
  const fabric = new Fabric();
  return {
    fabric,
    open(name: string, options: PostboxOptions & { node?: string } = {}): Postbox {
      const { node, ...rest } = options;
      const e = Postbox.open(name, { domain: 't', transport: fabric.transport(node), ...rest });
      open.push(e);
      return e;
    },
  };
}

function pattern(n: number, seed: number): Uint8Array {
  const m = new Uint8Array(n);
  for (let i = 0; i < n; i++) m[i] = (i * 31 + seed) & 0xff;
  return m;
}

function drainAll(e: Postbox): { from: string; data: Uint8Array }[] {
  const got: { from: string; data: Uint8Array }[] = [];
  let m;
  while ((m = e.tryReceive())) got.push(m);
  return got;
}

/** Tiny geometry: 48-byte inline limit, 64-byte blocks. */
const TINY = { slotBytes: 64, blockSize: 64 };

describe('claims 1–3, 14: a memory space per sender on the node, a postbox per receiver, indicators, polling', () => {
  it('segments are created lazily, on the first message (claims 31, 34, 35)', async () => {
    const w = world();
    const a = w.open('a');
    const b = w.open('b');
    expect(w.fabric.names().sort()).toEqual(['pb.t.ep.a', 'pb.t.ep.b']);
    await a.send('b', pattern(10, 1));
    const names = w.fabric.names();
    expect(names).toContain('pb.t.data.a');
    expect(names.some((n) => n.startsWith('pb.t.ack.a.'))).toBe(true);
    expect(names.some((n) => n.startsWith('pb.t.data.b') || n.startsWith('pb.t.ack.b.'))).toBe(false); // simplex (claim 40)
    expect(b.tryReceive()).toEqual({ from: 'a', data: pattern(10, 1) });
  });

  it('one postbox per receiving process in the sender’s one memory space (claims 1, 6)', async () => {
    const w = world();
    const a = w.open('a');
    const [b, c] = [w.open('b'), w.open('c')];
    await a.send('b', pattern(5, 2));
    await a.send('c', pattern(6, 3));
    const state = a.inspect();
    expect(state.nodes).toHaveLength(1);
    expect(state.nodes[0].postboxesInUse).toBe(2);
    expect(new Set(state.peers.map((p) => p.postbox)).size).toBe(2);
    expect(b.tryReceive()?.data).toEqual(pattern(5, 2));
    expect(c.tryReceive()?.data).toEqual(pattern(6, 3));
  });

  it('poll reads each message in place with its location and length, in order per pair', async () => {
    const w = world();
    const a = w.open('a');
    const b = w.open('b');
    for (let i = 0; i < 20; i++) await a.send('b', pattern(i * 37, i));
    const seen: number[] = [];
    const n = b.poll((buffer, offset, length, from) => {
      expect(from).toBe('a');
      expect(buffer.subarray(offset, offset + length)).toEqual(pattern(length, length / 37));
      seen.push(length);
    });
    expect(n).toBe(20);
    expect(seen).toEqual(Array.from({ length: 20 }, (_, i) => i * 37));
    expect(b.poll(() => {})).toBe(0);
  });
});

describe('claims 4, 5: inline up to a set size, larger messages in buffer blocks', () => {
  it('a message of at most slotBytes − 16 bytes uses no block; one byte more does', async () => {
    const w = world();
    const a = w.open('a', TINY);
    const b = w.open('b');
    await a.send('b', pattern(48, 1));
    expect(a.inspect().peers[0].bufferCount).toBe(0);
    await a.send('b', pattern(49, 2));
    expect(a.inspect().peers[0].bufferCount).toBe(1);
    await a.send('b', pattern(64 * 3 + 1, 3));
    expect(a.inspect().peers[0].bufferCount).toBe(5);
    expect(drainAll(b).map((m) => m.data.length)).toEqual([48, 49, 193]);
  });
});

describe('claims 7, 10–13, 16–21, 26–30: sent list, buffer counts, receiver list, reclamation', () => {
  it('the receiver list keeps receivers in order of use; a receiver with no blocks leaves it', async () => {
    const w = world();
    const a = w.open('a', { ...TINY, poolBytes: 64 * 16 });
    const [r1, r2, r3] = [w.open('r1'), w.open('r2'), w.open('r3')];
    await a.send('r1', pattern(100, 1));
    await a.send('r2', pattern(100, 2));
    await a.send('r3', pattern(10, 3)); // inline: r3 holds no block, so it is not on the list
    expect(a.inspect().nodes[0].receiverList).toEqual(['r1', 'r2']);
    await a.send('r1', pattern(100, 4));
    expect(a.inspect().nodes[0].receiverList).toEqual(['r2', 'r1']); // claim 27: order of use
    expect(a.inspect().peers.find((p) => p.peer === 'r1')).toMatchObject({ bufferCount: 4, messagesHoldingBlocks: 2 });
    for (const r of [r1, r2, r3]) drainAll(r);
    // Reclamation happens on sending (claims 10, 26): acknowledged blocks stay counted until the
    // next block message to that receiver, or until space runs short.
    expect(a.inspect().nodes[0].freeBlocks).toBe(10);
  });

  it('short of blocks: the target receiver first (claim 26), then the list in order of use (claims 10–13, 28); empty receivers leave (claims 20, 30)', async () => {
    const w = world();
    const a = w.open('a', { ...TINY, poolBytes: 64 * 8 });
    const [r1, r2, r3] = [w.open('r1'), w.open('r2'), w.open('r3')];
    await a.send('r1', pattern(128, 1)); // blocks 0–1
    await a.send('r2', pattern(128, 2)); // 2–3
    await a.send('r3', pattern(128, 3)); // 4–5; free: 6–7
    drainAll(r1);
    drainAll(r2); // r1 and r2 acknowledged; r3 not
    // 4 contiguous blocks for r3: r3's own memory is not acknowledged, so r1 then r2 are reclaimed.
    expect(a.trySend('r3', pattern(256, 4))).toBe(SendStatus.OK);
    const state = a.inspect();
    expect(state.nodes[0].receiverList).toEqual(['r3']);
    expect(state.peers.find((p) => p.peer === 'r1')!.bufferCount).toBe(0);
    expect(state.peers.find((p) => p.peer === 'r2')!.bufferCount).toBe(0);
    expect(state.peers.find((p) => p.peer === 'r3')!.bufferCount).toBe(6);
    expect(drainAll(r3).map((m) => m.data)).toEqual([pattern(128, 3), pattern(256, 4)]);
    // With nothing acknowledged anywhere, the pool is full: back-pressure, not an error.
    expect(a.trySend('r1', pattern(64 * 4, 5))).toBe(SendStatus.OK); // r3's 6 blocks are acknowledged now: claim 26 again
    expect(a.trySend('r2', pattern(64 * 5, 6))).toBe(SendStatus.FULL);
  });

  it('reclamation prefers receivers on the same node: another node’s memory space is its own (claim 28)', async () => {
    const w = world();
    const a = w.open('a', { ...TINY, poolBytes: 64 * 4, node: 'n0' });
    const far = w.open('far', { node: 'n1' });
    const near = w.open('near', { node: 'n0' });
    await a.send('far@n1', pattern(200, 1)); // 4 blocks on n1
    drainAll(far);
    await a.send('near', pattern(200, 2)); // 4 blocks on n0
    drainAll(near);
    await a.send('near', pattern(200, 3)); // reclaims near's (n0) blocks; far's stay counted
    const state = a.inspect();
    expect(state.nodes.map((n) => n.node).sort()).toEqual(['n0', 'n1']);
    expect(state.peers.find((p) => p.peer === 'far@n1')!.bufferCount).toBe(4);
    expect(state.peers.find((p) => p.peer === 'near')!.bufferCount).toBe(4);
    expect(drainAll(near)[0]).toEqual({ from: 'a', data: pattern(200, 3) });
  });

  it('postbox slots are reused once acknowledged (claim 16): a full postbox is back-pressure', async () => {
    const w = world();
    const a = w.open('a', { slots: 4 });
    const b = w.open('b');
    for (let i = 0; i < 4; i++) expect(a.trySend('b', pattern(8, i))).toBe(SendStatus.OK);
    expect(a.trySend('b', pattern(8, 4))).toBe(SendStatus.FULL);
    expect(b.tryReceive()?.data).toEqual(pattern(8, 0));
    expect(a.trySend('b', pattern(8, 4))).toBe(SendStatus.OK);
    expect(drainAll(b).map((m) => m.data[0])).toEqual([1, 2, 3, 4].map((i) => pattern(8, i)[0]));
  });

  it('send() waits for acknowledgments under back-pressure and resolves once placed', async () => {
    const w = world();
    const a = w.open('a', { slots: 2 });
    const b = w.open('b');
    const sends = Array.from({ length: 10 }, (_, i) => a.send('b', pattern(16, i)));
    const got: Uint8Array[] = [];
    for (let i = 0; i < 10; i++) got.push((await b.receive({ timeoutMs: 5000 })).data);
    await Promise.all(sends);
    expect(got).toEqual(Array.from({ length: 10 }, (_, i) => pattern(16, i)));
  });
});

describe('claims 22–25: chunking by the cyclic transaction size, reusing the same memory', () => {
  it('a message above the cyclic transaction size goes in pieces through a pool no larger than one piece', async () => {
    const w = world();
    const cts = 64 * 8;
    const a = w.open('a', { ...TINY, poolBytes: cts, cyclicTransactionSize: cts });
    const b = w.open('b');
    expect(a.cyclicTransactionSize).toBe(cts);
    const big = pattern(cts * 10 + 7, 9);
    expect(a.trySend('b', big)).toBe(SendStatus.TOO_LARGE);
    let done = false;
    const sending = a.send('b', big).then(() => (done = true));
    await new Promise((r) => setTimeout(r, 20));
    // Piece 2 needs the memory piece 1 holds: nothing more goes until the receiver reads.
    expect(done).toBe(false);
    expect(a.inspect().peers[0].bufferCount).toBe(8);
    expect(b.inspect().senders[0]?.assembling ?? false).toBe(false);
    const m = await b.receive({ timeoutMs: 5000 });
    await sending;
    expect(m.data).toEqual(big);
  });

  it('the remaining message is stored whole when it is not above the size (claim 22); order holds across chunked and whole messages', async () => {
    const w = world();
    const a = w.open('a', { ...TINY, poolBytes: 64 * 32, cyclicTransactionSize: 300 });
    const b = w.open('b');
    const sizes = [0, 1, 48, 49, 300, 301, 599, 600, 601, 5000, 3];
    const sending = Promise.all(sizes.map((n, i) => a.send('b', pattern(n, i))));
    const got: Uint8Array[] = [];
    for (let i = 0; i < sizes.length; i++) got.push((await b.receive({ timeoutMs: 5000 })).data);
    await sending;
    expect(got).toEqual(sizes.map((n, i) => pattern(n, i)));
  });
});

describe('claims 31–39: acknowledgment segments of m × n blocks', () => {
  it('the sender’s section has n blocks; the receiver of postbox k writes its count into block k', async () => {
    const w = world();
    const a = w.open('a', { postboxes: 5 });
    const b = w.open('b');
    for (let i = 0; i < 3; i++) await a.send('b', pattern(4, i));
    const state = a.inspect();
    const ackName = state.nodes[0].ackSegment;
    const t = w.fabric.transport();
    const ack = t.attach(t.find(ackName)!);
    expect(ack.size).toBe(ackBytes(5));
    const k = state.peers[0].postbox;
    expect(ack.load(AK_FIRST_BLOCK + k * AK_BLOCK_BYTES)).toBe(0);
    drainAll(b);
    expect(ack.load(AK_FIRST_BLOCK + k * AK_BLOCK_BYTES)).toBe(3); // written by b (claim 33), read by a
    ack.dispose();
  });

  it('an ack segment exists on each node of a pair that sends (claim 39); one sender reaches several nodes (claim 41)', async () => {
    const w = world();
    const a = w.open('a', { node: 'n0' });
    const b = w.open('b', { node: 'n1' });
    const c = w.open('c', { node: 'n2' });
    await a.send('b@n1', pattern(3, 1));
    await a.send('c@n2', pattern(300, 2));
    await b.send('a@n0', pattern(4, 3));
    expect(w.fabric.names('n1')).toContain('pb.t.data.a');
    expect(w.fabric.names('n2')).toContain('pb.t.data.a');
    expect(w.fabric.names('n0').filter((n) => n.startsWith('pb.t.ack.a.'))).toHaveLength(2);
    expect(w.fabric.names('n1').filter((n) => n.startsWith('pb.t.ack.b.'))).toHaveLength(1);
    expect(w.fabric.names('n0')).toContain('pb.t.data.b');
    // A receiver attaches a sender's ack segment on another node with remote calls (the async
    // forms), so its first message from there arrives once that is done: receive(), not tryReceive().
    expect(await b.receive({ timeoutMs: 5000 })).toEqual({ from: 'a@n0', data: pattern(3, 1) });
    expect(await c.receive({ timeoutMs: 5000 })).toEqual({ from: 'a@n0', data: pattern(300, 2) });
    expect(await a.receive({ timeoutMs: 5000 })).toEqual({ from: 'b@n1', data: pattern(4, 3) });
  });
});

describe('the API', () => {
  it('claim → fill → commit places a message without a copy; abort gives the space back', async () => {
    const w = world();
    const a = w.open('a', TINY);
    const b = w.open('b');
    const small = a.claim('b', 40)!;
    small.buffer.set(pattern(40, 1));
    expect(small.commit()).toBe(SendStatus.OK);
    const large = a.claim('b', 1000)!;
    expect(() => a.claim('b', 10)).toThrow(UsageError); // one open claim per peer
    expect(a.trySend('b', pattern(1, 1))).toBe(SendStatus.FULL);
    large.buffer.set(pattern(1000, 2));
    expect(large.commit()).toBe(SendStatus.OK);
    expect(() => large.commit()).toThrow(UsageError);
    const dropped = a.claim('b', 500)!;
    const free = a.inspect().nodes[0].freeBlocks;
    dropped.abort();
    expect(a.inspect().nodes[0].freeBlocks).toBe(free + 8);
    expect(drainAll(b).map((m) => m.data)).toEqual([pattern(40, 1), pattern(1000, 2)]);
  });

  it('a send() issued while a claim is open is placed after the claimed message', async () => {
    const w = world();
    const a = w.open('a');
    const b = w.open('b');
    const claim = a.claim('b', 3)!;
    const later = a.send('b', new Uint8Array([2]));
    await new Promise((r) => setTimeout(r, 5));
    claim.buffer.set([1, 1, 1]);
    claim.commit();
    await later;
    expect(drainAll(b).map((m) => m.data[0])).toEqual([1, 2]);
  });

  it('the async iterator yields messages until the endpoint closes', async () => {
    const w = world();
    const a = w.open('a');
    const b = w.open('b');
    const got: number[] = [];
    const reading = (async () => {
      for await (const m of b) {
        got.push(m.data[0]);
        if (got.length === 3) b.close();
      }
    })();
    for (let i = 0; i < 3; i++) await a.send('b', new Uint8Array([i]));
    await reading;
    expect(got).toEqual([0, 1, 2]);
  });

  it('poll honours its limit; receive times out with TimeoutError', async () => {
    const w = world();
    const a = w.open('a');
    const b = w.open('b');
    for (let i = 0; i < 5; i++) a.trySend('b', new Uint8Array([i]));
    expect(b.poll(() => {}, 2)).toBe(2);
    expect(b.poll(() => {}, 10)).toBe(3);
    await expect(b.receive({ timeoutMs: 10 })).rejects.toBeInstanceOf(TimeoutError);
  });

  it('a closed receiver is a PeerGoneError for its senders', async () => {
    const w = world();
    const a = w.open('a', { slots: 2 });
    const b = w.open('b');
    await a.send('b', new Uint8Array(1));
    const pending = [a.send('b', new Uint8Array(2)), a.send('b', new Uint8Array(3))];
    b.close();
    const results = await Promise.allSettled(pending);
    expect(results.some((r) => r.status === 'rejected' && r.reason instanceof PeerGoneError)).toBe(true);
    expect(a.trySend('b', new Uint8Array(1))).toBe(SendStatus.PEER_GONE);
    await expect(a.send('b', new Uint8Array(1))).rejects.toBeInstanceOf(PeerGoneError);
  });

  it('a dead receiver is a PeerGoneError, and its blocks and postbox are reclaimed', async () => {
    const w = world();
    const a = w.open('a', { ...TINY, slots: 4, poolBytes: 64 * 16 });
    const b = w.open('b');
    const t = w.fabric.transport();
    for (let i = 0; i < 4; i++) await a.send('b', pattern(100, i));
    const blocked = a.send('b', pattern(100, 9));
    w.fabric.kill((b as unknown as { transport: { self: { pid: number } } }).transport.self.pid);
    await expect(blocked).rejects.toBeInstanceOf(PeerGoneError);
    const state = a.inspect();
    expect(state.nodes[0].freeBlocks).toBe(16);
    expect(state.nodes[0].postboxesInUse).toBe(0);
    expect(state.nodes[0].receiverList).toEqual([]);
    expect(t.find('pb.t.ep.b')).toBeUndefined(); // the dead receiver's endpoint segment is removed
    open.splice(open.indexOf(b), 1);
  });

  it('flush() resolves once the receiver took everything', async () => {
    const w = world();
    const a = w.open('a');
    const b = w.open('b');
    for (let i = 0; i < 5; i++) await a.send('b', new Uint8Array([i]));
    const flushed = a.flush({ timeoutMs: 5000 });
    expect(drainAll(b)).toHaveLength(5);
    await flushed;
    await expect(a.flush({ timeoutMs: 5000 })).resolves.toBeUndefined();
  });

  it('a closed sender’s channel is drained, then dropped', async () => {
    const w = world();
    const a = w.open('a');
    const b = w.open('b');
    await a.send('b', new Uint8Array([6]));
    expect(b.tryReceive()?.data).toEqual(new Uint8Array([6]));
    await a.send('b', new Uint8Array([7]));
    a.close();
    expect(b.tryReceive()?.data).toEqual(new Uint8Array([7]));
    await new Promise((r) => setTimeout(r, 150)); // housekeeping notices the closed postbox
    b.poll(() => {});
    expect(b.inspect().senders).toEqual([]);
  });
});

describe('bad input is a typed error', () => {
  it('non-bytes payloads, unknown peers, oversize messages, use after close', async () => {
    const w = world();
    const a = w.open('a', { maxMessageBytes: 1000 });
    w.open('b');
    for (const bad of ['text', 42, null, undefined, {}, [1, 2]]) {
      await expect(a.send('b', bad as never)).rejects.toBeInstanceOf(UsageError);
      expect(() => a.trySend('b', bad as never)).toThrow(UsageError);
    }
    await expect(a.send('nobody', new Uint8Array(1))).rejects.toBeInstanceOf(UsageError);
    expect(() => a.trySend('nobody', new Uint8Array(1))).toThrow(UsageError);
    await expect(a.send('bad name!', new Uint8Array(1))).rejects.toBeInstanceOf(UsageError);
    await expect(a.send('b', new Uint8Array(1001))).rejects.toBeInstanceOf(UsageError);
    expect(() => a.claim('b', -1)).toThrow(UsageError);
    expect(() => a.claim('b', a.cyclicTransactionSize + 1)).toThrow(UsageError);
    // Other views and ArrayBuffers are bytes too.
    await a.send('b', new Uint16Array([1, 2]));
    await a.send('b', new ArrayBuffer(3));
    a.close();
    a.close();
    await expect(a.send('b', new Uint8Array(1))).rejects.toBeInstanceOf(ClosedError);
    expect(() => a.trySend('b', new Uint8Array(1))).toThrow(ClosedError);
    expect(() => a.poll(() => {})).toThrow(ClosedError);
    expect(() => a.claim('b', 1)).toThrow(ClosedError);
  });

  it('bad names and options; a name held by a live endpoint', () => {
    const w = world();
    w.open('a');
    expect(() => w.open('a')).toThrow(UsageError);
    expect(() => w.open('')).toThrow(UsageError);
    expect(() => w.open('x'.repeat(49))).toThrow(UsageError);
    expect(() => w.open('a.b')).toThrow(UsageError);
    expect(() => w.open('c', { slots: 1 })).toThrow(UsageError);
    expect(() => w.open('c', { slotBytes: 100 })).toThrow(UsageError);
    expect(() => w.open('c', { blockSize: 0 })).toThrow(UsageError);
    expect(() => w.open('c', { cyclicTransactionSize: 10 })).toThrow(UsageError);
    expect(() => w.open('c', { domain: 'a.b' })).toThrow(UsageError);
  });

  it('a corrupt ack block is a CorruptionError for that channel only', async () => {
    const w = world();
    const a = w.open('a', { slots: 2 });
    const b = w.open('b');
    const c = w.open('c');
    await a.send('b', new Uint8Array(1));
    await a.send('c', new Uint8Array(1));
    const t = w.fabric.transport();
    const state = a.inspect();
    const ack = t.attach(t.find(state.nodes[0].ackSegment)!);
    const k = state.peers.find((p) => p.peer === 'b')!.postbox;
    ack.publish(AK_FIRST_BLOCK + k * AK_BLOCK_BYTES, 12345); // more acknowledged than ever sent
    a.trySend('b', new Uint8Array(1));
    expect(() => a.trySend('b', new Uint8Array(1))).toThrow(CorruptionError);
    expect(a.trySend('c', new Uint8Array(1))).toBe(SendStatus.OK);
    expect(drainAll(c)).toHaveLength(2);
    drainAll(b);
    ack.dispose();
  });
});
