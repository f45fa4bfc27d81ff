// Postbox faults between real processes on real /dev/shm (issue 13, items 3, 4, 5, 7, 11): a
// receiver that died while its sender idled, one hostile word in a sender's segment, hostile
// registration entries, sizes beyond the limits, payloads and options of the wrong kind. Each
// wait is bounded by LIVENESS_BOUND_MS, by a child's exit, or (backstop) by the test's timeout;
// nothing here asserts a time.
import { readdirSync, truncateSync, writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CorruptionError, LIVENESS_BOUND_MS, MAX_POOL_BYTES, PeerGoneError, Postbox, SendStatus, SharedRegion, ShmTransport, UsageError,
} from '../../src/index.js';
import { REGION_HEADER_SIZE } from '../../src/shm/region-layout.js';
import { DESCRIPTOR_BYTES, encodeDescriptor } from '../../src/transport/descriptor.js';
import {
  DIR_STATE, DS_CLOSED, DS_DIRECTORY, DS_STATE, EN_DESCRIPTOR, EN_NAME, EN_NAME_LEN, EN_PID, EN_POSTBOX, EN_STATE, ENTRY_BYTES,
  ENTRY_FREE, ENTRY_READY, EP_ENTRIES, EP_REGISTRATIONS, postboxOffset,
} from '../../src/postbox/layout.js';

import { finished, type Child } from '../helpers.js';
import { startPostboxChild } from './helpers.js';

const children: Child[] = [];
const boxes: Postbox[] = [];
const domains: string[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) {
    c.process.kill('SIGKILL');
    await c.exit;
  }
  for (const b of boxes.splice(0)) b.close();
  for (const d of domains.splice(0)) for (const name of objectsOf(d)) SharedRegion.unlink(name);
});

const prefix = `memwire.u${process.getuid!()}.`;
/** This domain's objects in /dev/shm (names without the user prefix). */
function objectsOf(d: string): string[] {
  return readdirSync('/dev/shm').filter((e) => e.startsWith(`${prefix}pb.${d}.`)).map((e) => e.slice(prefix.length));
}
const domain = (label: string) => {
  const d = `${label}${process.pid}${Date.now().toString(36)}`;
  domains.push(d);
  return d;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('item 3: a receiver that died while its sender idled', () => {
  it("the idle sender's next send() is a PeerGoneError, not a message accepted and lost", async () => {
    const d = domain('idle');
    const child = startPostboxChild('draining-receiver', d, 'rx');
    children.push(child);
    await child.waitFor('ready');
    const box = Postbox.open('tx', { domain: d });
    boxes.push(box);
    await box.send('rx', new Uint8Array(10));
    await child.waitFor('got 10');
    await box.flush({ timeoutMs: 20_000 }); // the receiver acknowledged everything
    await sleep(2 * LIVENESS_BOUND_MS); // the channel is idle: the sender's checks have seen it quiet
    child.process.kill('SIGKILL');
    await child.exit;
    await sleep(2 * LIVENESS_BOUND_MS); // the sender's event loop runs, idle, past the bound
    await expect(box.send('rx', new Uint8Array(10))).rejects.toBeInstanceOf(PeerGoneError);
    expect(box.trySend('rx', new Uint8Array(10))).toBe(SendStatus.PEER_GONE);
    expect(box.inspect().nodes[0].postboxesInUse).toBe(0);
  });
});

describe('item 3: a receiver that died while its sender’s event loop was busy', () => {
  it('send() checks a receiver not checked for a while before placing: PeerGoneError', async () => {
    const d = domain('busy');
    const child = startPostboxChild('draining-receiver', d, 'rx');
    children.push(child);
    await child.waitFor('ready');
    const box = Postbox.open('tx', { domain: d });
    boxes.push(box);
    await box.send('rx', new Uint8Array(10));
    await box.flush({ timeoutMs: 20_000 });
    child.process.kill('SIGKILL');
    await child.exit;
    // The event loop is busy (no timer runs) past the bound, then the program sends.
    for (const until = Date.now() + 2 * LIVENESS_BOUND_MS; Date.now() < until; );
    await expect(box.send('rx', new Uint8Array(10))).rejects.toBeInstanceOf(PeerGoneError);
  });
});

describe("item 4: one hostile word in the sender's data segment", () => {
  it.each([
    ["its directory entry's state ← 7", DS_DIRECTORY + DIR_STATE, 7],
    ['its segment state ← CLOSED (2)', DS_STATE, DS_CLOSED],
  ])('%s: both ends get a CorruptionError within the liveness bound; no send hangs', async (_what, offset, value) => {
    const d = domain('poke');
    const rx = startPostboxChild('draining-receiver', d, 'rx');
    children.push(rx);
    await rx.waitFor('ready');
    const box = Postbox.open('tx', { domain: d, slots: 8 });
    boxes.push(box);
    for (let i = 0; i < 4; i++) await box.send('rx', new Uint8Array(100 + i));
    await box.flush({ timeoutMs: 20_000 });
    const poke = startPostboxChild('poke', '-', `pb.${d}.data.tx`, String(offset), String(value));
    children.push(poke);
    expect(await finished(poke)).toBe(0);
    await rx.waitFor('error CorruptionError'); // the receiver raises it (before: dropped the channel silently)
    await sleep(2 * LIVENESS_BOUND_MS);
    // The sender knows too: every send fails at once with the typed error (before: 8 placed, 32 pending for ever).
    const results = await Promise.allSettled(Array.from({ length: 40 }, (_, i) => box.send('rx', new Uint8Array(50 + i))));
    for (const r of results) {
      expect(r.status).toBe('rejected');
      expect((r as PromiseRejectedResult).reason).toBeInstanceOf(CorruptionError);
    }
    expect(() => box.trySend('rx', new Uint8Array(1))).toThrow(CorruptionError);
    await box.flush({ timeoutMs: 20_000 }); // a broken channel holds nothing up
    expect(box.inspect().peers[0].gone).toBe('CorruptionError');
    expect(rx.stdout()).not.toMatch(/^got (5\d|[6-8]\d)$/m); // none of the 40 reached the receiver
  });
});

describe('item 4: the receiver finds a channel corrupt while the sender still has room', () => {
  it('the sender learns it from its ack block within the liveness bound, not only once the postbox is full', async () => {
    const d = domain('rxcorrupt');
    const rx = startPostboxChild('draining-receiver', d, 'rx');
    children.push(rx);
    await rx.waitFor('ready');
    const box = Postbox.open('tx', { domain: d }); // 64 slots: plenty of room
    boxes.push(box);
    for (let i = 0; i < 4; i++) await box.send('rx', new Uint8Array(10 + i));
    await box.flush({ timeoutMs: 20_000 });
    // The slot the receiver reads next (postbox 0, slot 4) gets a sequence number that cannot be.
    const g = { postboxes: 64, slots: 64, slotBytes: 256, blockSize: 4096, blocks: 1024 };
    const poke = startPostboxChild('poke', '-', `pb.${d}.data.tx`, String(postboxOffset(g) + 4 * g.slotBytes), '12345');
    children.push(poke);
    expect(await finished(poke)).toBe(0);
    await rx.waitFor('error CorruptionError');
    await sleep(2 * LIVENESS_BOUND_MS);
    await expect(box.send('rx', new Uint8Array(1))).rejects.toBeInstanceOf(CorruptionError);
    expect(() => box.trySend('rx', new Uint8Array(1))).toThrow(CorruptionError);
  });
});

describe('item 5: hostile registration entries', () => {
  it('entries naming empty objects are rejected at once, without waiting for them; one of another size is a CorruptionError; a real sender still attaches', () => {
    const d = domain('reg');
    const R = Postbox.open('R', { domain: d, maxIncoming: 16 });
    boxes.push(R);
    const node = new ShmTransport().node;
    const endpoint = SharedRegion.open(`pb.${d}.ep.R`);
    const forge = (e: number, sender: string, size: number) => {
      const at = EP_ENTRIES + e * ENTRY_BYTES;
      const v = new DataView(endpoint.bytes.buffer, endpoint.bytes.byteOffset + at, ENTRY_BYTES);
      v.setInt32(EN_POSTBOX, 0, true);
      v.setInt32(EN_PID, process.pid, true); // a live process
      v.setInt32(EN_NAME_LEN, sender.length, true);
      for (let i = 0; i < sender.length; i++) endpoint.bytes[at + EN_NAME + i] = sender.charCodeAt(i);
      const descriptor = { transport: 'shm', node, name: `pb.${d}.data.${sender}`, size, key: 0 };
      encodeDescriptor(descriptor, endpoint.bytes.subarray(at + EN_DESCRIPTOR, at + EN_DESCRIPTOR + DESCRIPTOR_BYTES));
      Atomics.store(endpoint.int32, (at + EN_STATE) >> 2, ENTRY_READY);
    };
    try {
      for (let e = 0; e < 8; e++) {
        writeFileSync(`/dev/shm/${prefix}pb.${d}.data.evil${e}`, ''); // empty, named like a data segment
        forge(e, `evil${e}`, 1 << 20);
      }
      const wrongSize = SharedRegion.create(`pb.${d}.data.evil8`, 4096);
      forge(8, 'evil8', 1 << 20);
      Atomics.add(endpoint.int32, EP_REGISTRATIONS >> 2, 1);
      // One poll looks at every entry. Before: each empty object cost a 2 s wait inside poll()
      // and the entries stayed READY (ignored) with "not initialised within 2000 ms" errors.
      expect(R.poll(() => {})).toBe(0);
      for (let e = 0; e < 8; e++) expect(Atomics.load(endpoint.int32, (EP_ENTRIES + e * ENTRY_BYTES + EN_STATE) >> 2)).toBe(ENTRY_FREE);
      let error: unknown;
      try {
        R.poll(() => {});
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(CorruptionError);
      expect((error as Error).message).toMatch(/evil8 of 1048576 bytes; the segment of that name has 4096/);
      expect(() => R.poll(() => {})).not.toThrow(); // once
      wrongSize.close();
      // A real sender registers after them and is served.
      const A = Postbox.open('A', { domain: d });
      boxes.push(A);
      expect(A.trySend('R', new Uint8Array([1, 2, 3]))).toBe(SendStatus.OK);
      expect(R.tryReceive()).toEqual({ from: 'A', data: new Uint8Array([1, 2, 3]) });
    } finally {
      endpoint.close();
    }
  });
});

describe('item 5 (residual): entries naming objects of the right size whose header was never initialised', () => {
  it('poll() never waits for them: a healthy sender is served meanwhile, and each is rejected once, with a CorruptionError, after the grace', async () => {
    const d = domain('uninit');
    const R = Postbox.open('R', { domain: d, maxIncoming: 16 });
    boxes.push(R);
    const node = new ShmTransport().node;
    const endpoint = SharedRegion.open(`pb.${d}.ep.R`);
    const dataSize = 1 << 20;
    try {
      for (let e = 0; e < 8; e++) {
        // The size a 1 MiB data segment's object has (header + data), every byte zero: the
        // transport's size check passes, and an opener that waits for the init word waits.
        const path = `/dev/shm/${prefix}pb.${d}.data.evil${e}`;
        writeFileSync(path, '', { mode: 0o600 });
        truncateSync(path, REGION_HEADER_SIZE + dataSize);
        forgeEntry(endpoint, node, e, `pb.${d}.data.evil${e}`, `evil${e}`, dataSize);
      }
      Atomics.add(endpoint.int32, EP_REGISTRATIONS >> 2, 1);
      const A = Postbox.open('A', { domain: d });
      boxes.push(A);
      expect(A.trySend('R', new Uint8Array([7]))).toBe(SendStatus.OK);

      // Poll until all eight are rejected, yielding to the event loop between polls and counting
      // its ticks. Before: the first poll() waited 2 s per entry (16 s) inside the call, so the
      // errors came in the next eight calls and the event loop did not turn meanwhile.
      let ticks = 0;
      const ticker = setInterval(() => ticks++, 1);
      const errors: unknown[] = [];
      const received: number[] = [];
      let calls = 0;
      let callsBeforeFirstError = -1;
      let ticksBeforeFirstError = -1;
      try {
        while (errors.length < 8 && calls < 1_000_000) {
          calls++;
          try {
            R.poll((buffer, offset, length) => received.push(...buffer.subarray(offset, offset + length)));
          } catch (error) {
            if (errors.length === 0) {
              callsBeforeFirstError = calls;
              ticksBeforeFirstError = ticks;
            }
            errors.push(error);
          }
          await sleep(1);
        }
      } finally {
        clearInterval(ticker);
      }
      // The grace passed across many polls, each returning to the event loop.
      expect(callsBeforeFirstError).toBeGreaterThan(20);
      expect(ticksBeforeFirstError).toBeGreaterThan(20);
      expect(received).toEqual([7]); // served while the eight were pending
      expect(errors).toHaveLength(8);
      for (const error of errors) {
        expect(error).toBeInstanceOf(CorruptionError);
        expect((error as Error).message).toMatch(/pb\..*\.data\.evil\d was not initialised within 2000 ms/);
      }
      // Once each, then the entries are ignored; the healthy channel still works.
      for (let k = 0; k < 5; k++) expect(() => R.poll(() => {})).not.toThrow();
      expect(A.trySend('R', new Uint8Array([8]))).toBe(SendStatus.OK);
      expect(R.tryReceive()).toEqual({ from: 'A', data: new Uint8Array([8]) });
    } finally {
      endpoint.close();
    }
  });

  it('an entry whose object is there but is not a region at all (bad magic) is rejected on the first poll', () => {
    const d = domain('badmagic');
    const R = Postbox.open('R', { domain: d, maxIncoming: 4 });
    boxes.push(R);
    const endpoint = SharedRegion.open(`pb.${d}.ep.R`);
    try {
      const path = `/dev/shm/${prefix}pb.${d}.data.evil`;
      writeFileSync(path, Buffer.alloc(REGION_HEADER_SIZE + 4096, 0x5a), { mode: 0o600 });
      forgeEntry(endpoint, new ShmTransport().node, 0, `pb.${d}.data.evil`, 'evil', 4096);
      Atomics.add(endpoint.int32, EP_REGISTRATIONS >> 2, 1);
      expect(R.poll(() => {})).toBe(0);
      expect(() => R.poll(() => {})).toThrow(CorruptionError);
      expect(() => R.poll(() => {})).not.toThrow();
    } finally {
      endpoint.close();
    }
  });
});

/** Write a READY registration entry `e` into the endpoint `endpoint` naming the data segment `name`, claimed to be `sender`'s. */
function forgeEntry(endpoint: SharedRegion, node: string, e: number, name: string, sender: string, size: number): void {
  const at = EP_ENTRIES + e * ENTRY_BYTES;
  const v = new DataView(endpoint.bytes.buffer, endpoint.bytes.byteOffset + at, ENTRY_BYTES);
  v.setInt32(EN_POSTBOX, 0, true);
  v.setInt32(EN_PID, process.pid, true); // a live process
  v.setInt32(EN_NAME_LEN, sender.length, true);
  for (let i = 0; i < sender.length; i++) endpoint.bytes[at + EN_NAME + i] = sender.charCodeAt(i);
  encodeDescriptor({ transport: 'shm', node, name, size, key: 0 }, endpoint.bytes.subarray(at + EN_DESCRIPTOR, at + EN_DESCRIPTOR + DESCRIPTOR_BYTES));
  Atomics.store(endpoint.int32, (at + EN_STATE) >> 2, ENTRY_READY);
}

describe('item 7: sizes beyond the limits', () => {
  it('poolBytes above 1 GiB, a slot above 1 MiB, postboxes above 256 MiB: UsageError up front, nothing left in /dev/shm', () => {
    const d = domain('huge');
    for (const options of [
      { poolBytes: 3 * 2 ** 30 },
      { poolBytes: 5 * 2 ** 30 },
      { poolBytes: MAX_POOL_BYTES + 4096 },
      { slotBytes: 2 ** 21 },
      { postboxes: 4096, slots: 1024, slotBytes: 1024 },
    ]) {
      expect(() => Postbox.open('big', { domain: d, ...options })).toThrow(UsageError);
    }
    expect(objectsOf(d)).toEqual([]);
  });

  it('a 1 GiB pool (the limit) carries a chunked message, and both ends leave nothing behind', async () => {
    const d = domain('limit');
    const rx = Postbox.open('rx', { domain: d });
    const tx = Postbox.open('tx', { domain: d, poolBytes: MAX_POOL_BYTES, cyclicTransactionSize: 1 << 20 });
    const message = new Uint8Array(3 << 20).map((_, i) => i * 31);
    const sending = tx.send('rx', message);
    const got = (await rx.receive({ timeoutMs: 20_000 })).data;
    expect(Buffer.compare(got, message)).toBe(0); // (toEqual walks 3 MiB element by element)
    await sending;
    await tx.flush({ timeoutMs: 20_000 });
    tx.close();
    rx.close();
    expect(objectsOf(d)).toEqual([]);
  });
});

describe('item 11: wrong kinds of input are UsageErrors', () => {
  it('a detached ArrayBuffer (or a view of one) to send/trySend; an object that is not a transport', async () => {
    const d = domain('kinds');
    const rx = Postbox.open('rx', { domain: d });
    const tx = Postbox.open('tx', { domain: d });
    boxes.push(rx, tx);
    const detached = () => {
      const buffer = new ArrayBuffer(16);
      const view = new Uint8Array(buffer);
      const data = new DataView(buffer);
      structuredClone(buffer, { transfer: [buffer] });
      return { buffer, view, data };
    };
    await expect(tx.send('rx', detached().buffer)).rejects.toBeInstanceOf(UsageError);
    await expect(tx.send('rx', detached().view)).rejects.toBeInstanceOf(UsageError);
    expect(() => tx.trySend('rx', detached().buffer)).toThrow(UsageError);
    expect(() => tx.trySend('rx', detached().view)).toThrow(UsageError);
    expect(() => tx.trySend('rx', detached().data)).toThrow(UsageError);
    expect(tx.trySend('rx', new Uint8Array(0))).toBe(SendStatus.OK); // an empty message is fine
    expect(rx.tryReceive()?.data).toEqual(new Uint8Array(0));
    expect(rx.tryReceive()).toBeUndefined(); // nothing of the refused ones arrived
    expect(() => Postbox.open('t2', { domain: d, transport: {} as never })).toThrow(UsageError);
    expect(() => Postbox.open('t2', null as never)).toThrow(UsageError);
    expect(objectsOf(d).sort()).toEqual([`pb.${d}.ack.tx.${objectsOf(d).find((n) => n.includes('.ack.'))!.split('.').pop()}`, `pb.${d}.data.tx`, `pb.${d}.ep.rx`, `pb.${d}.ep.tx`].sort());
  });
});
