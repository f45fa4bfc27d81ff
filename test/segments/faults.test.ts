// Segment-group faults on real /dev/shm (issue 13, items 6, 7, 11): one corrupt sender must not
// block the others, a message number that skips ahead is a CorruptionError (not a silent stall),
// a receiver that dies is noticed by its sender (PeerGoneError, not FULL for ever), sizes beyond
// the limit and wrong kinds of input are UsageErrors, and nothing is left behind.
import { readdirSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { CorruptionError, PeerGoneError, SharedRegion, UsageError } from '../../src/index.js';
import { DE_SEQ, DIR_ENTRY, directoryOffset, MAX_SEGMENT_BYTES, SG_QUEUE } from '../../src/segments/layout.js';
import { SegmentReceiver, SegmentSender } from '../../src/segments/segments.js';
import { segmentMessage } from '../fixtures/postbox-messages.js';
import { startPostboxChild } from '../postbox/helpers.js';

const GROUPS = [
  { partitionSize: 64, partitions: 16 },
  { partitionSize: 1024, partitions: 4 },
];

const closers: { close(): void }[] = [];
const domains: string[] = [];
afterEach(() => {
  for (const c of closers.splice(0).reverse()) c.close();
  for (const d of domains.splice(0)) for (const name of objectsOf(d)) SharedRegion.unlink(name);
});

const prefix = `memwire.u${process.getuid!()}.`;
function objectsOf(d: string): string[] {
  return readdirSync('/dev/shm').filter((e) => e.startsWith(`${prefix}sg.${d}.`)).map((e) => e.slice(prefix.length));
}
let n = 0;
const domain = () => {
  const d = `sgf${process.pid}x${n++}`;
  domains.push(d);
  return d;
};

function message(from: number, i: number): Uint8Array {
  const size = [10, 100, 700][i % 3]; // both groups
  return new Uint8Array(size).map((_, k) => (k * 7 + i * 13 + from) & 0xff);
}

/** rx with senders tx1 and tx2 (tx1 accepted first, so polled first). */
function pair() {
  const d = domain();
  const rx = SegmentReceiver.open('rx', { domain: d, groups: GROUPS });
  closers.push(rx);
  rx.accept('tx1');
  rx.accept('tx2');
  const tx1 = SegmentSender.connect('tx1', 'rx', { domain: d });
  const tx2 = SegmentSender.connect('tx2', 'rx', { domain: d });
  closers.push(tx1, tx2);
  return { d, rx, tx1, tx2 };
}

/** Poll until nothing more arrives: messages per sender, and every error raised. */
function drain(rx: SegmentReceiver): { got: Map<string, Uint8Array[]>; errors: unknown[] } {
  const got = new Map<string, Uint8Array[]>();
  const errors: unknown[] = [];
  for (let quiet = 0, i = 0; quiet < 5 && i < 1000; i++) {
    try {
      const delivered = rx.poll((b, o, l, from) => {
        if (!got.has(from)) got.set(from, []);
        got.get(from)!.push(b.slice(o, o + l));
      });
      quiet = delivered === 0 ? quiet + 1 : 0;
    } catch (error) {
      errors.push(error);
      quiet = 0;
    }
  }
  return { got, errors };
}

describe('item 6: one corrupt sender', () => {
  it.each([
    ['its queue entry ← 999', (d: string) => {
      const seg = SharedRegion.open(`sg.${d}.seg.rx.tx1.0`);
      seg.int32[SG_QUEUE >> 2] = 999;
      seg.close();
    }],
    ['its message number + 5', (d: string) => {
      const seg = SharedRegion.open(`sg.${d}.seg.rx.tx1.0`);
      const at = (directoryOffset(16) + 0 * DIR_ENTRY + DE_SEQ) >> 2;
      seg.int32[at] += 5;
      seg.close();
    }],
  ])('%s: one CorruptionError for that sender; the other keeps being served; the corrupt one learns it', (_what, corrupt) => {
    const { d, rx, tx1, tx2 } = pair();
    expect(tx1.trySend(message(1, 0))).toBe(0); // 10 bytes: group 0, partition 0
    corrupt(d);
    for (let i = 0; i < 3; i++) expect(tx1.trySend(message(1, i + 1))).toBe(0);
    const sent2 = Array.from({ length: 6 }, (_, i) => message(2, i));
    for (const m of sent2) expect(tx2.trySend(m)).toBe(0);
    const { got, errors } = drain(rx);
    // Before: the same error on every poll and tx2 never served (queue), or nothing at all (number).
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(CorruptionError);
    expect((errors[0] as CorruptionError).region).toBe(`sg.${d}.seg.rx.tx1.0`);
    expect(got.get('tx2')).toEqual(sent2);
    expect(got.get('tx1') ?? []).toEqual([]);
    expect(() => tx1.trySend(message(1, 9))).toThrow(CorruptionError);
    // tx2 goes on.
    expect(tx2.trySend(message(2, 6))).toBe(0);
    expect(drain(rx).got.get('tx2')).toEqual([message(2, 6)]);
  });

  it('a receiver that closes: its senders get PeerGoneError, and its segments are gone', () => {
    const { d, rx, tx1, tx2 } = pair();
    rx.close();
    expect(() => tx1.trySend(message(1, 0))).toThrow(PeerGoneError);
    // What is left is the senders' own: their return segments, until they close.
    expect(objectsOf(d).sort()).toEqual([`sg.${d}.ret.rx.tx1`, `sg.${d}.ret.rx.tx2`]);
    tx1.close();
    tx2.close();
    expect(objectsOf(d)).toEqual([]);
  });
});

describe('a receiver that died without close()', () => {
  it('its sender gets PeerGoneError: send() waiting for room rejects instead of waiting for ever, trySend throws instead of FULL', async () => {
    const d = domain();
    const rx = startPostboxChild('segment-receiver', d, 'rx', 'tx', JSON.stringify(GROUPS));
    try {
      await rx.waitFor('ready');
      const tx = SegmentSender.connect('tx', 'rx', { domain: d });
      closers.push(tx);
      // Fill every partition (the receiver never reads), so the next send() has to wait for room.
      let placed = 0;
      while (tx.trySend(message(1, placed)) === 0) placed++;
      expect(placed).toBeGreaterThan(0);
      rx.process.kill('SIGKILL');
      await rx.exit;
      // Before: FULL for ever, and this send() (no timeoutMs) never settled (the test's timeout).
      await expect(tx.send(message(1, placed))).rejects.toBeInstanceOf(PeerGoneError);
      expect(() => tx.trySend(message(1, 0))).toThrow(PeerGoneError);
    } finally {
      rx.process.kill('SIGKILL');
      await rx.exit;
    }
  });
});

describe('a sender that died without close()', () => {
  /** Poll until `until` holds or 20 s pass; messages and errors as drain() gives them. */
  async function pollUntil(rx: SegmentReceiver, until: (got: Map<string, Uint8Array[]>, errors: unknown[]) => boolean) {
    const got = new Map<string, Uint8Array[]>();
    const errors: unknown[] = [];
    const deadline = Date.now() + 20_000;
    while (!until(got, errors)) {
      if (Date.now() > deadline) throw new Error(`not there within 20 s: ${[...got].map(([k, v]) => `${k} ${v.length}`).join(', ')}; errors ${errors.join('; ')}`);
      try {
        rx.poll((b, o, l, from) => {
          if (!got.has(from)) got.set(from, []);
          got.get(from)!.push(b.slice(o, o + l));
        });
      } catch (error) {
        errors.push(error);
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    return { got, errors };
  }

  it('is dropped once everything it sent was delivered: one PeerGoneError naming it, its targets removed, its entries free; accepted again, a new process of that name is served', async () => {
    const d = domain();
    const rx = SegmentReceiver.open('rx', { domain: d, groups: GROUPS, maxSenders: 2 });
    closers.push(rx);
    rx.accept('tx');
    rx.accept('other');
    const other = SegmentSender.connect('other', 'rx', { domain: d });
    closers.push(other);
    const tx = startPostboxChild('segment-sender', d, 'tx', 'rx', '8', 'stay');
    try {
      await tx.waitFor('sent');
      tx.process.kill('SIGKILL');
      await tx.exit;
      for (let i = 0; i < 3; i++) expect(other.trySend(message(2, i))).toBe(0);
      const { got, errors } = await pollUntil(rx, (_g, e) => e.length > 0);
      // Everything the dead sender placed, intact and in order, before the error.
      expect(got.get('tx')).toEqual(Array.from({ length: 8 }, (_, i) => segmentMessage(i)));
      expect(errors).toHaveLength(1);
      expect(errors[0]).toBeInstanceOf(PeerGoneError);
      expect((errors[0] as PeerGoneError).peer).toBe('tx');
      expect(got.get('other')).toEqual([message(2, 0), message(2, 1), message(2, 2)]);
      // Its targets are gone (its return segment is its own: the dead process's name stays until replaced).
      expect(objectsOf(d).filter((o) => o.startsWith(`sg.${d}.seg.rx.tx.`))).toEqual([]);
      expect(objectsOf(d).filter((o) => o.startsWith(`sg.${d}.seg.rx.other.`))).toHaveLength(GROUPS.length);
      // Raised once; the other sender goes on.
      expect(other.trySend(message(2, 3))).toBe(0);
      const after = await pollUntil(rx, (g) => (g.get('other')?.length ?? 0) === 1);
      expect(after.errors).toEqual([]);
      // Not accepted any more: a new process of that name is refused until accepted again
      // (maxSenders 2: the freed entries are taken again, not new ones).
      expect(() => SegmentSender.connect('tx', 'rx', { domain: d })).toThrow(UsageError);
      rx.accept('tx');
      const again = startPostboxChild('segment-sender', d, 'tx', 'rx', '5', 'close');
      await again.waitFor('closed');
      await again.exit;
      const next = await pollUntil(rx, (g) => (g.get('tx')?.length ?? 0) === 5);
      expect(next.got.get('tx')).toEqual(Array.from({ length: 5 }, (_, i) => segmentMessage(i)));
      // It closed before its process ended: dropped without an error.
      await new Promise((resolve) => setTimeout(resolve, 300));
      const quiet = await pollUntil(rx, () => objectsOf(d).filter((o) => o.startsWith(`sg.${d}.seg.rx.tx.`)).length === 0);
      expect(quiet.errors).toEqual([]);
    } finally {
      tx.process.kill('SIGKILL');
      await tx.exit;
    }
  });
});

describe('item 7: sizes beyond the limit', () => {
  it('a group whose segment would exceed 1 GiB (5 × 512 MiB) is a UsageError up front; nothing is created', () => {
    const d = domain();
    expect(() => SegmentReceiver.open('rx', { domain: d, groups: [{ partitionSize: 512 << 20, partitions: 5 }] })).toThrow(UsageError);
    expect(() => SegmentReceiver.open('rx', { domain: d, groups: [{ partitionSize: 64, partitions: 4 }, { partitionSize: MAX_SEGMENT_BYTES, partitions: 1 }] })).toThrow(UsageError);
    expect(objectsOf(d)).toEqual([]);
  });

  it('a group at the limit (3 × 256 MiB partitions) carries messages; closing both ends leaves nothing', () => {
    const d = domain();
    const rx = SegmentReceiver.open('rx', { domain: d, groups: [{ partitionSize: 256 << 20, partitions: 3 }] });
    rx.accept('tx');
    const tx = SegmentSender.connect('tx', 'rx', { domain: d });
    const m = new Uint8Array(1 << 20).map((_, i) => i);
    expect(tx.trySend(m)).toBe(0);
    let got: Uint8Array | undefined;
    expect(rx.poll((b, o, l) => (got = b.slice(o, o + l)))).toBe(1);
    expect(Buffer.compare(got!, m)).toBe(0);
    tx.close();
    rx.close();
    expect(objectsOf(d)).toEqual([]);
  });
});

describe('item 11: wrong kinds of input', () => {
  it('no options, options that are not an object, a transport that is not one, a bad maxSenders: UsageError', () => {
    const d = domain();
    expect(() => SegmentReceiver.open('s2')).toThrow(UsageError);
    expect(() => SegmentReceiver.open('s2', null as never)).toThrow(UsageError);
    expect(() => SegmentReceiver.open('s2', { domain: d, groups: GROUPS, transport: {} as never })).toThrow(UsageError);
    expect(() => SegmentReceiver.open('s2', { domain: d, groups: GROUPS, maxSenders: -1 })).toThrow(UsageError);
    expect(() => SegmentReceiver.open('s2', { domain: d, groups: [null as never] })).toThrow(UsageError);
    expect(() => SegmentSender.connect('tx', 's2', { domain: d, transport: {} as never })).toThrow(UsageError);
    expect(() => SegmentSender.connect('tx', 's2', 7 as never)).toThrow(UsageError);
    expect(objectsOf(d)).toEqual([]);
  });
});
