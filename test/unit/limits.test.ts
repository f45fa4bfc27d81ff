// The limits the package exports are the ones its constructors enforce: one more than each is a
// UsageError up front (before any object exists), so a user can size things by the constants.
import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  MAX_HEAP_BYTES, MAX_INCOMING, MAX_LOCKS, MAX_MEMBERS, MAX_PARTITIONS, MAX_POOL_BYTES, MAX_POSTBOX_BYTES, MAX_POSTBOXES,
  MAX_SEGMENT_BYTES, MAX_SEGMENT_SENDERS, MAX_SLOT_BYTES, MAX_SLOTS, Postbox, SegmentReceiver, ShmemPool, UsageError,
} from '../../src/index.js';

const tag = `lim${process.pid}`;
const mine = () => readdirSync('/dev/shm').filter((e) => e.includes(tag));

describe('exported limits', () => {
  it('are whole numbers', () => {
    for (const limit of [MAX_HEAP_BYTES, MAX_INCOMING, MAX_LOCKS, MAX_MEMBERS, MAX_PARTITIONS, MAX_POOL_BYTES, MAX_POSTBOX_BYTES, MAX_POSTBOXES, MAX_SEGMENT_BYTES, MAX_SEGMENT_SENDERS, MAX_SLOT_BYTES, MAX_SLOTS]) {
      expect(Number.isSafeInteger(limit) && limit > 0).toBe(true);
    }
  });

  it('Postbox.open refuses one more than each postbox limit', () => {
    const open = (options: object) => () => Postbox.open('x', { domain: tag, ...options });
    expect(open({ poolBytes: MAX_POOL_BYTES + 4096 })).toThrow(UsageError);
    expect(open({ slotBytes: MAX_SLOT_BYTES + 64 })).toThrow(UsageError);
    expect(open({ postboxes: MAX_POSTBOXES + 1, slots: 2, slotBytes: 64 })).toThrow(UsageError);
    expect(open({ postboxes: 1, slots: MAX_SLOTS + 1, slotBytes: 64 })).toThrow(UsageError);
    expect(open({ postboxes: 64, slots: 64, slotBytes: (MAX_POSTBOX_BYTES / 64 / 64) + 64 })).toThrow(UsageError);
    expect(open({ maxIncoming: MAX_INCOMING + 1 })).toThrow(UsageError);
    expect(mine()).toEqual([]);
  });

  it('SegmentReceiver.open refuses one more than each segment-group limit', () => {
    const open = (options: object) => () => SegmentReceiver.open('x', { domain: tag, groups: [{ partitionSize: 64, partitions: 4 }], ...options });
    expect(open({ groups: [{ partitionSize: 64, partitions: MAX_PARTITIONS + 1 }] })).toThrow(UsageError);
    expect(open({ groups: [{ partitionSize: MAX_SEGMENT_BYTES / 4, partitions: 4 }] })).toThrow(UsageError);
    expect(open({ maxSenders: MAX_SEGMENT_SENDERS + 1 })).toThrow(UsageError);
    expect(mine()).toEqual([]);
  });

  it('ShmemPool.create refuses one more than each pool limit', () => {
    const create = (options: object) => () => ShmemPool.create(`${tag}.pool`, options);
    expect(create({ heapBytes: MAX_HEAP_BYTES + 1 })).toThrow(UsageError);
    expect(create({ maxMembers: MAX_MEMBERS + 1 })).toThrow(UsageError);
    expect(create({ maxLocks: MAX_LOCKS + 1 })).toThrow(UsageError);
    expect(mine()).toEqual([]);
  });
});
