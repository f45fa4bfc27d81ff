// ShmemPool signals and messages (seed 003, claims 26–36) across real processes.
import { describe, expect, it } from 'vitest';
import { CorruptionError, ShmemPool } from '../../src/index.js';
import { MEMBER_SLOT_SIZE, MEMBER_TABLE_OFFSET, M_SIGNALS } from '../../src/shmem/layout.js';
import { finished } from '../helpers.js';
import { usePoolFixtures } from './shmem-children.js';

const { adopt, createPool, child } = usePoolFixtures();

describe('signals', () => {
  it.each(['sync', 'async'])('ping-pong, 20 000 rounds (%s waits here): every wait sees exactly one signal', async (mode) => {
    const pool = createPool(`pingpong-${mode}`);
    const rounds = 20_000;
    const peer = child('pingpong', pool, pool.me, rounds, 'async');
    const id = await peer.member();
    await peer.waitFor('ready');
    for (let i = 0; i < rounds; i++) {
      pool.signal(id);
      // Every fourth wait skips the spin, so the futex sleep/wake path is exercised too.
      const options = { timeoutMs: 20_000, spin: i % 4 === 0 ? 0 : undefined };
      const got = mode === 'async' ? await pool.waitSignalAsync(options) : pool.waitSignal(options);
      if (got !== 1) expect.fail(`round ${i}: wait returned ${got}`);
    }
    await finished(peer);
    expect(pool.waitSignal({ timeoutMs: 0, spin: 0 })).toBe(0); // nothing extra arrived
  });

  it('a signal counter written backwards is a CorruptionError, never a negative count, and signals work on afterwards', async () => {
    const pool = createPool('signal-backwards');
    for (let i = 0; i < 3; i++) pool.signal(pool.me);
    expect(pool.waitSignal({ timeoutMs: 0 })).toBe(3);
    const counter = (MEMBER_TABLE_OFFSET + (pool.me & 63) * MEMBER_SLOT_SIZE + M_SIGNALS) / 4;
    Atomics.sub(pool.region.int32, counter, 5); // a hostile (or buggy) writer
    expect(() => pool.waitSignal({ timeoutMs: 0 })).toThrow(CorruptionError);
    Atomics.sub(pool.region.int32, counter, 2);
    await expect(pool.waitSignalAsync({ timeoutMs: 0 })).rejects.toThrow(CorruptionError);
    pool.signal(pool.me);
    expect(pool.waitSignal({ timeoutMs: 0 })).toBe(1);
    expect(pool.waitSignal({ timeoutMs: 0, spin: 0 })).toBe(0);
  });

  it('3 senders × 20 000 signals to one receiver: the counts add up exactly', async () => {
    const pool = createPool('burst');
    const counters = pool.malloc(16, { owners: [] });
    pool.region.view('int32', counters, 4).fill(0);
    const each = 20_000;
    const senders = Array.from({ length: 3 }, () => child('burst', pool, pool.me, each, counters, 3));
    let total = 0;
    let waits = 0;
    while (total < 3 * each) {
      const got = waits % 3 === 0 ? await pool.waitSignalAsync({ timeoutMs: 20_000 }) : pool.waitSignal({ timeoutMs: 20_000 });
      if (got === 0) expect.fail(`timed out with ${total} of ${3 * each} signals`);
      total += got;
      waits++;
    }
    await Promise.all(senders.map((s) => finished(s)));
    expect(total).toBe(3 * each);
    expect(pool.waitSignal({ timeoutMs: 20, spin: 0 })).toBe(0);
  });

  it('signalAll reaches every live process, once; a dead member is reaped, not counted', async () => {
    const pool = createPool('signal-all');
    const doomed = child('await-signal', pool);
    await doomed.waitFor('ready');
    const live = Array.from({ length: 3 }, () => child('await-signal', pool));
    await Promise.all(live.map((c) => c.waitFor('ready')));
    doomed.process.kill('SIGKILL');
    await doomed.exit;
    expect(pool.reap()).toEqual([await doomed.member()]);
    expect(pool.signalAll()).toBe(3);
    await Promise.all(live.map((c) => finished(c)));
    expect(pool.waitSignal({ timeoutMs: 0, spin: 0 })).toBe(0); // not to ourselves by default
    expect(pool.signalAll({ includeSelf: true })).toBe(1);
    expect(pool.waitSignal({ timeoutMs: 1000 })).toBe(1);
  });

  it('waitUntil / signalAdd across processes (OpenSHMEM style)', async () => {
    const pool = createPool('wait-until');
    const flag = pool.malloc(8, { owners: [] });
    pool.write(flag, new Uint8Array(8));
    const waiting = pool.waitUntilAsync(flag, 4, 'ge', 3, { timeoutMs: 20_000 });
    for (let i = 0; i < 3; i++) pool.signalAdd(flag, 4, 1);
    expect(await waiting).toBe(true);
    expect(pool.waitUntil(flag, 4, 'eq', 99, { timeoutMs: 10 })).toBe(false);
    pool.free(flag);
  });
});

describe('messages', () => {
  it('send-to-all reaches every live process exactly once, in order per sender (all-to-all, a dead member excluded)', async () => {
    const pool = createPool('all-to-all', 4 << 20);
    const rounds = 300;
    const doomed = child('all-to-all', pool, rounds);
    await doomed.waitFor('ready');
    const peers = Array.from({ length: 3 }, () => child('all-to-all', pool, rounds));
    await Promise.all(peers.map((c) => c.waitFor('ready')));
    doomed.process.kill('SIGKILL');
    await doomed.exit;
    expect(pool.reap()).toHaveLength(1);
    expect(pool.members()).toHaveLength(4);
    const ids = await Promise.all(peers.map((c) => c.member()));
    const next = new Map(ids.map((id) => [id, 0]));
    let received = 0;
    const handle = (data: Uint8Array, from: number) => {
      const dv = new DataView(data.buffer, data.byteOffset, data.length);
      expect(dv.getInt32(0, true)).toBe(from);
      expect(dv.getInt32(4, true)).toBe(next.get(from));
      next.set(from, dv.getInt32(4, true) + 1);
      received++;
    };
    const drain = () => {
      for (let m = pool.tryReceive(); m; m = pool.tryReceive()) {
        handle(m.data, m.from);
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
      const m = await pool.receiveAsync({ timeoutMs: 20_000 });
      if (!m) expect.fail(`only ${received} of ${3 * rounds} messages arrived`);
      handle(m.data, m.from);
      m.release();
    }
    await Promise.all(peers.map((c) => c.waitFor('received', 60_000)));
    expect(pool.signalAll()).toBe(3); // done: each checks nothing more arrived
    await Promise.all(peers.map((c) => finished(c)));
    expect(pool.tryReceive()).toBeNull();
    expect(pool.reap()).toEqual([]);
    // Every message block was released by its receiver: nothing leaked.
    expect(pool.stats()).toMatchObject({ usedBlocks: 0, freeBlocks: 1 });
  });

  it('send to one; receive waits; a message to a member that left is refused', async () => {
    const pool = createPool('send-one');
    const other = ShmemPool.open(pool.name);
    adopt(other);
    const data = new TextEncoder().encode('hello, member');
    const pending = other.receiveAsync({ timeoutMs: 10_000 });
    expect(pool.send(other.me, data)).toBe(true);
    const m = await pending;
    expect(m).not.toBeNull();
    expect(new TextDecoder().decode(m!.data)).toBe('hello, member');
    expect(m!.from).toBe(pool.me);
    expect(pool.owners(m!.offset)).toEqual([other.me]); // the reservation was handed to the receiver
    m!.release();
    m!.release();
    expect(other.receive({ timeoutMs: 10 })).toBeNull();
    const gone = other.me;
    expect(pool.send(gone, data)).toBe(true); // unread when it leaves: freed by its leaving
    other.dispose();
    expect(pool.stats().usedBlocks).toBe(0);
    expect(() => pool.send(gone, data)).toThrow(expect.objectContaining({ code: 'ERR_MEMWIRE_BAD_MEMBER' }));
  });
});
