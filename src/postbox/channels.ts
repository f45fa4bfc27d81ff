/**
 * The per-channel state of a postbox endpoint, private to this process: on the sending side its
 * memory space on each receiving node (NodeSpace) and one OutChannel per receiver; on the receiving
 * side one InChannel per sender's postbox it polls. Every (sender, receiver) pair is a simplex
 * channel (claim 40).
 */
import type { Exposed, Image, Target } from '../transport/types.js';
import { BlockAllocator, SentList } from './blocks.js';
import {
  AK_BLOCK_BYTES, AK_FIRST_BLOCK, DIR_BYTES, DS_DIRECTORY, poolOffset, postboxOffset, SLOT_HEADER, type DataGeometry,
} from './layout.js';

// ---------------------------------------------------------------------------------------------
// Sender side

/** This sender's memory space on one receiving node: data segment, ack segment, block pool. */
export class NodeSpace {
  readonly node: string;
  /** The data segment on that node: ours (we own its name), its bytes over there. */
  readonly data: Exposed;
  readonly image: Image;
  /** The source segment as words (the image's source). */
  readonly words: Int32Array;
  readonly ack: Target;
  readonly geometry: DataGeometry;
  readonly inlineMax: number;
  readonly postboxBase: number;
  readonly poolBase: number;
  readonly allocator: BlockAllocator;
  /** Postbox index → the channel using it. */
  readonly postboxes: (OutChannel | undefined)[];
  /** The receiver list: receivers holding blocks, in order of use (claim 27); last = most recent. */
  readonly receivers = new Set<OutChannel>();
  /** Sends of this space waiting for acknowledgments (DS_SENDER_WAITING is 1 while > 0). */
  waiting = 0;
  lastUsed: OutChannel | undefined;

  constructor(node: string, data: Exposed, image: Image, ack: Target, geometry: DataGeometry) {
    this.node = node;
    this.data = data;
    this.image = image;
    this.words = new Int32Array(image.source.buffer, image.source.byteOffset, image.size >> 2);
    this.ack = ack;
    this.geometry = geometry;
    this.inlineMax = geometry.slotBytes - SLOT_HEADER;
    this.postboxBase = postboxOffset(geometry);
    this.poolBase = poolOffset(geometry);
    this.allocator = new BlockAllocator(geometry.blocks);
    this.postboxes = new Array(geometry.postboxes).fill(undefined);
  }
}

/** One simplex channel from this endpoint to one receiver (claim 40). */
export class OutChannel {
  readonly peer: string;
  readonly space: NodeSpace;
  readonly index: number;
  readonly slotBase: number;
  readonly ackWord: number;
  readonly endpoint: Image;
  readonly pid: number;
  readonly start: bigint;
  readonly list: SentList;
  sent = 0;
  consumed = 0;
  inList = false;
  /** send() calls queued behind one another (order per pair). */
  queued = 0;
  tail: Promise<void> = Promise.resolve();
  claimOpen = false;
  lastCheck = 0;
  /** When send() last tried to reach a new incarnation of a gone receiver on another node (reconnectRemote). */
  lastReconnect = 0;
  /** A liveness check across nodes is under way. */
  checking = false;
  gone: Error | null = null;

  constructor(peer: string, space: NodeSpace, index: number, endpoint: Image, pid: number, start: bigint) {
    this.peer = peer;
    this.space = space;
    this.index = index;
    this.slotBase = space.postboxBase + index * space.geometry.slots * space.geometry.slotBytes;
    this.ackWord = (AK_FIRST_BLOCK + index * AK_BLOCK_BYTES) >> 2;
    this.endpoint = endpoint;
    this.pid = pid;
    this.start = start;
    this.list = new SentList(space.geometry.slots);
  }
}

/**
 * A zero-copy send (claim → fill → commit): `buffer` is the message's place in the source
 * segment. Fill it, then commit() publishes it; abort() gives the space back. Exactly one of them

// ---------------------------------------------------------------------------------------------
// Receiver side

/** One sender's postbox as this receiver polls it. */
export class InChannel {
  readonly from: string;
  readonly entry: number;
  readonly data: Target;
  readonly words: Int32Array;
  readonly bytes: Uint8Array;
  readonly ack: Image;
  readonly ackWord: number;
  readonly slots: number;
  readonly slotBytes: number;
  readonly inlineMax: number;
  readonly blockSize: number;
  readonly blocks: number;
  readonly slotBase: number;
  readonly poolBase: number;
  readonly directoryEntry: number;
  readonly pid: number;
  readonly start: bigint;
  readonly node: string;
  next = 0;
  firstLap = true;
  /** An older channel of the same sender that this one superseded (registration.ts): served first, until it is dropped. */
  after: InChannel | undefined = undefined;
  closing = false;
  /** The sender died: when its postbox is empty, its segments' names are removed. */
  deadSender = false;
  /** A liveness check across nodes is under way. */
  checking = false;
  /** A chunked message being reassembled. */
  assembly: Uint8Array | null = null;
  assembled = 0;
  total = 0;

  constructor(init: {
    from: string; entry: number; data: Target; ack: Image; index: number; g: DataGeometry; pid: number; start: bigint; node: string;
  }) {
    const { g } = init;
    this.from = init.from;
    this.entry = init.entry;
    this.data = init.data;
    this.words = init.data.int32;
    this.bytes = init.data.bytes;
    this.ack = init.ack;
    this.ackWord = AK_FIRST_BLOCK + init.index * AK_BLOCK_BYTES;
    this.slots = g.slots;
    this.slotBytes = g.slotBytes;
    this.inlineMax = g.slotBytes - SLOT_HEADER;
    this.blockSize = g.blockSize;
    this.blocks = g.blocks;
    this.slotBase = postboxOffset(g) + init.index * g.slots * g.slotBytes;
    this.poolBase = poolOffset(g);
    this.directoryEntry = DS_DIRECTORY + init.index * DIR_BYTES;
    this.pid = init.pid;
    this.start = init.start;
    this.node = init.node;
  }
}

/** Thrown inside a drain to unwind it once its channel was found corrupt (and dropped). */
export class ChannelCorrupt extends Error {}
