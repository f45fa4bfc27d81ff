// One machine, three runtimes: a Node, a Bun and a Deno process (each on its own FFI backend:
// koffi, bun:ffi, Deno's FFI) exchange postbox messages in one domain and share one ShmemPool —
// locks, signals and messages — byte-exact and in order. The children are one of each whatever
// runtime runs this file, so every part of `npm test` runs the mix.
import { afterEach, describe, expect, it } from 'vitest';
import { SharedRegion, ShmemPool } from '../../src/index.js';
import { finished, startFixture, uniqueName, type Child } from '../helpers.js';

const RUNTIMES = ['node', 'bun', 'deno'] as const;
const children: Child[] = [];

afterEach(async () => {
  for (const c of children.splice(0)) {
    c.process.kill('SIGKILL');
    await c.exit;
  }
});

function lastJson(child: Child): Record<string, unknown> {
  return JSON.parse(child.stdout().trim().split('\n').pop()!) as Record<string, unknown>;
}

describe('node, bun and deno on one machine', () => {
  it('postbox: all-to-all, 1 000 checked messages of 0 B–1 MiB per pair, byte-exact and in order', async () => {
    const domain = `xrt${process.pid}${Date.now().toString(36)}`;
    try {
      const procs = RUNTIMES.map((runtime) =>
        startFixture('postbox-child', ['soak', domain, runtime, RUNTIMES.join(','), 1000, JSON.stringify({ maxSize: 1 << 20 })], { runtime }),
      );
      children.push(...procs);
      expect(procs.map((p) => p.process.spawnargs[0].split('/').pop())).toEqual(['node', 'bun', 'deno']);
      await Promise.all(procs.map((p) => finished(p, 150_000)));
      // Each child checked every message it took (content is a function of sender, receiver and
      // sequence number, so a byte out of place or a message out of order fails it).
      for (const p of procs) expect(lastJson(p)).toMatchObject({ sent: 2000, received: 2000 });
    } finally {
      for (const stale of SharedRegion.listStale()) if (stale.name.startsWith(`pb.${domain}.`)) SharedRegion.unlink(stale.name);
    }
  }, 180_000);

  it('ShmemPool: a lock, signals and send-to-all shared by the three runtimes and this process', async () => {
    const pool = ShmemPool.create(uniqueName('xrt'), { heapBytes: 4 << 20 });
    try {
      // Locks: 3 × 20 000 critical sections under one lock; a plain (non-atomic) counter inside
      // loses updates if two runtimes ever hold it at once.
      const lock = pool.reserveLock();
      const counters = pool.malloc(16, { owners: [] });
      pool.region.view('int32', counters, 4).fill(0);
      const count = 20_000;
      const lockers = RUNTIMES.map((runtime) => startFixture('shmem-child', ['mutex', pool.name, lock, count, counters, 3], { runtime }));
      children.push(...lockers);
      await Promise.all(lockers.map((c) => finished(c, 150_000)));
      const words = pool.region.view('int32', counters, 4);
      expect(words[1]).toBe(0); // overlaps
      expect(words[2]).toBe(3 * count);

      // Signals and messages: each child sendAll()s `rounds` sequenced messages to everyone and
      // checks what it takes; this process checks what reaches it, per sender and in order.
      const rounds = 300;
      const peers = RUNTIMES.map((runtime) => startFixture('shmem-child', ['all-to-all', pool.name, rounds], { runtime }));
      children.push(...peers);
      await Promise.all(peers.map((c) => c.waitFor('ready')));
      const ids = await Promise.all(
        peers.map(async (c) => Number((await c.waitForMatch((lines) => lines.find((l) => l.startsWith('joined ')), 'joined')).slice(7))),
      );
      const next = new Map(ids.map((id) => [id, 0]));
      let received = 0;
      const take = (data: Uint8Array, from: number) => {
        const dv = new DataView(data.buffer, data.byteOffset, data.length);
        expect(dv.getInt32(0, true)).toBe(from);
        expect(dv.getInt32(4, true)).toBe(next.get(from));
        next.set(from, dv.getInt32(4, true) + 1);
        received++;
      };
      const drain = () => {
        for (let m = pool.tryReceive(); m; m = pool.tryReceive()) {
          take(m.data, m.from);
          m.release();
        }
      };
      expect(pool.signalAll()).toBe(3); // go
      const message = new Uint8Array(64);
      const view = new DataView(message.buffer);
      for (let seq = 0; seq < rounds; seq++) {
        view.setInt32(0, pool.me, true);
        view.setInt32(4, seq, true);
        let sent = pool.sendAll(message);
        while (sent < 0) {
          drain();
          await new Promise((r) => setTimeout(r, 1));
          sent = pool.sendAll(message);
        }
        expect(sent).toBe(3);
        if (seq % 16 === 0) drain();
      }
      while (received < 3 * rounds) {
        drain();
        if (received >= 3 * rounds) break;
        const m = await pool.receiveAsync({ timeoutMs: 30_000 });
        if (!m) expect.fail(`only ${received} of ${3 * rounds} messages arrived`);
        take(m.data, m.from);
        m.release();
      }
      await Promise.all(peers.map((c) => c.waitFor('received', 60_000)));
      expect(pool.signalAll()).toBe(3); // done
      await Promise.all(peers.map((c) => finished(c, 60_000)));
      expect([...next.values()]).toEqual([rounds, rounds, rounds]);
    } finally {
      pool.dispose();
    }
  }, 300_000);
});
