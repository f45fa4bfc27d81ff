// ShmemPool global locks (seed 003, claims 17–25) across real processes.
import { describe, expect, it } from 'vitest';
import { finished } from '../helpers.js';
import { usePoolFixtures } from './shmem-children.js';

const { createPool, child } = usePoolFixtures();

describe('mutual exclusion', () => {
  it('4 processes × 10^5 critical sections: zero overlaps, no lost update', async () => {
    const pool = createPool('mutex');
    const id = pool.reserveLock();
    const counters = pool.malloc(16, { owners: [] }); // public: the children write it raw
    pool.region.view('int32', counters, 4).fill(0);
    const count = 100_000;
    const workers = Array.from({ length: 4 }, () => child('mutex', pool, id, count, counters, 4));
    await Promise.all(workers.map((w) => finished(w, 120_000)));
    const w = pool.region.view('int32', counters, 4);
    expect(w[1]).toBe(0); // overlaps (and recoveries: nobody died)
    expect(w[2]).toBe(4 * count); // the plain, non-atomic counter lost nothing
    expect(w[0]).toBe(0);
    expect(pool.testLock(id)).toBe('acquired');
    pool.clearLock(id);
  });
});

describe('robust locks', () => {
  it('a holder SIGKILLed: the next acquirer (another process, blocked in setLock) recovers and is told', async () => {
    const pool = createPool('robust');
    const id = pool.reserveLock();
    const holder = child('hold', pool, id);
    await holder.waitFor('holding');
    expect(pool.testLock(id)).toBe('busy');
    const waiter = child('acquire', pool, id);
    await waiter.waitFor('waiting');
    holder.process.kill('SIGKILL');
    await holder.exit;
    await waiter.waitFor('owner-died');
    await finished(waiter);
    // The lock was handed on cleanly afterwards.
    expect(pool.setLock(id, { timeoutMs: 5000 })).toBe('acquired');
    pool.clearLock(id);
  });

  it('a holder SIGKILLed while this process waits in setLockAsync: resolves owner-died', async () => {
    const pool = createPool('robust-async');
    const id = pool.reserveLock();
    const holder = child('hold', pool, id);
    await holder.waitFor('holding');
    const pending = pool.setLockAsync(id, { timeoutMs: 20_000 });
    let settled = false;
    void pending.then(() => (settled = true));
    await new Promise((r) => setTimeout(r, 30));
    expect(settled).toBe(false);
    holder.process.kill('SIGKILL');
    await holder.exit;
    expect(await pending).toBe('owner-died');
    pool.clearLock(id);
    expect(pool.reap()).toHaveLength(1); // the dead holder's slot is freed
    expect(pool.members()).toHaveLength(1);
  });

  it('a process SIGKILLed holding the allocator’s lock: the next malloc recovers and rebuilds the heap', async () => {
    const pool = createPool('robust-heap');
    const kept = pool.malloc(1000);
    const holder = child('hold-allocator', pool);
    await holder.waitFor('holding');
    holder.process.kill('SIGKILL');
    await holder.exit;
    const offset = pool.malloc(500);
    expect(offset).toBeGreaterThan(0);
    const stats = pool.stats(); // checks the counters against the blocks
    expect(stats.rebuilds).toBe(1);
    expect(stats.usedBlocks).toBe(2);
    pool.free(offset);
    pool.free(kept);
    expect(pool.stats()).toMatchObject({ usedBlocks: 0, freeBlocks: 1, fragmentation: 0 });
  });

  it('testLock takes a lock whose holder was SIGKILLed at once: owner-died, not busy', async () => {
    const pool = createPool('test-dead');
    const id = pool.reserveLock();
    const holder = child('hold', pool, id);
    await holder.waitFor('holding');
    expect(pool.testLock(id)).toBe('busy');
    holder.process.kill('SIGKILL');
    await holder.exit;
    expect(pool.testLock(id)).toBe('owner-died');
    expect(pool.testLock(id)).toBe('busy'); // ours now
    pool.clearLock(id);
  });

  it('timeouts, try and clear: the plain semantics in one process', async () => {
    const pool = createPool('lock-basics');
    const id = pool.reserveLock();
    const holder = child('hold', pool, id);
    await holder.waitFor('holding');
    expect(pool.setLock(id, { timeoutMs: 20 })).toBe('timed-out');
    expect(await pool.setLockAsync(id, { timeoutMs: 20 })).toBe('timed-out');
    expect(pool.testLock(id)).toBe('busy');
    expect(() => pool.clearLock(id)).toThrow(expect.objectContaining({ code: 'ERR_MEMWIRE_NOT_HOLDER' }));
    expect(() => pool.releaseLockId(id)).toThrow(expect.objectContaining({ code: 'ERR_MEMWIRE_LOCK_HELD' }));
  });
});
