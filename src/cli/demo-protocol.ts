/**
 * What the demo's two processes agree on: the region's shape and the two phases.
 *
 * The region holds two mailboxes: `toPeer` (demo → peer) and `toDemo` (peer → demo).
 *  1. latency: the demo sends LATENCY_ROUNDS messages of 64 B, each stamped with its number; the
 *     peer checks the stamp and echoes it back.
 *  2. throughput: the demo sends BULK_COUNT messages of 1 MiB; the first word is the message
 *     number, the second a checksum of the rest, which the peer recomputes. At the end the peer
 *     reports how many arrived intact.
 */
import { Mailbox } from '../shm/mailbox.js';
import type { SharedRegion } from '../shm/region.js';

export const SMALL_SIZE = 64;
export const BULK_SIZE = 1 << 20;
export const MAILBOX_CAPACITY = BULK_SIZE;
export const REGION_SIZE = 2 * Mailbox.bytesFor(MAILBOX_CAPACITY);

export function mailboxes(region: SharedRegion): { toPeer: Mailbox; toDemo: Mailbox } {
  return {
    toPeer: new Mailbox(region, 0, MAILBOX_CAPACITY),
    toDemo: new Mailbox(region, Mailbox.bytesFor(MAILBOX_CAPACITY), MAILBOX_CAPACITY),
  };
}

/** A checksum of words 2.. of a message (cheap enough to run over every byte of every message). */
export function checksum(words: Int32Array, count: number): number {
  let sum = 0x12345678;
  for (let i = 2; i < count; i++) sum = (Math.imul(sum, 31) + words[i]) | 0;
  return sum;
}
