/**
 * The peer of bench `region-pingpong`: opens the bench's region, then echoes every message that
 * arrives on the ping mailbox back on the pong mailbox, copying it out into its own buffer and
 * back in, so the bytes really cross each way. It busy-polls (tryTake/tryPut, no FFI call per
 * message) while messages flow, and parks in the futex when none has come for a while, so that
 * it does not burn a core while the parent measures the anchors: once asleep it stays asleep
 * until a message comes.
 *
 * It leaves on a zero-length message, and on its own when the parent is gone.
 *
 * argv: <region name> <mailbox capacity> <parent pid>
 */
import { Mailbox, SharedRegion } from '../src/index.js';
import { processRunning } from './lib/peer.js';
import { CONTROL_READY, PING_OFFSET, pongOffset } from './region-pingpong-layout.js';

/** Empty polls before parking in the futex (roughly 50–100 ms of spinning). */
const PARK_AFTER_POLLS = 1 << 22;
/** While stuck on a full pong slot, how often to check that the parent still lives. */
const CHECK_EVERY_POLLS = 1 << 20;

const [name, capacityText, parentText] = process.argv.slice(2, 5);
const capacity = Number(capacityText);
const parentPid = Number(parentText);
if (!name || !(capacity > 0) || !(parentPid > 0)) {
  process.stderr.write('usage: region-pingpong-peer.js <region name> <capacity> <parent pid>\n');
  process.exit(2);
}

const region = SharedRegion.open(name, { timeoutMs: 5000 });

function leaveIfOrphaned(): void {
  if (processRunning(parentPid)) return;
  process.stderr.write(`region-pingpong peer: parent ${parentPid} is gone; leaving\n`);
  region.dispose();
  process.exit(3);
}

function serve(ping: Mailbox, pong: Mailbox, buffer: Uint8Array): void {
  let reply = buffer.subarray(0, 0); // re-made only when the size changes
  for (;;) {
    let length = ping.tryTake(buffer);
    if (length < 0) length = awaitMessage(ping, buffer);
    if (length === 0) return;
    if (length !== reply.length) reply = buffer.subarray(0, length);
    let polls = 0;
    while (!pong.tryPut(reply)) {
      if (++polls === CHECK_EVERY_POLLS) {
        polls = 0;
        leaveIfOrphaned();
      }
    }
  }
}

function awaitMessage(ping: Mailbox, buffer: Uint8Array): number {
  for (let polls = 0; polls < PARK_AFTER_POLLS; polls++) {
    const length = ping.tryTake(buffer);
    if (length >= 0) return length;
  }
  // Idle: sleep in the futex until a message comes (the parent's tryPut sees readerWaiting and
  // wakes us: one FFI call, only after an idle spell, which the parent's warm-up absorbs), and
  // stay asleep until then, checking the parent every 200 ms. It used to spin 2^22 polls again
  // after each timeout: 20–70 % of the second CPU all through the anchors' runs, where the
  // ucx_perftest server and the socket child are pinned (seen per thread in /proc, 2026-12-07).
  for (;;) {
    leaveIfOrphaned();
    const taken = ping.take(buffer, { spin: 0, timeoutMs: 200 });
    if (taken >= 0) return taken;
  }
}

try {
  const ping = new Mailbox(region, PING_OFFSET, capacity);
  const pong = new Mailbox(region, pongOffset(capacity), capacity);
  const buffer = new Uint8Array(capacity);
  // Ordering point: the mailboxes are attached before the parent may see us ready.
  Atomics.store(region.view('int32', 0, 16), CONTROL_READY, process.pid);
  serve(ping, pong, buffer);
} finally {
  region.dispose();
}
