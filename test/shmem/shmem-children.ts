/**
 * Child processes for the shmem pool tests: test/fixtures/shmem-child.ts, started with the
 * runtime under test through test/helpers.ts (so `finished` waits for these too).
 */
import { startFixture, type Child } from '../helpers.js';

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
