/**
 * Layouts of segment groups (seed 000). Offsets are bytes from the start of a transport target;
 * little-endian; each layout starts with magic, version and an init word stored last.
 *
 * 1. Target segment `sg.<domain>.seg.<receiver>.<sender>.<group>` — allocated by the receiver
 *    (claims 4, 21, 23), cut into N partitions of one fixed size (claim 1), with a directory entry
 *    per partition (claim 6). The sender writes it through its image (the source segment).
 *
 *   offset  size  field                        written by
 *        0     4  magic 'MWSG'                 receiver, once
 *        4     4  version                      receiver, once
 *        8     4  init (1 = ready)             receiver, once, last
 *       12     4  partitionSize                receiver, once
 *       16     4  partitions (N)               receiver, once
 *       20     4  group id                     receiver, once
 *       64     4  published                    sender: messages queued so far (Atomics.store)
 *      128     4  consumed                     receiver: messages taken so far
 *      132     4  status                       receiver: 0 fine, 1 the receiver closed, 2 it found
 *                                              this sender's memory corrupt and dropped it
 *      192  N×4  queue                         sender: queue[i mod N] = first partition of message i
 *      dirOffset  N × 16  directory            entry per partition:
 *              0 state   FREE 0 / FIRST 1 (first partition of a message: the first-of-message
 *                        flag) / NEXT 2 (a later partition of one); the receiver sets FREE again
 *              4 next    the message's next partition, −1 after its last (claim 6)
 *              8 span    partitions of the message (claim 9's span), in its FIRST entry
 *             12 seq     the message's number in the sender → receiver order, in its FIRST entry
 *      dataOffset (64-aligned)  N × partitionSize: the partitions; a message fills a contiguous
 *             run of them and its FIRST entry's partition holds a 4-byte length before the bytes
 *
 * 2. Manager `sg.<domain>.mgr.<receiver>` — the "remote shared memory manager" of claims 4, 20–23,
 *    one per receiver: the receiver registers each target segment's descriptor for a sender, the
 *    sender obtains it there.
 *
 *        0  magic 'MWSM'  4 version  8 init  12 capacity (entries)
 *       16  receiver pid  20 its start time, low  24 high (written before init: its senders
 *           check that it still runs — a receiver that died without close() is PeerGoneError)
 *       64  bell          senders: +1 and wake when the receiver sleeps (futex word)
 *      128  sleeping      receiver: 1 while it waits on bell
 *      192  entries × 384:
 *             0 state (FREE 0 / READY 2)  4 group id  8 partitionSize  12 partitions
 *            16 senderLen  20..67 sender name   128..383 the target segment's descriptor
 */
/** 2: the manager names its receiver's process (MG_RX_*). */
export const SEG_VERSION = 2;
export const INIT_READY = 1;

export const SG_MAGIC = 0x4753574d; // "MWSG"
export const SG_VERSION_OFF = 4;
export const SG_INIT = 8;
export const SG_PARTITION_SIZE = 12;
export const SG_PARTITIONS = 16;
export const SG_GROUP = 20;
export const SG_PUBLISHED = 64;
export const SG_CONSUMED = 128;
export const SG_STATUS = 132;
export const STATUS_FINE = 0;
export const STATUS_RECEIVER_CLOSED = 1;
export const STATUS_CORRUPT = 2;
/**
 * The largest target segment (header, queue, directory and partitions) a group may have: 1 GiB.
 * Every offset in it fits the layout's 32-bit words and every runtime maps it whole.
 */
export const MAX_SEGMENT_BYTES = 2 ** 30;
/** The most partitions of one group (a GroupSpec's `partitions`). */
export const MAX_PARTITIONS = 1 << 20;
/** The most senders one SegmentReceiver accepts (option maxSenders). */
export const MAX_SEGMENT_SENDERS = 4096;
export const SG_QUEUE = 192;
export const DIR_ENTRY = 16;
export const DE_STATE = 0;
export const DE_NEXT = 4;
export const DE_SPAN = 8;
export const DE_SEQ = 12;
export const PART_FREE = 0;
export const PART_FIRST = 1;
export const PART_NEXT = 2;
/** The length word in front of a message, in its first partition. */
export const LENGTH_PREFIX = 4;

export function directoryOffset(partitions: number): number {
  return SG_QUEUE + partitions * 4;
}

export function dataOffset(partitions: number): number {
  return Math.ceil((directoryOffset(partitions) + partitions * DIR_ENTRY) / 64) * 64;
}

export function segmentBytes(partitionSize: number, partitions: number): number {
  return dataOffset(partitions) + partitionSize * partitions;
}

export const MG_MAGIC = 0x4d53574d; // "MWSM"
export const MG_CAPACITY = 12;
export const MG_RX_PID = 16;
export const MG_RX_START_LO = 20;
export const MG_RX_START_HI = 24;
export const MG_BELL = 64;
export const MG_SLEEPING = 128;
export const MG_ENTRIES = 192;
export const MG_ENTRY_BYTES = 384;
export const ME_STATE = 0;
export const ME_GROUP = 4;
export const ME_PARTITION_SIZE = 8;
export const ME_PARTITIONS = 12;
export const ME_SENDER_LEN = 16;
export const ME_SENDER = 20;
export const ME_DESCRIPTOR = 128;
export const ENTRY_READY = 2;

export function managerBytes(capacity: number): number {
  return MG_ENTRIES + capacity * MG_ENTRY_BYTES;
}
