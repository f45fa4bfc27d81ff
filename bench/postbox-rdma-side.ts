/**
 * The measuring side of `postbox-pingpong --transport rdma` and `postbox-stream --transport rdma`
 * (lib/postbox-rdma.ts starts it as a process of node B, beside an echo or sink peer —
 * postbox-peer.ts — on node A): a Postbox over an RdmaTransport that sends to the peer on the
 * other node. It takes one request a line on stdin and answers each with one line on stdout, so
 * one process (its connections, registrations and JIT state) serves every size and round:
 *
 *   lat <size> <iterations> <warmup> <timeoutMs>  →  RESULT {"p50":µs,"p99":µs,…}   (one-way = round trip / 2; LatencyResult)
 *   bw <size> <count> <timeoutMs>                 →  RESULT {"seconds":s,"count":n,"size":b}
 *   quit                                          →  a zero-length message (the peer ends), flush, exit 0
 *
 * A failure prints `ERROR <message>` and exits 1.
 *
 * The loops are those of the shm benches (trySend, then busy poll for the echo; or trySend as fast
 * as the postbox takes messages, clock stopped by flush()), except that they give the event loop
 * a turn every YIELD_POLLS empty polls or refused sends: an RdmaTransport connects to another
 * node asynchronously, so the first sends to a peer there find no room until it is made
 * (SendStatus.FULL), and a loop that never yielded would wait for it for ever. The shm loops never
 * yield (no event-loop work is needed there).
 *
 * argv: <domain> <name> <peer name@node> <RdmaTransportOptions JSON> <PostboxOptions JSON>
 */
import { createInterface } from 'node:readline';
import { Postbox, RdmaTransport, SendStatus, type PostboxOptions, type RdmaTransportOptions } from '../src/index.js';
import type { LatencyResult } from './lib/postbox-rdma.js';
import { schedDelta, schedSnapshot, type SchedSnapshot } from './lib/sched-probe.js';
import { percentiles } from './lib/timing.js';

const [domain, name, peer, rdmaText, optionsText] = process.argv.slice(2, 7);
if (!domain || !name || !peer?.includes('@') || !rdmaText) {
  process.stderr.write('usage: postbox-rdma-side.js <domain> <name> <peer@node> <rdma transport JSON> <options JSON>\n');
  process.exit(2);
}

/**
 * Empty polls (or refused sends) between two turns of the event loop. The transport reaps send
 * completions in the agent link's pump, which runs only in such turns: a first guest run that
 * yielded every 1024 polls measured ~10 ms per round trip (sends waiting for freed slots until
 * a pump turn); yielding every 32, while nothing has arrived yet, keeps the pump going.
 */
const YIELD_POLLS = 1 << 5;
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

const transport = new RdmaTransport(JSON.parse(rdmaText) as RdmaTransportOptions);
const box = Postbox.open(name, { ...(JSON.parse(optionsText ?? '{}') as PostboxOptions), domain, transport });

function deadlineGuard(timeoutMs: number, what: string): () => void {
  const deadline = Date.now() + timeoutMs;
  return () => {
    if (Date.now() > deadline) throw new Error(`${what} did not finish within ${timeoutMs} ms`);
  };
}

/** trySend until placed; a turn of the event loop every YIELD_POLLS refusals. */
async function place(message: Uint8Array, guard: () => void): Promise<void> {
  let refused = 0;
  for (;;) {
    const status = box.trySend(peer, message);
    if (status === SendStatus.OK) return;
    if (status !== SendStatus.FULL) throw new Error(`trySend to ${peer}: status ${status}`);
    if ((++refused & (YIELD_POLLS - 1)) === 0) {
      await turn();
      guard();
    }
  }
}

let replyLength = -1;
let replyFirst = 0;
const onReply = (buffer: Uint8Array, offset: number, length: number) => {
  replyLength = length;
  replyFirst = length > 0 ? buffer[offset] : 0;
};

let turns = 0;

async function pingPong(size: number, iterations: number, warmup: number, timeoutMs: number): Promise<LatencyResult> {
  const guard = deadlineGuard(timeoutMs, `${iterations + warmup} round trips of ${size} B`);
  const message = new Uint8Array(size).fill(0x5a);
  const samples = new Float64Array(iterations);
  // Where the time goes (the side's own share): the send's cost, and the polls it waited.
  const sends = new Float64Array(iterations);
  const pollCounts = new Float64Array(iterations);
  // One unmeasured round trip first, so that sample 0 measures a round trip, not the set-up.
  let prev = 0n;
  let before: SchedSnapshot | undefined;
  for (let i = -Math.max(1, warmup); i < iterations; i++) {
    if (i === 0) {
      // Every thread's scheduler statistics, outside the timing (sample 0 starts after it).
      before = schedSnapshot();
      prev = process.hrtime.bigint();
    }
    message[0] = i & 0xff;
    const sendStart = process.hrtime.bigint();
    await place(message, guard);
    const sent = process.hrtime.bigint();
    if (i === 0) turns = 0;
    replyLength = -1;
    let polls = 0;
    while (box.poll(onReply, 1) === 0) {
      if ((++polls & (YIELD_POLLS - 1)) === 0) {
        await turn();
        turns++;
        guard();
      }
    }
    const now = process.hrtime.bigint();
    if (i >= 0) {
      samples[i] = Number(now - prev) / 2;
      sends[i] = Number(sent - sendStart);
      pollCounts[i] = polls;
    }
    prev = now;
    if (replyLength !== size || replyFirst !== (i & 0xff)) throw new Error(`echo mismatch at iteration ${i}: ${replyLength} bytes back for ${size}`);
  }
  const sched = before ? schedDelta(before, schedSnapshot(), iterations) : undefined;
  const [p50, p99] = percentiles(samples, [50, 99]);
  const [sendP50] = percentiles(sends, [50]);
  const [pollsP50] = percentiles(pollCounts, [50]);
  return { p50: p50 / 1000, p99: p99 / 1000, sendP50: sendP50 / 1000, pollsP50, turnsMean: turns / iterations, sched };
}

async function stream(size: number, count: number, timeoutMs: number): Promise<{ seconds: number; count: number; size: number }> {
  const guard = deadlineGuard(timeoutMs, `${count} messages of ${size} B`);
  const message = new Uint8Array(size).fill(0x5a);
  const start = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    message[0] = i & 0xff;
    await place(message, guard);
  }
  await box.flush({ timeoutMs });
  return { seconds: Number(process.hrtime.bigint() - start) / 1e9, count, size };
}

async function handle(line: string): Promise<boolean> {
  const [command, ...args] = line.trim().split(/\s+/);
  const n = args.map(Number);
  if (command === 'lat') {
    process.stdout.write(`RESULT ${JSON.stringify(await pingPong(n[0], n[1], n[2], n[3]))}\n`);
  } else if (command === 'bw') {
    process.stdout.write(`RESULT ${JSON.stringify(await stream(n[0], n[1], n[2]))}\n`);
  } else if (command === 'quit') {
    await box.send(peer, new Uint8Array(0)); // the peer ends on a zero-length message
    await box.flush({ timeoutMs: 10_000 });
    return false;
  } else if (command !== '') {
    throw new Error(`unknown request ${JSON.stringify(line)}`);
  }
  return true;
}

process.stdout.write('ready\n');
let status = 0;
try {
  for await (const line of createInterface({ input: process.stdin })) {
    if (!(await handle(line))) break;
  }
} catch (error) {
  process.stdout.write(`ERROR ${(error as Error).message.replace(/\n/g, ' ')}\n`);
  status = 1;
} finally {
  box.close();
  transport.dispose();
}
process.exit(status);
