// The transport contract's "no remote round trip per message" (types.ts, contract 5), measured:
// the in-process transport counts every load/add/compareExchange/read an image makes (each one
// a round trip under RDMA). A steady stream must cost O(1) of them — here, after a warm-up that
// connects, none that grows with the number of messages.
import { afterEach, describe, expect, it } from 'vitest';
import { Postbox, SendStatus } from '../../src/postbox/postbox.js';
import { SegmentReceiver, SegmentSender } from '../../src/segments/segments.js';
import { Fabric } from '../../src/transport/inproc.js';

const closers: { close(): void }[] = [];
afterEach(() => {
  for (const c of closers.splice(0).reverse()) c.close();
});

function pattern(size: number, seed: number): Uint8Array {
  const m = new Uint8Array(size);
  for (let i = 0; i < size; i++) m[i] = (i * 13 + seed) & 0xff;
  return m;
}

/** Remote operations a workload made, per target and in total. */
function cost(fabric: Fabric, work: () => void): { total: number; detail: string } {
  const before = fabric.operations();
  work();
  const after = fabric.operations();
  const rows: string[] = [];
  for (const [key, ops] of after) {
    const was = before.get(key) ?? { load: 0, add: 0, compareExchange: 0, read: 0 };
    const d = { load: ops.load - was.load, add: ops.add - was.add, compareExchange: ops.compareExchange - was.compareExchange, read: ops.read - was.read };
    if (d.load + d.add + d.compareExchange + d.read > 0) rows.push(`${key} ${JSON.stringify(d)}`);
  }
  return { total: after.total - before.total, detail: rows.join('; ') };
}

describe('per-message remote operations (in-process transport counts them)', () => {
  it('postbox: N messages in a steady stream, inline and in blocks, cost no remote operation that grows with N', () => {
    const fabric = new Fabric();
    const a = Postbox.open('a', { domain: 'cost', transport: fabric.transport('n0') });
    const b = Postbox.open('b', { domain: 'cost', transport: fabric.transport('n0') });
    closers.push(a, b);
    const sizes = [8, 200, 3000];
    let received = 0;
    const stream = (n: number) => {
      for (let i = 0; i < n; i++) {
        expect(a.trySend('b', pattern(sizes[i % 3], i))).toBe(SendStatus.OK);
        const m = b.tryReceive();
        expect(m?.data.length).toBe(sizes[i % 3]);
        received++;
      }
    };
    stream(3); // warm-up: connect, register, first acknowledgments
    const few = cost(fabric, () => stream(10));
    const many = cost(fabric, () => stream(1000));
    expect(received).toBe(1013);
    // O(1): the longer stream costs no more than the short one (and neither costs per message).
    expect(many.total, many.detail).toBeLessThanOrEqual(few.total);
    expect(many.total, many.detail).toBeLessThan(10);
  });

  it('postbox across nodes (the receiver on another node): connect and attach by the async forms, then a steady stream costs O(1)', async () => {
    const fabric = new Fabric();
    const a = Postbox.open('a', { domain: 'cost', transport: fabric.transport('n0') });
    const b = Postbox.open('b', { domain: 'cost', transport: fabric.transport('n1') });
    closers.push(a, b);
    // The first trySend to another node starts connecting (remote calls) and says FULL meanwhile.
    expect(a.trySend('b@n1', pattern(8, 0))).toBe(SendStatus.FULL);
    await a.send('b@n1', pattern(8, 1));
    expect(await b.receive({ timeoutMs: 5000 })).toEqual({ from: 'a@n0', data: pattern(8, 1) });
    const sizes = [8, 200, 3000];
    const stream = (n: number) => {
      for (let i = 0; i < n; i++) {
        const m = pattern(sizes[i % 3], i);
        expect(a.trySend('b@n1', m)).toBe(SendStatus.OK);
        const got = b.tryReceive()?.data;
        expect(got !== undefined && got.length === m.length && got.every((v, k) => v === m[k])).toBe(true);
      }
    };
    stream(3);
    const few = cost(fabric, () => stream(10));
    const many = cost(fabric, () => stream(1000));
    expect(many.total, many.detail).toBeLessThanOrEqual(few.total);
    expect(many.total, many.detail).toBeLessThan(10);
  });

  it('segment groups: N messages in a steady stream cost no remote operation that grows with N', () => {
    const fabric = new Fabric();
    const rx = SegmentReceiver.open('rx', {
      domain: 'cost', transport: fabric.transport('n0'),
      groups: [{ partitionSize: 64, partitions: 16 }, { partitionSize: 1024, partitions: 8 }],
    });
    closers.push(rx);
    rx.accept('tx');
    const tx = SegmentSender.connect('tx', 'rx', { domain: 'cost', transport: fabric.transport('n0') });
    closers.push(tx);
    const sizes = [10, 100, 2000];
    let received = 0;
    const stream = (n: number) => {
      for (let i = 0; i < n; i++) {
        expect(tx.trySend(pattern(sizes[i % 3], i))).toBe(0);
        expect(rx.poll((_b, _o, length) => expect(length).toBe(sizes[i % 3]))).toBe(1);
        received++;
      }
    };
    stream(3);
    const few = cost(fabric, () => stream(10));
    const many = cost(fabric, () => stream(1000));
    expect(received).toBe(1013);
    expect(many.total, many.detail).toBeLessThanOrEqual(few.total);
    expect(many.total, many.detail).toBeLessThan(10);
  });
});
