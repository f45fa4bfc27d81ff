/**
 * Shared receive queues on real Soft-RoCE devices: two RC queue pairs on DEV1 take their receives
 * from one SRQ, each connected to its own queue pair on DEV0 that SENDs to it. Data is checked
 * byte for byte, every completion must name the queue pair that received, and the SRQ must
 * release exactly the receives that completed (also out of order, also failed ones). Typed errors
 * for bad input and for use after dispose; after every test, no verbs object is left alive.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { backend } from '../../ffi/backend.js';
import { runtimeName } from '../../ffi/runtime.js';
import {
  ClosedError,
  completionError,
  connectQueuePairs,
  Context,
  liveVerbsObjects,
  SharedReceiveQueue,
  SystemError,
  UsageError,
  WorkCompletionError,
  type CompletionQueue,
  type CompletionRecord,
  type ProtectionDomain,
  type QueuePair,
  type SharedReceiveQueueOptions,
} from '../../src/index.js';
import { DEV0, DEV1, expectNothingLive, pattern, skipReason, suffix } from './helpers.js';

const WC_SEND = 0;
const WC_RECV = 128;

interface SrqPair {
  /** The senders: two RC QPs on DEV0, one CQ, each with a receive queue of its own. */
  a: { ctx: Context; pd: ProtectionDomain; cq: CompletionQueue; qps: [QueuePair, QueuePair] };
  /** The receivers: two RC QPs on DEV1 sharing `srq`; one CQ, or one each (`twoCqs`). */
  b: { ctx: Context; pd: ProtectionDomain; cqs: [CompletionQueue, CompletionQueue]; srq: SharedReceiveQueue; qps: [QueuePair, QueuePair] };
}

function srqPair(options: { twoCqs?: boolean; srq?: SharedReceiveQueueOptions } = {}): SrqPair {
  const actx = Context.open(DEV0);
  let bctx: Context | undefined;
  try {
    const apd = actx.allocPd();
    const acq = actx.createCompletionQueue({ entries: 64 });
    const aqps: [QueuePair, QueuePair] = [apd.createQueuePair({ sendCq: acq }), apd.createQueuePair({ sendCq: acq })];
    bctx = Context.open(DEV1);
    const bpd = bctx.allocPd();
    const cq1 = bctx.createCompletionQueue({ entries: 64 });
    const cq2 = options.twoCqs ? bctx.createCompletionQueue({ entries: 64 }) : cq1;
    const srq = bpd.createSharedReceiveQueue(options.srq ?? { maxWr: 16, maxSge: 2 });
    const bqps: [QueuePair, QueuePair] = [bpd.createQueuePair({ sendCq: cq1, srq }), bpd.createQueuePair({ sendCq: cq2, srq })];
    connectQueuePairs(aqps[0], bqps[0]);
    connectQueuePairs(aqps[1], bqps[1]);
    return { a: { ctx: actx, pd: apd, cq: acq, qps: aqps }, b: { ctx: bctx, pd: bpd, cqs: [cq1, cq2], srq, qps: bqps } };
  } catch (error) {
    bctx?.dispose();
    actx.dispose();
    throw error;
  }
}

const same = (x: Uint8Array, y: Uint8Array) => Buffer.from(x).equals(Buffer.from(y));

describe.skipIf(!!skipReason)(`shared receive queues on ${DEV0}/${DEV1} (${runtimeName}, ${backend.name})${suffix}`, () => {
  let pair: SrqPair | undefined;
  afterEach(() => {
    pair?.b.ctx.dispose();
    pair?.a.ctx.dispose();
    pair = undefined;
    expectNothingLive();
  });

  it('runs on the runtime and FFI backend the runner asked for', () => {
    if (process.env.MEMWIRE_EXPECT_RUNTIME) expect(runtimeName).toBe(process.env.MEMWIRE_EXPECT_RUNTIME);
    if (process.env.MEMWIRE_EXPECT_BACKEND) expect(backend.name).toBe(process.env.MEMWIRE_EXPECT_BACKEND);
  });

  it('two RC queue pairs share one SRQ: every SEND lands byte for byte, each completion names its QP', async () => {
    pair = srqPair();
    const { a, b } = pair;
    const { srq } = b;
    expect(srq.maxWr).toBeGreaterThanOrEqual(16);
    expect(srq.maxSge).toBe(2);
    expect(b.qps[0].srq).toBe(srq);
    expect(b.qps[1].srq).toBe(srq);
    expect(srq.queuePairs).toHaveLength(2);
    expect(liveVerbsObjects()).toMatchObject({ srqs: 1, qps: 4 });

    // Eight receives of 1 KiB, each scattered over two SGEs of 512 bytes.
    const SLOT = 1024;
    const inbox = new Uint8Array(8 * SLOT);
    const imr = b.pd.registerMemory(inbox);
    const recvs = Array.from({ length: 8 }, (_, i) => ({
      wrId: 100 + i,
      sge: [{ mr: imr, offset: i * SLOT, length: 512 }, { mr: imr, offset: i * SLOT + 512, length: 512 }],
    }));
    expect(srq.postRecv(recvs.slice(0, 5))).toBe(0);
    expect(srq.postRecv(recvs.slice(5))).toBe(0);
    expect(srq.outstanding).toBe(8);
    expect(b.qps[0].outstanding).toEqual({ send: 0, recv: 0 }); // the receives are the SRQ's

    // Three messages from each sender, all lengths different, interleaved.
    const msgs = [0, 1].map((q) => [0, 1, 2].map((k) => pattern(100 + 300 * k + 37 * q, 10 * q + k + 1)));
    const mrs = msgs.map((list) => list.map((m) => a.pd.registerMemory(m)));
    for (let k = 0; k < 3; k++) {
      for (let q = 0; q < 2; q++) expect(a.qps[q].postSend({ wrId: 10 * q + k, sge: { mr: mrs[q][k] } })).toBe(0);
    }
    const sent = await a.cq.collect(6);
    expect(sent.every((c) => c.status === 0 && c.opcode === WC_SEND)).toBe(true);

    const got = await b.cqs[0].collect(6);
    const byQp = new Map<number, CompletionRecord[]>([[b.qps[0].qpn, []], [b.qps[1].qpn, []]]);
    for (const c of got) {
      expect([c.status, c.opcode]).toEqual([0, WC_RECV]);
      expect(byQp.has(c.qpNum)).toBe(true); // one of the two SRQ queue pairs, by its number
      byQp.get(c.qpNum)!.push(c);
    }
    // An RC queue pair delivers in order: the k-th completion naming B's QP q holds A's message k to it.
    const used = new Set<number>();
    for (let q = 0; q < 2; q++) {
      const list = byQp.get(b.qps[q].qpn)!;
      expect(list).toHaveLength(3);
      for (let k = 0; k < 3; k++) {
        const c = list[k];
        expect(c.wrId).toBeGreaterThanOrEqual(100); // the caller's wrId, not the SRQ's slot
        expect(c.wrId).toBeLessThan(108);
        expect(used.has(c.wrId)).toBe(false);
        used.add(c.wrId);
        expect(c.byteLen).toBe(msgs[q][k].length);
        const at = (c.wrId - 100) * SLOT;
        expect(same(inbox.subarray(at, at + c.byteLen), msgs[q][k])).toBe(true);
      }
    }
    expect(srq.outstanding).toBe(2);

    // A queue pair with an SRQ still sends (and its send completions are its own).
    const back = new Uint8Array(64);
    const bmr = a.pd.registerMemory(back);
    expect(a.qps[1].postRecv({ wrId: 55, sge: { mr: bmr } })).toBe(0);
    const reply = pattern(48, 99);
    expect(b.qps[1].postSend({ wrId: 7, sge: { mr: b.pd.registerMemory(reply) } })).toBe(0);
    expect((await b.cqs[1].next()).wrId).toBe(7);
    expect(b.qps[1].outstanding.send).toBe(0);
    const r = await a.cq.next();
    expect([r.wrId, r.byteLen, r.qpNum]).toEqual([55, 48, a.qps[1].qpn]);
    expect(same(back.subarray(0, 48), reply)).toBe(true);
    expect(srq.outstanding).toBe(2);
  });

  it('completions polled out of order, on two CQs, release exactly their own receives (duplicate wrIds too)', async () => {
    pair = srqPair({ twoCqs: true });
    const { a, b } = pair;
    const { srq } = b;
    const inboxes = [new Uint8Array(256), new Uint8Array(256)];
    const imrs = inboxes.map((x) => b.pd.registerMemory(x));
    // The same wrId for both: the SRQ tells them apart by slot, not by wrId.
    expect(srq.postRecv([{ wrId: 7, sge: { mr: imrs[0] } }, { wrId: 7, sge: { mr: imrs[1] } }])).toBe(0);
    const msgs = [pattern(200, 1), pattern(150, 2)];
    const smrs = msgs.map((m) => a.pd.registerMemory(m));
    // One after the other, each acknowledged, so both receives are complete before any poll.
    expect(a.qps[0].postSend({ wrId: 1, sge: { mr: smrs[0] } })).toBe(0);
    expect((await a.cq.next()).wrId).toBe(1);
    expect(a.qps[1].postSend({ wrId: 2, sge: { mr: smrs[1] } })).toBe(0);
    expect((await a.cq.next()).wrId).toBe(2);

    // Poll the second queue pair's CQ first.
    const second = await b.cqs[1].next();
    expect([second.wrId, second.qpNum, second.byteLen]).toEqual([7, b.qps[1].qpn, 150]);
    expect(srq.outstanding).toBe(1);
    const first = await b.cqs[0].next();
    expect([first.wrId, first.qpNum, first.byteLen]).toEqual([7, b.qps[0].qpn, 200]);
    expect(srq.outstanding).toBe(0);
    // Which buffer each message went to is the SRQ's choice; each holds exactly one of them.
    const holds = (x: Uint8Array, m: Uint8Array) => same(x.subarray(0, m.length), m);
    expect((holds(inboxes[0], msgs[0]) && holds(inboxes[1], msgs[1])) || (holds(inboxes[0], msgs[1]) && holds(inboxes[1], msgs[0]))).toBe(true);
  });

  it('a receive too small for its message completes with an error, the caller\'s wrId and its slot released', async () => {
    pair = srqPair();
    const { a, b } = pair;
    const { srq } = b;
    const small = b.pd.registerMemory(new Uint8Array(64));
    expect(srq.postRecv({ wrId: 31, sge: { mr: small } })).toBe(0);
    expect(a.qps[0].postSend({ wrId: 3, sge: { mr: a.pd.registerMemory(pattern(1000, 3)) } })).toBe(0);
    const failed = await b.cqs[0].collect(1);
    expect(failed[0].status).not.toBe(0);
    expect([failed[0].wrId, failed[0].qpNum]).toEqual([31, b.qps[0].qpn]);
    expect(srq.outstanding).toBe(0);
    const sent = await a.cq.collect(1); // the sender is refused too (a NAK)
    expect(sent[0].status).not.toBe(0);
    expect(completionError(failed[0])).toBeInstanceOf(WorkCompletionError);
  });

  it('prepared receives re-post on the SRQ and serve both queue pairs', async () => {
    pair = srqPair();
    const { a, b } = pair;
    const { srq } = b;
    const inbox = new Uint8Array(128);
    const imr = b.pd.registerMemory(inbox);
    const chain = srq.prepareRecv([{ wrId: 41, sge: { mr: imr, offset: 0, length: 64 } }, { wrId: 42, sge: { mr: imr, offset: 64, length: 64 } }]);
    expect([chain.count, chain.wrId]).toEqual([2, 41]);
    const src = new Uint8Array(32);
    const smr = a.pd.registerMemory(src);
    for (let round = 1; round <= 3; round++) {
      expect(chain.post()).toBe(0);
      expect(srq.outstanding).toBe(2);
      src.fill(round);
      expect(a.qps[0].postSend({ wrId: round, sge: { mr: smr } })).toBe(0);
      await a.cq.next();
      src.fill(round + 100);
      expect(a.qps[1].postSend({ wrId: round, sge: { mr: smr } })).toBe(0);
      await a.cq.next();
      const got = await b.cqs[0].collect(2);
      expect(got.map((c) => c.wrId).sort()).toEqual([41, 42]);
      expect(got.map((c) => c.qpNum).sort()).toEqual([b.qps[0].qpn, b.qps[1].qpn].sort());
      for (const c of got) {
        const at = (c.wrId - 41) * 64;
        const fill = c.qpNum === b.qps[0].qpn ? round : round + 100;
        expect(Array.from(inbox.subarray(at, at + 32))).toEqual(new Array(32).fill(fill));
      }
      expect(srq.outstanding).toBe(0);
    }
    expect(() => srq.prepareRecv([])).toThrow(UsageError);
    const other = b.pd.createSharedReceiveQueue({ maxWr: 4 });
    expect(() => other.postPreparedRecv(chain)).toThrow(UsageError); // prepared on another SRQ
    chain.dispose();
    chain.dispose();
    expect(() => srq.postPreparedRecv(chain)).toThrow(UsageError);
    srq.prepareRecv({ sge: { mr: imr } }); // left undisposed: freed with the SRQ
  });

  it('bad input is a typed error and leaves nothing posted', () => {
    pair = srqPair();
    const { a, b } = pair;
    const { pd, srq } = b;
    expect(() => pd.createSharedReceiveQueue({ maxWr: 0 })).toThrow(UsageError);
    expect(() => pd.createSharedReceiveQueue({} as SharedReceiveQueueOptions)).toThrow(/needs \{ maxWr \}/);
    expect(() => pd.createSharedReceiveQueue({ maxWr: 4, maxSge: 0 })).toThrow(UsageError);
    expect(() => pd.createSharedReceiveQueue({ maxWr: 4, maxSge: 256 })).toThrow(/maxSge must be an integer 1\.\.255/);
    expect(() => pd.createSharedReceiveQueue({ maxWr: 4, limit: 5 })).toThrow(UsageError);
    // More than the device allows is the device's refusal: a SystemError naming the call.
    const dev = b.ctx.query();
    expect(dev.maxSrq).toBeGreaterThan(0);
    if (dev.maxSrqSge < 255) {
      const e = (() => {
        try {
          pd.createSharedReceiveQueue({ maxWr: 4, maxSge: dev.maxSrqSge + 1 });
        } catch (error) {
          return error;
        }
      })();
      expect(e).toBeInstanceOf(SystemError);
      expect((e as SystemError).call).toBe('ibv_create_srq');
    }
    expect(liveVerbsObjects().srqs).toBe(1); // nothing half-made was left

    const mr = pd.registerMemory(new Uint8Array(256));
    const sge = { mr, length: 16 };
    expect(() => srq.postRecv({ sge: [sge, sge, sge] })).toThrow(/3 SGEs exceed this shared receive queue's max 2/);
    expect(() => srq.postRecv([{ wrId: 1, sge }, { wrId: -1, sge }])).toThrow(/wrId must be a non-negative safe integer/);
    expect(() => srq.postRecv({ sge: { mr, offset: 250, length: 16 } })).toThrow(/outside the region/);
    expect(() => srq.postRecv({ sge: { mr: a.pd.registerMemory(new Uint8Array(8)) } })).toThrow(/another protection domain/);
    expect(() => srq.postRecv(Array.from({ length: srq.maxChain + 1 }, () => ({ sge })))).toThrow(/exceeds maxChain/);
    expect(srq.outstanding).toBe(0); // nothing kept from refused posts
    expect(srq.postRecv([])).toBe(0);

    // A queue pair that receives through an SRQ does not take receives itself.
    const qp = b.qps[0];
    const refused = (() => {
      try {
        qp.postRecv({ sge });
      } catch (error) {
        return error;
      }
    })();
    expect(refused).toBeInstanceOf(UsageError);
    expect(refused).not.toBeInstanceOf(ClosedError); // the QP is alive: a usage mistake, not a closed handle
    expect((refused as Error).message).toMatch(/receives through a shared receive queue/);
    expect(() => qp.prepareRecv({ sge })).toThrow(UsageError);
    // The SRQ must be of the queue pair's own protection domain.
    expect(() => a.pd.createQueuePair({ sendCq: a.cq, srq })).toThrow(/queue pair's protection domain/);

    expect(() => srq.armLimit(0)).toThrow(UsageError);
    expect(() => srq.armLimit(srq.maxWr + 1)).toThrow(UsageError);
    mr.dispose();
    expect(() => srq.postRecv({ sge: { mr } })).toThrow(ClosedError);
  });

  it('a full SRQ answers ENOMEM with badIndex, keeps only what was posted, and works on after completions', async () => {
    pair = srqPair({ srq: { maxWr: 4, maxChain: 2 } });
    const { a, b } = pair;
    const { srq } = b;
    const imr = b.pd.registerMemory(new Uint8Array(64));
    // rxe grants exactly the capacity it reports (a power of two minus one, ≥ 4).
    for (let i = 0; i < srq.maxWr - 1; i++) expect(srq.postRecv({ wrId: i, sge: { mr: imr } })).toBe(0);
    // A chain of two with room for one: the provider takes the first and stops at the second.
    expect(srq.postRecv([{ wrId: 90, sge: { mr: imr } }, { wrId: 91, sge: { mr: imr } }])).toBe(12); // ENOMEM
    expect(srq.badIndex).toBe(1);
    expect(srq.outstanding).toBe(srq.maxWr);
    expect(srq.postRecv({ wrId: 92, sge: { mr: imr } })).toBe(12);
    expect(srq.badIndex).toBe(0);
    expect(srq.outstanding).toBe(srq.maxWr);
    // Two receives complete; two more can be posted again.
    const smr = a.pd.registerMemory(pattern(16, 1));
    expect(a.qps[0].postSend({ wrId: 1, sge: { mr: smr } })).toBe(0);
    expect(a.qps[1].postSend({ wrId: 2, sge: { mr: smr } })).toBe(0);
    await a.cq.collect(2);
    const got = await b.cqs[0].collect(2);
    const posted = [...Array.from({ length: srq.maxWr - 1 }, (_, i) => i), 90];
    expect(got.every((c) => c.status === 0 && posted.includes(c.wrId))).toBe(true);
    expect(got[0].wrId).not.toBe(got[1].wrId);
    expect(srq.outstanding).toBe(srq.maxWr - 2);
    expect(srq.postRecv([{ wrId: 93, sge: { mr: imr } }, { wrId: 94, sge: { mr: imr } }])).toBe(0);
    expect(srq.badIndex).toBe(-1);
    expect(srq.outstanding).toBe(srq.maxWr);
  });

  it('the limit is armed, reported by query(), fires IBV_EVENT_SRQ_LIMIT_REACHED naming the SRQ, and disarms', async () => {
    pair = srqPair({ srq: { maxWr: 8, limit: 3 } });
    const { a, b } = pair;
    const { srq } = b;
    const attrs = srq.query();
    expect(attrs.maxWr).toBeGreaterThanOrEqual(8);
    expect(attrs.maxSge).toBeGreaterThanOrEqual(1);
    expect(attrs.limit).toBe(3);
    const imr = b.pd.registerMemory(new Uint8Array(4 * 64));
    for (let i = 0; i < 4; i++) expect(srq.postRecv({ wrId: i, sge: { mr: imr, offset: i * 64, length: 64 } })).toBe(0);
    const smr = a.pd.registerMemory(pattern(32, 5));
    for (let i = 0; i < 2; i++) expect(a.qps[0].postSend({ wrId: i, sge: { mr: smr } })).toBe(0);
    await a.cq.collect(2);
    await b.cqs[0].collect(2);
    expect(srq.outstanding).toBe(2); // below the limit of 3: the device raised the event and disarmed
    const event = await b.ctx.nextAsyncEvent({ timeoutMs: 10_000 });
    expect(event).toMatchObject({ name: 'IBV_EVENT_SRQ_LIMIT_REACHED', code: 15, element: srq.handle });
    expect(event?.srq).toBe(srq);
    expect(await b.ctx.nextAsyncEvent({ timeoutMs: 100 })).toBeNull(); // one event, acknowledged
    expect(await a.ctx.nextAsyncEvent({ timeoutMs: 100 })).toBeNull(); // and none on the other device
    expect(srq.query().limit).toBe(0);
    srq.armLimit(1);
    expect(srq.query().limit).toBe(1);
  });

  it('posting on a disposed SRQ is a ClosedError; dispose is idempotent and goes after the QPs that use it', () => {
    pair = srqPair();
    const { b } = pair;
    const { srq, pd } = b;
    const mr = pd.registerMemory(new Uint8Array(64));
    expect(srq.postRecv({ wrId: 1, sge: { mr } })).toBe(0);
    expect(liveVerbsObjects()).toMatchObject({ srqs: 1, qps: 4 });
    srq.dispose(); // disposes the two queue pairs that use it first (else ibv_destroy_srq: EBUSY)
    expect(srq.disposed).toBe(true);
    expect(b.qps.map((q) => q.disposed)).toEqual([true, true]);
    expect(liveVerbsObjects()).toMatchObject({ srqs: 0, qps: 2 });
    srq.dispose(); // twice
    expect(srq.outstanding).toBe(0);
    expect(() => srq.postRecv({ wrId: 2, sge: { mr } })).toThrow(ClosedError);
    expect(() => srq.prepareRecv({ sge: { mr } })).toThrow(ClosedError);
    expect(() => srq.query()).toThrow(ClosedError);
    expect(() => srq.armLimit(1)).toThrow(ClosedError);
    expect(() => b.qps[0].postRecv({ sge: { mr } })).toThrow(ClosedError);
    expect(() => pd.createQueuePair({ sendCq: b.cqs[0], srq })).toThrow(ClosedError);

    // The PD disposes its queue pairs before its SRQs: no EBUSY, nothing left.
    const srq2 = pd.createSharedReceiveQueue({ maxWr: 4 });
    const qp2 = pd.createQueuePair({ sendCq: b.cqs[0], srq: srq2 });
    expect(srq2.postRecv({ sge: { mr } })).toBe(0);
    expect(liveVerbsObjects()).toMatchObject({ srqs: 1, qps: 3 });
    pd.dispose();
    expect([qp2.disposed, srq2.disposed]).toEqual([true, true]);
    expect(liveVerbsObjects()).toMatchObject({ srqs: 0, qps: 2, mrs: 0 });
    srq2.dispose();
    // And a context disposes an SRQ still in use without being told the order.
    using ctx = Context.open(DEV1);
    const pd3 = ctx.allocPd();
    const cq3 = ctx.createCompletionQueue();
    const srq3 = pd3.createSharedReceiveQueue({ maxWr: 4 });
    pd3.createQueuePair({ sendCq: cq3, srq: srq3 });
    expect(srq3).toBeInstanceOf(SharedReceiveQueue);
  });
});
