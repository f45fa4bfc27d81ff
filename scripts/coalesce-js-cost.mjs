#!/usr/bin/env node
/**
 * The request engine's own JavaScript per request, on the host, with no NIC and no kernel: the
 * engine (dist/, so `npm run build` first) drives a stand-in queue pair whose post only records
 * the chain (it stages the region references as QueuePair.postSendChain does, without the
 * ibv_post_send call) and whose send CQ completes every signaled work request at the next poll.
 * The loop is bench/rdma-coalesce.ts's 32x64B loop: 32 elements of 64 B, 128 B apart locally,
 * contiguous remotely; up to 64 requests submitted at once, postOnSubmit false, post lists of 16,
 * a completion every 32 work requests. Four sides, each in a fresh process (so each starts with a
 * cold JIT, as a bench round's side does): `submit` (planned and formatted at every submission)
 * and `prepared` (RequestEngine.prepare once, submitPrepared per request), each coalesced
 * (maxSge 32: one work request of 32 SGEs) and with maxSge 1 (32 work requests).
 *
 *   node scripts/coalesce-js-cost.mjs [--runs 5] [--warmup 400] [--requests 1000] [--steady 100000]
 *   bun scripts/coalesce-js-cost.mjs ...        (the children run under the same runtime)
 *   node scripts/coalesce-js-cost.mjs --base /path/to/other/dist   (adds that build's submit sides, e.g. before prepare())
 *
 * Prints, per side, the medians over the runs of µs of wall and user CPU time per request for the
 * first `--requests` after `--warmup` (what a bench round measures), and per request at steady
 * state (`--steady` more requests). With --cpu-prof (Node) each child writes a .cpuprofile into
 * ./.scratch/prof/. One child: `--child <side> <maxSge>`.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { pathToFileURL } from 'node:url';

// --base DIR: also run the submit sides on another build's dist/ (e.g. the commit before a
// change), interleaved with this build's. --dist DIR: a child runs on that build.
const distAt = process.argv.indexOf('--dist');
const baseAt = process.argv.indexOf('--base');
const dist = distAt > 0 ? pathToFileURL(`${process.argv[distAt + 1]}/src/index.js`) : new URL('../dist/src/index.js', import.meta.url);

function arg(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? Number(process.argv[at + 1]) : fallback;
}

/** A queue pair the engine can run on: posts record, polls complete what was signaled. */
function standIn(maxSendWr, maxSendSge) {
  const pd = { context: { query: () => ({ maxSgeRd: 32, maxQpInitRdAtom: 16 }), queryPort: () => ({ maxMessageSize: 1 << 23 }) } };
  const cap = 4096;
  const pendingIds = new Float64Array(cap);
  const pendingUpto = new Float64Array(cap);
  let head = 0;
  let tail = 0;
  let postedTotal = 0;
  let reapedTotal = 0;
  const staged = new Array(maxSendWr * maxSendSge).fill(undefined);
  const completions = Array.from({ length: 16 }, () => ({ wrId: 0, status: 0, qpNum: 7, opcode: 1, vendorErr: 0 }));
  const qp = {
    qpn: 7, type: 'RC', handle: 1, disposed: false, port: 1, maxRdAtomic: 16, badIndex: -1, maxSendWr, maxSendSge, pd,
    get sendSlotsFree() {
      return maxSendWr - (postedTotal - reapedTotal);
    },
    sendCq: {
      completions,
      poll(max = 16) {
        let n = 0;
        while (head < tail && n < max) {
          const i = head % cap;
          const c = completions[n++];
          c.wrId = pendingIds[i];
          c.status = 0;
          reapedTotal = pendingUpto[i];
          head++;
        }
        return n;
      },
    },
    postSendChain(_address, count, wrIds, signaled, refs, refCounts, perWr) {
      if (postedTotal - reapedTotal + count > maxSendWr) return 12;
      // What stageChain does per work request: keep its regions (checking each is alive).
      for (let i = 0; i < count; i++) {
        const n = refCounts[i];
        for (let j = 0; j < n; j++) {
          const mr = refs[i * perWr + j];
          if (mr.disposed) throw new Error('disposed region');
          staged[(((postedTotal + i) % maxSendWr) * maxSendSge) + j] = mr;
        }
        if (signaled[i]) {
          pendingIds[tail % cap] = wrIds[i];
          pendingUpto[tail % cap] = postedTotal + i + 1;
          tail++;
        }
      }
      postedTotal += count;
      return 0;
    },
    queryState: () => 'RTS',
    toError() {},
  };
  const mr = { pd, addr: 0x10000000, length: 1 << 20, lkey: 5, rkey: 5, disposed: false, accessFlags: 1 };
  return { qp, mr };
}

async function child(side, maxSge) {
  const { RequestEngine } = await import(dist);
  const { qp, mr } = standIn(128, 32);
  const warmup = arg('warmup', 400);
  const requests = arg('requests', 1000);
  const steady = arg('steady', 100_000);
  const engine = new RequestEngine(qp, { signalEvery: 32, postList: 16, postOnSubmit: false, idle: 'spin' });
  const elements = Array.from({ length: 32 }, (_, i) => ({ mr, offset: i * 128, length: 64, remoteOffset: i * 64 }));
  const remote = { addr: 0x20000000, rkey: 9, length: 1 << 20 };
  const options = { maxSge };
  const prepared = side === 'prepared' ? engine.prepare('write', remote, elements, options) : null;
  const loop = (count) => {
    let submitted = 0;
    let settled = 0;
    let bytes = 0;
    while (settled < count) {
      while (submitted < count && submitted - settled < 64) {
        const id = prepared ? engine.submitPrepared(prepared, submitted) : engine.submit('write', remote, elements, submitted, options);
        if (id < 0) break;
        submitted++;
      }
      const n = engine.progress();
      for (let i = 0; i < n; i++) {
        if (engine.settled.error[i]) throw engine.settled.error[i];
        bytes += engine.settled.bytes[i];
      }
      settled += n;
    }
    if (bytes !== count * 32 * 64) throw new Error(`settled ${bytes} bytes for ${count * 32 * 64}`);
  };
  const measure = (count) => {
    const u0 = process.cpuUsage();
    const t0 = performance.now();
    loop(count);
    const t1 = performance.now();
    const u1 = process.cpuUsage(u0);
    return { wall: ((t1 - t0) * 1000) / count, user: u1.user / count };
  };
  loop(warmup);
  const first = measure(requests);
  const wrs0 = engine.postedWorkRequests;
  const later = measure(steady);
  const wrsPerRequest = (engine.postedWorkRequests - wrs0) / steady;
  engine.dispose();
  process.stdout.write(JSON.stringify({ first, later, wrsPerRequest }) + '\n');
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function main() {
  const at = process.argv.indexOf('--child');
  if (at > 0) return child(process.argv[at + 1], Number(process.argv[at + 2]));
  const runs = arg('runs', 5);
  const pass = [];
  for (const name of ['warmup', 'requests', 'steady']) {
    const v = arg(name, undefined);
    if (v !== undefined) pass.push(`--${name}`, String(v));
  }
  const prof = process.argv.includes('--cpu-prof');
  if (prof) mkdirSync('.scratch/prof', { recursive: true });
  const sides = [['submit', 32], ['prepared', 32], ['submit', 1], ['prepared', 1]];
  if (baseAt > 0) sides.push(['submit', 32, process.argv[baseAt + 1]], ['submit', 1, process.argv[baseAt + 1]]);
  const results = sides.map(() => []);
  const script = fileURLToPath(import.meta.url);
  // Interleaved: run r of every side, then run r + 1, so the host's load drifts over all alike.
  for (let r = 0; r < runs; r++) {
    sides.forEach(([side, maxSge, base], k) => {
      const flags = prof && process.versions.bun === undefined ? ['--cpu-prof', '--cpu-prof-dir=.scratch/prof', `--cpu-prof-name=${side}-${maxSge}-${r}.cpuprofile`] : [];
      const out = spawnSync(process.execPath, [...flags, script, '--child', side, String(maxSge), ...pass, ...(base ? ['--dist', base] : [])], { encoding: 'utf8' });
      if (out.status !== 0) throw new Error(`${side} ${maxSge}: ${out.stderr}`);
      results[k].push(JSON.parse(out.stdout.trim().split('\n').pop()));
    });
  }
  const runtime = process.versions.bun ? `bun ${process.versions.bun}` : `node ${process.versions.node}`;
  console.log(`${runtime}, ${runs} runs per side (medians), µs per request:`);
  if (baseAt > 0) console.log(`base = ${process.argv[baseAt + 1]}`);
  console.log('side                      WRs/req  first wall  first user  steady wall  steady user');
  sides.forEach(([side, maxSge, base], k) => {
    const x = results[k];
    const name = `${base ? 'base ' : ''}${side}, maxSge ${maxSge}`;
    const f = (v) => v.toFixed(2).padStart(10);
    console.log(`${name.padEnd(25)} ${String(x[0].wrsPerRequest).padStart(7)} ${f(median(x.map((y) => y.first.wall)))}  ${f(median(x.map((y) => y.first.user)))}  ${f(median(x.map((y) => y.later.wall)))}   ${f(median(x.map((y) => y.later.user)))}`);
  });
}

await main();
