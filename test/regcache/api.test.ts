// RegisteredHeap's surface: bad input is a UsageError, a full table is null (not a throw), a
// failed registration leaves nothing allocated, dispose is idempotent and closes the handle, and
// a heap that is not one (or of another version) is refused on open.
import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ClosedError, CorruptionError, RegisteredHeap, SharedRegion, SystemError, UsageError } from '../../src/index.js';
import { MemlockLimitError } from '../../src/regcache/registrar.js';
import { uniqueName } from '../helpers.js';
import { CheckingRegistrar } from './checking-registrar.js';

const objects = (name: string) => readdirSync('/dev/shm').filter((e) => e.includes(`.${name}`));

describe('RegisteredHeap API', () => {
  it('bad options and sizes are UsageErrors; a full descriptor table gives null', () => {
    expect(() => RegisteredHeap.create(uniqueName('rcapi'), { blockBytes: 5000 })).toThrow(UsageError);
    expect(() => RegisteredHeap.create(uniqueName('rcapi'), { maxBlocks: 0 })).toThrow(UsageError);
    expect(() => RegisteredHeap.create(uniqueName('rcapi'), { maxMembers: 65 })).toThrow(UsageError);
    const heap = RegisteredHeap.create(uniqueName('rcapi'), { blockBytes: 65536, maxBlocks: 2 });
    try {
      for (const bad of [0, -1, 1.5, Number.NaN, 2 ** 31, '64' as unknown as number]) expect(() => heap.malloc(bad)).toThrow(UsageError);
      const a = heap.malloc(60_000)!;
      const b = heap.malloc(60_000)!;
      expect(heap.malloc(60_000)).toBeNull(); // both slots hold a block with no room
      expect(() => heap.lookup(a, a.length)).toThrow(UsageError);
      expect(() => heap.lookup(a, 0.5)).toThrow(UsageError);
      expect(() => heap.free({ block: 0, blockId: 1, offset: 0 } as never)).toThrow(UsageError);
      expect(() => heap.at(0, 12345)).toThrow(UsageError);
      expect(() => heap.lookupBlock(7)).toThrow(UsageError);
      heap.free(a);
      heap.free(b);
      expect(() => heap.free(b)).toThrow(UsageError);
    } finally {
      heap.dispose();
    }
    heap.dispose(); // twice: nothing happens
    expect(() => heap.malloc(10)).toThrow(ClosedError);
    expect(() => heap.stats()).toThrow(ClosedError);
    expect(objects(heap.name)).toEqual([]);
  });

  it('a registration that fails leaves nothing allocated, and the next try succeeds', () => {
    const registrar = new CheckingRegistrar();
    const heap = RegisteredHeap.create(uniqueName('rcfail'), { blockBytes: 65536, registrar });
    try {
      registrar.failNext = new MemlockLimitError(new SystemError('ibv_reg_mr', 12, {}), 65536);
      expect(() => heap.malloc(100)).toThrow(/RLIMIT_MEMLOCK \(ulimit -l: soft/);
      expect(heap.stats()).toMatchObject({ allocations: 0, registrations: 0 });
      const b = heap.malloc(100)!;
      expect(heap.lookup(b).lkey).toBe(registrar.live()[0].key);
      heap.free(b);
    } finally {
      heap.dispose();
    }
    expect(registrar.live()).toEqual([]);
  });

  it('open refuses what is not a registered heap', () => {
    const region = SharedRegion.create(uniqueName('rcnot'), 4096);
    try {
      expect(() => RegisteredHeap.open(region.name, { timeoutMs: 50 })).toThrow(CorruptionError);
    } finally {
      region.dispose();
    }
  });
});
