/**
 * Prepared requests (src/coalesce/prepared.ts, RequestEngine.prepare / submitPrepared /
 * runPrepared) against the in-process fake queue pair (coalesce-fake.ts): a prepared request posts
 * exactly the work requests the planner gives for its elements, byte-exact, however often it is
 * submitted at once (several submissions in one ibv_post_send chain share its SGE lists); it
 * continues through a tiny send queue; an error mid-request settles it with the typed error and
 * the bytes before it; its life cycle (dispose while in use, a region gone, another engine's,
 * the engine's dispose) gives the typed errors. The real posting runs in test/rxe/coalesce.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { RequestEngine } from '../../src/coalesce/engine.js';
import { planRequest } from '../../src/coalesce/plan.js';
import type { RequestElement } from '../../src/coalesce/types.js';
import { ClosedError, UsageError } from '../../src/errors.js';
import { FlushedError, RemoteAccessError } from '../../src/verbs/errors.js';
import type { MemoryRegion } from '../../src/verbs/memory-region.js';
import { countPosts, drain, fakeMr, setup } from './coalesce-fake.js';

/** 20 elements of 64 B, 128 B apart locally from `local`, contiguous remotely from `remote`. */
function strided(mr: MemoryRegion, local: number, remote: number, count = 20): RequestElement[] {
  return Array.from({ length: count }, (_, i) => ({ mr, offset: local + i * 128, length: 64, remoteOffset: remote + i * 64 }));
}

describe('prepared requests (in-process fake queue pair)', () => {
  it('posts exactly the planned work requests, byte-exact, submitted many times at once through a send queue of depth 4', () => {
    const s = setup(4);
    try {
      const engine = new RequestEngine(s.qp, { postOnSubmit: false, postList: 4 });
      for (let i = 0; i < s.local.size; i++) s.local.bytes[i] = (i * 11 + 5) & 0xff;
      const elements = strided(s.mr, 0, 1000);
      const plan = planRequest(elements, { maxMessageSize: engine.limits.maxMessageSize, maxSge: 8 });
      expect(plan.length).toBe(3); // 20 SGEs at 8 per work request
      using prepared = engine.prepare('write', s.region, elements);
      expect([prepared.workRequests, prepared.bytes, prepared.maxSge]).toEqual([3, 20 * 64, 8]);
      // Six submissions at once: 18 work requests through 4 slots, chains of up to 4.
      for (let r = 0; r < 6; r++) expect(engine.submitPrepared(prepared, 100 + r)).toBe(r);
      expect(prepared.inUse).toBe(6);
      const seen: typeof s.fake.sq = [];
      const post = s.fake.postSendChain.bind(s.fake);
      s.fake.postSendChain = ((...args: Parameters<typeof post>) => {
        const before = s.fake.sq.length;
        const rc = post(...args);
        seen.push(...s.fake.sq.slice(before));
        return rc;
      }) as typeof post;
      const settled = drain(engine);
      expect(settled.map((x) => [x.tag, x.bytes, x.error])).toEqual(Array.from({ length: 6 }, (_, r) => [100 + r, 20 * 64, undefined]));
      expect(prepared.inUse).toBe(0);
      // Every submission's work requests are the plan's: remote address, SGEs (address, length, lkey), the region referenced.
      expect(seen.length).toBe(18);
      seen.forEach((wr, i) => {
        const p = plan[i % 3];
        expect(wr.read).toBe(false);
        expect(wr.rkey).toBe(s.region.rkey);
        expect(wr.remote).toBe(s.region.addr + p.remoteOffset);
        expect(wr.sges).toEqual(p.sges.map((g) => ({ addr: s.mr.addr + g.offset, length: g.length, lkey: s.mr.lkey })));
        expect(wr.refLkeys).toEqual([s.mr.lkey]);
      });
      expect(Buffer.compare(s.remote.bytes.subarray(1000, 1000 + 20 * 64), Buffer.concat(elements.map((e) => s.local.bytes.subarray(e.offset!, e.offset! + 64))))).toBe(0);
      expect(engine.inFlight).toBe(0);
      engine.dispose();
    } finally {
      s.free();
    }
  });

  it('several submissions of one prepared request go in one ibv_post_send, sharing its SGE list; READ scatters byte-exact', () => {
    const s = setup(16);
    try {
      const engine = new RequestEngine(s.qp, { postOnSubmit: false, postList: 16 });
      for (let i = 0; i < s.local.size; i++) s.local.bytes[i] = (i * 3 + 1) & 0xff;
      const elements = strided(s.mr, 4096, 512, 8); // one work request of 8 SGEs
      const prepared = engine.prepare('write', s.region, elements);
      expect(prepared.workRequests).toBe(1);
      const posts = countPosts(s.fake);
      for (let r = 0; r < 5; r++) engine.submitPrepared(prepared, r);
      expect(engine.post()).toBe(0);
      expect(posts.calls).toBe(1);
      expect(s.fake.sq.length).toBe(5);
      expect(new Set(s.fake.sq.map((w) => w.wrId)).size).toBe(5); // distinct wr_ids, one SGE list
      expect(s.fake.sq.every((w) => !w.read && w.sges.length === 8)).toBe(true);
      expect(drain(engine).map((x) => x.bytes)).toEqual([512, 512, 512, 512, 512]);
      // READ it back scattered elsewhere (the READ window of the fake is 4: it continues).
      const back = strided(s.mr, 20000, 512, 8);
      const read = engine.prepare('read', s.region, back);
      for (let r = 0; r < 5; r++) engine.submitPrepared(read, r);
      expect(drain(engine).map((x) => x.bytes)).toEqual([512, 512, 512, 512, 512]);
      expect(s.fake.maxReadsSeen).toBeLessThanOrEqual(engine.limits.maxReadsInFlight);
      for (let i = 0; i < 8; i++) expect(Buffer.compare(s.local.bytes.subarray(back[i].offset!, back[i].offset! + 64), s.local.bytes.subarray(elements[i].offset!, elements[i].offset! + 64))).toBe(0);
      // Mixed with plain submissions in one chain: each keeps its own SGEs.
      engine.submit('write', s.region, [{ mr: s.mr, offset: 0, length: 32, remoteOffset: 8000 }], 9);
      engine.submitPrepared(prepared, 10);
      engine.submit('write', s.region, [{ mr: s.mr, offset: 100, length: 16, remoteOffset: 9000 }], 11);
      engine.post();
      expect(s.fake.sq.map((w) => w.sges.length)).toEqual([1, 8, 1]);
      expect(drain(engine).map((x) => [x.tag, x.bytes])).toEqual([[9, 32], [10, 512], [11, 16]]);
      engine.dispose();
      expect(prepared.disposed).toBe(true); // the engine disposes what it prepared
      expect(() => engine.submitPrepared(prepared)).toThrow(ClosedError);
    } finally {
      s.free();
    }
  });

  it('maxSge 1: one work request per element, and options are checked as submit checks them', () => {
    const s = setup(8);
    try {
      const engine = new RequestEngine(s.qp);
      const elements = strided(s.mr, 0, 0, 12);
      const single = engine.prepare('write', s.region, elements, { maxSge: 1 });
      expect(single.workRequests).toBe(12);
      expect(Array.from(single.wrSgeCount)).toEqual(new Array(12).fill(1));
      engine.submitPrepared(single, 1);
      expect(drain(engine)).toEqual([{ id: 0, tag: 1, bytes: 12 * 64, error: undefined }]);
      const divided = engine.prepare('write', s.region, [{ mr: s.mr, offset: 0, length: 1000, remoteOffset: 0 }], { maxMessageSize: 300 });
      expect(Array.from(divided.wrBytes)).toEqual([300, 300, 300, 100]);
      expect(() => engine.prepare('write', s.region, elements, { maxSge: 9 })).toThrow(UsageError);
      expect(() => engine.prepare('write', s.region, elements, { maxMessageSize: 0 })).toThrow(UsageError);
      expect(() => engine.prepare('write', s.region, [{ mr: s.mr, offset: 0, length: 10, remoteOffset: s.region.length }])).toThrow(UsageError);
      expect(() => engine.prepare('send' as 'write', s.region, elements)).toThrow(UsageError);
      // An empty prepared request settles at once with 0 bytes.
      const empty = engine.prepare('write', s.region, []);
      expect(empty.workRequests).toBe(0);
      engine.submitPrepared(empty, 3);
      expect([engine.settled.count, engine.settled.bytes[0], engine.pending]).toEqual([1, 0, 0]);
      engine.dispose();
    } finally {
      s.free();
    }
  });

  it('an error mid-request: RemoteAccessError with the bytes before it; later submissions flush', () => {
    const s = setup(4);
    try {
      const engine = new RequestEngine(s.qp, { maxMessageSize: 1000 });
      const lie = { ...s.region, length: 1 << 20 };
      const good = engine.prepare('write', s.region, [{ mr: s.mr, length: 500, remoteOffset: 0 }]);
      const failing = engine.prepare('write', lie, [{ mr: s.mr, length: 5000, remoteOffset: (1 << 16) - 3000 }]); // WRs 1-3 land, the 4th is past the end
      engine.submitPrepared(good, 1);
      engine.submitPrepared(failing, 2);
      engine.submitPrepared(good, 3);
      const settled = drain(engine);
      expect(settled.map((x) => [x.tag, x.bytes, x.error?.constructor.name])).toEqual([
        [1, 500, undefined],
        [2, 3000, 'RemoteAccessError'],
        [3, 0, 'FlushedError'],
      ]);
      expect(settled[1].error).toBeInstanceOf(RemoteAccessError);
      expect(settled[1].error).toMatchObject({ bytesCompleted: 3000, requestBytes: 5000, qpState: 'ERR' });
      expect(engine.submitPrepared(good, 4)).toBeGreaterThanOrEqual(0);
      expect(engine.settled.error[0]).toBeInstanceOf(FlushedError);
      expect([good.inUse, failing.inUse, engine.pending]).toEqual([0, 0, 0]);
      engine.dispose();
    } finally {
      s.free();
    }
  });

  it('life cycle: dispose while in use finishes what was submitted; a dead region, another engine, the promise form', async () => {
    const s = setup(4);
    try {
      const engine = new RequestEngine(s.qp, { maxMessageSize: 64 });
      const other = new RequestEngine(s.qp);
      for (let i = 0; i < 1024; i++) s.local.bytes[i] = (i * 5 + 2) & 0xff;
      const prepared = engine.prepare('write', s.region, [{ mr: s.mr, offset: 0, length: 1024, remoteOffset: 4096 }]); // 16 work requests
      engine.submitPrepared(prepared, 1);
      engine.submitPrepared(prepared, 2);
      prepared.dispose(); // 32 work requests still to post: its SGE lists stay until they settle
      prepared.dispose();
      expect(() => engine.submitPrepared(prepared)).toThrow(ClosedError);
      expect(drain(engine).map((x) => [x.tag, x.bytes, x.error])).toEqual([[1, 1024, undefined], [2, 1024, undefined]]);
      expect(Buffer.compare(s.remote.bytes.subarray(4096, 5120), s.local.bytes.subarray(0, 1024))).toBe(0);
      expect(prepared.inUse).toBe(0);

      const mr = fakeMr(s.fake.pd, s.local, 6);
      const dead = engine.prepare('write', s.region, [{ mr, offset: 0, length: 10, remoteOffset: 0 }]);
      (mr as unknown as { disposed: boolean }).disposed = true;
      expect(() => engine.submitPrepared(dead)).toThrow(ClosedError);
      expect(dead.inUse).toBe(0);

      const mine = engine.prepare('write', s.region, [{ mr: s.mr, offset: 0, length: 100, remoteOffset: 0 }]);
      expect(() => other.submitPrepared(mine)).toThrow(UsageError);
      expect(await engine.runPrepared(mine)).toBe(100);
      expect(await Promise.all([engine.runPrepared(mine), engine.runPrepared(mine)])).toEqual([100, 100]);
      other.dispose();
      engine.dispose();
      await expect(engine.runPrepared(mine)).rejects.toBeInstanceOf(ClosedError);
      expect(() => engine.prepare('write', s.region, [])).toThrow(ClosedError);
    } finally {
      s.free();
    }
  });
});
