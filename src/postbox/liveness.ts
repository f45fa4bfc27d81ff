/**
 * Noticing peers that died, closed or broke their channel (seed 001, claims 20, 21, 30): a
 * sender checks its receivers, a receiver its senders, every LIVENESS_INTERVAL_MS while the event
 * loop runs (and a sender also whenever it finds no room, so a loop that only calls trySend
 * learns of a death too). A dead peer's channel is failed with PeerGoneError and its memory
 * reclaimed; the names of a dead incarnation's segments are removed.
 */
import { CorruptionError, PeerGoneError, TimeoutError } from '../errors.js';
import type { Transport } from '../transport/types.js';
import { ChannelCorrupt, type InChannel, type OutChannel } from './channels.js';
import { creatorOf, headerOf } from './common.js';
import {
  DIR_ASSIGNED, DIR_BYTES, DIR_CLOSED, DIR_FREE, DIR_STATE, DS_CLOSED, DS_DIRECTORY, DS_OPEN, DS_STATE, EP_STATUS, H_BYTES, H_PID, H_START_HI,
  H_START_LO, STATUS_CLOSED,
} from './layout.js';
import type { PostboxReceiver } from './receiver.js';
import type { PostboxSender } from './sender.js';

/** As a sender: has this channel's receiver closed its endpoint or died? */
export function checkReceiver(s: PostboxSender, ch: OutChannel): void {
  if (ch.gone) return;
  if (ch.space.node !== s.core.transport.node) {
    checkRemoteReceiver(s, ch);
    return;
  }
  if ((ch.endpoint.load(EP_STATUS) & STATUS_CLOSED) !== 0) markGone(s, ch, 'it closed its endpoint');
  else if (!s.core.transport.isAlive({ pid: ch.pid, start: ch.start }, ch.space.node)) markGone(s, ch, 'its process died');
}

/** The same for a receiver on another node: remote calls, so asynchronously (one check at a time per channel). */
function checkRemoteReceiver(s: PostboxSender, ch: OutChannel): void {
  if (ch.checking) return;
  ch.checking = true;
  void (async () => {
    try {
      if (((await ch.endpoint.loadAsync(EP_STATUS)) & STATUS_CLOSED) !== 0) markGone(s, ch, 'it closed its endpoint');
      else if (!(await s.core.transport.isAliveAsync({ pid: ch.pid, start: ch.start }, ch.space.node))) markGone(s, ch, 'its process died');
      if (!ch.gone) await checkOwnWordsAsync(ch);
    } catch (error) {
      // A late answer is no answer: the control messages and atomics share the connection's queue
      // pair with the data in flight (measured in the TCG guest under an all-to-all with 64 MiB
      // messages: IS_ALIVE unanswered for over 5 s while the agent was fine). Ask again next round;
      // the connection's end (PeerGoneError) or an access error is what says the node is gone.
      if (error instanceof TimeoutError) return;
      // The receiver's node or memory is unreachable: the channel is gone.
      if (!ch.gone && !s.core.closed) markGone(s, ch, `its node did not answer (${(error as Error).message})`);
    } finally {
      ch.checking = false;
    }
  })();
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
    try {
      sp.image.publish(DS_DIRECTORY + ch.index * DIR_BYTES + DIR_STATE, DIR_FREE);
    } catch {
      // The space's connection is lost (its node's agent died): nothing to tell over there; the
      // rest of the clean-up must still run (reconnectRemote gives the space up).
    }
  }
  // The dead receiver's endpoint segment: remove its name if it still is that incarnation's.
  if (removeStaleName) {
    if (sp.node === s.core.transport.node) removeIfIncarnation(s.core.transport, ch.endpoint.descriptor.name, sp.node, ch.pid, ch.start);
    else void removeIfIncarnationAsync(s.core.transport, ch.endpoint.descriptor.name, sp.node, ch.pid, ch.start);
  }
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
    const probe = transport.attach(now, { timeoutMs: 0 }); // a timer must not wait: not initialised → leave it
    try {
      const creator = creatorOf(headerOf(probe));
      if (creator.pid === pid && creator.start === start) transport.remove(name, node);
    } finally {
      probe.dispose();
    }
  } catch {
    // gone meanwhile
  }
}

/** removeIfIncarnation for a segment on another node (remote calls). */
export async function removeIfIncarnationAsync(transport: Transport, name: string, node: string, pid: number, start: bigint): Promise<void> {
  try {
    const now = await transport.findAsync(name, node);
    if (!now) return;
    const probe = await transport.attachAsync(now);
    try {
      const header = new Uint8Array(H_BYTES);
      await probe.readAsync(0, header);
      const creator = creatorOf(new DataView(header.buffer));
      if (creator.pid === pid && creator.start === start) await transport.removeAsync(name, node);
    } finally {
      probe.dispose();
    }
  } catch {
    // gone meanwhile, or its node is
  }
}

/**
 * Every LIVENESS_INTERVAL_MS, as a sender: notice receivers that closed or died — every channel,
 * idle ones too, so the first message after a quiet spell does not go to a dead receiver — and
 * words of our own memory space that someone else changed (the directory entry of a postbox, the
 * segment's state): that channel is corrupt, and its sends fail with a CorruptionError instead of
 * waiting for acknowledgments that will never come. The same for a receiver that reported the
 * channel corrupt (or closed) in our ack block.
 */
export function checkReceivers(s: PostboxSender): void {
  const now = Date.now();
  for (const ch of s.out.values()) {
    if (ch.gone) continue;
    ch.lastCheck = now;
    if (ch.space.image.failed !== undefined) {
      // Its memory space's connection failed (the node's agent died): a remote check might never
      // be answered; the channel is gone (send() then tries a new connection: reconnectRemote).
      markGone(s, ch, `the connection to node ${ch.space.node} was lost (${ch.space.image.failed.message})`);
      continue;
    }
    if (ch.space.node === s.core.transport.node) checkOwnWords(ch); // else within checkReceiver
    // The receiver's word on the channel (RX_CLOSED, RX_CORRUPT) in our ack block, even while
    // there is room and so nothing else reads it.
    if (!ch.gone) s.refresh(ch);
    checkReceiver(s, ch);
  }
}

/**
 * Our directory entry and segment state, at the target, say what we wrote (ASSIGNED, OPEN), or
 * the channel is broken. (Loads from the target: a remote read under RDMA, here only every
 * LIVENESS_INTERVAL_MS, never per message.)
 */
function checkOwnWords(ch: OutChannel): void {
  const sp = ch.space;
  const name = sp.data.descriptor.name;
  const state = sp.image.load(DS_STATE);
  if (state !== DS_OPEN) {
    markBroken(ch, new CorruptionError(name, `segment state is ${state}, not OPEN: changed by another process`));
    return;
  }
  const entry = sp.image.load(DS_DIRECTORY + ch.index * DIR_BYTES + DIR_STATE);
  if (entry !== DIR_ASSIGNED) markBroken(ch, new CorruptionError(name, `directory entry ${ch.index} (receiver ${ch.peer}) holds state ${entry}, not ASSIGNED: changed by another process`));
}

async function checkOwnWordsAsync(ch: OutChannel): Promise<void> {
  const sp = ch.space;
  const name = sp.data.descriptor.name;
  const state = await sp.image.loadAsync(DS_STATE);
  if (state !== DS_OPEN) {
    markBroken(ch, new CorruptionError(name, `segment state is ${state}, not OPEN: changed by another process`));
    return;
  }
  const entry = await sp.image.loadAsync(DS_DIRECTORY + ch.index * DIR_BYTES + DIR_STATE);
  if (entry !== DIR_ASSIGNED && !ch.gone) markBroken(ch, new CorruptionError(name, `directory entry ${ch.index} (receiver ${ch.peer}) holds state ${entry}, not ASSIGNED: changed by another process`));
}

/**
 * Every LIVENESS_INTERVAL_MS, as a receiver: notice senders that died or closed. A sender closes
 * a channel by marking its directory entry CLOSED (or FREE when it gave the postbox up) and its
 * segment CLOSED, always after marking its own endpoint CLOSED; a mark that the sender's endpoint
 * does not confirm, or any other value, was written by someone else: the channel is corrupt —
 * a CorruptionError here, RX_CORRUPT in the sender's ack block so the sender learns it too.
 */
export function checkSenders(r: PostboxReceiver): void {
  const transport = r.core.transport;
  for (const ch of [...r.in]) {
    if (ch.closing) continue;
    if (ch.node !== transport.node) {
      checkRemoteSender(r, ch);
      continue;
    }
    const dead = !transport.isAlive({ pid: ch.pid, start: ch.start }, ch.node);
    const entry = Atomics.load(ch.words, (ch.directoryEntry + DIR_STATE) >> 2);
    const state = Atomics.load(ch.words, DS_STATE >> 2);
    if (!dead && entry === DIR_ASSIGNED && state === DS_OPEN) continue;
    if (!dead) {
      const known = (entry === DIR_ASSIGNED || entry === DIR_CLOSED || entry === DIR_FREE) && (state === DS_OPEN || state === DS_CLOSED);
      if (!known || !senderClosed(transport, r.core.domain, ch)) {
        try {
          r.corrupt(ch, `the sender's directory entry holds state ${entry} and its segment state ${state}, while the sender's endpoint is open`);
        } catch (error) {
          if (!(error instanceof ChannelCorrupt)) throw error;
        }
        continue;
      }
    }
    ch.closing = true;
    ch.deadSender = dead;
    if (r.isEmpty(ch)) r.dropIncoming(ch, dead);
  }
}

/**
 * The same for a sender on another node (its endpoint is there; its data segment, here): asks its
 * node asynchronously, then judges as checkSenders does.
 */
function checkRemoteSender(r: PostboxReceiver, ch: InChannel): void {
  if (ch.checking) return;
  ch.checking = true;
  const transport = r.core.transport;
  void (async () => {
    let dead: boolean;
    let closed = false;
    try {
      dead = !(await transport.isAliveAsync({ pid: ch.pid, start: ch.start }, ch.node));
      const entry = Atomics.load(ch.words, (ch.directoryEntry + DIR_STATE) >> 2);
      const state = Atomics.load(ch.words, DS_STATE >> 2);
      if (!dead && entry === DIR_ASSIGNED && state === DS_OPEN) return;
      if (!dead) closed = await senderClosedAsync(transport, r.core.domain, ch);
      if (!dead && !closed) {
        try {
          r.corrupt(ch, `the sender's directory entry holds state ${entry} and its segment state ${state}, while the sender's endpoint is open`);
        } catch (error) {
          if (!(error instanceof ChannelCorrupt)) throw error;
        }
        return;
      }
    } catch (error) {
      if (error instanceof TimeoutError) return; // a late answer is no answer: ask again (see checkRemoteReceiver)
      dead = true; // its node is unreachable
    } finally {
      ch.checking = false;
    }
    if (ch.closing || !r.in.includes(ch)) return;
    ch.closing = true;
    ch.deadSender = dead;
    if (r.isEmpty(ch)) r.dropIncoming(ch, dead);
  })();
}

async function senderClosedAsync(transport: Transport, domain: string, ch: InChannel): Promise<boolean> {
  const name = `pb.${domain}.ep.${ch.from.split('@')[0]}`;
  try {
    const found = await transport.findAsync(name, ch.node);
    if (!found) return true;
    const probe = await transport.attachAsync(found);
    try {
      const header = new Uint8Array(H_BYTES);
      await probe.readAsync(0, header);
      const creator = creatorOf(new DataView(header.buffer));
      if (creator.pid !== ch.pid || creator.start !== ch.start) return true;
      return ((await probe.loadAsync(EP_STATUS)) & STATUS_CLOSED) !== 0;
    } finally {
      probe.dispose();
    }
  } catch (error) {
    if (error instanceof TimeoutError) throw error; // no answer yet is not "closed"
    return true;
  }
}

/** Has the sender of `ch` closed its endpoint (CLOSED, removed, or taken over by another process)? */
function senderClosed(transport: Transport, domain: string, ch: InChannel): boolean {
  const name = `pb.${domain}.ep.${ch.from.split('@')[0]}`;
  try {
    const found = transport.find(name, ch.node);
    if (!found) return true;
    const probe = transport.attach(found, { timeoutMs: 0 }); // not initialised: a successor is creating it
    try {
      const creator = creatorOf(headerOf(probe));
      if (creator.pid !== ch.pid || creator.start !== ch.start) return true;
      return (probe.load(EP_STATUS) & STATUS_CLOSED) !== 0;
    } finally {
      probe.dispose();
    }
  } catch {
    return true; // removed meanwhile
  }
}
