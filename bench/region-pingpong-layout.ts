/**
 * The region bench `region-pingpong` and its peer share:
 *
 *   offset                     size                     field
 *   -------------------------  -----------------------  ------------------------------------------
 *   0                          64                       control line: int32 [0] = peer's pid, stored
 *                                                       (last) once its mailboxes are attached
 *   PING_OFFSET = 64           Mailbox.bytesFor(cap)    ping: parent writes, peer reads
 *   pongOffset(cap)            Mailbox.bytesFor(cap)    pong: peer writes, parent reads
 *
 * A zero-length message on ping tells the peer to leave.
 */
import { Mailbox } from '../src/index.js';

export const CONTROL_READY = 0; // int32 index in the control line
export const PING_OFFSET = 64;

export function pongOffset(capacity: number): number {
  return PING_OFFSET + Mailbox.bytesFor(capacity);
}

export function regionBytes(capacity: number): number {
  return pongOffset(capacity) + Mailbox.bytesFor(capacity);
}
