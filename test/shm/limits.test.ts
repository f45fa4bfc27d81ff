// Region sizes at and past the limit (issue 13, item 7): the largest region every runtime can map
// works across processes; anything larger is a UsageError before any object exists, and an object
// grown past the limit behind memwire's back is refused on open instead of aborting the process.
import { existsSync, truncateSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { CorruptionError, MAX_REGION_DATA_SIZE, SharedRegion, UsageError } from '../../src/index.js';
import { finished, startChild, uniqueName } from '../helpers.js';

const GiB = 2 ** 30;
const made: SharedRegion[] = [];
afterEach(() => {
  for (const region of made.splice(0)) region.dispose();
});

const pathOf = (name: string) => `/dev/shm/memwire.u${process.getuid!()}.${name}`;

describe('region size limit', () => {
  it('the limit is what one view can cover on every runtime: 4 GiB including the 128-byte header', () => {
    expect(MAX_REGION_DATA_SIZE + 128).toBe(4 * GiB);
  });

  it('a region of the largest size works, and another process sees its last byte', async () => {
    // reserve: false — the pages are not allocated until touched; only the first and last are.
    const region = SharedRegion.create(uniqueName('max'), MAX_REGION_DATA_SIZE, { reserve: false });
    made.push(region);
    expect(region.size).toBe(MAX_REGION_DATA_SIZE);
    expect(region.bytes.length).toBe(MAX_REGION_DATA_SIZE);
    region.bytes[MAX_REGION_DATA_SIZE - 1] = 0xa5;
    expect(region.view('uint8', MAX_REGION_DATA_SIZE - 1)[0]).toBe(0xa5);
    const child = startChild('read-at', region.name, String(MAX_REGION_DATA_SIZE - 1));
    await finished(child, 60_000);
    expect(child.stdout().trim()).toBe(`${MAX_REGION_DATA_SIZE} ${0xa5}`);
  });

  it.each([
    ['one byte over', MAX_REGION_DATA_SIZE + 1],
    ['4 GiB', 4 * GiB],
    ['16 GiB', 16 * GiB],
  ])('%s is a UsageError up front, and no object is left behind', (_label, size) => {
    const name = uniqueName('over');
    let error: unknown;
    try {
      made.push(SharedRegion.create(name, size, { reserve: false }));
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(UsageError);
    expect((error as Error).message).toMatch(/over the limit/);
    expect(existsSync(pathOf(name))).toBe(false);
  });

  it('an object grown past the limit behind memwire’s back is refused on open, not mapped', () => {
    const region = SharedRegion.create(uniqueName('grown'), 4096);
    made.push(region);
    truncateSync(pathOf(region.name), 4 * GiB + 4096); // sparse: nothing is allocated
    let error: unknown;
    try {
      SharedRegion.open(region.name).close();
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(CorruptionError);
    expect((error as Error).message).toMatch(/larger than any memwire region/);
  });
});
