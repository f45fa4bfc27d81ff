/**
 * The one layout of a shmem pool (seed 003): everything a pool holds — its parameters, the
 * member table, the global locks, the allocator's bins and the heap — lives in ONE SharedRegion
 * whose header carries contentTag POOL_CONTENT_TAG / contentVersion POOL_LAYOUT_VERSION. All
 * offsets are bytes from the region's data start; the heap stores granule indices (16-byte
 * units) relative to heapOffset, never addresses. Little-endian (x86_64 only).
 *
 *   data offset            size               what
 *   ---------------------  -----------------  ------------------------------------------------
 *   0                      POOL_HEADER_SIZE   pool header (below)
 *   MEMBER_TABLE_OFFSET    maxMembers × 128   member table: one slot per joined process
 *   lockTableOffset        maxLocks × 64      global locks; lock 0 is the allocator's own
 *   heapOffset (64-align)  heapGranules × 16  the heap: blocks with 32-byte headers
 *
 * Pool header (each line 64 bytes; the hot waitUntil word has a line of its own):
 *
 *   line 0   0 initState       0 while the creator builds the pool, 1 when ready (stored last)
 *            4 layoutVersion   POOL_LAYOUT_VERSION (again: the pool checks its own)
 *            8 maxMembers     12 maxLocks     16 lockTableOffset
 *           20 heapOffset     24 heapGranules 28 creatorPid
 *   line 1  64 usedBlocks     68 usedGranules 72 freeBlocks 76 freeGranules
 *           80 binMap          bit b set ⇔ bin b holds a free block         (all under lock 0)
 *           84 rebuilds        how often the heap was rebuilt after an allocator holder died
 *           88 journal         0 = empty; else how many entries below are committed (1–3),
 *                              stored last: the block headers the current update will write
 *           92 journal entries 3 × { index | code << 28, size } (code: 1 used, 2 free, 3 merged)
 *          116 recovering      1 while a rebuild runs (stored first, cleared last)
 *                              (line 1 is the allocator's: everything on it is under lock 0)
 *   line 2  128..255 bin heads: 32 granule indices, 0 = empty               (under lock 0)
 *   line 4  256 waitUntilWaiters  threads asleep in waitUntil (so signalSet/Add know to wake)
 *
 * Member slot (128 bytes; line A is written by the member itself, line B by everyone):
 *
 *   A   0 state    FREE / CLAIMING|pid / LIVE / LEAVING (LEAVING exists only under lock 0: whoever
 *                  holds lock 0 and sees a LEAVING slot knows its clean-up was abandoned; a
 *                  CLAIMING word names its claimant, so a claim whose process died is undone)
 *       4 pid      8 startLo  12 startHi  (pid start time, clock ticks: survives pid reuse)
 *      16 gen      incremented at each claim; a MemberId carries it, so a stale id is refused
 *   B  64 signals         counter bumped by signal()/signalAll() (futex word; counters, not flags)
 *      68 signalWaiters   waits asleep on `signals` — a signaller makes a futex call only if > 0
 *      72 inbox           granule index of the newest message, 0 = none (futex word; an
 *                         MPSC stack pushed by CAS, taken whole by exchange)
 *      76 inboxWaiters
 *
 * Lock entry (64 bytes, one line each):
 *
 *   0 word      0 = free; else holder tag | CONTENDED (futex word; see LOCK_* below)
 *   4 reserved  0 = free id, else the reserving member's slot + 1 (lock 0: always reserved)
 *   8 recoveries  how often an acquirer found the holder dead and took the lock over
 *
 * Heap block header (32 bytes = 2 granules; payload follows, 16-byte aligned):
 *
 *   0 size      granules, header included (≥ MIN_BLOCK_GRANULES)
 *   4 state     BLOCK_USED / BLOCK_FREE (0 once merged into a neighbour)
 *   8 prevSize  granules of the physically previous block, 0 for the first (a footer in effect)
 *  12 check     blockCheck(index, size, state): a header forged or torn is caught
 *  16 ownersLo / nextFree   used: owner slots 0–31 bitmask; free: next block in its bin
 *  20 ownersHi / prevFree   used: owner slots 32–63;      free: previous block in its bin
 *  24 slack     used: capacity − requested bytes
 *  28 kind      used: BLOCK_KIND_PLAIN or BLOCK_KIND_MESSAGE
 *
 * A message (send/sendAll) is a used block whose payload starts with a 16-byte message header:
 *   0 next (granule index, 0 = end)  4 length (bytes)  8 from (MemberId)  12 reserved
 */

export const POOL_CONTENT_TAG = 0x4d575348; // "MWSH"
/** 2: the allocator journal and the recovering word (line 1), LEAVING only under lock 0. */
export const POOL_LAYOUT_VERSION = 2;

export const GRANULE = 16;
export const LINE = 64;

// Pool header (byte offsets).
export const P_INIT_STATE = 0;
export const P_VERSION = 4;
export const P_MAX_MEMBERS = 8;
export const P_MAX_LOCKS = 12;
export const P_LOCK_TABLE = 16;
export const P_HEAP_OFFSET = 20;
export const P_HEAP_GRANULES = 24;
export const P_CREATOR_PID = 28;
export const P_USED_BLOCKS = 64;
export const P_USED_GRANULES = 68;
export const P_FREE_BLOCKS = 72;
export const P_FREE_GRANULES = 76;
export const P_BIN_MAP = 80;
export const P_REBUILDS = 84;
export const P_JOURNAL = 88;
export const P_JOURNAL_ENTRIES = 92;
export const JOURNAL_MAX_ENTRIES = 3;
export const P_RECOVERING = 116;
/** Journal entry codes (bits 28–29 of an entry's first word; a heap index stays below 2^27). */
export const JOURNAL_USED = 1;
export const JOURNAL_FREE = 2;
export const JOURNAL_MERGED = 3;
export const JOURNAL_INDEX_MASK = 0x0fffffff;
export const P_BINS = 128;
export const BIN_COUNT = 32;
export const P_WAITUNTIL_WAITERS = 256;
export const POOL_HEADER_SIZE = 320;
export const POOL_READY = 1;

// Member table.
export const MEMBER_TABLE_OFFSET = POOL_HEADER_SIZE;
export const MEMBER_SLOT_SIZE = 128;
export const M_STATE = 0;
export const M_PID = 4;
export const M_START_LO = 8;
export const M_START_HI = 12;
export const M_GEN = 16;
export const M_SIGNALS = 64;
export const M_SIGNAL_WAITERS = 68;
export const M_INBOX = 72;
export const M_INBOX_WAITERS = 76;
export const MEMBER_FREE = 0;
/**
 * A slot being claimed holds MEMBER_CLAIMING | the claimant's pid (pids are below 2^22 on Linux)
 * in its state word, set by the compare-exchange that claims it: so a reaper can tell a claimant
 * killed before its slot went LIVE (its pid no longer runs) from one still filling it in.
 */
export const MEMBER_CLAIMING = 1 << 30;
export const CLAIM_PID_MASK = MEMBER_CLAIMING - 1;
export const MEMBER_LIVE = 2;
export const MEMBER_LEAVING = 3;
/** The most members of a pool (option maxMembers): slots are numbered 0..63, an owner set is a 64-bit mask, a MemberId keeps 6 bits for the slot. */
export const MAX_MEMBERS = 64;
export const GEN_MASK = 0x7fffff; // 23 bits of generation in MemberIds and lock words

// Locks.
export const LOCK_ENTRY_SIZE = 64;
export const L_WORD = 0;
export const L_RESERVED = 4;
export const L_RECOVERIES = 8;
/** Lock word: bits 0–6 holder slot + 1, bits 7–29 holder generation, bit 30 contended. */
export const LOCK_CONTENDED = 1 << 30;
export const LOCK_SLOT_MASK = 0x7f;
export const ALLOCATOR_LOCK = 0;
/** The most global locks a pool can have (option maxLocks; lock 0 is the allocator's own). */
export const MAX_LOCKS = 65536;

// Heap blocks.
export const BLOCK_HEADER_SIZE = 32;
export const HEADER_GRANULES = BLOCK_HEADER_SIZE / GRANULE;
export const MIN_BLOCK_GRANULES = HEADER_GRANULES + 1;
export const B_SIZE = 0;
export const B_STATE = 4;
export const B_PREV_SIZE = 8;
export const B_CHECK = 12;
export const B_OWNERS_LO = 16;
export const B_OWNERS_HI = 20;
export const B_NEXT_FREE = 16;
export const B_PREV_FREE = 20;
export const B_SLACK = 24;
export const B_KIND = 28;
export const BLOCK_USED = 0x4d575553; // "MWUS"
export const BLOCK_FREE = 0x4d574652; // "MWFR"
/** A header merged into the free block before it: still checkable, so freeing it again says "double free". */
export const BLOCK_MERGED = 0x4d574d47; // "MWMG"
export const BLOCK_KIND_PLAIN = 0;
export const BLOCK_KIND_MESSAGE = 1;
/** The first block sits at granule 1 of the heap, so granule index 0 can mean "none". */
export const FIRST_BLOCK = 1;
/** The largest pool heap (option heapBytes): granule indices stay well inside int32, and one Int32Array covers the pool. */
export const MAX_HEAP_BYTES = 2 ** 31;

// Messages (inside a block's payload).
export const MSG_HEADER_SIZE = 16;
export const MSG_NEXT = 0;
export const MSG_LENGTH = 4;
export const MSG_FROM = 8;

/** The header check word of block `index`: any torn or forged header fails it. */
export function blockCheck(index: number, size: number, state: number): number {
  let h = Math.imul(index ^ 0x5bd1e995, 0x85ebca6b);
  h ^= Math.imul(size ^ 0x27d4eb2d, 0xc2b2ae35);
  h ^= state;
  return (h ^ (h >>> 15)) | 0;
}

/** The lock-word tag of a member: slot + 1 in bits 0–6, generation in bits 7–29. */
export function lockTagOf(slot: number, gen: number): number {
  return (slot + 1) | ((gen & GEN_MASK) << 7);
}

/** Bin of a free block of `granules`: floor(log2). */
export function binOf(granules: number): number {
  return 31 - Math.clz32(granules);
}

export const align = (n: number, to: number): number => Math.ceil(n / to) * to;

/** Where everything sits for given parameters: computed by the creator and re-checked by openers. */
export function poolGeometry(maxMembers: number, maxLocks: number, heapBytes: number) {
  const lockTableOffset = MEMBER_TABLE_OFFSET + maxMembers * MEMBER_SLOT_SIZE;
  const heapOffset = align(lockTableOffset + maxLocks * LOCK_ENTRY_SIZE, LINE);
  const heapGranules = Math.floor(heapBytes / GRANULE);
  return { lockTableOffset, heapOffset, heapGranules, regionBytes: heapOffset + heapGranules * GRANULE };
}
