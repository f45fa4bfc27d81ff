// ShmemPool allocation, ownership and bad input (seed 003, claims 6–16), with real processes.
import { existsSync, openSync, writeSync, closeSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CorruptionError, OwnershipError, SharedRegion, ShmemPool, UsageError } from '../../src/index.js';
import { finished, uniqueName } from '../helpers.js';
import { usePoolFixtures } from './shmem-children.js';

const { adopt, createPool, child } = usePoolFixtures({ maxLocks: 8 });

const code = (c: string) => expect.objectContaining({ code: c });

describe('ownership (memwire’s own: own / transfer)', () => {
  it('a non-owner is refused; after transfer it is granted and the old owner is refused', async () => {
    const pool = createPool('ownership');
    const offset = pool.malloc(64);
    pool.write(offset, new Uint8Array([0xab, 0xab]));
    expect(pool.owners(offset)).toEqual([pool.me]);
    const other = child('ownership', pool, offset, pool.me);
    const otherId = await other.member();
    await other.waitFor('refused');
    pool.transfer(offset, [otherId]);
    pool.signal(otherId);
    await other.waitFor('granted');
    expect(pool.waitSignal({ timeoutMs: 20_000 })).toBe(1);
    const into = new Uint8Array(2);
    pool.read(offset, into);
    expect([...into]).toEqual([0xcd, 0xef]);
    expect(() => pool.write(offset, new Uint8Array([1]))).toThrow(OwnershipError);
    expect(() => pool.free(offset)).toThrow(OwnershipError);
    expect(() => pool.transfer(offset, [pool.me])).toThrow(OwnershipError);
    pool.signal(otherId);
    await finished(other); // it frees the block
    expect(pool.stats().usedBlocks).toBe(0);
  });

  it('several owners, public blocks, and a leaving owner’s blocks', () => {
    const pool = createPool('owners');
    const other = ShmemPool.open(pool.name);
    adopt(other);
    const shared = pool.malloc(32, { owners: [pool.me, other.me] });
    other.write(shared, new Uint8Array([1]));
    pool.write(shared, new Uint8Array([2]));
    const open = pool.malloc(32, { owners: [] });
    expect(pool.owners(open)).toEqual([]);
    other.own(open); // claiming a public block
    expect(() => pool.write(open, new Uint8Array([1]))).toThrow(OwnershipError);
    other.own(open, []); // and making it public again
    pool.write(open, new Uint8Array([1]));
    const mine = other.malloc(32);
    other.transfer(mine, [pool.me, other.me]);
    expect(pool.owners(mine).sort()).toEqual([pool.me, other.me].sort());
    const solely = other.malloc(100);
    expect(pool.stats().usedBlocks).toBe(4);
    other.dispose(); // drops `other` from every owner set and frees `solely`
    expect(pool.owners(shared)).toEqual([pool.me]);
    expect(pool.stats().usedBlocks).toBe(3);
    expect(() => pool.sizeOf(solely)).toThrow(UsageError);
    for (const o of [shared, open, mine]) pool.free(o);
    expect(pool.stats()).toMatchObject({ usedBlocks: 0, freeBlocks: 1 });
  });
});

describe('allocator', () => {
  // A model-based property in one process: blocks never overlap, the heap tiles exactly, and
  // freeing everything gives back one block.
  it('random malloc/free (fast-check, in process): no overlap, counters exact, everything coalesces', () => {
    const pool = createPool('alloc-model', 256 << 10);
    const op = fc.oneof(
      fc.record({ malloc: fc.integer({ min: 1, max: 70_000 }) }),
      fc.record({ free: fc.nat() }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 120 }), (ops) => {
        const live: { offset: number; size: number }[] = [];
        for (const o of ops) {
          if ('malloc' in o) {
            const offset = pool.malloc(o.malloc);
            if (offset < 0) continue;
            expect(pool.sizeOf(offset)).toBe(o.malloc);
            for (const b of live) {
              if (offset < b.offset + b.size && b.offset < offset + o.malloc) expect.fail(`overlap ${offset} with ${b.offset}`);
            }
            live.push({ offset, size: o.malloc });
          } else if (live.length > 0) {
            const [b] = live.splice(o.free % live.length, 1);
            pool.free(b.offset);
          }
        }
        const stats = pool.stats();
        expect(stats.usedBlocks).toBe(live.length);
        expect(stats.usedBytes + stats.freeBytes).toBe(stats.heapBytes);
        expect(stats.fragmentation).toBeGreaterThanOrEqual(0);
        expect(stats.fragmentation).toBeLessThan(1);
        for (const b of live) pool.free(b.offset);
        expect(pool.stats()).toMatchObject({ usedBlocks: 0, freeBlocks: 1, fragmentation: 0 });
      }),
      { numRuns: 60 },
    );
  });

  it('fragmentation is reported: holes between live blocks raise it, freeing them brings it back to 0', () => {
    const pool = createPool('fragmentation', 64 << 10);
    const blocks = Array.from({ length: 8 }, () => pool.malloc(4000));
    const tail = pool.stats().freeBytes;
    for (let i = 0; i < 8; i += 2) pool.free(blocks[i]);
    const stats = pool.stats();
    expect(stats.freeBlocks).toBe(5); // four holes and the tail
    expect(stats.fragmentation).toBeCloseTo(1 - tail / stats.freeBytes, 10);
    expect(stats.largestFree).toBe(tail - 32);
    for (let i = 1; i < 8; i += 2) pool.free(blocks[i]);
    expect(pool.stats()).toMatchObject({ freeBlocks: 1, fragmentation: 0 });
  });

  it('churn across 3 processes (fast-check): no overlap, no leak, fragmentation reported', async () => {
    const pool = createPool('alloc-churn', 2 << 20);
    const size = fc.oneof(fc.integer({ min: 64, max: 512 }), fc.integer({ min: 513, max: 8192 }), fc.integer({ min: 8193, max: 65_536 }));
    const ops = fc.array(fc.oneof({ weight: 3, arbitrary: size }, { weight: 2, arbitrary: fc.integer({ min: -1000, max: -1 }) }), {
      minLength: 50,
      maxLength: 400,
    });
    await fc.assert(
      fc.asyncProperty(fc.tuple(ops, ops, ops), async (perChild) => {
        const counters = pool.malloc(16, { owners: [] });
        pool.region.view('int32', counters, 4).fill(0);
        const workers = perChild.map((list, i) => child('churn', pool, JSON.stringify(list), i + 1, counters, 3));
        // Fragmentation is reported while they churn (and the numbers always add up).
        while (workers.some((w) => w.process.exitCode === null && w.process.signalCode === null)) {
          const stats = pool.stats();
          expect(stats.usedBytes + stats.freeBytes).toBe(stats.heapBytes);
          expect(stats.fragmentation).toBeGreaterThanOrEqual(0);
          expect(stats.fragmentation).toBeLessThanOrEqual(1);
          await new Promise((r) => setTimeout(r, 5));
        }
        await Promise.all(workers.map((w) => finished(w, 60_000)));
        pool.free(counters);
        // No leak: every block came back and merged into one.
        expect(pool.stats()).toMatchObject({ usedBlocks: 0, freeBlocks: 1, fragmentation: 0 });
      }),
      { numRuns: 4 },
    );
  });
});

describe('bad input is a typed error', () => {
  it.each([
    ['zero', 0],
    ['negative', -1],
    ['fractional', 1.5],
    ['NaN', Number.NaN],
    ['not a number', '64' as unknown as number],
    ['larger than the heap', (1 << 20) + 1],
    ['huge', 2 ** 40],
  ])('malloc size %s → UsageError', (_label, size) => {
    const pool = createPool('bad-size');
    expect(() => pool.malloc(size)).toThrow(UsageError);
  });

  it('double free, invalid and foreign offsets', () => {
    const pool = createPool('bad-free');
    const other = createPool('bad-free-other', 64 << 10);
    const a = pool.malloc(100);
    const b = pool.malloc(100);
    pool.free(a);
    expect(() => pool.free(a)).toThrow(code('ERR_MEMWIRE_DOUBLE_FREE'));
    pool.free(b); // merges with a
    expect(() => pool.free(b)).toThrow(code('ERR_MEMWIRE_DOUBLE_FREE'));
    const c = pool.malloc(100);
    for (const bad of [c + 16, c - 8, c + 1, -1, 0, 1e12, Number.NaN, 2 ** 53, '1' as unknown as number]) {
      expect(() => pool.free(bad)).toThrow(code('ERR_MEMWIRE_BAD_OFFSET'));
    }
    const foreign = other.malloc(5000);
    const foreignLater = other.malloc(100); // inside the first pool's range, never allocated there
    expect(() => pool.free(foreignLater)).toThrow(code('ERR_MEMWIRE_BAD_OFFSET'));
    other.free(foreign);
    other.free(foreignLater);
    expect(() => pool.write(c, new Uint8Array(101))).toThrow(UsageError);
    expect(() => pool.write(c, new Uint8Array(1), -1)).toThrow(UsageError);
    expect(() => pool.waitUntil(c, 2, 'eq', 0, { timeoutMs: 0 })).toThrow(UsageError);
    expect(() => pool.waitUntil(c, 0, 'almost' as 'eq', 0)).toThrow(UsageError);
    expect(pool.stats().usedBlocks).toBe(1);
  });

  it('unknown lock ids, members and options', () => {
    const pool = createPool('bad-lock');
    for (const id of [0, -1, 8, 9999, 1.5, Number.NaN]) {
      expect(() => pool.setLock(id)).toThrow(code('ERR_MEMWIRE_BAD_LOCK'));
      expect(() => pool.testLock(id)).toThrow(code('ERR_MEMWIRE_BAD_LOCK'));
      expect(() => pool.clearLock(id)).toThrow(code('ERR_MEMWIRE_BAD_LOCK'));
    }
    expect(() => pool.setLock(3)).toThrow(code('ERR_MEMWIRE_BAD_LOCK')); // in range, not reserved
    const ids = Array.from({ length: 7 }, () => pool.reserveLock());
    expect(ids).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(() => pool.reserveLock()).toThrow(UsageError);
    pool.releaseLockId(3);
    expect(() => pool.setLock(3)).toThrow(code('ERR_MEMWIRE_BAD_LOCK'));
    expect(pool.reserveLock()).toBe(3);
    expect(pool.setLock(3)).toBe('acquired');
    expect(() => pool.setLock(3)).toThrow(code('ERR_MEMWIRE_LOCK_HELD')); // would deadlock
    expect(() => pool.setLock(4, { timeoutMs: -1 })).toThrow(UsageError);
    for (const member of [-1, 1.5, pool.me + 1, pool.me + 64, 2 ** 40]) {
      expect(() => pool.signal(member)).toThrow(code('ERR_MEMWIRE_BAD_MEMBER'));
      expect(() => pool.send(member, new Uint8Array(1))).toThrow(code('ERR_MEMWIRE_BAD_MEMBER'));
    }
    const block = pool.malloc(8);
    expect(() => pool.transfer(block, [])).toThrow(UsageError);
    expect(() => pool.transfer(block, [pool.me + 64])).toThrow(code('ERR_MEMWIRE_BAD_MEMBER'));
    expect(() => ShmemPool.create(uniqueName('bad-opts'), { heapBytes: 10 })).toThrow(UsageError);
    expect(() => ShmemPool.create(uniqueName('bad-opts'), { maxMembers: 65 })).toThrow(UsageError);
  });

  it('corrupt shared memory is a CorruptionError naming the region, not a crash or a hang', () => {
    const pool = createPool('corrupt');
    const a = pool.malloc(100);
    const b = pool.malloc(100);
    const w = pool.region.int32;
    // A block header scribbled by someone: its check word fails.
    const original = w[(b - 32) / 4];
    w[(b - 32) / 4] = 7;
    const error = (() => {
      try {
        pool.free(a); // merging with b reads b's header
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(CorruptionError);
    expect((error as CorruptionError).region).toBe(pool.name);
    expect(() => pool.stats()).toThrow(CorruptionError);
    // An inbox naming a block that is no message.
    const c = createPool('corrupt-inbox');
    const plain = c.malloc(64);
    const inboxWord = (320 + (c.me & 63) * 128 + 72) / 4;
    Atomics.store(c.region.int32, inboxWord, (plain - 32 - (c.region.int32[20 / 4] as number)) / 16);
    expect(() => c.tryReceive()).toThrow(CorruptionError);
    Atomics.store(c.region.int32, inboxWord, 0x7fffffff);
    expect(() => c.tryReceive()).toThrow(CorruptionError);
    // Repair a's neighbour so the pool can be disposed cleanly.
    w[(b - 32) / 4] = original;
  });

  it('open refuses a region that is not a pool, and a pool header with impossible values', () => {
    const region = SharedRegion.create(uniqueName('not-a-pool'), 4096);
    try {
      expect(() => ShmemPool.open(region.name)).toThrow(CorruptionError);
    } finally {
      region.dispose();
    }
    const pool = createPool('bad-header');
    const path = `/dev/shm${pool.region.shmName}`;
    const fd = openSync(path, 'r+');
    writeSync(fd, Buffer.from([99, 0, 0, 0]), 0, 4, 128 + 8); // maxMembers = 99
    closeSync(fd);
    expect(() => ShmemPool.open(pool.name)).toThrow(CorruptionError);
    expect(existsSync(path)).toBe(true);
  });

  it('dispose twice is harmless, methods after it are ClosedError, and no region is left behind', () => {
    const pool = ShmemPool.create(uniqueName('dispose'));
    const path = `/dev/shm${pool.region.shmName}`;
    const joined = ShmemPool.open(pool.name);
    expect(existsSync(path)).toBe(true);
    pool.dispose();
    pool.dispose();
    expect(existsSync(path)).toBe(false);
    expect(() => pool.malloc(8)).toThrow(code('ERR_MEMWIRE_CLOSED'));
    expect(joined.malloc(8)).toBeGreaterThan(0); // a member still attached keeps its mapping
    joined.dispose();
    joined.dispose();
    {
      using scoped = ShmemPool.create(uniqueName('using'));
      expect(scoped.members()).toHaveLength(1);
    }
    expect(SharedRegion.listStale().filter((s) => s.name.includes('.dispose.') || s.name.includes('.using.'))).toEqual([]);
  });
});
