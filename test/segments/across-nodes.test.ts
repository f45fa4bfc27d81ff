// Segment groups between nodes (issue 12) on the in-process transport, whose async forms reach
// other simulated nodes and whose images are separate buffers (as RDMA's are): a receiver on node
// B accepts "tx@A", a sender on node A connects with SegmentSender.connectAsync('tx', 'rx@B').
// The same code runs over RdmaTransport in the rxe tier (test/rxe/segments-xnode.test.ts).
import { afterEach, describe, expect, it } from 'vitest';
import { PeerGoneError, RECEIVER_TRUST_MS, UsageError } from '../../src/index.js';
import { parsePeer, peerKey, spell } from '../../src/segments/common.js';
import { SegmentReceiver, SegmentSender } from '../../src/segments/segments.js';
import { nodeTag } from '../../src/transport/descriptor.js';
import { Fabric } from '../../src/transport/inproc.js';
import type { ProcessIdentity } from '../../src/transport/types.js';

const GROUPS = [
  { partitionSize: 64, partitions: 16 },
  { partitionSize: 256, partitions: 8 },
  { partitionSize: 1024, partitions: 4 },
];

const closers: { close(): void }[] = [];
afterEach(() => {
  for (const c of closers.splice(0).reverse()) c.close();
});

function pattern(size: number, seed: number): Uint8Array {
  const m = new Uint8Array(size);
  for (let i = 0; i < size; i++) m[i] = (i * 7 + seed * 31) & 0xff;
  return m;
}

/** A macrotask later: what an async answer of another node needs to arrive. */
const turn = () => new Promise((resolve) => setTimeout(resolve, 2));

/** Poll until `n` messages came (bounded: 20 s); each with its sender. */
async function take(rx: SegmentReceiver, n: number): Promise<{ from: string; data: Uint8Array }[]> {
  const got: { from: string; data: Uint8Array }[] = [];
  const deadline = Date.now() + 20_000;
  while (got.length < n && Date.now() < deadline) {
    rx.poll((b, o, l, from) => got.push({ from, data: b.slice(o, o + l) }));
    await turn();
  }
  return got;
}

describe('peer names', () => {
  it('"name" is a process of this node, "name@node" one of any node; object names carry the node’s tag only for another node', () => {
    expect(parsePeer('receiver', 'rx', 'A')).toEqual({ name: 'rx', node: 'A' });
    expect(parsePeer('receiver', 'rx@B', 'A')).toEqual({ name: 'rx', node: 'B' });
    expect(spell({ name: 'rx', node: 'A' }, 'A')).toBe('rx');
    expect(spell(parsePeer('receiver', 'rx@A', 'A'), 'A')).toBe('rx'); // this node spelled out
    expect(spell({ name: 'rx', node: 'B' }, 'A')).toBe('rx@B');
    expect(peerKey({ name: 'tx', node: 'A' }, 'A')).toBe('tx');
    expect(peerKey({ name: 'tx', node: 'A' }, 'B')).toBe(`tx.${nodeTag('A')}`);
    for (const bad of ['', '@B', 'rx@', 'rx@B@C', 'r x@B', `rx@${'n'.repeat(56)}`, 'a.b@B', 7]) {
      expect(() => parsePeer('receiver', bad, 'A'), String(bad)).toThrow(UsageError);
    }
  });
});

describe('segment groups across nodes (in-process fabric, nodes A and B)', () => {
  function setup() {
    const fabric = new Fabric();
    const onA = fabric.transport('A');
    const onB = fabric.transport('B');
    const domain = 'xn';
    const rx = SegmentReceiver.open('rx', { domain, transport: onB, groups: GROUPS });
    closers.push(rx);
    rx.accept('tx@A');
    return { fabric, onA, onB, domain, rx };
  }

  it('connectAsync obtains the remote receiver’s descriptors; a message of every group arrives byte-exact, in order, from "tx@A"', async () => {
    const { onA, domain, rx } = setup();
    const tx = await SegmentSender.connectAsync('tx', 'rx@B', { domain, transport: onA });
    closers.push(tx);
    expect(tx.receiver).toBe('rx@B');
    expect(tx.groups.map((g) => [g.partitionSize, g.target.node])).toEqual([[64, 'B'], [256, 'B'], [1024, 'B']]);
    expect(tx.groups[0].target.name).toBe(`sg.xn.seg.rx.tx.${nodeTag('A')}.0`);
    const sizes = [0, 10, 59, 60, 64, 200, 300, 1000, 2000]; // all at once: 1 + 2 of the 4 KiB group's 4 partitions
    for (const [i, size] of sizes.entries()) expect(tx.trySend(pattern(size, i))).toBe(0);
    const got = await take(rx, sizes.length);
    expect(got.map((m) => m.from)).toEqual(sizes.map(() => 'tx@A'));
    expect(got.map((m) => m.data)).toEqual(sizes.map((size, i) => pattern(size, i)));
    // The largest message fills all four 1 KiB partitions: it fits once the receiver's consumption came back.
    await tx.send(pattern(4092, 99), { timeoutMs: 2000 });
    expect((await take(rx, 1)).map((m) => m.data)).toEqual([pattern(4092, 99)]);
  });

  it('falls back to a larger partition size when the smaller group’s runs are taken, then back-pressure; frees them once the receiver consumed', async () => {
    const { onA, domain, rx } = setup();
    const tx = await SegmentSender.connectAsync('tx', 'rx@B', { domain, transport: onA });
    closers.push(tx);
    const placed: number[] = [];
    for (let i = 0; ; i++) {
      const choice = tx.select(100);
      if (!choice) {
        expect(tx.trySend(pattern(100, i))).toBe(-1);
        break;
      }
      placed.push(choice.group);
      expect(tx.trySend(pattern(100, i))).toBe(0);
    }
    // 100 + 4 bytes: 2 partitions of 64 B (8 messages), then 1 of 256 B (8), then 1 of 1 KiB (4).
    expect(placed).toEqual([...Array(8).fill(0), ...Array(8).fill(1), ...Array(4).fill(2)]);
    expect((await take(rx, 20)).map((m) => m.data)).toEqual(placed.map((_, i) => pattern(100, i)));
    // What the receiver consumed reaches the sender's return segment (its own memory) by a remote write.
    const deadline = Date.now() + 2000;
    while (tx.select(100)?.group !== 0 && Date.now() < deadline) await turn();
    expect(tx.trySend(pattern(100, 20))).toBe(0);
    expect((await take(rx, 1)).map((m) => m.data)).toEqual([pattern(100, 20)]);
  });

  it('both directions at once, with a local sender of the same name beside the remote one', async () => {
    const { fabric, onA, onB, domain, rx } = setup();
    const rxA = SegmentReceiver.open('rx', { domain, transport: onA, groups: GROUPS });
    closers.push(rxA);
    rxA.accept('tx@B');
    rx.accept('tx'); // a sender of B named tx, beside tx@A
    const onB2 = fabric.transport('B');
    const ab = await SegmentSender.connectAsync('tx', 'rx@B', { domain, transport: onA });
    const ba = await SegmentSender.connectAsync('tx', 'rx@A', { domain, transport: onB });
    const bb = SegmentSender.connect('tx', 'rx', { domain, transport: onB2 });
    closers.push(ab, ba, bb);
    const receiving = Promise.all([take(rx, 60), take(rxA, 30)]);
    for (let i = 0; i < 30; i++) {
      await ab.send(pattern(i * 37, i), { timeoutMs: 2000 });
      await ba.send(pattern(i * 41, i), { timeoutMs: 2000 });
      await bb.send(pattern(i * 43, i), { timeoutMs: 2000 });
    }
    const [atB, atA] = await receiving;
    expect(atB.filter((m) => m.from === 'tx@A').map((m) => m.data)).toEqual(Array.from({ length: 30 }, (_, i) => pattern(i * 37, i)));
    expect(atB.filter((m) => m.from === 'tx').map((m) => m.data)).toEqual(Array.from({ length: 30 }, (_, i) => pattern(i * 43, i)));
    expect(atA.map((m) => [m.from, m.data])).toEqual(Array.from({ length: 30 }, (_, i) => ['tx@B', pattern(i * 41, i)]));
  });

  it('a steady stream costs no remote read or atomic per message (transport contract 5)', async () => {
    const { fabric, onA, domain, rx } = setup();
    const tx = await SegmentSender.connectAsync('tx', 'rx@B', { domain, transport: onA });
    closers.push(tx);
    await tx.send(pattern(10, 0));
    await take(rx, 1);
    const before = fabric.operations().total;
    const receiving = take(rx, 300);
    for (let i = 1; i <= 300; i++) await tx.send(pattern((i * 97) % 3000, i), { timeoutMs: 20_000 });
    expect((await receiving).map((m) => m.data)).toEqual(Array.from({ length: 300 }, (_, k) => pattern(((k + 1) * 97) % 3000, k + 1)));
    expect(fabric.operations().total - before).toBe(0);
  });

  it('wrong uses are UsageErrors: connect() to another node, a receiver that accepted "tx" (this node’s) but not "tx@A", an unknown receiver, a bad name', async () => {
    const { onA, domain, rx } = setup();
    expect(() => SegmentSender.connect('tx', 'rx@B', { domain, transport: onA })).toThrow(UsageError);
    await expect(SegmentSender.connectAsync('other', 'rx@B', { domain, transport: onA })).rejects.toThrow(UsageError);
    rx.accept('solo'); // a sender of B
    await expect(SegmentSender.connectAsync('solo', 'rx@B', { domain, transport: onA })).rejects.toThrow(UsageError);
    await expect(SegmentSender.connectAsync('tx', 'nobody@B', { domain, transport: onA })).rejects.toThrow(UsageError);
    await expect(SegmentSender.connectAsync('tx', 'rx@', { domain, transport: onA })).rejects.toThrow(UsageError);
    expect(() => rx.accept('tx@')).toThrow(UsageError);
  });

  it('a remote receiver that died (pid + start time, asked of its node) fails send() with PeerGoneError; one that is dead already fails connectAsync', async () => {
    const { fabric, onA, onB, domain, rx } = setup();
    const tx = await SegmentSender.connectAsync('tx', 'rx@B', { domain, transport: onA });
    closers.push(tx);
    await tx.send(pattern(10, 0));
    expect(await take(rx, 1)).toHaveLength(1);
    fabric.kill(onB.self.pid);
    const sending = (async () => {
      for (let i = 1; ; i++) await tx.send(pattern(100, i), { timeoutMs: 5000 });
    })();
    await expect(sending).rejects.toThrow(PeerGoneError);
    const { onA: onA2, domain: d2 } = (() => {
      const f = new Fabric();
      const a = f.transport('A');
      const b = f.transport('B');
      const r = SegmentReceiver.open('rx', { domain: 'xd', transport: b, groups: GROUPS });
      closers.push(r);
      r.accept('tx@A');
      f.kill(b.self.pid);
      return { onA: a, domain: 'xd' };
    })();
    await expect(SegmentSender.connectAsync('tx', 'rx@B', { domain: d2, transport: onA2 })).rejects.toThrow(PeerGoneError);
  });

  it('a remote sender that died (asked of its node) is dropped once its messages were delivered: one PeerGoneError naming "tx@A", its targets removed', async () => {
    const { fabric, onA, domain, rx } = setup();
    const tx = await SegmentSender.connectAsync('tx', 'rx@B', { domain, transport: onA });
    closers.push(tx);
    const sent = [pattern(10, 1), pattern(100, 2), pattern(700, 3)];
    for (const m of sent) await tx.send(m);
    fabric.kill(onA.self.pid);
    const got: { from: string; data: Uint8Array }[] = [];
    const errors: unknown[] = [];
    const deadline = Date.now() + 20_000;
    while (errors.length === 0 && Date.now() < deadline) {
      try {
        rx.poll((b, o, l, from) => got.push({ from, data: b.slice(o, o + l) }));
      } catch (error) {
        errors.push(error);
      }
      await turn();
    }
    expect(got.map((g) => g.data)).toEqual(sent);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(PeerGoneError);
    expect((errors[0] as PeerGoneError).peer).toBe('tx@A');
    // Its targets (on B) are gone: a connect of that name is refused until accepted again.
    await expect(SegmentSender.connectAsync('tx', 'rx@B', { domain, transport: onA })).rejects.toThrow(UsageError);
  });

  it('a remote receiver’s "alive" is trusted RECEIVER_TRUST_MS: with no fresh answer the sender writes nothing (-1), then sends once one comes', async () => {
    const { onA, domain, rx } = setup();
    // onA whose liveness questions wait for release() while `hold` is set.
    let hold = false;
    const held: (() => void)[] = [];
    const gate = new Proxy(onA, {
      get(t, k) {
        if (k === 'isAliveAsync') {
          return (who: ProcessIdentity, node?: string) =>
            hold ? new Promise<boolean>((resolve, reject) => held.push(() => t.isAliveAsync(who, node).then(resolve, reject))) : t.isAliveAsync(who, node);
        }
        const v = Reflect.get(t, k, t);
        return typeof v === 'function' ? v.bind(t) : v;
      },
    });
    const tx = await SegmentSender.connectAsync('tx', 'rx@B', { domain, transport: gate });
    closers.push(tx);
    hold = true;
    expect(tx.trySend(pattern(10, 0))).toBe(0); // the answer of connect is fresh
    await new Promise((resolve) => setTimeout(resolve, RECEIVER_TRUST_MS + 100));
    expect(tx.select(10)).not.toBeNull(); // room enough …
    expect(tx.trySend(pattern(10, 1))).toBe(-1); // … but no answer younger than RECEIVER_TRUST_MS
    expect(held.length).toBeGreaterThan(0);
    hold = false;
    for (const release of held.splice(0)) release();
    const deadline = Date.now() + 5000;
    let status = -1;
    while (status !== 0 && Date.now() < deadline) {
      await turn();
      status = tx.trySend(pattern(10, 1)); // the held question answered: trusted again
    }
    expect(status).toBe(0);
    expect((await take(rx, 2)).map((m) => m.data)).toEqual([pattern(10, 0), pattern(10, 1)]);
  });

  it('a remote receiver that closes tells its sender through the return segment: PeerGoneError', async () => {
    const { onA, domain, rx } = setup();
    const tx = await SegmentSender.connectAsync('tx', 'rx@B', { domain, transport: onA });
    closers.push(tx);
    await tx.send(pattern(10, 0));
    expect(await take(rx, 1)).toHaveLength(1); // the receiver has attached the return segment
    rx.close();
    const deadline = Date.now() + 2000;
    let error: unknown;
    while (!error && Date.now() < deadline) {
      try {
        tx.trySend(pattern(10, 1));
        await turn();
      } catch (e) {
        error = e;
      }
    }
    expect(error).toBeInstanceOf(PeerGoneError);
    expect((error as Error).message).toMatch(/closed/);
  });
});
