/**
 * The request engine's accounting (src/coalesce/engine.ts) against an in-process fake of a queue
 * pair and its send CQ: the fake reads the work requests the engine wrote in native memory (wr_id,
 * opcode, flags, SGEs, remote address, rkey), moves the bytes between native blocks, and completes
 * in order — only signaled work requests report, an error moves the fake to ERR and flushes the
 * rest, as RC does. The real thing runs in test/rxe/coalesce.test.ts; this checks the logic fast:
 * continuation with a tiny send queue, signaling (nothing stalls), the READ window, settle order,
 * failure and dispose.
 */
import { describe, expect, it } from 'vitest';
import { RequestEngine, type RequestElement } from '../../src/coalesce/engine.js';
import { ClosedError, UsageError } from '../../src/errors.js';
import { FlushedError, RemoteAccessError } from '../../src/verbs/errors.js';
import { countPosts, drain, setup } from './coalesce-fake.js';

describe('request engine accounting (in-process fake queue pair)', () => {
  it('WRITEs and READs byte-exact through a send queue of depth 2, settling in order; nothing stalls', () => {
    const s = setup(2);
    try {
      const engine = new RequestEngine(s.qp, { maxMessageSize: 100 });
      for (let i = 0; i < s.local.size; i++) s.local.bytes[i] = (i * 7 + 3) & 0xff;
      const chains: RequestElement[][] = [];
      for (let r = 0; r < 6; r++) {
        chains.push(Array.from({ length: 5 }, (_, e) => ({ mr: s.mr, offset: r * 4000 + e * 300, length: 10 + ((r * 5 + e) * 37) % 250, remoteOffset: 0 })));
      }
      // Each chain remotely contiguous from r*4000 on.
      for (let r = 0; r < 6; r++) {
        let at = r * 4000;
        chains[r] = chains[r].map((e) => {
          const placed = { ...e, remoteOffset: at };
          at += e.length;
          return placed;
        });
      }
      chains.forEach((c, r) => expect(engine.submit('write', s.region, c, 10 + r)).toBe(r));
      const settled = drain(engine);
      expect(settled.map((x) => x.tag)).toEqual([10, 11, 12, 13, 14, 15]);
      expect(settled.every((x) => !x.error)).toBe(true);
      for (const c of chains) for (const e of c) expect(Buffer.compare(s.remote.bytes.subarray(e.remoteOffset, e.remoteOffset + e.length), s.local.bytes.subarray(e.offset!, e.offset! + e.length))).toBe(0);
      // READ them back into other local places.
      s.local.bytes.fill(0, 30000);
      const back = chains.map((c) => c.map((e) => ({ ...e, offset: 30000 + e.remoteOffset })));
      back.forEach((c) => engine.submit('read', s.region, c));
      expect(drain(engine).every((x) => !x.error)).toBe(true);
      for (const c of back) for (const e of c) expect(Buffer.compare(s.local.bytes.subarray(e.offset, e.offset + e.length), s.remote.bytes.subarray(e.remoteOffset, e.remoteOffset + e.length))).toBe(0);
      expect(s.fake.maxReadsSeen).toBeLessThanOrEqual(engine.limits.maxReadsInFlight);
      expect(engine.inFlight).toBe(0);
      engine.dispose();
    } finally {
      s.free();
    }
  });

  it('the promise form drives the CQ itself (its wait()), several requests at once', async () => {
    const s = setup(4);
    try {
      const engine = new RequestEngine(s.qp, { maxMessageSize: 100 });
      for (let i = 0; i < 4096; i++) s.local.bytes[i] = (i * 13) & 0xff;
      const one = engine.write(s.region, [{ mr: s.mr, offset: 0, length: 1000, remoteOffset: 0 }]);
      const two = engine.write(s.region, [{ mr: s.mr, offset: 1000, length: 1000, remoteOffset: 1000 }]);
      expect(await one).toBe(1000);
      expect(await two).toBe(1000);
      expect(Buffer.compare(s.remote.bytes.subarray(0, 2000), s.local.bytes.subarray(0, 2000))).toBe(0);
      expect(await engine.read(s.region, [{ mr: s.mr, offset: 5000, length: 2000, remoteOffset: 0 }])).toBe(2000);
      expect(Buffer.compare(s.local.bytes.subarray(5000, 7000), s.local.bytes.subarray(0, 2000))).toBe(0);
      engine.dispose();
    } finally {
      s.free();
    }
  });

  it('postOnSubmit false: requests submitted together are posted together by progress(), postList per call', () => {
    const s = setup(64);
    try {
      const engine = new RequestEngine(s.qp, { postOnSubmit: false, postList: 16 });
      const posts = countPosts(s.fake);
      for (let i = 0; i < 32; i++) engine.submit('write', s.region, [{ mr: s.mr, offset: i * 100, length: 64, remoteOffset: i * 64 }]);
      expect(engine.inFlight).toBe(0); // nothing posted by submit
      engine.progress();
      expect(engine.inFlight + 0).toBeGreaterThan(0);
      expect(posts.calls).toBe(2); // 32 work requests, 16 per call
      expect(drain(engine).length).toBeGreaterThan(0);
      engine.dispose();
    } finally {
      s.free();
    }
  });

  it('post(): requests submitted with postOnSubmit false go out in one call, in submission order, without a poll', () => {
    const s = setup(64);
    try {
      const engine = new RequestEngine(s.qp, { postOnSubmit: false, postList: 16 });
      const posts = countPosts(s.fake);
      engine.submit('write', s.region, [{ mr: s.mr, offset: 0, length: 64, remoteOffset: 0 }], 1);
      engine.submit('write', s.region, [{ mr: s.mr, offset: 64, length: 4, remoteOffset: 64 }], 2);
      expect(posts.calls).toBe(0);
      expect(engine.post()).toBe(0);
      expect(posts.calls).toBe(1); // both requests, one ibv_post_send
      expect(engine.inFlight).toBe(2);
      expect(s.fake.sq.map((w) => w.remote - s.region.addr)).toEqual([0, 64]); // the word after the bytes
      expect(drain(engine).map((r) => r.tag)).toEqual([1, 2]);
      engine.post(); // nothing queued: no call
      expect(posts.calls).toBe(1);
      engine.dispose();
    } finally {
      s.free();
    }
  });

  it("idle 'yield': polls that find nothing yield and return; every request still settles byte-exact; a bad idle is a UsageError", () => {
    const s = setup(4, 0); // the fake runs nothing on a poll until executedPerPoll is raised
    try {
      expect(() => new RequestEngine(s.qp, { idle: 'nap' as 'spin' })).toThrow(UsageError);
      const engine = new RequestEngine(s.qp, { idle: 'yield', maxMessageSize: 64 });
      for (let i = 0; i < 1024; i++) s.local.bytes[i] = (i * 13 + 1) & 0xff;
      engine.submit('write', s.region, [{ mr: s.mr, offset: 0, length: 1024, remoteOffset: 2048 }], 7);
      // Empty polls with work in flight: each yields, none settles anything.
      for (let i = 0; i < 5; i++) expect(engine.progress()).toBe(0);
      expect(engine.inFlight).toBe(4);
      s.fake.executedPerPoll = 2;
      const settled = drain(engine);
      expect(settled).toEqual([{ id: 0, tag: 7, bytes: 1024, error: undefined }]);
      expect(Array.from(s.remote.bytes.subarray(2048, 3072))).toEqual(Array.from(s.local.bytes.subarray(0, 1024)));
      engine.dispose();
    } finally {
      s.free();
    }
  });

  it('keeps READs within maxReadsInFlight', () => {
    const s = setup(16, 1);
    try {
      const engine = new RequestEngine(s.qp, { maxMessageSize: 64, maxReadsInFlight: 3 });
      engine.submit('read', s.region, [{ mr: s.mr, length: 64 * 40, remoteOffset: 0 }]);
      expect(drain(engine)[0].bytes).toBe(64 * 40);
      expect(s.fake.maxReadsSeen).toBe(3);
      engine.dispose();
    } finally {
      s.free();
    }
  });

  it('an error mid-request: that request fails with the bytes before it, later ones flush', () => {
    const s = setup(4);
    try {
      const engine = new RequestEngine(s.qp, { maxMessageSize: 1000 });
      const lie = { ...s.region, length: 1 << 20 };
      engine.submit('write', s.region, [{ mr: s.mr, length: 500, remoteOffset: 0 }], 1);
      engine.submit('write', lie, [{ mr: s.mr, length: 5000, remoteOffset: (1 << 16) - 3000 }], 2); // WRs 1-3 land, the 4th is past the end
      engine.submit('write', s.region, [{ mr: s.mr, length: 10, remoteOffset: 0 }], 3);
      const settled = drain(engine);
      expect(settled.map((x) => [x.tag, x.bytes, x.error?.constructor.name])).toEqual([
        [1, 500, undefined],
        [2, 3000, 'RemoteAccessError'],
        [3, 0, 'FlushedError'],
      ]);
      expect(settled[1].error).toBeInstanceOf(RemoteAccessError);
      expect(settled[1].error).toMatchObject({ bytesCompleted: 3000, requestBytes: 5000, qpState: 'ERR' });
      // Submitted after the failure: settled at once (within submit), flushed without a post.
      expect(engine.submit('write', s.region, [{ mr: s.mr, length: 10, remoteOffset: 0 }], 4)).toBeGreaterThanOrEqual(0);
      expect(engine.settled.count).toBe(1);
      expect(engine.settled.tag[0]).toBe(4);
      expect(engine.settled.error[0]).toBeInstanceOf(FlushedError);
      expect(engine.pending).toBe(0);
      engine.dispose();
    } finally {
      s.free();
    }
  });

  it('dispose with work in flight: flushes, then ClosedError for every unsettled request', () => {
    const s = setup(4, 0); // the fake NIC runs nothing until it is flushed
    try {
      const engine = new RequestEngine(s.qp, { maxMessageSize: 100 });
      engine.submit('write', s.region, [{ mr: s.mr, length: 1000, remoteOffset: 0 }], 1);
      engine.submit('write', s.region, [{ mr: s.mr, length: 10, remoteOffset: 0 }], 2);
      expect(engine.inFlight).toBe(4);
      s.fake.executedPerPoll = 100;
      s.fake.state = 'ERR'; // what toError() does: everything posted flushes
      engine.dispose();
      expect(engine.inFlight).toBe(0);
      expect(s.fake.sq.length).toBe(0);
      expect([engine.settled.count, engine.settled.error[0], engine.settled.error[1]].map((x) => (x instanceof Error ? x.constructor.name : x))).toEqual([2, 'ClosedError', 'ClosedError']);
      expect(() => engine.submit('write', s.region, [])).toThrow(ClosedError);
    } finally {
      s.free();
    }
  });
});
