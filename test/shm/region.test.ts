// SharedRegion against the real kernel: real /dev/shm objects, real child processes.
import { openSync, writeSync, closeSync, existsSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ClosedError,
  CorruptionError,
  MAX_REGION_DATA_SIZE,
  SharedRegion,
  SystemError,
  TimeoutError,
  UsageError,
} from '../../src/index.js';
import { finished, startChild, uniqueName } from '../helpers.js';

const made: SharedRegion[] = [];
function create(label: string, size = 4096): SharedRegion {
  const region = SharedRegion.create(uniqueName(label), size);
  made.push(region);
  return region;
}
afterEach(() => {
  for (const region of made.splice(0)) region.dispose();
});

const devShmPath = (region: SharedRegion) => `/dev/shm${region.shmName}`;

describe('two processes', () => {
  it('see each other’s writes', async () => {
    const region = create('share');
    const child = startChild('share', region.name);
    const ready = region.futex(0);
    while (ready.load() === 0) await ready.waitAsync(0, { timeoutMs: 10_000 });
    for (let i = 0; i < 256; i++) expect(region.bytes[64 + i]).toBe((i * 7) & 0xff);
    for (let i = 0; i < 256; i++) region.bytes[512 + i] = 255 - i;
    region.futex(4).store(1);
    region.futex(4).wake();
    await finished(child);
  });

  it('Atomics.add from 2 processes × 10^6 gives exactly 2×10^6', async () => {
    const region = create('add');
    const children = [startChild('add', region.name, '1000000', '2'), startChild('add', region.name, '1000000', '2')];
    await Promise.all(children.map((c) => finished(c, 60_000)));
    expect(Atomics.load(region.int32, 0)).toBe(2_000_000);
  });
});

describe('futex', () => {
  it('a waiter in another process wakes on wake()', async () => {
    const region = create('futex');
    const child = startChild('wait', region.name);
    const announced = region.futex(8);
    while (announced.load() === 0) await announced.waitAsync(0, { timeoutMs: 10_000 });
    // The child is blocked (or about to block) in futex wait: it has not recorded a result.
    await new Promise((r) => setTimeout(r, 50));
    expect(Atomics.load(region.int32, 1)).toBe(0);
    region.futex(0).store(1);
    region.futex(0).wake();
    await finished(child);
    expect(Atomics.load(region.int32, 1)).toBe(1); // 'ok'
  });

  it('a wait with a timeout times out', () => {
    const region = create('timeout');
    expect(region.futex(0).wait(0, { timeoutMs: 20, spin: 0 })).toBe('timed-out');
  });

  it('a wait on a stale value returns at once', () => {
    const region = create('stale');
    region.futex(0).store(7);
    expect(region.futex(0).wait(6, { timeoutMs: 10_000 })).toBe('not-equal');
  });

  it('waitAsync keeps the event loop free and wakes on a store + wake', async () => {
    const region = create('async');
    const word = region.futex(0);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    setTimeout(() => {
      word.store(1);
      word.wake();
    }, 120);
    const result = await word.waitAsync(0, { timeoutMs: 10_000 });
    clearInterval(timer);
    expect(result).toBe('ok');
    expect(ticks).toBeGreaterThan(3); // the loop ran timers while we waited
  });

  it('waitAsync times out, and more waiters than helper threads still all resolve', async () => {
    const region = create('async-many');
    const waits = Array.from({ length: 6 }, (_, i) => region.futex(4 * i).waitAsync(0, { timeoutMs: 5_000 }));
    setTimeout(() => {
      for (let i = 0; i < 6; i++) {
        region.futex(4 * i).store(1);
        region.futex(4 * i).wake();
      }
    }, 60);
    expect(await Promise.all(waits)).toEqual(Array(6).fill('ok'));
    expect(await region.futex(64).waitAsync(0, { timeoutMs: 30 })).toBe('timed-out');
  });

  it('waitAsync rejects with ClosedError when the region is closed meanwhile', async () => {
    const region = create('async-close');
    const pending = region.futex(0).waitAsync(0, { timeoutMs: 10_000 });
    setTimeout(() => region.close(), 20);
    await expect(pending).rejects.toBeInstanceOf(ClosedError);
  });

  it('rejects bad offsets and options', () => {
    const region = create('futex-bad');
    expect(() => region.futex(2)).toThrow(UsageError);
    expect(() => region.futex(region.size)).toThrow(UsageError);
    expect(() => region.futex(0).wait(0, { timeoutMs: -1 })).toThrow(UsageError);
    expect(() => region.futex(0).wake(-1)).toThrow(UsageError);
  });
});

describe('bad input is a typed error', () => {
  it.each([
    ['zero', 0],
    ['negative', -1],
    ['NaN', Number.NaN],
    ['fractional', 1.5],
    ['infinite', Infinity],
    ['over the limit', MAX_REGION_DATA_SIZE + 1],
    ['not a number', '4096' as unknown as number],
  ])('size %s', (_label, size) => {
    expect(() => SharedRegion.create(uniqueName('size'), size)).toThrow(UsageError);
  });

  it.each([
    ['empty', ''],
    ["with '/'", 'a/b'],
    ['too long', 'x'.repeat(201)],
    ['with a space', 'a b'],
    ['starting with a dot', '.hidden'],
  ])('name %s', (_label, name) => {
    expect(() => SharedRegion.create(name, 64)).toThrow(UsageError);
    expect(() => SharedRegion.open(name)).toThrow(UsageError);
  });

  it('open of a missing name is ENOENT', () => {
    const error = captured(() => SharedRegion.open(uniqueName('missing')));
    expect(error).toBeInstanceOf(SystemError);
    expect((error as SystemError).errnoName).toBe('ENOENT');
    expect((error as SystemError).call).toBe('shm_open');
  });

  it('exclusive create of an existing name is EEXIST', () => {
    const region = create('exists');
    const error = captured(() => SharedRegion.create(region.name, 64));
    expect(error).toBeInstanceOf(SystemError);
    expect((error as SystemError).errnoName).toBe('EEXIST');
  });

  it('open refuses a wrong magic', () => {
    const region = create('magic');
    overwrite(devShmPath(region), 0, [0xde, 0xad, 0xbe, 0xef]);
    expect(() => SharedRegion.open(region.name)).toThrow(CorruptionError);
  });

  it('open refuses a wrong layout version', () => {
    const region = create('version');
    overwrite(devShmPath(region), 4, [99, 0, 0, 0]);
    const error = captured(() => SharedRegion.open(region.name));
    expect(error).toBeInstanceOf(CorruptionError);
    expect((error as Error).message).toMatch(/layout version 99/);
  });

  it('open refuses a header whose size disagrees with the object', () => {
    const region = create('size-lie');
    overwrite(devShmPath(region), 24, [0, 0, 0, 0, 1, 0, 0, 0]);
    expect(() => SharedRegion.open(region.name)).toThrow(CorruptionError);
  });

  it('open of a region that never finishes initialising times out', () => {
    const name = uniqueName('uninit');
    const region = create('uninit-template');
    // An object with our prefix, sized but never marked ready.
    const path = devShmPath(region).replace(region.name, name);
    const fd = openSync(path, 'w', 0o600);
    writeSync(fd, Buffer.alloc(4096));
    closeSync(fd);
    try {
      expect(() => SharedRegion.open(name, { timeoutMs: 50 })).toThrow(TimeoutError);
    } finally {
      SharedRegion.unlink(name);
    }
  });

  it('close twice is harmless; use after close is ClosedError', () => {
    const region = create('closed');
    region.close();
    region.close();
    expect(() => region.bytes).toThrow(ClosedError);
    expect(() => region.view('int32')).toThrow(ClosedError);
    expect(() => region.futex(0)).toThrow(ClosedError);
  });

  it('a view kept from before close reads zeros and writes go nowhere, without crashing', () => {
    const region = create('stale-view');
    const other = SharedRegion.open(region.name);
    const kept = other.bytes;
    region.bytes[10] = 42;
    expect(kept[10]).toBe(42);
    other.close();
    expect(kept[10]).toBe(0);
    kept[10] = 7; // lands in private placeholder memory
    expect(region.bytes[10]).toBe(42);
  });

  it('views are bounds-checked', () => {
    const region = create('views', 1024);
    expect(() => region.view('int32', 2)).toThrow(UsageError);
    expect(() => region.view('float64', 0, 129)).toThrow(UsageError);
    expect(region.view('float64', 8, 127).length).toBe(127);
  });
});

describe('crash clean-up', () => {
  it('a region whose creator was SIGKILLed is found and removed by removeStale()', async () => {
    const name = uniqueName('crash');
    const child = startChild('create-and-hang', name);
    await child.waitFor('ready');
    expect(SharedRegion.listStale().map((s) => s.name)).not.toContain(name); // creator alive
    child.process.kill('SIGKILL');
    await child.exit;
    const stale = SharedRegion.listStale().find((s) => s.name === name);
    expect(stale).toMatchObject({ name, reason: 'creator-dead', creatorPid: child.process.pid });
    const removed = SharedRegion.removeStale().map((s) => s.name);
    expect(removed).toContain(name);
    expect(existsSync(stale!.path)).toBe(false);
  });
});

describe('dispose', () => {
  it('the creator’s dispose removes the name; dispose twice is harmless', () => {
    const region = SharedRegion.create(uniqueName('dispose'), 64);
    const path = devShmPath(region);
    expect(existsSync(path)).toBe(true);
    region.dispose();
    region.dispose();
    expect(existsSync(path)).toBe(false);
  });

  it('using-declarations dispose', () => {
    let path = '';
    {
      using region = SharedRegion.create(uniqueName('using'), 64);
      path = devShmPath(region);
    }
    expect(existsSync(path)).toBe(false);
  });
});

function captured(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

function overwrite(path: string, offset: number, bytes: number[]): void {
  const fd = openSync(path, 'r+');
  writeSync(fd, Buffer.from(bytes), 0, bytes.length, offset);
  closeSync(fd);
}
