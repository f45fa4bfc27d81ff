/**
 * The three shared layouts of postbox messaging (seed 001). All offsets are bytes from the start
 * of a transport target; little-endian; words grouped by the side that writes them, one 64-byte
 * line per writer. Each layout starts with magic, version and an init word stored last.
 *
 * Transport contract (transport/types.ts): a word another node operates on atomically (load,
 * add, compareExchange through an image) is 8-aligned and owns its 8 bytes (marked "atomic,
 * 8 B"); and a writer's per-message decisions read only its own memory — the receiver pushes
 * "sleeping", "closed" and "consumed" into the sender's ack block, the sender pushes "waiting for
 * acknowledgments" into its data segment, which the receivers map. Bells are rung with a
 * published nonce (a post), not an atomic add.
 *
 * 1. Endpoint segment `pb.<domain>.ep.<name>` — created by a receiving process when it opens its
 *    endpoint; the place where senders register the postboxes they assign to it (claims 1, 14).
 *
 *   offset  size  field                written by
 *        0     4  magic 'MWPE'         owner, once
 *        4     4  version              owner, once
 *        8     8  init (1 = ready)     owner, once, last (atomic, 8 B)
 *       16     4  pid                  owner
 *       20     8  start (lo, hi)       owner: the pid's start time (survives pid reuse)
 *       28     4  maxIncoming          owner
 *       64     8  status               owner: bit 0 SLEEPING (waits on bell), bit 1 CLOSED (atomic, 8 B;
 *                                      read by senders at connect and in liveness checks only)
 *      128     8  bell                 senders: a new nonce, then futex wake, when the receiver
 *                                      said it sleeps (futex word)
 *      192     8  registrations        senders: +1 after an entry turns READY (atomic, 8 B; set-up)
 *      256     …  entries[maxIncoming], ENTRY_BYTES each:
 *                   0 state     FREE 0 / CLAIMED 1 (a sender fills it) / READY 2   (atomic, 8 B: CAS by
 *                               senders; the owner frees it)
 *                   8 postbox   index of the receiver's postbox in the sender's data segment
 *                  12 pid      16 start lo  20 start hi     the sending process
 *                  24 nameLen  28..75 sender's endpoint name (ASCII)
 *                 128..383 the data segment's descriptor (transport/descriptor.ts)
 *
 * 2. Data segment `pb.<domain>.data.<sender>` on the receiving node — the sender's "process
 *    memory space" there (claim 1), created lazily on its first message to that node (claims 31,
 *    34). Written by the sender only, read by the receivers of that node.
 *
 *        0  magic 'MWPD'  4 version  8 init (8 B)  16 pid  20 start lo  24 start hi
 *       28  postboxes (n)  32 slots (S)  36 slotBytes  40 blockSize  44 blocks
 *       48  state (1 open, 2 closed; 8 B, loaded by the sender in liveness checks)
 *       56  senderWaiting: 1 while the sender waits for acknowledgments on its ackBell
 *       64..319  the ack segment's descriptor (where receivers acknowledge)
 *      320  directory: n entries × 64 — the postbox table, one entry per postbox
 *             0 state (FREE 0 / ASSIGNED 1 / CLOSED 2; 8 B)  8 epoch  12 nameLen  16..63 receiver name
 *      postboxOffset (64-aligned): n postboxes × S slots × slotBytes; slot = message indicator
 *             0 seq       message number (1, 2, …), stored LAST with Atomics.store: publication
 *             4 length    bytes in this slot (inline) or in the blocks
 *             8 flags     INLINE | BLOCKS, FIRST, LAST (a chunked message: FIRST … LAST)
 *            12 location  first block (BLOCKS): the indicator's location information (claim 2)
 *            16 …         inline payload (≤ slotBytes − 16, claims 4–5); for a FIRST piece that
 *                         is not also LAST: 16 total (the whole message's length)
 *      poolOffset (4096-aligned): blocks × blockSize, the buffer blocks of larger messages
 *
 * 3. Ack segment `pb.<domain>.ack.<sender>.<node tag>` on the SENDER's node, one per (sender,
 *    receiving node): the sender's section of that node pair's m × n acknowledgment blocks
 *    (claims 31–39; the m sections are m segments, so each has an owner that removes it).
 *    Written by receivers, read by the sender (claim 33).
 *
 *        0  magic 'MWPA'  4 version  8 init (8 B)  16 pid  20 start lo  24 start hi  28 blocks (n)
 *      128  ackBell         receivers: a new nonce, then futex wake, when senderWaiting (futex word)
 *      192  blocks[n] × 64  block k, written by the receiver of postbox k:
 *             0 consumed    messages (slots) of postbox k the receiver has taken
 *             4 status      0 fine; RX_CLOSED the receiver closed it; RX_CORRUPT it found it corrupt
 *             8 sleeping    1 while the receiver waits on its endpoint bell (the sender rings then)
 *
 * Version 2: atomic words on their own 8 bytes; "sleeping" and "waiting" pushed to the reader of
 * the flag instead of loaded across (version 1 had the sender load EP_STATUS after every send and
 * the receiver load senderWaiting in the ack segment on every drain).
 */
export const LAYOUT_VERSION = 2;
export const INIT_READY = 1;

// Common header words (all three layouts)
export const H_MAGIC = 0;
export const H_VERSION = 4;
export const H_INIT = 8;
export const H_PID = 16;
export const H_START_LO = 20;
export const H_START_HI = 24;
/** The common header, read whole (one remote read) by whoever checks it. */
export const H_BYTES = 64;

// 1. Endpoint segment
export const EP_MAGIC = 0x4550574d; // "MWPE"
export const EP_MAX_INCOMING = 28;
export const EP_STATUS = 64;
export const EP_BELL = 128;
export const EP_REGISTRATIONS = 192;
export const EP_ENTRIES = 256;
export const ENTRY_BYTES = 384;
export const EN_STATE = 0;
export const EN_POSTBOX = 8;
export const EN_PID = 12;
export const EN_START_LO = 16;
export const EN_START_HI = 20;
export const EN_NAME_LEN = 24;
export const EN_NAME = 28;
export const EN_DESCRIPTOR = 128;
export const ENTRY_FREE = 0;
export const ENTRY_CLAIMED = 1;
export const ENTRY_READY = 2;
export const STATUS_SLEEPING = 1;
export const STATUS_CLOSED = 2;

export function endpointBytes(maxIncoming: number): number {
  return EP_ENTRIES + maxIncoming * ENTRY_BYTES;
}

// 2. Data segment
export const DS_MAGIC = 0x4450574d; // "MWPD"
export const DS_POSTBOXES = 28;
export const DS_SLOTS = 32;
export const DS_SLOT_BYTES = 36;
export const DS_BLOCK_SIZE = 40;
export const DS_BLOCKS = 44;
export const DS_STATE = 48;
export const DS_SENDER_WAITING = 56;
export const DS_ACK_DESCRIPTOR = 64;
export const DS_DIRECTORY = 320;
export const DIR_BYTES = 64;
export const DIR_STATE = 0;
export const DIR_EPOCH = 8;
export const DIR_NAME_LEN = 12;
export const DIR_NAME = 16;
export const DIR_FREE = 0;
export const DIR_ASSIGNED = 1;
export const DIR_CLOSED = 2;
export const DS_OPEN = 1;
export const DS_CLOSED = 2;

export const SLOT_SEQ = 0;
export const SLOT_LENGTH = 4;
export const SLOT_FLAGS = 8;
export const SLOT_LOCATION = 12;
export const SLOT_INLINE = 16;
export const SLOT_TOTAL = 16;
export const SLOT_HEADER = 16;
export const F_INLINE = 1;
export const F_BLOCKS = 2;
export const F_FIRST = 4;
export const F_LAST = 8;
export const F_KNOWN = F_INLINE | F_BLOCKS | F_FIRST | F_LAST;

/** Longest receiver name a directory entry holds (and so the longest endpoint name). */
export const MAX_ENDPOINT_NAME = 48;

export interface DataGeometry {
  postboxes: number;
  slots: number;
  slotBytes: number;
  blockSize: number;
  blocks: number;
}

export function align(value: number, to: number): number {
  return Math.ceil(value / to) * to;
}

export function postboxOffset(g: DataGeometry): number {
  return align(DS_DIRECTORY + g.postboxes * DIR_BYTES, 64);
}

export function poolOffset(g: DataGeometry): number {
  return align(postboxOffset(g) + g.postboxes * g.slots * g.slotBytes, 4096);
}

export function dataBytes(g: DataGeometry): number {
  return poolOffset(g) + g.blocks * g.blockSize;
}

// 3. Ack segment
export const AK_MAGIC = 0x4150574d; // "MWPA"
export const AK_BLOCKS = 28;
export const AK_BELL = 128;
export const AK_FIRST_BLOCK = 192;
export const AK_BLOCK_BYTES = 64;
export const AB_CONSUMED = 0;
export const AB_STATUS = 4;
export const AB_SLEEPING = 8;
export const RX_CLOSED = 1;
export const RX_CORRUPT = 2;

export function ackBytes(blocks: number): number {
  return AK_FIRST_BLOCK + blocks * AK_BLOCK_BYTES;
}
