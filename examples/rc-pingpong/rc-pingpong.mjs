#!/usr/bin/env node
/**
 * rc-pingpong: a memwire program that speaks the out-of-band protocol of rdma-core's
 * `ibv_rc_pingpong` (package ibverbs-utils, libibverbs/examples/rc_pingpong.c), so either side
 * can be the C tool. Runs on Node and on Bun (node:net for the TCP part; memwire's public API for
 * the verbs). Build first (`npm run build`): it imports the compiled library from dist/.
 *
 *   node examples/rc-pingpong/rc-pingpong.mjs [-p port] [-d dev] [-g gid_index] [-s size] [-n iters] [-m mtu] [-r rx_depth] [server]
 *
 * Without a server name it is the server. The protocol, as rc_pingpong.c:
 *  1. Both sides open the device, post rx_depth receives of `size` bytes, and make their
 *     endpoint string "LID:QPN:PSN:GID" — `%04x:%06x:%06x:%s`, the GID as 32 hex digits of its
 *     16 raw bytes ("wire GID") — sent as a 52-byte NUL-terminated buffer.
 *  2. The client connects (TCP, port 18515 by default) and writes its endpoint; the server reads
 *     it, connects its QP (RTR, RTS), writes its own; the client reads it, writes "done\0", and
 *     connects its QP.
 *  3. Ping-pong of SENDs of `size` bytes: the client sends first; each side sends again once its
 *     previous send completed and the peer's message arrived; `iters` each way.
 * It prints the same two result lines as the C tool and exits 0.
 */
import { createConnection, createServer } from 'node:net';
import { Context } from '../../dist/src/index.js';

const MSG_SIZE = 52; // sizeof "0000:000000:000000:00000000000000000000000000000000"
const RECV_WRID = 1;
const SEND_WRID = 2;

function parseArgs(argv) {
  const o = { port: 18515, dev: undefined, gidIndex: undefined, size: 4096, iters: 1000, mtu: 1024, rxDepth: 500, server: undefined };
  const number = (flag, value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0) throw new Error(`${flag} needs a whole number, got ${value}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '-p' || a === '--port') o.port = number(a, next());
    else if (a === '-d' || a === '--ib-dev') o.dev = next();
    else if (a === '-g' || a === '--gid-idx') o.gidIndex = number(a, next());
    else if (a === '-s' || a === '--size') o.size = number(a, next());
    else if (a === '-n' || a === '--iters') o.iters = number(a, next());
    else if (a === '-m' || a === '--mtu') o.mtu = number(a, next());
    else if (a === '-r' || a === '--rx-depth') o.rxDepth = number(a, next());
    else if (a.startsWith('-')) throw new Error(`unknown option ${a}`);
    else if (o.server === undefined) o.server = a;
    else throw new Error(`unexpected argument ${a}`);
  }
  return o;
}

/** "LID:QPN:PSN:GID" in rc_pingpong's format, as its 52-byte NUL-padded buffer. */
function encodeDest(lid, qpn, psn, rawGid) {
  const hex = (n, width) => n.toString(16).padStart(width, '0');
  const wire = Array.from(rawGid, (b) => hex(b, 2)).join('');
  const text = `${hex(lid, 4)}:${hex(qpn, 6)}:${hex(psn, 6)}:${wire}`;
  const buf = Buffer.alloc(MSG_SIZE);
  buf.write(text, 'latin1');
  return buf;
}

function decodeDest(buf) {
  const text = buf.toString('latin1').replace(/\0.*$/s, '');
  const m = /^([0-9a-fA-F]+):([0-9a-fA-F]+):([0-9a-fA-F]+):([0-9a-fA-F]{32})$/.exec(text);
  if (!m) throw new Error(`bad remote address ${JSON.stringify(text)}`);
  // memwire accepts a GID as 32 hex digits of its raw bytes: the wire format itself.
  return { lid: parseInt(m[1], 16), qpn: parseInt(m[2], 16), psn: parseInt(m[3], 16), gid: m[4].toLowerCase() };
}

/** Read exactly `n` bytes (or what came before the peer closed, for the short "done"). */
function reader(socket) {
  let chunks = Buffer.alloc(0);
  let ended = false;
  let wake = () => {};
  socket.on('data', (d) => {
    chunks = Buffer.concat([chunks, d]);
    wake();
  });
  socket.on('end', () => {
    ended = true;
    wake();
  });
  socket.on('error', () => {
    ended = true;
    wake();
  });
  return async (n, allowShort = false) => {
    while (chunks.length < n && !ended) await new Promise((resolve) => (wake = resolve));
    if (chunks.length < n && !(allowShort && chunks.length > 0)) throw new Error(`peer closed after ${chunks.length} of ${n} bytes`);
    const out = chunks.subarray(0, Math.min(n, chunks.length));
    chunks = chunks.subarray(out.length);
    return out;
  };
}

const write = (socket, buf) => new Promise((resolve, reject) => socket.write(buf, (e) => (e ? reject(e) : resolve())));

async function exchangeAsServer(port, mine, connect) {
  const server = createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, resolve);
  });
  console.log(`  waiting for a client on port ${port}`);
  const socket = await new Promise((resolve) => server.once('connection', resolve));
  server.close();
  try {
    const read = reader(socket);
    const remote = decodeDest(await read(MSG_SIZE));
    connect(remote); // as the C server: connect before answering
    await write(socket, mine);
    await read(MSG_SIZE, true); // the client's "done" (5 bytes from the C tool)
    return remote;
  } finally {
    socket.destroy();
  }
}

async function exchangeAsClient(host, port, mine) {
  const socket = createConnection({ host, port });
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  try {
    const read = reader(socket);
    await write(socket, mine);
    const remote = decodeDest(await read(MSG_SIZE));
    await write(socket, Buffer.from('done\0', 'latin1'));
    return remote;
  } finally {
    socket.end();
  }
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const ctx = Context.open({ device: o.dev, gidIndex: o.gidIndex });
  try {
    const pd = ctx.allocPd();
    const cq = ctx.createCompletionQueue({ entries: o.rxDepth + 1, events: false, batch: 16 });
    const qp = pd.createQueuePair({ sendCq: cq, maxSendWr: 1, maxRecvWr: o.rxDepth, maxSendSge: 1, maxRecvSge: 1 });
    const buf = new Uint8Array(Math.max(o.size, 1)).fill(0x7b);
    const mr = pd.registerMemory(buf);
    qp.toInit({ remoteRead: false, remoteWrite: false, remoteAtomic: false });
    const recv = { wrId: RECV_WRID, sge: { mr, offset: 0, length: o.size } };
    for (let i = 0; i < o.rxDepth; i++) if (qp.postRecv(recv) !== 0) throw new Error(`couldn't post receive (${i})`);
    let routs = o.rxDepth;

    const port = ctx.queryPort();
    const gid = ctx.gid();
    console.log(`  local address:  LID 0x${port.lid.toString(16).padStart(4, '0')}, QPN 0x${qp.qpn.toString(16).padStart(6, '0')}, PSN 0x${qp.psn.toString(16).padStart(6, '0')}, GID ${gid.gid}`);
    const mine = encodeDest(port.lid, qp.qpn, qp.psn, gid.raw);
    // rc_pingpong's attributes: path MTU -m (1024), timeout 14, retry 7, RNR retry 7, min RNR timer 12.
    const connect = (remote) => qp.connect(remote, { pathMtu: o.mtu, timeout: 14, retryCount: 7, rnrRetry: 7, minRnrTimer: 12, maxRdAtomic: 1, maxDestRdAtomic: 1 });
    const remote = o.server === undefined ? await exchangeAsServer(o.port, mine, connect) : await exchangeAsClient(o.server, o.port, mine);
    console.log(`  remote address: LID 0x${remote.lid.toString(16).padStart(4, '0')}, QPN 0x${remote.qpn.toString(16).padStart(6, '0')}, PSN 0x${remote.psn.toString(16).padStart(6, '0')}, GID ${remote.gid}`);
    if (o.server !== undefined) connect(remote);

    const send = qp.prepareSend({ wrId: SEND_WRID, opcode: 'send', sge: { mr, offset: 0, length: o.size }, signaled: true, inline: o.size <= qp.maxInlineData });
    let pending = RECV_WRID;
    if (o.server !== undefined) {
      if (qp.postPrepared(send) !== 0) throw new Error("couldn't post send");
      pending |= SEND_WRID;
    }
    const start = process.hrtime.bigint();
    const deadline = Date.now() + 120_000;
    let rcnt = 0;
    let scnt = 0;
    let polls = 0;
    while (rcnt < o.iters || scnt < o.iters) {
      const n = cq.poll();
      if (n === 0) {
        if ((++polls & 0xffff) === 0 && Date.now() > deadline) throw new Error(`timed out after ${scnt} sends and ${rcnt} receives`);
        continue;
      }
      for (let i = 0; i < n; i++) {
        const c = cq.completions[i];
        if (!c.ok) throw c.error();
        if (c.wrId === SEND_WRID) scnt++;
        else if (c.wrId === RECV_WRID) {
          if (--routs <= 1) {
            for (; routs < o.rxDepth; routs++) if (qp.postRecv(recv) !== 0) throw new Error("couldn't post receive");
          }
          rcnt++;
        } else throw new Error(`completion for unknown wr_id ${c.wrId}`);
        pending &= ~c.wrId;
        if (scnt < o.iters && pending === 0) {
          if (qp.postPrepared(send) !== 0) throw new Error("couldn't post send");
          pending = RECV_WRID | SEND_WRID;
        }
      }
    }
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    const bytes = o.size * o.iters * 2;
    console.log(`${bytes} bytes in ${seconds.toFixed(2)} seconds = ${((bytes * 8) / seconds / 1e6).toFixed(2)} Mbit/sec`);
    console.log(`${o.iters} iters in ${seconds.toFixed(2)} seconds = ${((seconds * 1e6) / o.iters).toFixed(2)} usec/iter`);
  } finally {
    ctx.dispose();
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(`rc-pingpong: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
