/**
 * Child processes for the shmem pool tests: test/fixtures/shmem-child.ts, started with the
 * runtime under test through test/helpers.ts (so `finished` waits for these too).
 */
import { afterEach } from 'vitest';
import { ShmemPool, type PoolCreateOptions } from '../../src/index.js';
import { startFixture, uniqueName, type Child } from '../helpers.js';

export interface ShmemChild extends Child {
  /** The child's MemberId, from its "joined <id>" line. */
  member(): Promise<number>;
}

export function startShmemChild(scenario: string, pool: string, ...args: (string | number)[]): ShmemChild {
  const child = startFixture('shmem-child', [scenario, pool, ...args]);
  const member = async () => {
    const line = await child.waitForMatch((lines) => lines.find((l) => l.startsWith('joined ')), '"joined <id>"');
    return Number(line.slice('joined '.length));
  };
  return Object.assign(child, { member });
}

/**
 * The pools and children a test file makes: pools are disposed and children killed after each
 * test, whatever it left behind.
 */
export function usePoolFixtures(defaults: PoolCreateOptions = {}) {
  const pools: ShmemPool[] = [];
  const children: ShmemChild[] = [];
  afterEach(async () => {
    for (const c of children.splice(0)) {
      c.process.kill('SIGKILL');
      await c.exit;
    }
    for (const pool of pools.splice(0)) pool.dispose();
  });
  return {
    /** Dispose this pool (e.g. one opened by the test) after the test, too. */
    adopt(pool: ShmemPool): ShmemPool {
      pools.push(pool);
      return pool;
    },
    createPool(label: string, heapBytes = 1 << 20): ShmemPool {
      const pool = ShmemPool.create(uniqueName(label), { ...defaults, heapBytes });
      pools.push(pool);
      return pool;
    },
    child(scenario: string, pool: ShmemPool, ...args: (string | number)[]): ShmemChild {
      const c = startShmemChild(scenario, pool.name, ...args);
      children.push(c);
      return c;
    },
  };
}
