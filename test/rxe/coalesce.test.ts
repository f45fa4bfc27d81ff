/**
 * RDMA requests (seed 002) on real Soft-RoCE devices: random element chains (1 B to 3× a lowered
 * max message size, and once above the device's real limit) WRITTEN and READ byte for byte, with
 * a send queue of depth 4 so that every request continues as completions free slots; an error in
 * the middle of a request (a remote range past the peer's region, a wrong rkey) settles it with
 * the typed error and the bytes known completed, and later requests with FlushedError; dispose
 * with requests in flight rejects them with ClosedError after the flush. Prepared requests
 * (prepare / submitPrepared / runPrepared) the same: byte-exact, several submissions of one at
 * once through a send queue of depth 4, a failure mid-request. After every test, no verbs object
 * is left alive.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { backend } from '../../ffi/backend.js';
import { runtimeName } from '../../ffi/runtime.js';
import {
  ClosedError,
  countWorkRequests,
  FlushedError,
  RemoteAccessError,
  RequestEngine,
  UsageError,
  type MemoryRegion,
  type RequestElement,
  type RequestFailure,
} from '../../src/index.js';
import { connectedPair, DEV0, DEV1, disposePair, expectNothingLive, pattern, skipReason, suffix, type Side } from './helpers.js';

/** A small deterministic PRNG (xorshift32), so a failing chain can be replayed from its seed. */
function prng(seed: number): (n: number) => number {
  let x = seed >>> 0 || 1;
  return (n: number) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
}

/**
 * A random chain for `mr` (local bytes [0, mr.length)) and a remote region of `remoteBytes`:
 * element lengths 1..3×maxMsg, local pieces disjoint (so a READ's scatter is checkable) and in
 * random places, remote ranges in order, mostly contiguous, sometimes with a gap.
 */
function randomChain(rand: (n: number) => number, mr: MemoryRegion, remoteBytes: number, maxMsg: number, count: number): RequestElement[] {
  const lengths = Array.from({ length: count }, () => 1 + rand(3 * maxMsg));
  // Disjoint local pieces: shuffle the order of equal-width lanes.
  const lane = Math.floor(mr.length / count);
  const lanes = Array.from({ length: count }, (_, i) => i);
  for (let i = count - 1; i > 0; i--) {
    const j = rand(i + 1);
    [lanes[i], lanes[j]] = [lanes[j], lanes[i]];
  }
  const elements: RequestElement[] = [];
  let remote = rand(64);
  for (let i = 0; i < count; i++) {
    const length = Math.min(lengths[i], lane);
    if (rand(4) === 0) remote += 1 + rand(100); // a gap: a new remote run
    if (remote + length > remoteBytes) break;
    const slack = lane - length;
    // Sometimes adjacent to the previous piece in the same region: one merged SGE.
    elements.push({ mr, offset: lanes[i] * lane + (slack > 0 ? rand(slack + 1) : 0), length, remoteOffset: remote });
    remote += length;
  }
  return elements;
}

describe.skipIf(!!skipReason)(`RDMA requests on ${DEV0}/${DEV1} (${runtimeName}, ${backend.name})${suffix}`, () => {
  let pair: [Side, Side] | undefined;
  afterEach(() => {
    disposePair(pair);
    pair = undefined;
    expectNothingLive();
  });

  it('queries the limits from the device and lowers them on request', () => {
    pair = connectedPair({ maxSendWr: 4, maxSendSge: 8 });
    const [a] = pair;
    using engine = new RequestEngine(a.qp);
    const port = a.ctx.queryPort(1);
    expect(engine.limits.maxMessageSize).toBe(Math.min(port.maxMessageSize, 2 ** 31));
    expect(engine.limits.maxWriteSge).toBe(a.qp.maxSendSge);
    expect(engine.limits.maxReadSge).toBe(Math.min(a.qp.maxSendSge, a.ctx.query().maxSgeRd));
    expect(engine.limits.maxReadsInFlight).toBe(a.qp.maxRdAtomic);
    expect(a.qp.maxRdAtomic).toBeGreaterThan(0);
    using lowered = new RequestEngine(a.qp, { maxMessageSize: 1000, maxWriteSge: 2, maxReadsInFlight: 1 });
    expect(lowered.limits).toMatchObject({ maxMessageSize: 1000, maxWriteSge: 2, maxReadsInFlight: 1 });
    expect(() => new RequestEngine(a.qp, { maxWriteSge: a.qp.maxSendSge + 1 })).toThrow(UsageError);
    expect(() => new RequestEngine(a.qp, { maxMessageSize: 0 })).toThrow(UsageError);
  });

  for (const op of ['write', 'read'] as const) {
    it(`${op.toUpperCase()}: random chains of 1 B to 3× a lowered max message size, byte-exact, send queue depth 4`, async () => {
      pair = connectedPair({ maxSendWr: 4, maxSendSge: 8 });
      const [a, b] = pair;
      const maxMsg = 1500;
      using engine = new RequestEngine(a.qp, { maxMessageSize: maxMsg });
      const localBytes = 1 << 18;
      const remoteBytes = 1 << 18;
      const local = new Uint8Array(localBytes);
      const remote = new Uint8Array(remoteBytes);
      const lmr = a.pd.registerMemory(local);
      const rmr = b.pd.registerMemory(remote, { remoteWrite: true, remoteRead: true });
      let workRequests = 0;
      for (let seed = 1; seed <= 12; seed++) {
        const rand = prng(seed * 7919 + (op === 'read' ? 1 : 0));
        local.set(pattern(localBytes, seed));
        remote.set(pattern(remoteBytes, seed + 1000));
        const elements = randomChain(rand, lmr, remoteBytes, maxMsg, 2 + rand(40));
        const maxSge = 1 + rand(engine.limits[op === 'read' ? 'maxReadSge' : 'maxWriteSge']);
        const expectedLocal = local.slice();
        const expectedRemote = remote.slice();
        let total = 0;
        for (const e of elements) {
          if (op === 'write') expectedRemote.set(local.subarray(e.offset!, e.offset! + e.length), e.remoteOffset);
          else expectedLocal.set(remote.subarray(e.remoteOffset, e.remoteOffset + e.length), e.offset!);
          total += e.length;
        }
        workRequests += countWorkRequests(elements, { maxMessageSize: maxMsg, maxSge });
        const moved = await (op === 'write' ? engine.write(rmr.remote(), elements, { maxSge }) : engine.read(rmr.remote(), elements, { maxSge }));
        expect(moved).toBe(total);
        if (op === 'write') expect(Buffer.compare(remote, expectedRemote), `seed ${seed}`).toBe(0);
        else expect(Buffer.compare(local, expectedLocal), `seed ${seed}`).toBe(0);
      }
      expect(workRequests).toBeGreaterThan(12 * 4); // many more work requests than the queue holds
      expect(engine.pending).toBe(0);
      expect(a.qp.outstanding.send).toBe(0);
    });
  }

  it('the submit/progress form: many requests at once, WRITE then READ back, settled in order with their tags', async () => {
    pair = connectedPair({ maxSendWr: 4, maxSendSge: 8 });
    const [a, b] = pair;
    using engine = new RequestEngine(a.qp, { maxMessageSize: 700, maxRequests: 8, postList: 3, maxReadsInFlight: 2 });
    const src = pattern(1 << 16, 5);
    const back = new Uint8Array(1 << 16);
    const smr = a.pd.registerMemory(src);
    const bmr = a.pd.registerMemory(back);
    const rmr = b.pd.registerMemory(new Uint8Array(1 << 16), { remoteWrite: true, remoteRead: true });
    const rand = prng(42);
    // Ten chains, each in its own tenth of the remote region so that the WRITEs do not overlap.
    const area = Math.floor((1 << 16) / 10);
    const placed = Array.from({ length: 10 }, (_, i) => randomChain(rand, smr, area, 700, 3 + rand(10)).map((e) => ({ ...e, remoteOffset: i * area + e.remoteOffset })));
    const settledTags: number[] = [];
    const deadline = Date.now() + 30_000;
    let next = 0;
    while (settledTags.length < placed.length) {
      if (next < placed.length) {
        const id = engine.submit('write', rmr.remote(), placed[next], 100 + next);
        if (id >= 0) next++;
        else expect(id).toBe(-11); // the table of 8 is full: try again after progress
      }
      const n = engine.progress();
      for (let i = 0; i < n; i++) {
        expect(engine.settled.error[i]).toBeUndefined();
        settledTags.push(engine.settled.tag[i]);
      }
      if (Date.now() > deadline) throw new Error(`only ${settledTags.length} of ${placed.length} requests settled`);
    }
    expect(settledTags).toEqual(placed.map((_, i) => 100 + i));
    // READ each chain back into the same local offsets of another region.
    for (let i = 0; i < placed.length; i++) {
      const readBack = placed[i].map((e) => ({ ...e, mr: bmr }));
      expect(await engine.read(rmr.remote(), readBack)).toBe(readBack.reduce((s, e) => s + e.length, 0));
      for (const e of placed[i]) expect(Buffer.compare(back.subarray(e.offset!, e.offset! + e.length), src.subarray(e.offset!, e.offset! + e.length))).toBe(0);
    }
  });

  it('one request above the device\'s real max message size (and a READ of it back), byte-exact', async () => {
    pair = connectedPair({ maxSendWr: 4, maxSendSge: 4 });
    const [a, b] = pair;
    using engine = new RequestEngine(a.qp);
    const maxMsg = engine.limits.maxMessageSize;
    const size = Math.min(maxMsg, 8 << 20) + (1 << 20) + 12345; // 9 MiB + on rxe's 8 MiB; above it wherever the limit is ≤ 8 MiB
    const src = pattern(size, 77);
    const dst = new Uint8Array(size);
    const back = new Uint8Array(size);
    const smr = a.pd.registerMemory(src);
    const bmr = a.pd.registerMemory(back);
    const rmr = b.pd.registerMemory(dst, { remoteWrite: true, remoteRead: true });
    // Two elements: most of it, then the tail, both to one contiguous remote range.
    const cut = size - 4096;
    const elements = [{ mr: smr, offset: 0, length: cut, remoteOffset: 0 }, { mr: smr, offset: cut, length: size - cut, remoteOffset: cut }];
    if (size > maxMsg) expect(countWorkRequests(elements, { maxMessageSize: maxMsg, maxSge: 4 })).toBeGreaterThanOrEqual(2);
    expect(await engine.write(rmr.remote(), elements)).toBe(size);
    expect(Buffer.compare(dst, src)).toBe(0);
    expect(await engine.read(rmr.remote(), [{ mr: bmr, offset: 0, length: size, remoteOffset: 0 }])).toBe(size);
    expect(Buffer.compare(back, src)).toBe(0);
  });

  it('an error in the middle of a request: the typed error with the bytes known completed; later requests flush', async () => {
    pair = connectedPair({ maxSendWr: 4, maxSendSge: 4 });
    const [a, b] = pair;
    using engine = new RequestEngine(a.qp, { maxMessageSize: 1024 });
    const src = pattern(16384, 9);
    const smr = a.pd.registerMemory(src);
    const real = new Uint8Array(4096);
    const rmr = b.pd.registerMemory(real, { remoteWrite: true });
    // The peer's region is 4 KiB; this request claims 16 KiB: work requests 0-3 land, the 5th is refused.
    const lie = { ...rmr.remote(), length: 16384 };
    const good = engine.write(rmr.remote(), [{ mr: smr, offset: 0, length: 2048, remoteOffset: 0 }]);
    const failing = engine.write(lie, [{ mr: smr, offset: 0, length: 8192, remoteOffset: 0 }]);
    const later = engine.write(rmr.remote(), [{ mr: smr, offset: 0, length: 100, remoteOffset: 0 }]);
    expect(await good).toBe(2048);
    const error = (await failing.catch((e: unknown) => e)) as RemoteAccessError & RequestFailure;
    expect(error).toBeInstanceOf(RemoteAccessError);
    expect(error.bytesCompleted).toBe(4096);
    expect(error.requestBytes).toBe(8192);
    expect(error.qpState).toBe('ERR');
    expect(error.message).toMatch(/4096 of 8192 bytes known completed; queue pair \d+ is ERR/);
    expect(Buffer.compare(real, src.subarray(0, 4096))).toBe(0); // what completed is really there
    const flushed = (await later.catch((e: unknown) => e)) as FlushedError & RequestFailure;
    expect(flushed).toBeInstanceOf(FlushedError);
    expect(flushed.bytesCompleted).toBe(0);
    // Submitted after the failure: flushed without being posted.
    await expect(engine.write(rmr.remote(), [{ mr: smr, offset: 0, length: 10, remoteOffset: 0 }])).rejects.toBeInstanceOf(FlushedError);
    expect(engine.inFlight).toBe(0);
    expect(a.qp.outstanding.send).toBe(0);
  });

  it('a wrong rkey: RemoteAccessError with nothing completed', async () => {
    pair = connectedPair({ maxSendWr: 4, maxSendSge: 4 });
    const [a, b] = pair;
    using engine = new RequestEngine(a.qp);
    const smr = a.pd.registerMemory(pattern(4096, 3));
    const rmr = b.pd.registerMemory(new Uint8Array(4096), { remoteRead: true });
    const error = (await engine.read({ ...rmr.remote(), rkey: (rmr.rkey ^ 0x5a5a00) >>> 0 }, [{ mr: smr, length: 4096, remoteOffset: 0 }]).catch((e: unknown) => e)) as RemoteAccessError & RequestFailure;
    expect(error).toBeInstanceOf(RemoteAccessError);
    expect(error.bytesCompleted).toBe(0);
    expect(a.qp.queryState()).toBe('ERR');
  });

  it('refuses malformed requests before posting anything', () => {
    pair = connectedPair({ maxSendWr: 4, maxSendSge: 4 });
    const [a, b] = pair;
    using engine = new RequestEngine(a.qp);
    const smr = a.pd.registerMemory(new Uint8Array(100));
    const ro = a.pd.registerMemory(new Uint8Array(100), { localWrite: false });
    const other = b.pd.registerMemory(new Uint8Array(100));
    const remote = { addr: 0, rkey: 1, length: 100 };
    expect(() => engine.submit('write', remote, [{ mr: smr, offset: 50, length: 51, remoteOffset: 0 }])).toThrow(UsageError);
    expect(() => engine.submit('write', remote, [{ mr: smr, length: 10, remoteOffset: 95 }])).toThrow(UsageError);
    expect(() => engine.submit('write', remote, [{ mr: other, length: 10, remoteOffset: 0 }])).toThrow(UsageError);
    expect(() => engine.submit('read', remote, [{ mr: ro, length: 10, remoteOffset: 0 }])).toThrow(UsageError);
    expect(() => engine.submit('write', remote, [{ mr: smr, length: 10, remoteOffset: 0 }], 0, { maxMessageSize: 0 })).toThrow(UsageError);
    expect(() => engine.submit('send' as 'write', remote, [])).toThrow(UsageError);
    smr.dispose();
    expect(() => engine.submit('write', remote, [{ mr: smr, length: 10, remoteOffset: 0 }])).toThrow(ClosedError);
    expect(engine.inFlight).toBe(0);
  });

  it('dispose while requests are in flight: ClosedError after the queue pair is flushed; nothing left posted', async () => {
    pair = connectedPair({ maxSendWr: 4, maxSendSge: 4 });
    const [a, b] = pair;
    const engine = new RequestEngine(a.qp, { maxMessageSize: 4096 });
    const size = 4 << 20;
    const smr = a.pd.registerMemory(new Uint8Array(size));
    const rmr = b.pd.registerMemory(new Uint8Array(size), { remoteWrite: true });
    const inFlight = engine.write(rmr.remote(), [{ mr: smr, length: size, remoteOffset: 0 }]);
    const queued = engine.write(rmr.remote(), [{ mr: smr, length: 10, remoteOffset: 0 }]);
    expect(engine.inFlight).toBeGreaterThan(0);
    engine.dispose();
    engine.dispose(); // twice
    expect(engine.inFlight).toBe(0);
    expect(a.qp.outstanding.send).toBe(0); // every posted work request was flushed and reaped
    const e1 = await inFlight.catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(ClosedError);
    expect((e1 as RequestFailure).bytesCompleted).toBeLessThan(size);
    await expect(queued).rejects.toBeInstanceOf(ClosedError);
    expect(() => engine.submit('write', rmr.remote(), [])).toThrow(ClosedError);
    expect(a.qp.queryState()).toBe('ERR');
  });

  it('a prepared post list (prepareSend of a chain): one call posts all, only the last signaled', async () => {
    pair = connectedPair({ maxSendWr: 8, maxSendSge: 1 });
    const [a, b] = pair;
    const src = pattern(3 * 1000, 12);
    const dst = new Uint8Array(3 * 1000);
    const smr = a.pd.registerMemory(src);
    const rmr = b.pd.registerMemory(dst, { remoteWrite: true });
    const list = [0, 1, 2].map((i) => ({ wrId: 50 + i, opcode: 'write' as const, sge: { mr: smr, offset: i * 1000, length: 1000 }, remoteAddr: rmr.addr + i * 1000, rkey: rmr.rkey, signaled: i === 2 }));
    using prepared = a.qp.prepareSend(list);
    expect(prepared.count).toBe(3);
    expect(a.qp.postPrepared(prepared)).toBe(0);
    expect(a.qp.outstanding.send).toBe(3);
    expect(a.qp.postPrepared(prepared)).toBe(0);
    expect(a.qp.postPrepared(prepared)).toBe(12); // 6 of 8 slots taken: the chain of 3 does not fit
    const done = await a.cq.collect(2);
    expect(done.map((c) => [c.wrId, c.status])).toEqual([[52, 0], [52, 0]]);
    expect(a.qp.outstanding.send).toBe(0);
    expect(Buffer.compare(dst, src)).toBe(0);
    expect(() => a.qp.prepareSend([])).toThrow(UsageError);
  });

  it('prepared requests: WRITE and READ byte-exact, each submitted many times at once through a send queue of depth 4', async () => {
    pair = connectedPair({ maxSendWr: 4, maxSendSge: 8 });
    const [a, b] = pair;
    const maxMsg = 1500;
    using engine = new RequestEngine(a.qp, { maxMessageSize: maxMsg, postOnSubmit: false });
    const bytes = 1 << 17;
    const local = pattern(bytes, 21);
    const back = new Uint8Array(bytes);
    const lmr = a.pd.registerMemory(local);
    const bmr = a.pd.registerMemory(back);
    const remote = new Uint8Array(bytes);
    const rmr = b.pd.registerMemory(remote, { remoteWrite: true, remoteRead: true });
    for (let seed = 1; seed <= 6; seed++) {
      const rand = prng(seed * 104729);
      const elements = randomChain(rand, lmr, bytes, maxMsg, 2 + rand(30));
      const maxSge = 1 + rand(8);
      const total = elements.reduce((s, e) => s + e.length, 0);
      using write = engine.prepare('write', rmr.remote(), elements, { maxSge });
      expect(write.workRequests).toBe(countWorkRequests(elements, { maxMessageSize: maxMsg, maxSge }));
      remote.fill(0);
      // The same prepared WRITE three times at once (its work requests continue through 4 slots), then READ back.
      const ids = [0, 1, 2].map((r) => engine.submitPrepared(write, r));
      expect(ids.every((id) => id >= 0)).toBe(true);
      const settled: [number, number][] = [];
      const deadline = Date.now() + 30_000;
      while (settled.length < 3) {
        const n = engine.progress();
        for (let i = 0; i < n; i++) {
          expect(engine.settled.error[i]).toBeUndefined();
          settled.push([engine.settled.tag[i], engine.settled.bytes[i]]);
        }
        if (Date.now() > deadline) throw new Error(`seed ${seed}: only ${settled.length} of 3 prepared WRITEs settled`);
      }
      expect(settled).toEqual([[0, total], [1, total], [2, total]]);
      for (const e of elements) expect(Buffer.compare(remote.subarray(e.remoteOffset, e.remoteOffset + e.length), local.subarray(e.offset!, e.offset! + e.length)), `seed ${seed}`).toBe(0);
      back.fill(0);
      using read = engine.prepare('read', rmr.remote(), elements.map((e) => ({ ...e, mr: bmr })), { maxSge: Math.min(maxSge, engine.limits.maxReadSge) });
      expect(await engine.runPrepared(read)).toBe(total);
      for (const e of elements) expect(Buffer.compare(back.subarray(e.offset!, e.offset! + e.length), local.subarray(e.offset!, e.offset! + e.length)), `seed ${seed}`).toBe(0);
    }
    expect(a.qp.outstanding.send).toBe(0);
  });

  it('a prepared request that fails mid-way: RemoteAccessError with the bytes known completed; later submissions flush', async () => {
    pair = connectedPair({ maxSendWr: 4, maxSendSge: 4 });
    const [a, b] = pair;
    using engine = new RequestEngine(a.qp, { maxMessageSize: 1024 });
    const src = pattern(16384, 19);
    const smr = a.pd.registerMemory(src);
    const real = new Uint8Array(4096);
    const rmr = b.pd.registerMemory(real, { remoteWrite: true });
    const good = engine.prepare('write', rmr.remote(), [{ mr: smr, offset: 0, length: 2048, remoteOffset: 0 }]);
    // Claims 16 KiB of a 4 KiB region: work requests 0-3 land, the 5th is refused.
    const failing = engine.prepare('write', { ...rmr.remote(), length: 16384 }, [{ mr: smr, offset: 0, length: 8192, remoteOffset: 0 }]);
    const first = engine.runPrepared(good);
    const broken = engine.runPrepared(failing);
    const later = engine.runPrepared(good);
    expect(await first).toBe(2048);
    const error = (await broken.catch((e: unknown) => e)) as RemoteAccessError & RequestFailure;
    expect(error).toBeInstanceOf(RemoteAccessError);
    expect([error.bytesCompleted, error.requestBytes, error.qpState]).toEqual([4096, 8192, 'ERR']);
    expect(Buffer.compare(real, src.subarray(0, 4096))).toBe(0);
    await expect(later).rejects.toBeInstanceOf(FlushedError);
    await expect(engine.runPrepared(good)).rejects.toBeInstanceOf(FlushedError);
    expect([good.inUse, failing.inUse, engine.inFlight, a.qp.outstanding.send]).toEqual([0, 0, 0, 0]);
    smr.dispose();
    expect(() => engine.submitPrepared(good)).toThrow(ClosedError); // its region is gone
  });

  it('an empty request settles at once with 0 bytes', async () => {
    pair = connectedPair();
    const [a, b] = pair;
    using engine = new RequestEngine(a.qp);
    const rmr = b.pd.registerMemory(new Uint8Array(10), { remoteWrite: true });
    expect(await engine.write(rmr.remote(), [])).toBe(0);
    const smr = a.pd.registerMemory(new Uint8Array(10));
    expect(await engine.write(rmr.remote(), [{ mr: smr, length: 0, remoteOffset: 3 }])).toBe(0);
  });
});
