/**
 * Before the suite: the build the child processes run must exist. After it: no memwire object
 * of this user that appeared during the suite may be left in /dev/shm (a leak fails the run).
 * Objects already there before (another program's) are reported, not blamed on the suite.
 */
import { existsSync, readdirSync } from 'node:fs';
import { getuid } from 'node:process';

const prefix = `memwire.u${getuid?.() ?? 0}.`;
const leftovers = () => readdirSync('/dev/shm').filter((e) => e.startsWith(prefix));

export function setup(): void {
  if (!existsSync(new URL('../dist/test/fixtures/child.js', import.meta.url))) {
    throw new Error('dist/ is missing: run `npm run build` first (npm test does)');
  }
  before = new Set(leftovers());
  if (before.size) console.warn(`note: /dev/shm held memwire objects before the suite: ${[...before].join(', ')}`);
}

let before = new Set<string>();

export function teardown(): void {
  const left = leftovers().filter((e) => !before.has(e));
  if (left.length) throw new Error(`memwire objects left in /dev/shm after the suite: ${left.join(', ')}`);
}
