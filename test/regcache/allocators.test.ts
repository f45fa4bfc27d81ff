// One conformance suite for memwire's allocators (STYLE.md: one suite per interface, run against
// every implementation): shmem/heap.ts's boundary-tag heap (inside a region, as ShmemPool and
// every RegisteredHeap block run it), postbox/blocks.ts's run-of-blocks allocator, and
// RegisteredHeap itself (the heap.ts allocator growing by OS blocks). segments.ts's partition
// allocator lives inside SegmentSender.send and has no allocator interface of its own to run here.
//
// Properties over random alloc/free sequences (fast-check): live allocations never overlap and
// are at least as large as asked; memory-backed ones keep what was written into them; a
// double free is refused where the allocator can tell; freeing everything gives the whole capacity
// back as one allocation (coalescing), and a request beyond capacity fails without throwing.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RegisteredHeap, SharedRegion, UsageError } from '../../src/index.js';
import { BlockAllocator } from '../../src/postbox/blocks.js';
import { PoolContext } from '../../src/shmem/context.js';
import { Heap } from '../../src/shmem/heap.js';
import { POOL_HEADER_SIZE } from '../../src/shmem/layout.js';
import { uniqueName } from '../helpers.js';

interface Allocation {
  /** Start and end in one address space of the allocator's (for the overlap check). */
  readonly start: number;
  readonly end: number;
  readonly view?: Uint8Array;
}

interface AllocatorUnderTest {
  /** The largest request that can succeed on an empty allocator. */
  readonly capacity: number;
  readonly detectsDoubleFree: boolean;
  /** undefined when there is no room (never a throw for a valid size). */
  alloc(units: number): Allocation | undefined;
  free(a: Allocation): void;
  dispose(): void;
}

function heapInRegion(): AllocatorUnderTest {
  const region = SharedRegion.create(uniqueName('conf.heap'), POOL_HEADER_SIZE + 256 * 1024);
  const heapGranules = (region.size - POOL_HEADER_SIZE) / 16;
  const ctx = new PoolContext(region, { maxMembers: 0, maxLocks: 0, lockTableOffset: 0, heapOffset: POOL_HEADER_SIZE, heapGranules });
  const heap = new Heap(ctx);
  heap.init();
  return {
    capacity: heap.maxRequest,
    detectsDoubleFree: true,
    alloc(units) {
      const index = heap.alloc(units, 0, 0);
      if (index === 0) return undefined;
      const start = ctx.payloadOffset(index);
      expect(heap.length(index)).toBe(units);
      return { start, end: start + units, view: region.bytes.subarray(start, start + units) };
    },
    free(a) {
      heap.release(heap.usedIndex(a.start, 'free'));
    },
    dispose: () => region.dispose(),
  };
}

function blockAllocator(): AllocatorUnderTest {
  const blocks = new BlockAllocator(512);
  return {
    capacity: 512,
    detectsDoubleFree: false,
    alloc(units) {
      const first = blocks.alloc(units);
      return first < 0 ? undefined : { start: first, end: first + units };
    },
    free(a) {
      for (let b = a.start; b < a.end; b++) expect(blocks.isAllocated(b)).toBe(true);
      blocks.release(a.start, a.end - a.start);
    },
    dispose: () => {},
  };
}

function registeredHeap(): AllocatorUnderTest {
  const heap = RegisteredHeap.create(uniqueName('conf.rheap'), { blockBytes: 65536, maxBlocks: 4, keepFreeBlocks: 1 });
  const buffers = new Map<number, ReturnType<RegisteredHeap['malloc']>>();
  // The largest single request: a block of its own, within the 4-entry table.
  return {
    capacity: 65536,
    detectsDoubleFree: true,
    alloc(units) {
      const b = heap.malloc(units);
      if (!b) return undefined;
      const start = b.block * 2 ** 31 + b.offset;
      buffers.set(start, b);
      return { start, end: start + units, view: b.view };
    },
    free(a) {
      heap.free(buffers.get(a.start)!);
    },
    dispose: () => heap.dispose(),
  };
}

const IMPLEMENTATIONS: [string, () => AllocatorUnderTest, number][] = [
  ['shmem/heap.ts (boundary tags, in a region)', heapInRegion, 20_000],
  ['postbox/blocks.ts (runs of fixed blocks)', blockAllocator, 64],
  ['RegisteredHeap (heap.ts in OS blocks)', registeredHeap, 40_000],
];

describe.each(IMPLEMENTATIONS)('allocator conformance: %s', (_name, make, maxUnits) => {
  it('random alloc/free: no overlap, contents kept, all capacity back after freeing everything', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.integer({ min: 1, max: maxUnits }), fc.constant(-1), fc.constant(-2)), { maxLength: 80 }), (ops) => {
        const allocator = make();
        const live: { a: Allocation; tag: number }[] = [];
        try {
          let tag = 0;
          for (const op of ops) {
            if (op > 0) {
              const a = allocator.alloc(op);
              if (!a) continue;
              expect(a.end - a.start).toBeGreaterThanOrEqual(op);
              for (const { a: other } of live) expect(a.end <= other.start || other.end <= a.start).toBe(true);
              tag = (tag % 250) + 1;
              a.view?.fill(tag);
              live.push({ a, tag });
            } else if (live.length > 0) {
              const [{ a, tag: t }] = live.splice(op === -1 ? 0 : live.length - 1, 1);
              if (a.view) expect(a.view.every((x) => x === t)).toBe(true);
              allocator.free(a);
              if (allocator.detectsDoubleFree) expect(() => allocator.free(a)).toThrow(UsageError);
            }
          }
          for (const { a, tag: t } of live.splice(0)) {
            if (a.view) expect(a.view.every((x) => x === t)).toBe(true);
            allocator.free(a);
          }
          const whole = allocator.alloc(allocator.capacity);
          expect(whole).toBeDefined();
          allocator.free(whole!);
        } finally {
          allocator.dispose();
        }
      }),
      { numRuns: 40 },
    );
  });

  it('a request beyond what is free fails without throwing', () => {
    const allocator = make();
    try {
      const whole = allocator.alloc(allocator.capacity)!;
      expect(whole).toBeDefined();
      const held: Allocation[] = [whole];
      // Fill what is left, then one more must fail quietly (RegisteredHeap: its table fills up).
      for (let i = 0; i < 64; i++) {
        const a = allocator.alloc(allocator.capacity);
        if (!a) break;
        held.push(a);
      }
      expect(allocator.alloc(allocator.capacity)).toBeUndefined();
      for (const a of held) allocator.free(a);
    } finally {
      allocator.dispose();
    }
  });
});
