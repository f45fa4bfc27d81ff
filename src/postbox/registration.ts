/**
 * Attaching new senders (seed 001, claims 1, 14): a sender registers each postbox it assigns to
 * this receiver in an entry of the receiver's endpoint segment (the sender's name, its process
 * and the descriptor of its data segment). The receiver checks the entry and the data segment it
 * names — header, geometry, and the directory entry that names this receiver — before it polls
 * that postbox. A bad entry is a CorruptionError for that entry only, and is ignored until its
 * sender frees it. Nothing here waits: poll() calls it.
 */
import { CorruptionError, TimeoutError, UsageError } from '../errors.js';
import { decodeDescriptor, DESCRIPTOR_BYTES } from '../transport/descriptor.js';
import type { Image, OpenTargetOptions, SegmentDescriptor, Target, Transport } from '../transport/types.js';
import { InChannel } from './channels.js';
import { headerOf, MAX_POOL_BYTES, MAX_POSTBOX_BYTES, MAX_POSTBOXES, MAX_SLOT_BYTES, MAX_SLOTS, NAME, nodeTag, readAscii, startOf } from './common.js';
import {
  ackBytes, AK_BLOCKS, AK_MAGIC, dataBytes, DIR_ASSIGNED, DIR_BYTES, DIR_NAME, DIR_NAME_LEN, DIR_STATE, DS_ACK_DESCRIPTOR,
  DS_BLOCK_SIZE, DS_BLOCKS, DS_DIRECTORY, DS_MAGIC, DS_POSTBOXES, DS_SLOT_BYTES, DS_SLOTS, EN_DESCRIPTOR, EN_NAME, EN_NAME_LEN,
  EN_PID, EN_POSTBOX, EN_START_HI, EN_START_LO, EN_STATE, ENTRY_BYTES, ENTRY_FREE, ENTRY_READY, EP_BELL, EP_ENTRIES, H_INIT, H_MAGIC,
  H_BYTES, H_VERSION, INIT_READY, LAYOUT_VERSION, MAX_ENDPOINT_NAME, type DataGeometry,
} from './layout.js';
import type { PostboxReceiver } from './receiver.js';

/**
 * How long an entry may name a data or ack segment whose header is not initialised yet before it
 * is rejected. A sender creates both, complete, before it registers, so such an entry is almost
 * certainly hostile; it is still given the time an opener used to wait for a creator — but across
 * polls, never inside one.
 */
export const NOT_READY_GRACE_MS = 2000;
/** How often poll() looks again at entries whose segments were not ready. */
const NOT_READY_RETRY_MS = 20;

/** Look at every registration entry for new senders. */
export function scanRegistrations(r: PostboxReceiver): void {
  const w = r.core.words;
  for (let e = 0; e < r.maxIncoming; e++) {
    const state = Atomics.load(w, (EP_ENTRIES + e * ENTRY_BYTES + EN_STATE) >> 2);
    if (state !== ENTRY_READY) {
      if (state === ENTRY_FREE) r.ignored.delete(e);
      r.notReady.delete(e);
      continue;
    }
    if (r.inByEntry[e] || r.ignored.has(e) || r.attaching.has(e)) continue;
    tryAttach(r, e);
  }
}

/**
 * Look again at the entries whose segments were not initialised (at most every
 * NOT_READY_RETRY_MS): poll() calls this while any are waiting.
 */
export function retryNotReady(r: PostboxReceiver): void {
  const now = Date.now();
  if (now < r.notReadyRetryAt) return;
  r.notReadyRetryAt = now + NOT_READY_RETRY_MS;
  for (const e of [...r.notReady.keys()]) {
    if (Atomics.load(r.core.words, (EP_ENTRIES + e * ENTRY_BYTES + EN_STATE) >> 2) !== ENTRY_READY || r.inByEntry[e] || r.ignored.has(e) || r.attaching.has(e)) {
      r.notReady.delete(e);
      continue;
    }
    tryAttach(r, e);
  }
}

/** Attach entry `e`'s sender; a bad entry is ignored with one CorruptionError, one not ready yet kept for later. */
function tryAttach(r: PostboxReceiver, e: number): void {
  const region = r.core.target.descriptor.name;
  try {
    attachIncoming(r, e);
    r.notReady.delete(e);
  } catch (error) {
    if (error instanceof NotReady) {
      const first = r.notReady.get(e);
      const now = Date.now();
      if (first === undefined) {
        r.notReady.set(e, now);
        return;
      }
      if (now - first <= NOT_READY_GRACE_MS) return;
      error = new CorruptionError(region, `registration entry ${e}: ${error.segment} was not initialised within ${NOT_READY_GRACE_MS} ms of being seen`);
    }
    r.notReady.delete(e);
    r.ignored.add(e);
    r.errors.push(error instanceof CorruptionError ? error : new CorruptionError(region, `registration entry ${e}: ${(error as Error).message}`));
  }
}

/** A segment an entry names exists with the right size, but its creator has not initialised its header (yet). */
class NotReady extends Error {
  constructor(readonly segment: string) {
    super(`${segment} is not initialised yet`);
  }
}

/** Open a segment without waiting for its creator: TimeoutError (not initialised) becomes NotReady. */
function openNow<T>(name: string, open: (options: OpenTargetOptions) => T): T {
  try {
    return open({ timeoutMs: 0 });
  } catch (error) {
    if (error instanceof TimeoutError) throw new NotReady(name);
    throw error;
  }
}

function attachIncoming(r: PostboxReceiver, e: number): void {
  const base = EP_ENTRIES + e * ENTRY_BYTES;
  const region = r.core.target.descriptor.name;
  const entry = r.core.target.bytes.slice(base, base + ENTRY_BYTES); // a copy: checked, then used
  const v = new DataView(entry.buffer);
  const index = v.getInt32(EN_POSTBOX, true);
  const pid = v.getInt32(EN_PID, true);
  const start = startOf(v.getUint32(EN_START_LO, true), v.getUint32(EN_START_HI, true));
  const nameLength = v.getInt32(EN_NAME_LEN, true);
  if (nameLength < 1 || nameLength > MAX_ENDPOINT_NAME) throw new CorruptionError(region, `entry ${e}: sender name length ${nameLength}`);
  const sender = readAscii(entry, EN_NAME, nameLength);
  if (!NAME.test(sender)) throw new CorruptionError(region, `entry ${e}: sender name is not a valid endpoint name`);
  const descriptor = decodeDescriptor(entry.subarray(EN_DESCRIPTOR), region);
  if (descriptor.node !== r.core.transport.node) throw new CorruptionError(region, `entry ${e}: data segment on node ${descriptor.node}, not here`);
  if (descriptor.name !== `pb.${r.core.domain}.data.${sender}`) throw new CorruptionError(region, `entry ${e}: data segment ${descriptor.name} is not ${sender}'s`);
  let data: Target | undefined;
  let ack: Image | undefined;
  try {
    // A sender creates its data segment, complete, before it registers: look before opening, so
    // that an entry naming an object that is missing, empty or of another size is dealt with at
    // once; and open without waiting, so that one of the right size whose header is not
    // initialised costs poll() no wait either (NotReady: looked at again on later polls).
    if (!isThere(r.core.transport, descriptor, region, e)) {
      // The sender closed (or died and was cleaned up) before we attached: nothing to read.
      Atomics.store(r.core.words, (base + EN_STATE) >> 2, ENTRY_FREE);
      return;
    }
    try {
      data = openNow(descriptor.name, (options) => r.core.transport.openLocal(descriptor, options));
    } catch (error) {
      if (!(error instanceof UsageError)) throw error;
      Atomics.store(r.core.words, (base + EN_STATE) >> 2, ENTRY_FREE);
      return;
    }
    const g = checkData(r, data, index);
    const ackDescriptor = decodeDescriptor(data.bytes.subarray(DS_ACK_DESCRIPTOR, DS_ACK_DESCRIPTOR + DESCRIPTOR_BYTES), descriptor.name);
    if (ackDescriptor.name !== `pb.${r.core.domain}.ack.${sender}.${nodeTag(r.core.transport.node)}`) {
      throw new CorruptionError(descriptor.name, `ack segment ${ackDescriptor.name} is not ${sender}'s`);
    }
    if (ackDescriptor.node !== r.core.transport.node) {
      // The ack segment is on the sender's node: attach it with remote calls, then poll the postbox.
      const made = data;
      data = undefined; // owned by the attachment now
      attachRemoteAck(r, e, made, ackDescriptor, (remote, header) => finish(r, e, made, remote, header, index, g, sender, pid, start));
      return;
    }
    if (!isThere(r.core.transport, ackDescriptor, descriptor.name, e)) throw new CorruptionError(descriptor.name, `its ack segment ${ackDescriptor.name} does not exist`);
    ack = openNow(ackDescriptor.name, (options) => r.core.transport.attach(ackDescriptor, options));
    finish(r, e, data, ack, headerOf(ack), index, g, sender, pid, start);
  } catch (error) {
    ack?.dispose();
    data?.dispose();
    if (error instanceof CorruptionError || error instanceof NotReady) throw error;
    throw new CorruptionError(region, `entry ${e}: ${(error as Error).message}`);
  }
}

/** attachIncoming's end for an ack segment on another node (asynchronous; the entry is skipped meanwhile). */
function attachRemoteAck(r: PostboxReceiver, e: number, data: Target, ackDescriptor: SegmentDescriptor, done: (ack: Image, header: DataView) => void): void {
  r.attaching.add(e);
  void (async () => {
    let ack: Image | undefined;
    try {
      const found = await r.core.transport.findAsync(ackDescriptor.name, ackDescriptor.node);
      if (!found || found.size !== ackDescriptor.size) throw new CorruptionError(data.descriptor.name, `its ack segment ${ackDescriptor.name} does not exist (with ${ackDescriptor.size} bytes) on ${ackDescriptor.node}`);
      ack = await r.core.transport.attachAsync(ackDescriptor);
      const bytes = new Uint8Array(H_BYTES);
      await ack.readAsync(0, bytes);
      r.core.live();
      done(ack, new DataView(bytes.buffer));
      // Wake our own receive(), which may sleep on the bell meanwhile: the postbox is polled now.
      Atomics.add(r.core.words, EP_BELL >> 2, 1);
      r.core.target.wake(EP_BELL);
    } catch (error) {
      ack?.dispose();
      data.dispose();
      // No answer in time (the control call waited behind data on the shared queue pair) is not
      // a corrupt entry: leave the entry to be attached again on a later poll.
      if (error instanceof TimeoutError) {
        if (!r.core.closed) r.notReady.set(e, Date.now()); // retryNotReady() tries it again
        return;
      }
      if (!r.core.closed) {
        r.ignored.add(e);
        r.errors.push(error instanceof CorruptionError ? error : new CorruptionError(data.descriptor.name, `entry ${e}: ${(error as Error).message}`));
      }
    } finally {
      r.attaching.delete(e);
    }
  })();
}

/** Check the ack segment's header and start polling the postbox. */
function finish(r: PostboxReceiver, e: number, data: Target, ack: Image, header: DataView, index: number, g: DataGeometry, sender: string, pid: number, start: bigint): void {
  const ackDescriptor = ack.descriptor;
  if (header.getInt32(H_MAGIC, true) !== AK_MAGIC || header.getInt32(H_VERSION, true) !== LAYOUT_VERSION || header.getInt32(H_INIT, true) !== INIT_READY) {
    throw new CorruptionError(ackDescriptor.name, 'not an initialised ack segment');
  }
  const blocks = header.getInt32(AK_BLOCKS, true);
  if (blocks <= index || ackBytes(blocks) > ack.size) throw new CorruptionError(ackDescriptor.name, `${blocks} ack blocks; postbox ${index} needs more`);
  const from = ackDescriptor.node === r.core.transport.node ? sender : `${sender}@${ackDescriptor.node}`;
  const ch = new InChannel({ from, entry: e, data, ack, index, g, pid, start, node: ackDescriptor.node });
  // A sender has one channel to us at a time: a new registration by the same process means it
  // gave the old one up (across nodes: the connection to our node's agent was lost, and its
  // send() made a new memory space through the next agent). The old channel is drained — what
  // was placed in it is still delivered, before the new channel's messages (poll() serves
  // the new one only once the old one is dropped: `after`) — and then dropped, instead of staying open for ever.
  for (const old of r.in) {
    if (old.from === from && old.pid === pid && old.start === start && !old.closing) {
      old.closing = true;
      ch.after = old;
    }
  }
  r.inByEntry[e] = ch;
  r.in.push(ch);
}

/** Check a sender's data segment header and our directory entry in it. */
function checkData(r: PostboxReceiver, data: Target, index: number): DataGeometry {
  const w = data.int32;
  const name = data.descriptor.name;
  if (Atomics.load(w, H_INIT >> 2) !== INIT_READY || w[H_MAGIC >> 2] !== DS_MAGIC || w[H_VERSION >> 2] !== LAYOUT_VERSION) {
    throw new CorruptionError(name, 'not an initialised postbox data segment');
  }
  const g: DataGeometry = {
    postboxes: w[DS_POSTBOXES >> 2],
    slots: w[DS_SLOTS >> 2],
    slotBytes: w[DS_SLOT_BYTES >> 2],
    blockSize: w[DS_BLOCK_SIZE >> 2],
    blocks: w[DS_BLOCKS >> 2],
  };
  const sane =
    g.postboxes >= 1 && g.postboxes <= MAX_POSTBOXES && g.slots >= 2 && g.slots <= MAX_SLOTS && g.slotBytes >= 64 && g.slotBytes % 64 === 0 &&
    g.slotBytes <= MAX_SLOT_BYTES && g.postboxes * g.slots * g.slotBytes <= MAX_POSTBOX_BYTES && g.blockSize >= 64 &&
    g.blockSize % 64 === 0 && g.blocks >= 1 && g.blocks * g.blockSize <= MAX_POOL_BYTES && dataBytes(g) === data.size;
  if (!sane) throw new CorruptionError(name, `geometry ${JSON.stringify(g)} does not describe a ${data.size}-byte segment`);
  if (index < 0 || index >= g.postboxes) throw new CorruptionError(name, `postbox ${index} of ${g.postboxes}`);
  const dir = DS_DIRECTORY + index * DIR_BYTES;
  const nameLength = w[(dir + DIR_NAME_LEN) >> 2];
  if (Atomics.load(w, (dir + DIR_STATE) >> 2) !== DIR_ASSIGNED || nameLength !== r.core.name.length || readAscii(data.bytes, dir + DIR_NAME, nameLength) !== r.core.name) {
    throw new CorruptionError(name, `directory entry ${index} is not assigned to ${r.core.name}`);
  }
  return g;
}

/**
 * Whether the target `descriptor` names exists now: false if it does not (or is empty);
 * CorruptionError if it has another size than the descriptor says. Opens nothing.
 */
function isThere(transport: Transport, descriptor: SegmentDescriptor, region: string, e: number): boolean {
  const found = transport.find(descriptor.name, descriptor.node);
  if (!found) return false;
  if (found.size !== descriptor.size) {
    throw new CorruptionError(region, `entry ${e}: names ${descriptor.name} of ${descriptor.size} bytes; the segment of that name has ${found.size}`);
  }
  return true;
}
