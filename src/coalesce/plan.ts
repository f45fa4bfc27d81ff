/**
 * The planner of seed 002 ("Format Descriptor"): from a request's chain of elements and the
 * limits, the next work request — which pieces of which elements it gathers (or scatters), how
 * many bytes, at which remote offset — advancing the request state (the current element and the
 * offset in it, seed 002's CURRENT ELEMENT and OFFSET). Pure: no verbs, no allocation in
 * `formatNext`; the engine (engine.ts) encodes what it formats, and tests check it as a function.
 *
 * The greedy rule (what every work request is):
 *  - It starts at the request state and takes the current element's remaining bytes, as many as
 *    fit under `maxMessageSize`; a piece that continues the previous SGE (the same region, the
 *    next local byte) extends that SGE, any other piece needs a new one.
 *  - It goes on to the next element (elements of length 0 are skipped) only when that element's
 *    remote offset is where this work request's remote range ends (contiguous remote memory:
 *    coalesce), and only while both limits leave room: at most `maxMessageSize` bytes and at most
 *    `maxSge` SGEs.
 *  - An element larger than the room left divides: this work request takes what fits and the
 *    state keeps the offset, so the next one starts with the rest (divide).
 * So every work request is as long as the limits and the remote layout allow. Both limits hold on
 * every sub-range of an allowed range, hence this greedy walk gives the fewest work requests of
 * any split that keeps the elements' order (a greedy-stays-ahead argument; the property tests in
 * test/unit/coalesce-plan.test.ts compare it with an exhaustive search on small chains).
 */
import { UsageError } from '../errors.js';

/** What the planner reads of an element (a RequestElement has these). */
export interface PlanElement {
  readonly length: number;
  readonly remoteOffset: number;
  /** The local region (compared by identity: pieces of one region may share an SGE). */
  readonly mr?: unknown;
  /** Offset in the local region. Default 0. */
  readonly offset?: number;
}

export interface PlanLimits {
  /** Bytes per work request, at most. */
  readonly maxMessageSize: number;
  /** SGEs per work request, at most. */
  readonly maxSge: number;
}

/** Seed 002's REQUEST STATE: the element the next work request starts in, and the offset in it. */
export class RequestCursor {
  element = 0;
  offset = 0;
  reset(): void {
    this.element = 0;
    this.offset = 0;
  }
}

/** One formatted work request (reused from call to call: read it before the next formatNext). */
export class FormattedWr {
  /** SGEs in use: entries [0, sgeCount) of the arrays below. */
  sgeCount = 0;
  bytes = 0;
  /** Where this work request's bytes start in the remote region. */
  remoteOffset = 0;
  /** Per SGE: the element it comes from (the first, for a merged SGE), the offset in that element's region, the length. */
  readonly sgeElement: Int32Array;
  readonly sgeOffset: Float64Array;
  readonly sgeLength: Float64Array;
  constructor(readonly capacity: number) {
    this.sgeElement = new Int32Array(capacity);
    this.sgeOffset = new Float64Array(capacity);
    this.sgeLength = new Float64Array(capacity);
  }
}

/** UsageError unless the limits are positive integers (maxSge at most `sgeCapacity`). */
export function checkPlanLimits(limits: PlanLimits, sgeCapacity = Infinity): void {
  const { maxMessageSize, maxSge } = limits;
  if (!Number.isSafeInteger(maxMessageSize) || maxMessageSize < 1) throw new UsageError(`maxMessageSize must be a positive integer, got ${maxMessageSize}`);
  if (!Number.isInteger(maxSge) || maxSge < 1 || maxSge > sgeCapacity) throw new UsageError(`maxSge must be an integer 1..${sgeCapacity}, got ${maxSge}`);
}

/** Move `cursor` past finished and empty elements. */
function skipFinished(elements: readonly PlanElement[], cursor: RequestCursor): void {
  while (cursor.element < elements.length && cursor.offset >= elements[cursor.element].length) {
    cursor.element++;
    cursor.offset = 0;
  }
}

/** Whether the request state is past the last byte (nothing more to format). */
export function isFinished(elements: readonly PlanElement[], cursor: RequestCursor): boolean {
  skipFinished(elements, cursor);
  return cursor.element >= elements.length;
}

/**
 * Format the next work request of `elements` from `cursor` into `out` (by the greedy rule above)
 * and advance `cursor` past it. Returns true when the request is then fully formatted. With
 * nothing left, `out.sgeCount` is 0. `out.capacity` must be at least `limits.maxSge`. The caller
 * checks the limits once (checkPlanLimits); the hot path does not.
 */
export function formatNext(elements: readonly PlanElement[], cursor: RequestCursor, limits: PlanLimits, out: FormattedWr): boolean {
  // The walk runs on locals (the cursor, the counts, the last SGE) written back once at the end:
  // the engine formats every work request of every request here, and a runtime runs a bench's
  // first thousands of requests in its interpreter or baseline tier, where each property access
  // and call costs. Formatting a 32-element request, the first 1 100 times in a fresh process on
  // the host (median of 5 interleaved runs, host load 2–5): Node 36.3 → 10.3 µs; Bun 11.7 → 11.1
  // µs (JavaScriptCore's lower tiers ran the property-based walk about as fast).
  const n = elements.length;
  let ei = cursor.element;
  let offset = cursor.offset;
  while (ei < n && offset >= elements[ei].length) {
    ei++;
    offset = 0;
  }
  out.sgeCount = 0;
  out.bytes = 0;
  if (ei >= n) {
    cursor.element = ei;
    cursor.offset = 0;
    return true;
  }
  const maxBytes = limits.maxMessageSize;
  const maxSge = limits.maxSge;
  const sgeElement = out.sgeElement;
  const sgeOffset = out.sgeOffset;
  const sgeLength = out.sgeLength;
  let e = elements[ei];
  const remoteStart = e.remoteOffset + offset;
  let remoteEnd = remoteStart;
  let bytes = 0;
  let count = 0;
  let lastMr: unknown = undefined; // the region of SGE count - 1
  let lastEnd = -1; // the local offset just past SGE count - 1
  for (;;) {
    const len = e.length;
    const take = Math.min(len - offset, maxBytes - bytes);
    const local = (e.offset ?? 0) + offset;
    if (count > 0 && lastMr === e.mr && lastEnd === local) {
      sgeLength[count - 1] += take; // the same region, the next byte: one SGE
    } else if (count === maxSge) {
      break; // no SGE left for this piece: it starts the next work request
    } else {
      sgeElement[count] = ei;
      sgeOffset[count] = local;
      sgeLength[count] = take;
      count++;
      lastMr = e.mr;
    }
    lastEnd = local + take;
    bytes += take;
    offset += take;
    remoteEnd += take;
    if (offset < len) break; // divide: the rest of this element goes in the next one
    // The next non-empty element, if any.
    ei++;
    offset = 0;
    while (ei < n && elements[ei].length === 0) ei++;
    if (ei >= n) break;
    e = elements[ei];
    if (e.remoteOffset !== remoteEnd || bytes === maxBytes) break; // not contiguous, or full
  }
  out.sgeCount = count;
  out.bytes = bytes;
  out.remoteOffset = remoteStart;
  cursor.element = ei;
  cursor.offset = offset;
  return isFinished(elements, cursor);
}

/** A planned work request as plain data (planRequest's result). */
export interface PlannedWr {
  readonly remoteOffset: number;
  readonly bytes: number;
  readonly sges: readonly { readonly element: number; readonly offset: number; readonly length: number }[];
}

/** The whole plan of a request (allocates; for tests, tools and docs — the engine formats as it posts). */
export function planRequest(elements: readonly PlanElement[], limits: PlanLimits): PlannedWr[] {
  checkPlanLimits(limits);
  const cursor = new RequestCursor();
  const out = new FormattedWr(limits.maxSge);
  const plan: PlannedWr[] = [];
  for (;;) {
    const done = formatNext(elements, cursor, limits, out);
    if (out.sgeCount > 0) {
      const sges = [];
      for (let i = 0; i < out.sgeCount; i++) sges.push({ element: out.sgeElement[i], offset: out.sgeOffset[i], length: out.sgeLength[i] });
      plan.push({ remoteOffset: out.remoteOffset, bytes: out.bytes, sges });
    }
    if (done) return plan;
  }
}

/** Seed 002's total transfer count: how many work requests the request takes. */
export function countWorkRequests(elements: readonly PlanElement[], limits: PlanLimits): number {
  checkPlanLimits(limits);
  const cursor = new RequestCursor();
  const out = new FormattedWr(limits.maxSge);
  let count = 0;
  for (;;) {
    const done = formatNext(elements, cursor, limits, out);
    if (out.sgeCount > 0) count++;
    if (done) return count;
  }
}
