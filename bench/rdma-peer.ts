/**
 * The server process of benches `rdma-lat` and `rdma-write-bw` (perftest's server role): opens
 * dev0, connects its RC queue pair to the bench's endpoint (given in argv), prints its own
 * endpoint as one line `READY {json}` on stdout, then runs the server half of the same loop as
 * the bench (lib/rdma-loops.ts): the write or send ping-pong, or — for bandwidth — it only keeps its
 * buffer registered until the bench SENDs it a zero-byte "done".
 *
 * It leaves when the loop ends, and on its own when the bench process is gone.
 *
 * argv: <write-lat|send-lat|bw> <device> <gid index> <size> <iterations> <parent pid> <endpoint json>
 */
import { writeSync } from 'node:fs';
import { processRunning } from './lib/peer.js';
import { prepostReceives, SEND_LAT_RX_DEPTH, sendLatLoop, writeLatLoop } from './lib/rdma-loops.js';
import { BenchSide, parseEndpoint } from './lib/rdma-side.js';

/** How often the idle bandwidth server checks that the bench process is still there. */
const PARENT_CHECK_MS = 1000;

const [mode, device, gidText, sizeText, totalText, parentText, endpointText] = process.argv.slice(2, 9);
const size = Number(sizeText);
const total = Number(totalText);
const parentPid = Number(parentText);
if (!['write-lat', 'send-lat', 'bw'].includes(mode) || !device || !(size > 0) || !(total > 0) || !(parentPid > 0) || !endpointText) {
  process.stderr.write('usage: rdma-peer.js <write-lat|send-lat|bw> <device> <gid index> <size> <iterations> <parent pid> <endpoint json>\n');
  process.exit(2);
}

const guard = () => {
  if (!processRunning(parentPid)) {
    process.stderr.write(`rdma peer: parent ${parentPid} is gone; leaving\n`);
    process.exit(3);
  }
};

const side = new BenchSide(device, Number(gidText), mode === 'bw' ? size : 2 * size, mode === 'bw' ? 16 : 128, mode === 'bw');
try {
  const remote = parseEndpoint(endpointText);
  side.connect(remote);
  // Receives may be posted once the QP is out of RESET (rxe refuses them before: EINVAL).
  if (mode === 'send-lat') prepostReceives(side, size, SEND_LAT_RX_DEPTH);
  if (mode === 'bw') prepostReceives(side, 0, 1);
  // writeSync: the loops below never yield, so an asynchronous write might never leave.
  writeSync(1, `READY ${JSON.stringify(side.endpoint())}\n`);
  if (mode === 'write-lat') writeLatLoop(side, remote, size, total, true, null, guard);
  else if (mode === 'send-lat') sendLatLoop(side, size, total, true, null, guard);
  else {
    // Idle while the bench writes into our buffer; its final zero-byte SEND says it is done.
    // Blocked, as perftest's server is: this process shares the machine with the measured one,
    // and under the guest's TCG any work here slows the client (a poll + /proc read every 5 ms
    // sent it into rxe's slow ksoftirqd regime far more often; even a poll every 50 ms cost
    // cpu0 4–6 %). So the receive CQ's completion channel wakes us, and the parent check runs
    // once a second.
    const deadline = Date.now() + 30 * 60_000;
    while ((await side.recvCq.wait({ timeoutMs: PARENT_CHECK_MS })) === 0) {
      guard();
      if (Date.now() > deadline) throw new Error('no "done" from the bench within 30 minutes');
    }
    const c = side.recvCq.completions[0];
    if (!c.ok) throw c.error();
  }
} finally {
  side.dispose();
}
