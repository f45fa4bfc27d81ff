/**
 * The peer of benches `postbox-pingpong` and `postbox-stream`: opens a Postbox, says "ready" on
 * stdout, then either echoes every message back to its sender (mode `echo`: poll, read in place,
 * trySend the same bytes back) or takes messages and reads them in place (mode `sink`: the
 * receiver touches each message's first and last byte, as an application reading in place would).
 * It busy-polls while messages flow and sleeps in receive() after an idle spell. A zero-length
 * message ends it; so does its parent's death.
 *
 * With a sixth argument (RdmaTransportOptions as JSON) it is a process of one node of the RDMA
 * benches (`--transport rdma`, lib/postbox-rdma.ts): its Postbox rides on an RdmaTransport, and a
 * reply that finds no room yet — the first one to a sender of another node, whose connection is
 * made asynchronously — is kept and sent with send() from the loop (which awaits the connection),
 * where the shm peer spins on trySend.
 *
 * argv: <domain> <name> <echo|sink> <parent pid> <options JSON> [<rdma transport JSON>]
 */
import { Postbox, RdmaTransport, SendStatus, type PostboxOptions, type RdmaTransportOptions } from '../src/index.js';
import { processRunning } from './lib/peer.js';

const [domain, name, mode, parentText, optionsText, rdmaText] = process.argv.slice(2, 8);
const parentPid = Number(parentText);
if (!domain || !name || (mode !== 'echo' && mode !== 'sink') || !(parentPid > 0)) {
  process.stderr.write('usage: postbox-peer.js <domain> <name> <echo|sink> <parent pid> <options JSON>\n');
  process.exit(2);
}

const transport = rdmaText ? new RdmaTransport(JSON.parse(rdmaText) as RdmaTransportOptions) : undefined;
const box = Postbox.open(name, { ...(JSON.parse(optionsText ?? '{}') as PostboxOptions), domain, ...(transport ? { transport } : {}) });
/** Empty polls before it sleeps (under TCG a poll is ~50× slower: fewer across nodes). */
const IDLE_POLLS = rdmaText ? 1 << 16 : 1 << 22;
/** Across nodes: trySend attempts before a reply is left to send() (no room: not connected yet, or waiting for acks). */
const REMOTE_TRIES = 1 << 10;
/**
 * Across nodes: empty polls between two turns of the event loop. The transport reaps completions
 * (freeing send slots) in the agent link's pump, which runs only in such turns; yielding while
 * nothing arrives costs nothing on the message path.
 */
const YIELD_POLLS = 1 << 5;
let stop = false;
let sink = 0;
/** A reply that found no room (RDMA only), sent with send() by the loop before it polls again. */
let pending: { to: string; bytes: Uint8Array } | undefined;

const echo = (buffer: Uint8Array, offset: number, length: number, from: string) => {
  if (length === 0) {
    stop = true;
    return;
  }
  const reply = buffer.subarray(offset, offset + length);
  let status: number;
  let tries = 0;
  while ((status = box.trySend(from, reply)) !== SendStatus.OK) {
    if (status !== SendStatus.FULL) throw new Error(`echo to ${from}: status ${status}`);
    if (transport && ++tries >= REMOTE_TRIES) {
      pending = { to: from, bytes: reply.slice() }; // the slot is released after the handler
      return;
    }
  }
};

const take = (buffer: Uint8Array, offset: number, length: number) => {
  if (length === 0) {
    stop = true;
    return;
  }
  sink += buffer[offset] + buffer[offset + length - 1];
};

const handler = mode === 'echo' ? echo : take;
process.stdout.write('ready\n');
try {
  while (!stop) {
    if (pending) {
      const { to, bytes } = pending;
      pending = undefined;
      await box.send(to, bytes);
    }
    let idle = 0;
    // Across nodes one message at a time, so that a reply left pending is sent before the next.
    while (!stop && !pending && box.poll(handler, transport ? 1 : Infinity) === 0) {
      if (++idle < IDLE_POLLS) {
        // RDMA: let the transport's event-loop work (connections, completions) run now and then.
        if (transport && (idle & (YIELD_POLLS - 1)) === 0) await new Promise((r) => setImmediate(r));
        continue;
      }
      idle = 0;
      // Idle: sleep until a message comes (its sender rings our bell), then handle it — and stay
      // asleep until then, checking the parent every 200 ms: a peer that spun again after each
      // timeout took the CPU from the anchors measured meanwhile on the same CPUs.
      for (;;) {
        if (!processRunning(parentPid)) {
          stop = true;
          break;
        }
        try {
          const m = await box.receive({ spin: 0, timeoutMs: 200 });
          handler(m.data, 0, m.data.length, m.from);
          break;
        } catch (error) {
          if ((error as Error).name !== 'TimeoutError') throw error;
        }
      }
      break;
    }
  }
} finally {
  box.close();
  transport?.dispose();
}
if (sink < 0) process.stdout.write(`${sink}\n`); // keeps the reads from being optimised away
