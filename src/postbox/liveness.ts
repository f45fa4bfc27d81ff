/**
 * Noticing peers that died, closed or broke their channel (seed 001, claims 20, 21, 30): a
 * sender checks its receivers, a receiver its senders, every LIVENESS_INTERVAL_MS while the event
 * loop runs (and a sender also whenever it finds no room, so a loop that only calls trySend
 * learns of a death too). A dead peer's channel is failed with PeerGoneError and its memory
 * reclaimed; the names of a dead incarnation's segments are removed.
 */
import { type CorruptionError, PeerGoneError } from '../errors.js';
import type { Transport } from '../transport/types.js';
import type { OutChannel } from './channels.js';
import { startOf } from './common.js';
import { DIR_ASSIGNED, DIR_BYTES, DIR_FREE, DIR_STATE, DS_CLOSED, DS_DIRECTORY, DS_STATE, EP_STATUS, H_PID, H_START_HI, H_START_LO, STATUS_CLOSED } from './layout.js';
import type { PostboxReceiver } from './receiver.js';
import type { PostboxSender } from './sender.js';

/** As a sender: has this channel's receiver closed its endpoint or died? */
export function checkReceiver(s: PostboxSender, ch: OutChannel): void {
  if (ch.gone) return;
  if ((ch.endpoint.load(EP_STATUS) & STATUS_CLOSED) !== 0) markGone(s, ch, 'it closed its endpoint');
  else if (!s.core.transport.isAlive({ pid: ch.pid, start: ch.start }, ch.space.node)) markGone(s, ch, 'its process died');
}

/** The receiver is gone: fail the channel, reclaim its memory and postbox, remove its stale name. */
export function markGone(s: PostboxSender, ch: OutChannel, why: string): void {
  if (ch.gone) return;
  ch.gone = new PeerGoneError(ch.peer, why);
  const dead = why === 'its process died';
  dropChannel(s, ch, dead);
}

/** The channel's memory is corrupt: fail it with `error`. */
export function markBroken(ch: OutChannel, error: CorruptionError): void {
  if (ch.gone) return;
  ch.gone = error;
  // Its blocks may still be read by the receiver: they stay allocated (lost to this segment).
  const sp = ch.space;
  sp.receivers.delete(ch);
  if (sp.lastUsed === ch) sp.lastUsed = undefined;
}

/** Forget a channel: release its blocks and its postbox; remove a dead receiver's endpoint name. */
export function dropChannel(s: PostboxSender, ch: OutChannel, removeStaleName: boolean): void {
  const sp = ch.space;
  ch.list.releaseAll(sp.allocator);
  sp.receivers.delete(ch);
  ch.inList = false;
  if (sp.lastUsed === ch) sp.lastUsed = undefined;
  if (sp.postboxes[ch.index] === ch) {
    sp.postboxes[ch.index] = undefined;
    sp.image.publish(DS_DIRECTORY + ch.index * DIR_BYTES + DIR_STATE, DIR_FREE);
  }
  // The dead receiver's endpoint segment: remove its name if it still is that incarnation's.
  if (removeStaleName) removeIfIncarnation(s.core.transport, ch.endpoint.descriptor.name, sp.node, ch.pid, ch.start);
  ch.endpoint.dispose();
}

/**
 * Remove the segment `name` on `node` if its header still names the process (pid, start) — the
 * dead incarnation that created it — and not a successor that took the name since.
 */
export function removeIfIncarnation(transport: Transport, name: string, node: string, pid: number, start: bigint): void {
  try {
    const now = transport.find(name, node);
    if (!now) return;
    const probe = transport.attach(now);
    try {
      if (probe.load(H_PID) === pid && startOf(probe.load(H_START_LO), probe.load(H_START_HI)) === start) transport.remove(name, node);
    } finally {
      probe.dispose();
    }
  } catch {
    // gone meanwhile
  }
}

/** Every LIVENESS_INTERVAL_MS, as a sender: notice receivers that closed or died. */
export function checkReceivers(s: PostboxSender): void {
  const now = Date.now();
  for (const ch of s.out.values()) {
    if (ch.gone || (!ch.touched && ch.sent === ch.consumed)) continue;
    ch.touched = false;
    ch.lastCheck = now;
    checkReceiver(s, ch);
  }
}

/** Every LIVENESS_INTERVAL_MS, as a receiver: notice senders that closed or died. */
export function checkSenders(r: PostboxReceiver): void {
  const transport = r.core.transport;
  for (const ch of [...r.in]) {
    if (ch.closing) continue;
    const dead = !transport.isAlive({ pid: ch.pid, start: ch.start }, ch.node);
    const closed = Atomics.load(ch.words, (ch.directoryEntry + DIR_STATE) >> 2) !== DIR_ASSIGNED || Atomics.load(ch.words, DS_STATE >> 2) === DS_CLOSED;
    if (!dead && !closed) continue;
    ch.closing = true;
    ch.deadSender = dead;
    if (r.isEmpty(ch)) r.dropIncoming(ch, dead);
  }
}
