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
import { backend } from '../../ffi/backend.js';
import { C, IBV_SEND_WR, IBV_SGE } from '../../ffi/verbs-layout.js';
import { RequestEngine, type RequestElement } from '../../src/coalesce/engine.js';
import { ClosedError, UsageError } from '../../src/errors.js';
import { Completion } from '../../src/verbs/completion-queue.js';
import { FlushedError, RemoteAccessError } from '../../src/verbs/errors.js';
import type { MemoryRegion } from '../../src/verbs/memory-region.js';
import { getU64, NativeBlock } from '../../src/verbs/native.js';
import type { QueuePair } from '../../src/verbs/queue-pair.js';

interface Posted {
  wrId: number;
  signaled: boolean;
  read: boolean;
  remote: number;
  rkey: number;
  sges: { addr: number; length: number }[];
}

/** A queue pair whose "NIC" runs each work request when completions are polled. */
class FakeQp {
  readonly qpn = 77;
  readonly type = 'RC';
  readonly handle = 1;
  readonly disposed = false;
  readonly port = 1;
  maxRdAtomic = 4;
  badIndex = -1;
  state = 'RTS';
  readonly sq: Posted[] = [];
  maxReadsSeen = 0;
  executedPerPoll: number;
  readonly pd: { context: { query(): object; queryPort(): object } };
  readonly sendCq: { poll(max?: number): number; completions: Completion[]; wait(): Promise<number> };
  constructor(
    readonly maxSendWr: number,
    readonly maxSendSge: number,
    readonly remote: NativeBlock,
    readonly rkey: number,
    perPoll = 2,
  ) {
    this.executedPerPoll = perPoll;
    this.pd = { context: { query: () => ({ maxSgeRd: 32, maxQpInitRdAtom: 16 }), queryPort: () => ({ maxMessageSize: 1 << 23 }) } };
    const completions = Array.from({ length: 16 }, () => new Completion());
    // wait(): like CompletionQueue.wait, polls into `completions` and resolves with the count.
    const wait = async (): Promise<number> => {
      for (let i = 0; i < 50; i++) {
        const n = this.#poll(16);
        if (n > 0) return n;
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      return 0;
    };
    this.sendCq = { completions, poll: (max = 16) => this.#poll(max), wait };
  }
  get sendSlotsFree(): number {
    return this.maxSendWr - this.sq.length;
  }
  queryState(): string {
    return this.state;
  }
  toError(): void {
    this.state = 'ERR';
  }
  postSendChain(address: number, count: number): number {
    if (this.sq.length + count > this.maxSendWr) return 12;
    const dv = new DataView(backend.view(address, count * IBV_SEND_WR.size));
    const f = IBV_SEND_WR.fields;
    for (let i = 0; i < count; i++) {
      const at = i * IBV_SEND_WR.size;
      const n = dv.getInt32(at + f.num_sge, true);
      if (n < 1 || n > this.maxSendSge) return 22;
      const sgl = new DataView(backend.view(getU64(dv, at + f.sg_list), n * IBV_SGE.size));
      const sges = Array.from({ length: n }, (_, j) => ({ addr: getU64(sgl, j * 16), length: sgl.getUint32(j * 16 + 8, true) }));
      const next = getU64(dv, at + f.next);
      expect(next).toBe(i + 1 < count ? address + at + IBV_SEND_WR.size : 0);
      this.sq.push({
        wrId: getU64(dv, at + f.wr_id),
        signaled: (dv.getUint32(at + f.send_flags, true) & C.IBV_SEND_SIGNALED) !== 0,
        read: dv.getUint32(at + f.opcode, true) === C.IBV_WR_RDMA_READ,
        remote: getU64(dv, at + f['wr.rdma.remote_addr']),
        rkey: dv.getUint32(at + f['wr.rdma.rkey'], true),
        sges,
      });
    }
    this.maxReadsSeen = Math.max(this.maxReadsSeen, this.sq.filter((w) => w.read).length);
    return 0;
  }
  /** Run up to `executedPerPoll` work requests from the head; report signaled ones and failures. */
  #poll(max: number): number {
    let n = 0;
    for (let done = 0; done < this.executedPerPoll && this.sq.length > 0 && n < max; done++) {
      const wr = this.sq.shift()!;
      let status = C.IBV_WC_SUCCESS;
      if (this.state === 'ERR') status = C.IBV_WC_WR_FLUSH_ERR;
      else if (!this.#execute(wr)) {
        status = C.IBV_WC_REM_ACCESS_ERR;
        this.state = 'ERR';
      }
      if (wr.signaled || status !== C.IBV_WC_SUCCESS) {
        const c = this.sendCq.completions[n++];
        c.wrId = wr.wrId;
        c.status = status;
        c.qpNum = this.qpn;
        c.opcode = wr.read ? C.IBV_WC_RDMA_READ : C.IBV_WC_RDMA_WRITE;
      }
    }
    return n;
  }
  #execute(wr: Posted): boolean {
    const bytes = wr.sges.reduce((s, x) => s + x.length, 0);
    const offset = wr.remote - this.remote.address;
    if (wr.rkey !== this.rkey || offset < 0 || offset + bytes > this.remote.size) return false;
    let at = offset;
    for (const sge of wr.sges) {
      const local = new Uint8Array(backend.view(sge.addr, sge.length));
      if (wr.read) local.set(this.remote.bytes.subarray(at, at + sge.length));
      else this.remote.bytes.set(local, at);
      at += sge.length;
    }
    return true;
  }
}

function fakeMr(pd: object, block: NativeBlock, lkey: number): MemoryRegion {
  return { pd, addr: block.address, length: block.size, lkey, rkey: lkey, disposed: false, accessFlags: C.IBV_ACCESS_LOCAL_WRITE } as unknown as MemoryRegion;
}

function setup(maxSendWr: number, perPoll = 2) {
  const remote = new NativeBlock(1 << 16, 'fake remote');
  const local = new NativeBlock(1 << 16, 'fake local');
  const fake = new FakeQp(maxSendWr, 8, remote, 0x1234, perPoll);
  const mr = fakeMr(fake.pd, local, 5);
  const region = { addr: remote.address, rkey: 0x1234, length: remote.size };
  return { fake, qp: fake as unknown as QueuePair, mr, local, remote, region, free: () => (remote.free(), local.free()) };
}

/** Run progress() until `engine.pending` is 0 (bounded), collecting what settled. */
function drain(engine: RequestEngine) {
  const out: { id: number; tag: number; bytes: number; error?: Error }[] = [];
  for (let i = 0; i < 100_000 && engine.pending > 0; i++) {
    const n = engine.progress();
    for (let k = 0; k < n; k++) out.push({ id: engine.settled.id[k], tag: engine.settled.tag[k], bytes: engine.settled.bytes[k], error: engine.settled.error[k] });
  }
  expect(engine.pending).toBe(0);
  return out;
}

/** Count the fake queue pair's ibv_post_send calls (each posts one chain). */
function countPosts(fake: { postSendChain: (address: number, count: number) => number }): { calls: number } {
  const counter = { calls: 0 };
  const post = fake.postSendChain.bind(fake);
  fake.postSendChain = (address: number, count: number) => (counter.calls++, post(address, count));
  return counter;
}

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
