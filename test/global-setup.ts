/**
 * Before the suite: the build the child processes run must exist. After it: no memwire object
 * of this user may be left in /dev/shm (a leak fails the run).
 */
import { existsSync, readdirSync } from 'node:fs';
import { getuid } from 'node:process';

const prefix = `memwire.u${getuid?.() ?? 0}.`;
const leftovers = () => readdirSync('/dev/shm').filter((e) => e.startsWith(prefix));

export function setup(): void {
  if (!existsSync(new URL('../dist/test/fixtures/child.js', import.meta.url))) {
    throw new Error('dist/ is missing: run `npm run build` first (npm test does)');
  }
  const before = leftovers();
  if (before.length) console.warn(`note: /dev/shm held memwire objects before the suite: ${before.join(', ')}`);
}

export function teardown(): void {
  const left = leftovers();
  if (left.length) throw new Error(`memwire objects left in /dev/shm after the suite: ${left.join(', ')}`);
}
