/**
 * The request engine's table of requests (engine.ts): a ring of slots in submission order, one
 * per request submitted and not yet settled, each with seed 002's REQUEST STATE (the cursor: the
 * current element and the offset in it) and its accounting. Typed arrays made once, so a request
 * costs no allocation; the engine owns the ring's head and count.
 */
import { RequestCursor } from './plan.js';
import type { PreparedRequest } from './prepared.js';
import type { RequestElement } from './types.js';

// Slot states.
export const FREE = 0;
export const QUEUED = 1; // submitted, not fully posted (the cursor is not at the end)
export const POSTED = 2; // every work request posted; settles when all are accounted for

export class RequestTable {
  readonly state: Uint8Array;
  readonly isRead: Uint8Array;
  readonly elements: (readonly RequestElement[] | undefined)[];
  readonly remoteAddr: Float64Array;
  readonly rkey: Uint32Array;
  readonly tag: Float64Array;
  readonly total: Float64Array;
  /** Bytes of accounted (completed) work requests. */
  readonly done: Float64Array;
  /** Work requests posted. */
  readonly posted: Int32Array;
  /** Of those, accounted for (completed, failed or flushed). */
  readonly accounted: Int32Array;
  /** The limits this request is formatted by (the engine's, lowered per request). */
  readonly maxMsg: Float64Array;
  readonly maxSge: Int32Array;
  /** Seed 002's REQUEST STATE; for a prepared request, `element` is its next work request. */
  readonly cursors: RequestCursor[];
  /** The prepared request a slot posts from, if any (it holds the plan and the SGE lists). */
  readonly prepared: (PreparedRequest | undefined)[];
  readonly errors: (Error | undefined)[];

  constructor(readonly size: number) {
    const n = size;
    this.state = new Uint8Array(n);
    this.isRead = new Uint8Array(n);
    this.elements = new Array(n).fill(undefined);
    this.remoteAddr = new Float64Array(n);
    this.rkey = new Uint32Array(n);
    this.tag = new Float64Array(n);
    this.total = new Float64Array(n);
    this.done = new Float64Array(n);
    this.posted = new Int32Array(n);
    this.accounted = new Int32Array(n);
    this.maxMsg = new Float64Array(n);
    this.maxSge = new Int32Array(n);
    this.cursors = Array.from({ length: n }, () => new RequestCursor());
    this.prepared = new Array(n).fill(undefined);
    this.errors = new Array(n).fill(undefined);
  }

  /** Slot `slot` becomes a QUEUED request with nothing posted or accounted yet. */
  open(slot: number, isRead: number, tag: number, total: number): void {
    this.state[slot] = QUEUED;
    this.isRead[slot] = isRead;
    this.tag[slot] = tag;
    this.total[slot] = total;
    this.done[slot] = 0;
    this.posted[slot] = 0;
    this.accounted[slot] = 0;
    this.cursors[slot].reset();
    this.errors[slot] = undefined;
  }

  /** Slot `slot` is FREE again; it lets go of the request's elements (the prepared one: the caller). */
  close(slot: number): void {
    this.state[slot] = FREE;
    this.elements[slot] = undefined;
    this.errors[slot] = undefined;
  }
}
