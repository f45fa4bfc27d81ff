/**
 * The measured loops of the RDMA benches (both processes run the same loop; the server waits
 * first), written to follow perftest's own loops (perftest 4.5, src/perftest_resources.c:
 * run_iter_lat_write, run_iter_lat_send, run_iter_bw) so that memwire and perftest do the same
 * work per iteration.
 */
import type { CompletionQueue } from '../../src/index.js';
import type { BenchEndpoint, BenchSide } from './rdma-side.js';
import { yieldCpu } from './cpu.js';

/**
 * perftest's run_iter_lat_write: each side RDMA-writes `size` bytes whose last byte is the
 * iteration count into the peer's buffer, then spins on the last byte of its own buffer until the
 * peer's write with the same count lands — the CQ is not on the ping-pong path. Every write is
 * signaled, as perftest's. The client reads the clock once per iteration, right after its post
 * (perftest: right before, with its cycle counter): round trip = difference of successive stamps,
 * the same period either way, but a process.hrtime.bigint() (µs under the guest's TCG, vs. ~10 ns
 * for rdtsc) then runs while the message is in flight instead of delaying it.
 *
 * One difference in how completions are reaped: perftest calls ibv_poll_cq(1) after every post;
 * here the completions are reaped REAP_BATCH at a time (one ibv_poll_cq for up to 16), during a
 * turn of the spin (while the peer's write is in flight). Under TCG a call into C from JS costs
 * microseconds (koffi more than bun:ffi), so one call per iteration would be in the measured path.
 *
 * Buffer: [0, size) is written by the peer (polled here); [size, 2 size) is the source.
 */
export function writeLatLoop(side: BenchSide, remote: BenchEndpoint, size: number, total: number, server: boolean, stamps: Float64Array | null, guard: () => void): void {
  const { qp, sendCq, bytes, mr } = side;
  const last = size - 1;
  const inline = size <= qp.maxInlineData;
  // Written into native memory once and posted as is each time (perftest posts one prepared
  // ibv_send_wr the same way); only the source byte changes.
  const wr = qp.prepareSend({ opcode: 'write', sge: { mr, offset: size, length: size }, remoteAddr: remote.addr, rkey: remote.rkey, inline, signaled: true });
  let scnt = 0;
  let rcnt = 0;
  let unreaped = 0;
  let polls = 0;
  try {
    while (scnt < total || rcnt < total) {
      if (rcnt < total && !(scnt < 1 && server)) {
        rcnt++;
        const want = rcnt & 0xff;
        // Atomics.load: the NIC writes this byte behind the JIT's back; never hoisted.
        while (Atomics.load(bytes, last) !== want) {
          if (unreaped >= REAP_BATCH) unreaped -= reapSends(sendCq);
          else if ((++polls & 0xffff) === 0) guard();
        }
      }
      if (scnt < total) {
        if (unreaped >= MAX_UNREAPED) unreaped = reapDownTo(sendCq, unreaped, MAX_UNREAPED - 1, guard); // no call on the common path
        bytes[size + last] = (scnt + 1) & 0xff;
        const rc = qp.postPrepared(wr);
        if (rc !== 0) throw new Error(`postSend failed: errno ${rc}`);
        if (stamps) stamps[scnt] = Number(process.hrtime.bigint());
        scnt++;
        unreaped++;
      }
    }
    reapDownTo(sendCq, unreaped, 0, guard);
  } finally {
    wr.dispose();
  }
}

/** Signaled sends a latency loop reaps with one poll (during the spin), and the most it may owe. */
const REAP_BATCH = 16;
const MAX_UNREAPED = 64;

/** Poll the send CQ once (up to its batch); throws on a failed completion. Returns the count. */
function reapSends(cq: CompletionQueue): number {
  const n = cq.poll();
  for (let i = 0; i < n; i++) {
    const c = cq.completions[i];
    if (!c.ok) throw c.error();
  }
  return n;
}

/** Reap send completions until at most `keep` are owed (guard() every 65536 polls); returns how many still are. */
function reapDownTo(cq: CompletionQueue, unreaped: number, keep: number, guard: () => void): number {
  let polls = 0;
  while (unreaped > keep) {
    unreaped -= reapSends(cq);
    if ((++polls & 0xffff) === 0) guard();
  }
  return unreaped;
}

/**
 * perftest's run_iter_lat_send: each side SENDs `size` bytes and busy-polls its receive CQ for
 * the peer's SEND (receives are posted ahead and re-posted as they complete); every SEND is
 * signaled and its completion reaped (ib_send_lat runs with tx depth 1, so it reaps each one).
 * Buffer: [0, size) receives, [size, 2 size) sends.
 *
 * The same work per message as perftest, batched and in another order: perftest re-posts one
 * receive and reaps one send completion per message in the ping-pong's path (before / right
 * after its SEND); here the receives are re-posted REPOST_BATCH at a time (a prepared chain: one
 * ibv_post_recv, nothing written per message) and the send completions reaped REAP_BATCH at a
 * time, both during turns of the receive-CQ spin that find nothing — while the message is in
 * flight. Under the guest's TCG a call into C from JS costs microseconds (perftest's:
 * nanoseconds), so one or two calls per message would be in the measured path. The clock is read
 * after the post (see writeLatLoop).
 */
export function sendLatLoop(side: BenchSide, size: number, total: number, server: boolean, stamps: Float64Array | null, guard: () => void): void {
  const { qp, sendCq, recvCq, mr } = side;
  const inline = size <= qp.maxInlineData;
  const wr = qp.prepareSend({ opcode: 'send', sge: { mr, offset: size, length: size }, inline, signaled: true });
  const chain = qp.prepareRecv(Array.from({ length: REPOST_BATCH }, () => ({ sge: { mr, offset: 0, length: size } })));
  const repost = () => {
    const rc = qp.postPreparedRecv(chain);
    if (rc !== 0) throw new Error(`postRecv failed: errno ${rc}`);
  };
  let scnt = 0;
  let rcnt = 0;
  let owedReposts = 0;
  let unreaped = 0;
  let polls = 0;
  try {
    while (scnt < total || rcnt < total) {
      if (rcnt < total && !(scnt < 1 && server)) {
        while (recvCq.poll(1) === 0) {
          if (owedReposts >= REPOST_BATCH) {
            repost();
            owedReposts -= REPOST_BATCH;
          } else if (unreaped >= REAP_BATCH) {
            unreaped -= reapSends(sendCq);
          } else if ((++polls & 0xffff) === 0) {
            guard();
          }
        }
        const c = recvCq.completions[0];
        if (!c.ok) throw c.error();
        rcnt++;
        owedReposts++;
      }
      if (scnt < total) {
        // Never let the receive queue run dry, nor the send queue fill (both far from it).
        if (owedReposts >= SEND_LAT_RX_DEPTH - 2) {
          repost();
          owedReposts -= REPOST_BATCH;
        }
        if (unreaped >= MAX_UNREAPED) unreaped = reapDownTo(sendCq, unreaped, MAX_UNREAPED - 1, guard); // no call on the common path
        const rc = qp.postPrepared(wr);
        if (rc !== 0) throw new Error(`postSend failed: errno ${rc}`);
        if (stamps) stamps[scnt] = Number(process.hrtime.bigint());
        scnt++;
        unreaped++;
      }
    }
    reapDownTo(sendCq, unreaped, 0, guard);
  } finally {
    chain.dispose();
    wr.dispose();
  }
}

/** Receives a send-latency loop re-posts with one call (a prepared chain). */
const REPOST_BATCH = 8;

/** Receives a send-latency side keeps posted (perftest's rx depth for latency tests is small). */
export const SEND_LAT_RX_DEPTH = 16;

export function prepostReceives(side: BenchSide, size: number, count: number): void {
  for (let i = 0; i < count; i++) {
    const rc = side.qp.postRecv({ sge: { mr: side.mr, offset: 0, length: size } });
    if (rc !== 0) throw new Error(`postRecv failed: errno ${rc}`);
  }
}

/** A word nobody notifies: Atomics.wait on it is a sleep of the given timeout (a futex wait). */
const IDLE = new Int32Array(new SharedArrayBuffer(4));

/**
 * perftest's run_iter_bw (client side of ib_write_bw): keep up to `txDepth` RDMA WRITEs of
 * `size` bytes in flight, every `cqMod`-th signaled; reap completions in batches. Returns the
 * elapsed ns from the first post to the last completion. `postList` > 1 is perftest's `-l N`:
 * one ibv_post_send hands over a prepared chain of N writes, only the last signaled (perftest then
 * sets cq_mod to N), posted while N more fit under tx depth; `iterations` is a multiple of N.
 * `idle` > 0 (not perftest's way): sleep that many ms (a futex wait) whenever a poll finds
 * nothing, leaving the vCPU to rxe's deferred work (ksoftirqd) instead of competing with it;
 * 'yield': sched_yield instead (the CPU goes to ksoftirqd only if it is runnable; what
 * RequestEngine's idle 'yield' does).
 */
export function writeBwLoop(side: BenchSide, remote: BenchEndpoint, size: number, iterations: number, txDepth: number, cqMod: number, guard: () => void, idle: number | 'yield' = 0, postList = 1): number {
  const { qp, sendCq, mr } = side;
  const request = { opcode: 'write' as const, sge: { mr, offset: 0, length: size }, remoteAddr: remote.addr, rkey: remote.rkey };
  const list = postList > 1;
  const perCompletion = list ? postList : cqMod;
  const chain = list ? qp.prepareSend(Array.from({ length: postList }, (_, i) => ({ ...request, signaled: i === postList - 1 }))) : null;
  const unsignaled = qp.prepareSend({ ...request, signaled: false });
  const signaled = qp.prepareSend({ ...request, signaled: true });
  let scnt = 0;
  let ccnt = 0;
  let polls = 0;
  try {
    const start = process.hrtime.bigint();
    while (scnt < iterations || ccnt < iterations) {
      if (chain) {
        while (scnt < iterations && scnt - ccnt + postList <= txDepth) {
          const rc = qp.postPrepared(chain);
          if (rc !== 0) throw new Error(`postSend (post list ${postList}) failed: errno ${rc}`);
          scnt += postList;
        }
      } else {
        while (scnt < iterations && scnt - ccnt < txDepth) {
          const last = (scnt + 1) % cqMod === 0 || scnt + 1 === iterations;
          const rc = qp.postPrepared(last ? signaled : unsignaled);
          if (rc !== 0) throw new Error(`postSend failed: errno ${rc}`);
          scnt++;
        }
      }
      if (ccnt < iterations) {
        const n = sendCq.poll();
        for (let i = 0; i < n; i++) {
          const c = sendCq.completions[i];
          if (!c.ok) throw c.error();
          ccnt = Math.min(iterations, ccnt + perCompletion);
        }
        if (n === 0) {
          if (idle === 'yield') yieldCpu();
          else if (idle > 0) Atomics.wait(IDLE, 0, 0, idle);
          if ((++polls & 0xffff) === 0) guard();
        }
      }
    }
    return Number(process.hrtime.bigint() - start);
  } finally {
    chain?.dispose();
    unsignaled.dispose();
    signaled.dispose();
  }
}
