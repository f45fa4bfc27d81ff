/**
 * Reaching a receiver (seed 001): a sender's memory space on the receiver's node — its data
 * segment and ack segment, created on the first message to that node (claims 31–35, 39) — a
 * postbox in it, and the registration entry in the receiver's endpoint segment that tells the
 * receiver where that postbox is (claims 1, 14).
 */
import { CorruptionError, PeerGoneError, UsageError } from '../errors.js';
import { DESCRIPTOR_BYTES, encodeDescriptor } from '../transport/descriptor.js';
import type { Exposed, Image, SegmentDescriptor, Target } from '../transport/types.js';
import { NodeSpace, OutChannel } from './channels.js';
import { bellNonce, checkName, creatorOf, headerOf, nodeTag, writeAscii } from './common.js';
import {
  AB_CONSUMED, AB_SLEEPING, AB_STATUS, ackBytes, AK_BLOCKS, AK_MAGIC, dataBytes, DIR_ASSIGNED, DIR_BYTES, DIR_EPOCH, DIR_NAME, DIR_NAME_LEN,
  DIR_STATE, DS_ACK_DESCRIPTOR, DS_BLOCK_SIZE, DS_BLOCKS, DS_DIRECTORY, DS_MAGIC, DS_OPEN, DS_POSTBOXES, DS_SLOT_BYTES, DS_SLOTS,
  DS_STATE, EN_DESCRIPTOR, EN_NAME, EN_NAME_LEN, EN_PID, EN_POSTBOX, EN_START_HI, EN_START_LO, EN_STATE, ENTRY_BYTES, ENTRY_CLAIMED,
  ENTRY_FREE, ENTRY_READY, EP_BELL, EP_ENTRIES, EP_MAGIC, EP_MAX_INCOMING, EP_REGISTRATIONS, EP_STATUS, H_INIT, H_MAGIC, H_PID,
  H_BYTES, H_START_HI, H_START_LO, H_VERSION, INIT_READY, LAYOUT_VERSION, MAX_ENDPOINT_NAME, STATUS_CLOSED,
} from './layout.js';
import { dropChannel } from './liveness.js';
import { LIVENESS_INTERVAL_MS } from './common.js';
import type { PostboxSender } from './sender.js';

/** A peer's name and node ("name" or "name@node"). */
function parsePeer(s: PostboxSender, peer: string): { name: string; node: string } {
  if (typeof peer !== 'string') throw new UsageError(`peer must be a string, got ${typeof peer}`);
  const at = peer.indexOf('@');
  const name = at < 0 ? peer : peer.slice(0, at);
  const node = at < 0 ? s.core.transport.node : peer.slice(at + 1);
  checkName('peer name', name, MAX_ENDPOINT_NAME);
  return { name, node };
}

/**
 * Resolve a peer to its channel, connecting on first use (lazy creation, claims 31–35). A peer on
 * this node is connected at once; one on another node needs remote calls (the transport's async
 * forms): its connection is started and `undefined` returned until it is made — the caller
 * reports "no room yet" (trySend FULL, claim null). A connection that failed throws its error once.
 */
export function channelFor(s: PostboxSender, peer: string): OutChannel | undefined {
  const existing = s.out.get(peer);
  if (existing) return existing;
  const failed = s.connectFailures.get(peer);
  if (failed) {
    s.connectFailures.delete(peer);
    throw failed;
  }
  const { name, node } = parsePeer(s, peer);
  if (node !== s.core.transport.node) {
    if (!s.connecting.has(peer)) {
      const pending = connectRemote(s, peer, name, node).then(
        (ch) => {
          s.connecting.delete(peer);
          s.out.set(peer, ch);
          return ch;
        },
        (error: Error) => {
          s.connecting.delete(peer);
          s.connectFailures.set(peer, error);
          throw error;
        },
      );
      pending.catch(() => undefined); // kept in connectFailures for the next call
      s.connecting.set(peer, pending);
    }
    return undefined;
  }
  const ch = connect(s, peer, name, node);
  s.out.set(peer, ch);
  return ch;
}

/** The channel to `peer`, waiting for a connection to another node (send()). */
export async function channelReady(s: PostboxSender, peer: string): Promise<OutChannel> {
  const ch = channelFor(s, peer);
  if (ch) return ch;
  try {
    return await s.connecting.get(peer)!;
  } finally {
    s.connectFailures.delete(peer); // thrown here, not again
  }
}

export function reconnect(s: PostboxSender, peer: string, old: OutChannel): OutChannel {
  if (!(old.gone instanceof PeerGoneError)) throw old.gone!;
  const { name, node } = parsePeer(s, peer);
  if (node !== s.core.transport.node) throw old.gone; // across nodes: reconnectRemote
  const descriptor = s.core.transport.find(`pb.${s.core.domain}.ep.${name}`, node);
  if (!descriptor) throw old.gone;
  let fresh: OutChannel;
  try {
    fresh = connect(s, peer, name, node);
  } catch {
    throw old.gone;
  }
  if (fresh.pid === old.pid && fresh.start === old.start) {
    dropChannel(s, fresh, false);
    throw old.gone;
  }
  s.out.set(peer, fresh);
  return fresh;
}

/**
 * reconnect() for a receiver on another node (send() only): if the peer's endpoint name is held
 * by a live, open receiver — a new incarnation (the receiver was restarted), or the same one
 * (its node's agent was restarted, and the receiver lived on) — a new channel to it, made with
 * remote calls; else a PeerGoneError saying why. A memory
 * space on that node whose connection was lost (its agent died) is given up first and a new one
 * made through the node's new agent. Tried at most once per LIVENESS_INTERVAL_MS per peer (a loop
 * sending to a dead peer must not turn into a stream of control calls); concurrent send()s to the
 * peer share one attempt.
 */
export function reconnectRemote(s: PostboxSender, peer: string, old: OutChannel): Promise<OutChannel> {
  if (!(old.gone instanceof PeerGoneError)) return Promise.reject(old.gone!);
  const current = s.out.get(peer);
  if (current && current !== old && !current.gone) return Promise.resolve(current);
  const pending = s.connecting.get(peer);
  if (pending) return pending.catch(() => Promise.reject(old.gone!));
  const now = Date.now();
  if (now - old.lastReconnect < LIVENESS_INTERVAL_MS) return Promise.reject(old.gone);
  old.lastReconnect = now;
  const { name, node } = parsePeer(s, peer);
  const attempt = (async () => {
    const space = s.spaces.get(node);
    if (space && spaceLost(space)) retireSpace(s, space);
    let fresh: OutChannel;
    try {
      fresh = await connectRemote(s, peer, name, node);
    } catch (error) {
      // Not there (yet), or still the dead incarnation's: gone, saying why it could not be reached anew.
      throw new PeerGoneError(peer, `${old.gone!.message.replace(/^peer "[^"]*" is gone: /, '')}; reaching it anew failed: ${(error as Error).message}`);
    }
    // The same receiver process is fine: when only the connection to its node's agent was lost,
    // the receiver lives on and drains the superseded channel (registration.ts). A dead or
    // closed incarnation never gets here: connectRemote refuses it before claiming an entry (a
    // refusal after the claim would leak one of the receiver's entries per attempt: measured in
    // the guest, all 64 gone within ~30 s of retries).
    if (s.core.closed) {
      dropChannel(s, fresh, false);
      throw old.gone!;
    }
    s.out.set(peer, fresh);
    return fresh;
  })().finally(() => s.connecting.delete(peer));
  s.connecting.set(peer, attempt);
  return attempt;
}

/** Is this memory space's connection gone (its node's agent died or dropped us)? */
export function spaceLost(sp: NodeSpace): boolean {
  if (sp.image.closed) return true;
  try {
    sp.image.progress(); // throws the image's (its connection's) failure
    return false;
  } catch {
    return true;
  }
}

/**
 * Give up a memory space whose connection was lost: every channel in it fails with PeerGoneError
 * (the liveness check has usually said so already), the image and the name's ownership go (the
 * node's new agent removed the object the dead one made), and our ack segment for that node is
 * removed, so a new space can be made under the same names.
 */
function retireSpace(s: PostboxSender, sp: NodeSpace): void {
  for (const ch of [...s.out.values()]) {
    if (ch.space !== sp) continue;
    ch.gone ??= new PeerGoneError(ch.peer, `the connection to node ${sp.node} was lost`);
    ch.endpoint.dispose();
  }
  s.spaces.delete(sp.node);
  sp.image.dispose();
  sp.data.dispose();
  sp.ack.dispose();
}

/** What an endpoint's header says, checked (untrusted). */
function checkEndpointHeader(header: DataView, descriptor: SegmentDescriptor): { pid: number; start: bigint; maxIncoming: number } {
  if (header.getInt32(H_MAGIC, true) !== EP_MAGIC || header.getInt32(H_VERSION, true) !== LAYOUT_VERSION || header.getInt32(H_INIT, true) !== INIT_READY) {
    throw new CorruptionError(descriptor.name, 'not an initialised postbox endpoint segment (magic, version or init)');
  }
  const maxIncoming = header.getInt32(EP_MAX_INCOMING, true);
  if (maxIncoming < 1 || EP_ENTRIES + maxIncoming * ENTRY_BYTES > descriptor.size) {
    throw new CorruptionError(descriptor.name, `maxIncoming ${maxIncoming} does not fit the segment`);
  }
  return { ...creatorOf(header), maxIncoming };
}

/** A free postbox of `space` for a new channel to `peer`, taken at once (before any await). */
function takePostbox(space: NodeSpace, peer: string, endpoint: Image, pid: number, start: bigint, receiver: string): OutChannel {
  const index = space.postboxes.indexOf(undefined);
  if (index < 0) throw new UsageError(`all ${space.geometry.postboxes} postboxes on node ${space.node} are in use (option postboxes)`);
  const ch = new OutChannel(peer, space, index, endpoint, pid, start);
  space.postboxes[index] = ch;
  preparePostbox(space, ch, receiver);
  return ch;
}

function connect(s: PostboxSender, peer: string, name: string, node: string): OutChannel {
  const descriptor = s.core.transport.find(`pb.${s.core.domain}.ep.${name}`, node);
  if (!descriptor) throw new UsageError(`unknown peer ${JSON.stringify(peer)}: no endpoint of that name in domain ${JSON.stringify(s.core.domain)}`);
  const endpoint = s.core.transport.attach(descriptor);
  let ch: OutChannel | undefined;
  try {
    // The endpoint's creator stores init last; a just-opened endpoint may still be writing it.
    const deadline = Date.now() + 2000;
    while (endpoint.load(H_INIT) !== INIT_READY && Date.now() < deadline);
    const { pid, start, maxIncoming } = checkEndpointHeader(headerOf(endpoint), descriptor);
    if ((endpoint.load(EP_STATUS) & STATUS_CLOSED) !== 0 || !s.core.transport.isAlive({ pid, start }, node)) {
      throw new PeerGoneError(peer, 'its endpoint is closed or its process is not running');
    }
    ch = takePostbox(spaceOn(s, node), peer, endpoint, pid, start, name);
    for (let i = 0; i < maxIncoming; i++) {
      const at = EP_ENTRIES + i * ENTRY_BYTES;
      if (endpoint.compareExchange(at + EN_STATE, ENTRY_FREE, ENTRY_CLAIMED) !== ENTRY_FREE) continue;
      fillEntry(s, endpoint, at, ch.space, ch.index);
      endpoint.add(EP_REGISTRATIONS, 1);
      ring(s, endpoint);
      return ch;
    }
    throw new UsageError(`receiver ${descriptor.name} has no free registration entry (its maxIncoming is ${maxIncoming})`);
  } catch (error) {
    if (ch && ch.space.postboxes[ch.index] === ch) ch.space.postboxes[ch.index] = undefined;
    endpoint.dispose();
    throw error;
  }
}

/** The same across nodes: every call on the receiver's memory is a remote one, so all are the async forms. */
async function connectRemote(s: PostboxSender, peer: string, name: string, node: string): Promise<OutChannel> {
  const transport = s.core.transport;
  const descriptor = await transport.findAsync(`pb.${s.core.domain}.ep.${name}`, node);
  if (!descriptor) throw new UsageError(`unknown peer ${JSON.stringify(peer)}: no endpoint of that name in domain ${JSON.stringify(s.core.domain)} on node ${node}`);
  const endpoint = await transport.attachAsync(descriptor);
  let ch: OutChannel | undefined;
  try {
    const deadline = Date.now() + 2000;
    while ((await endpoint.loadAsync(H_INIT)) !== INIT_READY && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 1));
    const header = new Uint8Array(H_BYTES);
    await endpoint.readAsync(0, header);
    const { pid, start, maxIncoming } = checkEndpointHeader(new DataView(header.buffer), descriptor);
    if (((await endpoint.loadAsync(EP_STATUS)) & STATUS_CLOSED) !== 0 || !(await transport.isAliveAsync({ pid, start }, node))) {
      throw new PeerGoneError(peer, 'its endpoint is closed or its process is not running');
    }
    const space = await spaceOnRemote(s, node);
    s.core.live();
    ch = takePostbox(space, peer, endpoint, pid, start, name);
    for (let i = 0; i < maxIncoming; i++) {
      const at = EP_ENTRIES + i * ENTRY_BYTES;
      if ((await endpoint.compareExchangeAsync(at + EN_STATE, ENTRY_FREE, ENTRY_CLAIMED)) !== ENTRY_FREE) continue;
      fillEntry(s, endpoint, at, space, ch.index);
      await endpoint.addAsync(EP_REGISTRATIONS, 1);
      ring(s, endpoint);
      return ch;
    }
    throw new UsageError(`receiver ${descriptor.name} has no free registration entry (its maxIncoming is ${maxIncoming})`);
  } catch (error) {
    if (ch && ch.space.postboxes[ch.index] === ch) ch.space.postboxes[ch.index] = undefined;
    endpoint.dispose();
    throw error;
  }
}

/** Reset a postbox for a new receiver and name it in the directory (claim 1). */
function preparePostbox(sp: NodeSpace, ch: OutChannel, receiver: string): void {
  const g = sp.geometry;
  const { image, words } = sp;
  image.source.fill(0, ch.slotBase, ch.slotBase + g.slots * g.slotBytes);
  image.write(ch.slotBase, g.slots * g.slotBytes);
  // The ack block is ours (our node): reset it before the receiver can see the postbox.
  Atomics.store(sp.ack.int32, ch.ackWord + (AB_CONSUMED >> 2), 0);
  Atomics.store(sp.ack.int32, ch.ackWord + (AB_STATUS >> 2), 0);
  Atomics.store(sp.ack.int32, ch.ackWord + (AB_SLEEPING >> 2), 0);
  const dir = DS_DIRECTORY + ch.index * DIR_BYTES;
  words[(dir + DIR_EPOCH) >> 2] = (words[(dir + DIR_EPOCH) >> 2] + 1) | 0;
  words[(dir + DIR_NAME_LEN) >> 2] = receiver.length;
  image.source.fill(0, dir + DIR_NAME, dir + DIR_BYTES);
  writeAscii(image.source, dir + DIR_NAME, receiver);
  image.write(dir + DIR_EPOCH, DIR_BYTES - DIR_EPOCH);
  image.publish(dir + DIR_STATE, DIR_ASSIGNED);
}

/** Fill the registration entry at `at` (claimed by us) and say READY: where the receiver's postbox is. */
function fillEntry(s: PostboxSender, endpoint: Image, at: number, sp: NodeSpace, index: number): void {
  const src = endpoint.source;
  const w = new DataView(src.buffer, src.byteOffset + at, ENTRY_BYTES);
  w.setInt32(EN_POSTBOX, index, true);
  w.setInt32(EN_PID, s.core.transport.self.pid, true);
  w.setUint32(EN_START_LO, Number(s.core.transport.self.start & 0xffffffffn), true);
  w.setUint32(EN_START_HI, Number(s.core.transport.self.start >> 32n), true);
  w.setInt32(EN_NAME_LEN, s.core.name.length, true);
  src.fill(0, at + EN_NAME, at + EN_DESCRIPTOR);
  writeAscii(src, at + EN_NAME, s.core.name);
  encodeDescriptor(sp.data.descriptor, src.subarray(at + EN_DESCRIPTOR, at + EN_DESCRIPTOR + DESCRIPTOR_BYTES));
  endpoint.write(at + EN_POSTBOX, EN_DESCRIPTOR + DESCRIPTOR_BYTES - EN_POSTBOX);
  // Ordering point: the entry is complete before its state says READY.
  endpoint.publish(at + EN_STATE, ENTRY_READY);
}

function ring(s: PostboxSender, endpoint: Image): void {
  endpoint.publish(EP_BELL, bellNonce(s.core.transport.self.pid));
  endpoint.notify(EP_BELL);
}

/** Our ack segment for `node` (ours, on this node), initialised. */
function exposeAck(s: PostboxSender, node: string): Target {
  const g = s.geometry;
  const self = s.core.transport.self;
  const ack = s.core.transport.expose(`pb.${s.core.domain}.ack.${s.core.name}.${nodeTag(node)}`, ackBytes(g.postboxes), { replaceStale: true });
  const aw = ack.int32;
  aw[H_MAGIC >> 2] = AK_MAGIC;
  aw[H_VERSION >> 2] = LAYOUT_VERSION;
  aw[H_PID >> 2] = self.pid;
  aw[H_START_LO >> 2] = Number(self.start & 0xffffffffn);
  aw[H_START_HI >> 2] = Number(self.start >> 32n);
  aw[AK_BLOCKS >> 2] = g.postboxes;
  Atomics.store(aw, H_INIT >> 2, INIT_READY);
  return ack;
}

/** Write the data segment's header through its image and publish init. */
function initData(s: PostboxSender, image: Image, ack: Target): void {
  const g = s.geometry;
  const self = s.core.transport.self;
  const w = new Int32Array(image.source.buffer, image.source.byteOffset, 64 >> 2);
  w[H_MAGIC >> 2] = DS_MAGIC;
  w[H_VERSION >> 2] = LAYOUT_VERSION;
  w[H_PID >> 2] = self.pid;
  w[H_START_LO >> 2] = Number(self.start & 0xffffffffn);
  w[H_START_HI >> 2] = Number(self.start >> 32n);
  w[DS_POSTBOXES >> 2] = g.postboxes;
  w[DS_SLOTS >> 2] = g.slots;
  w[DS_SLOT_BYTES >> 2] = g.slotBytes;
  w[DS_BLOCK_SIZE >> 2] = g.blockSize;
  w[DS_BLOCKS >> 2] = g.blocks;
  w[DS_STATE >> 2] = DS_OPEN;
  encodeDescriptor(ack.descriptor, image.source.subarray(DS_ACK_DESCRIPTOR, DS_ACK_DESCRIPTOR + DESCRIPTOR_BYTES));
  image.write(0, DS_DIRECTORY);
  image.publish(H_INIT, INIT_READY);
}

/** This sender's memory space on `node` (this one), created on first need with its ack segment (claims 31–35, 39). */
function spaceOn(s: PostboxSender, node: string): NodeSpace {
  const existing = s.spaces.get(node);
  if (existing) return existing;
  const ack = exposeAck(s, node);
  let data: Exposed | undefined;
  let image: Image | undefined;
  try {
    data = s.core.transport.expose(`pb.${s.core.domain}.data.${s.core.name}`, dataBytes(s.geometry), { replaceStale: true, node });
    image = s.core.transport.attach(data.descriptor);
    return recordSpace(s, node, data, image, ack);
  } catch (error) {
    disposeHalfMade(image, data, ack);
    throw error;
  }
}

/** Initialise a node space's data segment and record the space (both forms of making one). */
function recordSpace(s: PostboxSender, node: string, data: Exposed, image: Image, ack: Target): NodeSpace {
  initData(s, image, ack);
  const space = new NodeSpace(node, data, image, ack, s.geometry);
  s.spaces.set(node, space);
  return space;
}

/** Nothing half-made stays: the names go with the owner's handles. */
function disposeHalfMade(image: Image | undefined, data: Exposed | undefined, ack: Target): void {
  image?.dispose();
  data?.dispose();
  ack.dispose();
}

/** The same on another node: the data segment is allocated there (exposeAsync) and attached remotely. */
function spaceOnRemote(s: PostboxSender, node: string): Promise<NodeSpace> {
  const existing = s.spaces.get(node);
  if (existing) return Promise.resolve(existing);
  let pending = s.spacesPending.get(node);
  if (!pending) {
    pending = (async () => {
      const ack = exposeAck(s, node);
      let data: Exposed | undefined;
      let image: Image | undefined;
      try {
        data = await s.core.transport.exposeAsync(`pb.${s.core.domain}.data.${s.core.name}`, dataBytes(s.geometry), { replaceStale: true, node });
        image = await s.core.transport.attachAsync(data.descriptor);
        s.core.live();
        return recordSpace(s, node, data, image, ack);
      } catch (error) {
        disposeHalfMade(image, data, ack);
        throw error;
      } finally {
        s.spacesPending.delete(node);
      }
    })();
    s.spacesPending.set(node, pending);
  }
  return pending;
}
