/**
 * Layouts of segment groups (seed 000). Offsets are bytes from the start of a transport target;
 * little-endian; each layout starts with magic, version and an init word stored last.
 *
 * Transport contract (transport/types.ts): atomic words own 8 aligned bytes, and the sender's
 * per-message decisions read only its own memory — the return segment (3), where the receiver
 * pushes what it consumed, whether it sleeps and whether it closed. Version 1 had the sender scan
 * the target directory and load the status and the manager's "sleeping" word across, per message.
 *
 * 1. Target segment `sg.<domain>.seg.<receiver>.<sender>.<group>` — allocated by the receiver
 *    (claims 4, 21, 23), cut into N partitions of one fixed size (claim 1), with a directory entry
 *    per partition (claim 6). The sender writes it through its image (the source segment).
 *
 *   offset  size  field                        written by
 *        0     4  magic 'MWSG'                 receiver, once
 *        4     4  version                      receiver, once
 *        8     8  init (1 = ready)             receiver, once, last
 *       16     4  partitionSize                receiver, once
 *       20     4  partitions (N)               receiver, once
 *       24     4  group id                     receiver, once
 *       64     4  published                    sender: messages queued so far (publish)
 *       68     4  return ready                 sender, group 0: 1 once the return descriptor is written
 *       72    12  sender process               sender, group 0, at each connect before return ready:
 *                                              pid, start time low, high (the receiver asks whether
 *                                              it still runs, like the sender asks of the receiver)
 *       88     4  sender closed                sender, group 0: 1 after close(), 0 at each connect
 *      128     4  consumed                     receiver: messages taken so far
 *      132     4  status                       receiver: 0 fine, 1 the receiver closed, 2 it found
 *                                              this sender's memory corrupt and dropped it
 *      256   256  return descriptor            sender, group 0: its return segment (3)
 *      512  N×4  queue                         sender: queue[i mod N] = first partition of message i
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
 *    sender obtains it there (reading each entry whole, at connect only).
 *
 *        0  magic 'MWSM'  4 version  8 init (8 B)  16 capacity (entries)
 *       20  receiver pid  24 its start time, low  28 high (written before init, read by the
 *           sender at connect: it checks that the receiver still runs — one that died without
 *           close() is PeerGoneError)
 *       64  bell          senders: a new nonce and a wake when the receiver sleeps (futex word)
 *      192  entries × 384:
 *             0 state (FREE 0 / READY 2; 8 B)  8 group id  12 partitionSize  16 partitions
 *            20 senderLen  24..127 the sender as the receiver spells it ("name", or "name@node"
 *               for a sender on another node)   128..383 the target segment's descriptor
 *
 * 3. Return segment `sg.<domain>.ret.<receiver>.<sender>` — on the SENDER's node, created by the
 *    sender at connect; written by the receiver, read in place by the sender.
 *
 *        0  magic 'MWSR'  4 version  8 init (8 B)  16 groups
 *       64  status        receiver: as the target's status word
 *       68  sleeping      receiver: 1 while it waits on the manager's bell
 *       72  attached      receiver: 1 once it writes here (until then the sender rings every time)
 *      128  consumed[g]   receiver: messages of group g taken so far (4 bytes each)
 */
/**
 * 4: group 0's target names the sender's process and whether it closed (SG_TX_*), so a receiver
 * drops a sender that died. 3: the manager names its receiver's process (MG_RX_*) and the layouts
 * above (atomic words on 8 aligned bytes, the return segment, no sleeping word in the manager).
 * Two branches each called their change version 2 — one the receiver's process, one the return
 * segment — so 2 is ambiguous and neither's segments are accepted.
 */
export const SEG_VERSION = 4;
export const INIT_READY = 1;

export const SG_MAGIC = 0x4753574d; // "MWSG"
export const SG_VERSION_OFF = 4;
export const SG_INIT = 8;
export const SG_PARTITION_SIZE = 16;
export const SG_PARTITIONS = 20;
export const SG_GROUP = 24;
export const SG_PUBLISHED = 64;
export const SG_RETURN_READY = 68;
export const SG_RETURN = 256;
export const SG_TX_PID = 72;
export const SG_TX_START_LO = 76;
export const SG_TX_START_HI = 80;
export const SG_TX_CLOSED = 88;
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
export const SG_QUEUE = 512;
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
export const MG_CAPACITY = 16;
export const MG_RX_PID = 20;
export const MG_RX_START_LO = 24;
export const MG_RX_START_HI = 28;
export const MG_BELL = 64;
export const MG_ENTRIES = 192;
export const MG_ENTRY_BYTES = 384;
export const ME_STATE = 0;
export const ME_GROUP = 8;
export const ME_PARTITION_SIZE = 12;
export const ME_PARTITIONS = 16;
export const ME_SENDER_LEN = 20;
export const ME_SENDER = 24;
export const ME_DESCRIPTOR = 128;
/** Room for the sender's spelled name (48 + "@" + a node of up to 55). */
export const ME_SENDER_MAX = ME_DESCRIPTOR - ME_SENDER;
export const ENTRY_READY = 2;

export function managerBytes(capacity: number): number {
  return MG_ENTRIES + capacity * MG_ENTRY_BYTES;
}

export const RT_MAGIC = 0x5253574d; // "MWSR"
export const RT_GROUPS = 16;
export const RT_STATUS = 64;
export const RT_SLEEPING = 68;
export const RT_ATTACHED = 72;
export const RT_CONSUMED = 128;

export function returnBytes(groups: number): number {
  return Math.ceil((RT_CONSUMED + groups * 4) / 64) * 64;
}
