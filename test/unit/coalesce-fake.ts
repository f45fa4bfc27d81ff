/**
 * An in-process fake of a queue pair and its send CQ for the request engine's unit tests
 * (coalesce-engine.test.ts, coalesce-prepared.test.ts): the fake reads the work requests the
 * engine wrote in native memory (wr_id, opcode, flags, SGEs, remote address, rkey), moves the
 * bytes between native blocks, and completes in order — only signaled work requests report, an
 * error moves the fake to ERR and flushes the rest, as RC does. The real thing runs in
 * test/rxe/coalesce.test.ts.
 */
import { expect } from 'vitest';
import { backend } from '../../ffi/backend.js';
import { C, IBV_SEND_WR, IBV_SGE } from '../../ffi/verbs-layout.js';
import type { RequestEngine } from '../../src/coalesce/engine.js';
import { Completion } from '../../src/verbs/completion-queue.js';
import type { MemoryRegion } from '../../src/verbs/memory-region.js';
import { getU64, NativeBlock } from '../../src/verbs/native.js';
import type { QueuePair } from '../../src/verbs/queue-pair.js';

export interface Posted {
  wrId: number;
  signaled: boolean;
  read: boolean;
  remote: number;
  rkey: number;
  sges: { addr: number; length: number; lkey: number }[];
  /** The lkeys of the regions the queue pair was told to keep referenced for it. */
  refLkeys: number[];
}

/** A queue pair whose "NIC" runs each work request when completions are polled. */
export class FakeQp {
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
  postSendChain(address: number, count: number, _ids?: Float64Array, _signaled?: Uint8Array, refs?: readonly (MemoryRegion | undefined)[], refCounts?: Uint8Array, perWr?: number): number {
    if (this.sq.length + count > this.maxSendWr) return 12;
    const dv = new DataView(backend.view(address, count * IBV_SEND_WR.size));
    const f = IBV_SEND_WR.fields;
    for (let i = 0; i < count; i++) {
      const at = i * IBV_SEND_WR.size;
      const n = dv.getInt32(at + f.num_sge, true);
      if (n < 1 || n > this.maxSendSge) return 22;
      const sgl = new DataView(backend.view(getU64(dv, at + f.sg_list), n * IBV_SGE.size));
      const sges = Array.from({ length: n }, (_, j) => ({ addr: getU64(sgl, j * 16), length: sgl.getUint32(j * 16 + 8, true), lkey: sgl.getUint32(j * 16 + 12, true) }));
      const refLkeys = refs && refCounts && perWr ? Array.from({ length: refCounts[i] }, (_, j) => refs[i * perWr + j]!.lkey) : [];
      const next = getU64(dv, at + f.next);
      expect(next).toBe(i + 1 < count ? address + at + IBV_SEND_WR.size : 0);
      this.sq.push({
        wrId: getU64(dv, at + f.wr_id),
        signaled: (dv.getUint32(at + f.send_flags, true) & C.IBV_SEND_SIGNALED) !== 0,
        read: dv.getUint32(at + f.opcode, true) === C.IBV_WR_RDMA_READ,
        remote: getU64(dv, at + f['wr.rdma.remote_addr']),
        rkey: dv.getUint32(at + f['wr.rdma.rkey'], true),
        sges,
        refLkeys,
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

export function fakeMr(pd: object, block: NativeBlock, lkey: number): MemoryRegion {
  return { pd, addr: block.address, length: block.size, lkey, rkey: lkey, disposed: false, accessFlags: C.IBV_ACCESS_LOCAL_WRITE } as unknown as MemoryRegion;
}

export function setup(maxSendWr: number, perPoll = 2) {
  const remote = new NativeBlock(1 << 16, 'fake remote');
  const local = new NativeBlock(1 << 16, 'fake local');
  const fake = new FakeQp(maxSendWr, 8, remote, 0x1234, perPoll);
  const mr = fakeMr(fake.pd, local, 5);
  const region = { addr: remote.address, rkey: 0x1234, length: remote.size };
  return { fake, qp: fake as unknown as QueuePair, mr, local, remote, region, free: () => (remote.free(), local.free()) };
}

/** Run progress() until `engine.pending` is 0 (bounded), collecting what settled. */
export function drain(engine: RequestEngine) {
  const out: { id: number; tag: number; bytes: number; error?: Error }[] = [];
  for (let i = 0; i < 100_000 && engine.pending > 0; i++) {
    const n = engine.progress();
    for (let k = 0; k < n; k++) out.push({ id: engine.settled.id[k], tag: engine.settled.tag[k], bytes: engine.settled.bytes[k], error: engine.settled.error[k] });
  }
  expect(engine.pending).toBe(0);
  return out;
}

/** Count the fake queue pair's ibv_post_send calls (each posts one chain). */
export function countPosts(fake: { postSendChain: (address: number, count: number) => number }): { calls: number } {
  const counter = { calls: 0 };
  const post = fake.postSendChain.bind(fake);
  fake.postSendChain = (address: number, count: number) => (counter.calls++, post(address, count));
  return counter;
}
