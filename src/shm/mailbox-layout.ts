/**
 * Layout of a Mailbox: one message slot for one writer and one reader, inside a region.
 *
 *   offset  size  field          written by
 *   ------  ----  -------------  ----------------------------------------------------------
 *        0     4  sequence       writer: count of messages published (futex word)
 *        4     4  length         writer: bytes of the current message (≤ capacity)
 *        8     4  writerWaiting  writer: 1 while it sleeps in futex on `consumed`
 *       64     4  consumed       reader: count of messages taken (futex word)
 *       68     4  readerWaiting  reader: 1 while it sleeps in futex on `sequence`
 *      128     …  payload        writer: `capacity` bytes
 *
 * Words are grouped by the side that writes them, one 64-byte line per side, so a message costs
 * the reader one line for sequence + length (plus the payload's lines) and the writer one line
 * for consumed + readerWaiting. All offsets are relative to the mailbox's start in the region.
 */
export const MB_SEQUENCE = 0;
export const MB_LENGTH = 4;
export const MB_WRITER_WAITING = 8;
export const MB_CONSUMED = 64;
export const MB_READER_WAITING = 68;
export const MB_PAYLOAD = 128;
