// Segment groups (seed 000), claim group by claim group, on the in-process, the shm and the RDMA
// transport's this-node forms.
import { afterEach, describe, expect, it } from 'vitest';
import { ClosedError, CorruptionError, UsageError } from '../../src/index.js';
import { Fabric } from '../../src/transport/inproc.js';
import { RdmaTransport } from '../../src/transport/rdma-transport.js';
import { ShmTransport } from '../../src/transport/shm.js';
import type { Transport } from '../../src/transport/types.js';
import { SegmentReceiver, SegmentSender } from '../../src/segments/segments.js';
import { dataOffset, DE_NEXT, DE_SPAN, DE_STATE, DIR_ENTRY, directoryOffset, PART_FIRST, PART_FREE, PART_NEXT } from '../../src/segments/layout.js';

const GROUPS = [
  { partitionSize: 64, partitions: 16 },
  { partitionSize: 256, partitions: 8 },
  { partitionSize: 1024, partitions: 4 },
];

const closers: { close(): void }[] = [];
afterEach(() => {
  for (const c of closers.splice(0).reverse()) c.close();
});

let n = 0;
const impls: { name: string; pair(): [Transport, Transport] }[] = [
  { name: 'inproc', pair: () => { const f = new Fabric(); return [f.transport(), f.transport()]; } },
  { name: 'shm', pair: () => [new ShmTransport(), new ShmTransport()] },
  // RdmaTransport's this-node forms (no agent, no device): what a receiver of a node and a sender
  // of the same node use beside the senders of other nodes (test/rxe/segments-xnode.test.ts).
  { name: 'rdma (this node)', pair: () => [new RdmaTransport({ node: 'host', agents: {} }), new RdmaTransport({ node: 'host', agents: {} })] },
];

function pattern(size: number, seed: number): Uint8Array {
  const m = new Uint8Array(size);
  for (let i = 0; i < size; i++) m[i] = (i * 7 + seed) & 0xff;
  return m;
}

describe.each(impls)('segment groups on $name', (impl) => {
  function setup(groups = GROUPS) {
    const [rt, st] = impl.pair();
    const domain = `seg${process.pid}x${n++}`;
    const rx = SegmentReceiver.open('rx', { domain, transport: rt, groups });
    closers.push(rx);
    rx.accept('tx'); // claims 4, 21, 23: allocate targets, register their descriptors
    const tx = SegmentSender.connect('tx', 'rx', { domain, transport: st }); // claims 3, 4, 20, 22
    closers.push(tx);
    const take = () => {
      const got: Uint8Array[] = [];
      rx.poll((b, o, l, from) => {
        expect(from).toBe('tx');
        got.push(b.slice(o, o + l));
      });
      return got;
    };
    return { rx, tx, rt, st, domain, take };
  }

  it('the sender obtains the receiver’s registered descriptors and forms a group per partition size (claims 1, 3–5, 8, 20–23)', () => {
    const { tx } = setup();
    expect(tx.groups.map((g) => g.partitionSize)).toEqual([64, 256, 1024]);
    expect(new Set(tx.groups.map((g) => g.target.name)).size).toBe(3);
    expect(tx.segments).toHaveLength(6); // the segment table: a source and a target per group
    expect(tx.segments.filter((s) => s.role === 'source')).toHaveLength(3);
  });

  it('a sender the receiver did not accept, or an unknown receiver, is a UsageError', () => {
    const { domain, st } = setup();
    expect(() => SegmentSender.connect('stranger', 'rx', { domain, transport: st })).toThrow(UsageError);
    expect(() => SegmentSender.connect('tx', 'nobody', { domain, transport: st })).toThrow(UsageError);
  });

  it('selection: the largest partition size not above the length; the span from the directory (claims 1, 7, 9)', () => {
    const { tx } = setup();
    expect(tx.select(10)).toMatchObject({ group: 0, span: 1 });
    expect(tx.select(300)).toMatchObject({ group: 1, span: 2 }); // 300 + 4 bytes in 256-byte partitions
    expect(tx.select(2000)).toMatchObject({ group: 2, span: 2 });
    expect(tx.select(4 * 1024)).toBeNull(); // no group holds 4 KiB + its length word
    expect(tx.maxMessageBytes).toBe(4 * 1024 - 4);
  });

  it('a message is copied into contiguous partitions with first flag, next links and span, and arrives as one message (claims 1, 6)', () => {
    const { tx, rt, take } = setup();
    const m = pattern(700, 1); // group 1 (256 B): 3 partitions
    expect(tx.trySend(m)).toBe(0);
    const seg = rt.find(tx.groups[1].target.name)!;
    const view = rt.openLocal(seg); // the receiver's node: read in place
    const entry = (i: number, field: number) => Atomics.load(view.int32, (directoryOffset(8) + i * DIR_ENTRY + field) >> 2);
    expect([entry(0, DE_STATE), entry(1, DE_STATE), entry(2, DE_STATE), entry(3, DE_STATE)]).toEqual([PART_FIRST, PART_NEXT, PART_NEXT, PART_FREE]);
    expect([entry(0, DE_NEXT), entry(1, DE_NEXT), entry(2, DE_NEXT)]).toEqual([1, 2, -1]);
    expect(entry(0, DE_SPAN)).toBe(3);
    expect(take()).toEqual([m]);
    expect(entry(0, DE_STATE)).toBe(PART_FREE); // the receiver freed the partitions
    view.dispose();
  });

  it('falls back to a larger partition size when no run is free (claim 2), and back-pressure when none is', () => {
    const { tx, take } = setup();
    for (let i = 0; i < 8; i++) expect(tx.trySend(pattern(100, i))).toBe(0); // 2 × 64-byte partitions each: group 0 full
    expect(tx.select(100)).toMatchObject({ group: 1, span: 1 });
    expect(tx.trySend(pattern(100, 8))).toBe(0);
    for (let i = 9; i < 16; i++) expect(tx.trySend(pattern(100, i))).toBe(0); // fills group 1
    for (let i = 16; i < 20; i++) expect(tx.trySend(pattern(100, i))).toBe(0); // and group 2
    expect(tx.trySend(pattern(100, 20))).toBe(-1);
    expect(tx.trySend(new Uint8Array(5000))).toBe(-3);
    const got = take();
    expect(got).toEqual(Array.from({ length: 20 }, (_, i) => pattern(100, i))); // in order across groups
    expect(tx.trySend(pattern(100, 20))).toBe(0);
  });

  it('send() waits for free partitions; receive() waits for a message', async () => {
    const { tx, rx } = setup();
    const sizes = Array.from({ length: 60 }, (_, i) => (i * 97) % 4000);
    const sending = (async () => {
      for (let i = 0; i < sizes.length; i++) await tx.send(pattern(sizes[i], i), { timeoutMs: 10_000 });
    })();
    for (let i = 0; i < sizes.length; i++) expect((await rx.receive({ timeoutMs: 10_000 })).data).toEqual(pattern(sizes[i], i));
    await sending;
  });

  it('a forged directory entry or length word is a CorruptionError naming the segment, raised once; the sender learns it', () => {
    for (const forge of ['span', 'length'] as const) {
      const { tx, rx, rt } = setup();
      tx.trySend(pattern(700, 1));
      const view = rt.attach(rt.find(tx.groups[1].target.name)!);
      if (forge === 'span') view.publish(directoryOffset(8) + DE_SPAN, 99);
      else view.publish(dataOffset(8), 1 << 30); // the length word
      expect(() => rx.poll(() => {})).toThrow(CorruptionError);
      expect(rx.poll(() => {})).toBe(0); // once: the sender is dropped, not raised again
      expect(() => tx.trySend(pattern(10, 2))).toThrow(CorruptionError); // its status word says so
      view.dispose();
    }
  });

  it('bad input and use after close are typed errors', () => {
    const { tx, rx } = setup();
    expect(() => tx.trySend('x' as never)).toThrow(UsageError);
    expect(() => SegmentReceiver.open('r2', { groups: [] })).toThrow(UsageError);
    expect(() => SegmentReceiver.open('r2', { groups: [{ partitionSize: 64, partitions: 1 }, { partitionSize: 64, partitions: 2 }] })).toThrow(UsageError);
    expect(() => SegmentReceiver.open('r2', { groups: [{ partitionSize: 65, partitions: 1 }] })).toThrow(UsageError);
    tx.close();
    tx.close();
    rx.close();
    expect(() => tx.trySend(new Uint8Array(1))).toThrow(ClosedError);
    expect(() => rx.poll(() => {})).toThrow(ClosedError);
  });
});
