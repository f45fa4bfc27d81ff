/**
 * The peer of benches `postbox-pingpong` and `postbox-stream`: opens a Postbox, says "ready" on
 * stdout, then either echoes every message back to its sender (mode `echo`: poll, read in place,
 * trySend the same bytes back) or takes messages and reads them in place (mode `sink`: the
 * receiver touches each message's first and last byte, as an application reading in place would).
 * It busy-polls while messages flow and sleeps in receive() after an idle spell. A zero-length
 * message ends it; so does its parent's death.
 *
 * argv: <domain> <name> <echo|sink> <parent pid> <options JSON>
 */
import { Postbox, SendStatus, type PostboxOptions } from '../src/index.js';
import { processRunning } from './lib/peer.js';

const [domain, name, mode, parentText, optionsText] = process.argv.slice(2, 7);
const parentPid = Number(parentText);
if (!domain || !name || (mode !== 'echo' && mode !== 'sink') || !(parentPid > 0)) {
  process.stderr.write('usage: postbox-peer.js <domain> <name> <echo|sink> <parent pid> <options JSON>\n');
  process.exit(2);
}

const box = Postbox.open(name, { ...(JSON.parse(optionsText ?? '{}') as PostboxOptions), domain });
const IDLE_POLLS = 1 << 22;
let stop = false;
let sink = 0;

const echo = (buffer: Uint8Array, offset: number, length: number, from: string) => {
  if (length === 0) {
    stop = true;
    return;
  }
  const reply = buffer.subarray(offset, offset + length);
  let status: number;
  while ((status = box.trySend(from, reply)) !== SendStatus.OK) {
    if (status !== SendStatus.FULL) throw new Error(`echo to ${from}: status ${status}`);
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
    let idle = 0;
    while (!stop && box.poll(handler) === 0) {
      if (++idle < IDLE_POLLS) continue;
      idle = 0;
      if (!processRunning(parentPid)) {
        stop = true;
        break;
      }
      // Idle: sleep until a message comes (its sender rings our bell), then handle it.
      try {
        const m = await box.receive({ spin: 0, timeoutMs: 200 });
        handler(m.data, 0, m.data.length, m.from);
      } catch (error) {
        if ((error as Error).name !== 'TimeoutError') throw error;
      }
    }
  }
} finally {
  box.close();
}
if (sink < 0) process.stdout.write(`${sink}\n`); // keeps the reads from being optimised away
