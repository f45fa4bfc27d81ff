// Postboxes between real processes (shm transport): pressure with tiny segments, a receiver
// SIGKILLed mid-stream, a sender SIGKILLed mid-message. Nothing here asserts a time.
import { afterEach, describe, expect, it } from 'vitest';
import { PeerGoneError, Postbox, SendStatus, SharedRegion, ShmTransport, UsageError } from '../../src/index.js';
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
  // Segments of children that were killed (or failed) are stale now: remove this test's.
  for (const d of domains.splice(0)) {
    for (const stale of SharedRegion.listStale()) if (stale.name.startsWith(`pb.${d}.`)) SharedRegion.unlink(stale.name);
  }
});

const domain = (label: string) => {
  const d = `${label}${process.pid}${Date.now().toString(36)}`;
  domains.push(d);
  return d;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('pressure: tiny segments force reclamation and chunking all the time', () => {
  it('3 processes all-to-all, 0–8 KiB messages through 4 slots and a 1 KiB pool, every message arrives intact and in order', async () => {
    const d = domain('press');
    const names = ['p0', 'p1', 'p2'];
    const options = JSON.stringify({ slots: 4, slotBytes: 64, blockSize: 64, poolBytes: 1024, cyclicTransactionSize: 512, maxSize: 8192 });
    const procs = names.map((n) => startPostboxChild('soak', d, n, names.join(','), '1500', options));
    children.push(...procs);
    await Promise.all(procs.map((p) => finished(p, 120_000)));
    for (const p of procs) {
      const summary = JSON.parse(p.stdout().trim().split('\n').pop()!) as { sent: number; received: number };
      expect(summary).toMatchObject({ sent: 3000, received: 3000 });
    }
  });
});

describe('dead peers', () => {
  it('a receiver SIGKILLed mid-stream: its sender gets PeerGoneError and reclaims its memory', async () => {
    const d = domain('deadrx');
    const child = startPostboxChild('idle-receiver', d, 'rx');
    children.push(child);
    await child.waitFor('ready');
    const box = Postbox.open('tx', { domain: d, slots: 8, poolBytes: 64 * 1024, blockSize: 1024 });
    boxes.push(box);
    const sends: Promise<void>[] = [];
    for (let i = 0; i < 20; i++) sends.push(box.send('rx', new Uint8Array(1000 + i)));
    const outcome = Promise.allSettled(sends);
    await sleep(20);
    expect(box.inspect().peers[0].sent).toBe(8); // the postbox is full; the rest wait (back-pressure)
    child.process.kill('SIGKILL');
    const results = await outcome; // bounded by LIVENESS_BOUND_MS; the test's timeout is the backstop
    const rejected = results.filter((r) => r.status === 'rejected');
    expect(rejected.length).toBeGreaterThan(0);
    for (const r of rejected) expect((r as PromiseRejectedResult).reason).toBeInstanceOf(PeerGoneError);
    await expect(box.send('rx', new Uint8Array(1))).rejects.toBeInstanceOf(PeerGoneError);
    const state = box.inspect();
    expect(state.nodes[0].freeBlocks).toBe(state.nodes[0].blocks);
    expect(state.nodes[0].postboxesInUse).toBe(0);
    expect(new ShmTransport().find(`pb.${d}.ep.rx`)).toBeUndefined(); // its endpoint segment is removed
  });

  it('a trySend-only loop (the event loop never runs) still learns of a dead receiver: PEER_GONE', async () => {
    const d = domain('spin');
    const child = startPostboxChild('idle-receiver', d, 'rx');
    children.push(child);
    await child.waitFor('ready');
    const box = Postbox.open('tx', { domain: d, slots: 4 });
    boxes.push(box);
    for (let i = 0; i < 4; i++) expect(box.trySend('rx', new Uint8Array(8))).toBe(SendStatus.OK);
    child.process.kill('SIGKILL');
    await child.exit;
    let status: number = SendStatus.FULL;
    for (let i = 0; i < 1e9 && status === SendStatus.FULL; i++) status = box.trySend('rx', new Uint8Array(8));
    expect(status).toBe(SendStatus.PEER_GONE);
  });

  it('an endpoint name whose owner died is taken over by the next process that opens it', async () => {
    const d = domain('takeover');
    const child = startPostboxChild('idle-receiver', d, 'rx');
    children.push(child);
    await child.waitFor('ready');
    expect(() => Postbox.open('rx', { domain: d })).toThrow(UsageError); // held by a live process
    child.process.kill('SIGKILL');
    await child.exit;
    const box = Postbox.open('rx', { domain: d });
    boxes.push(box);
    expect(box.name).toBe('rx');
  });

  it('a sender SIGKILLed mid-message leaves no half message, and its segments are removed', async () => {
    const d = domain('deadtx');
    const box = Postbox.open('rx', { domain: d });
    boxes.push(box);
    const options = JSON.stringify({ poolBytes: 64 * 1024, cyclicTransactionSize: 64 * 1024 });
    const child = startPostboxChild('big-sender', d, 'tx', 'rx', '3', String(8 << 20), options);
    children.push(child);
    for (let seq = 0; seq < 3; seq++) {
      const m = await box.receive({ timeoutMs: 20_000 });
      expect(m.data.length).toBe(100 + seq);
      expect(new DataView(m.data.buffer, m.data.byteOffset).getInt32(0, true)).toBe(seq);
    }
    await child.waitFor('big');
    // Take pieces until the big message is being reassembled, then kill the sender.
    let delivered = 0;
    const deadline = Date.now() + 20_000;
    while (!box.inspect().senders[0]?.assembling && Date.now() < deadline) {
      delivered += box.poll(() => {});
      await sleep(1);
    }
    expect(box.inspect().senders[0]?.assembling).toBe(true);
    child.process.kill('SIGKILL');
    await child.exit;
    const transport = new ShmTransport();
    for (let i = 0; i < 2000 && (box.inspect().senders.length > 0 || transport.find(`pb.${d}.data.tx`)); i++) {
      delivered += box.poll(() => {});
      await sleep(5);
    }
    expect(delivered).toBe(0); // no half message
    expect(box.inspect().senders).toEqual([]);
    expect(transport.find(`pb.${d}.data.tx`)).toBeUndefined();
    expect(transport.find(`pb.${d}.ep.tx`)).toBeUndefined(); // the dead sender's endpoint segment too
    expect(child.stdout()).not.toContain('sent-big');
  });
});
