// Diagnostic, not a bench: where a slow postbox ping-pong round trip spends its time (issue 12's
// large-size tails; findings in bench/README.md, "postbox-pingpong tails"). Needs `npm run build`.
//
//   node scripts/postbox-tails-probe.mjs <size> <round trips>
//
// Node only for the segments: Bun's process.hrtime is not on one clock across processes (its
// 'deliver' came out at -153 ms), so under Bun only the round trips and the per-side counts hold.
//
// Two processes pinned to CPUs 0 and 1, a Postbox each, as the bench's. Per round trip it records
// five timestamps (Node: CLOCK_MONOTONIC, comparable across the two processes): the sender's trySend
// start (t0) and return (t1), the echo's handler start (tA) and its reply published (tB), the
// reply seen (t2); and, outside the timed segments, each side's run-queue wait and timeslices from
// /proc/thread-self/schedstat and its minor faults from /proc/self/stat. It prints the median of
// each segment (send = t1 - t0, deliver = tA - t1, echo = tB - tA, back = t2 - tB), the round
// trips slower than max(2 x p50, p99) with the segment that grew and the run-queue wait around
// them, every thread's CPU and wait time, and the block offsets each side saw.
// Environment: SETSID=1 starts the echo in a session of its own (autogroup); READ=1 makes the
// sender copy each reply out (by default it reads one byte, as the bench does); LIGHT=1 reads
// schedstat only at the start and end of the run (no per-round-trip /proc reads: 5 syscalls per
// round trip and side that ucx_perftest does not make) and prints each side's totals only.
import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { Postbox, SendStatus } from '../dist/src/index.js';
import { pinThread } from '../dist/bench/lib/cpu.js';

const hr = () => Number(process.hrtime.bigint());
function sched() { // [on-cpu ns, runqueue-wait ns, timeslices]
  const t = readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ');
  return [Number(t[0]), Number(t[1]), Number(t[2])];
}
import { readdirSync } from 'node:fs';
function threads() { // per-thread [comm, on-cpu ms, runqueue ms, slices]
  return readdirSync('/proc/self/task').map((t) => { const st = readFileSync(`/proc/self/task/${t}/schedstat`, 'utf8').split(' '); const comm = readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim(); return `${comm}:${(Number(st[0]) / 1e6).toFixed(0)}/${(Number(st[1]) / 1e6).toFixed(0)}/${st[2].trim()}`; }).join(' ');
}
function faults() { const s = readFileSync('/proc/self/stat', 'utf8'); const f = s.slice(s.lastIndexOf(')') + 2).split(' '); return [Number(f[7]), Number(f[9])]; }
const OPTS = { poolBytes: 4 << 20 };
const LIGHT = process.env.LIGHT === '1';
const [role, ...rest] = process.argv.slice(2);
if (role === 'peer') {
  const [domain, nText, outFile] = rest;
  const n = Number(nText);
  pinThread(0, [1]);
  const box = Postbox.open('pong', { ...OPTS, domain });
  const rec = { tA: [], tB: [], wait: [], slices: [], minflt: [], cpu: [], off: [] };
  let stop = false, tA = 0, tB = 0, offAt = 0;
  const echo = (buf, off, len, from) => {
    if (len === 0) { stop = true; return; }
    tA = hr(); offAt = off;
    const r = buf.subarray(off, off + len);
    while (box.trySend(from, r) !== SendStatus.OK);
    tB = hr();
  };
  process.stdout.write('ready\n');
  let s0 = sched(), f0 = faults();
  while (!stop) {
    if (box.poll(echo, 1) === 0) continue;
    if (stop) break;
    if (LIGHT) { rec.tA.push(tA); rec.tB.push(tB); continue; }
    const s1 = sched(), f1 = faults();
    rec.tA.push(tA); rec.tB.push(tB); rec.wait.push(s1[1] - s0[1]); rec.slices.push(s1[2] - s0[2]); rec.minflt.push(f1[0] - f0[0]); rec.cpu.push(s1[0] - s0[0]); rec.off.push(offAt);
    s0 = sched(); f0 = faults();
  }
  rec.threads = threads();
  if (LIGHT) { const s1 = sched(); rec.total = [s1[0] - s0[0], s1[1] - s0[1], s1[2] - s0[2]]; }
  writeFileSync(outFile, JSON.stringify(rec));
  box.close();
  process.exit(0);
}
const size = Number(role), n = Number(rest[0]), out = rest[1] ?? '/tmp/memwire-tails-probe.json';
pinThread(0, [0]);
const domain = `tailsprobe${process.pid}`;
const box = Postbox.open('ping', { ...OPTS, domain });
const peerOut = `/tmp/memwire-tails-peer-${process.pid}.json`;
const child = spawn(process.execPath, [...process.execArgv, new URL(import.meta.url).pathname, 'peer', domain, String(n), peerOut], { stdio: ['ignore', 'pipe', 'inherit'], detached: process.env.SETSID === '1' });
await new Promise((r) => child.stdout.once('data', r));
const msg = new Uint8Array(size).fill(0x5a);
let got = -1;
const READ = process.env.READ === '1'; const sink = new Uint8Array(size);
const offs = new Map();
const onReply = (b, o, l) => { got = l; offs.set(o, (offs.get(o) ?? 0) + 1); if (READ) sink.set(b.subarray(o, o + l)); };
const warm = Math.max(500, n >> 2);
const rec = { t0: [], t1: [], t2: [], wait: [], slices: [], minflt: [], cpu: [] };
let s0 = sched(), f0 = faults();
for (let i = -warm; i < n; i++) {
  const t0 = hr();
  while (box.trySend('pong', msg) !== SendStatus.OK);
  const t1 = hr();
  got = -1;
  while (box.poll(onReply, 1) === 0);
  const t2 = hr();
  if (got !== size) throw new Error('mismatch');
  if (LIGHT) { if (i === -warm) s0 = sched(); if (i >= 0) { rec.t0.push(t0); rec.t1.push(t1); rec.t2.push(t2); } continue; }
  const s1 = sched(), f1 = faults();
  if (i >= 0) { rec.t0.push(t0); rec.t1.push(t1); rec.t2.push(t2); rec.wait.push(s1[1] - s0[1]); rec.slices.push(s1[2] - s0[2]); rec.minflt.push(f1[0] - f0[0]); rec.cpu.push(s1[0] - s0[0]); }
  s0 = sched(); f0 = faults();
}
while (box.trySend('pong', new Uint8Array(0)) !== SendStatus.OK);
await new Promise((r) => child.on('exit', r));
const peer = JSON.parse(readFileSync(peerOut, 'utf8'));
if (LIGHT) { // totals over warm-up and measurement, read only at both ends
  const s1 = sched(); const me = [s1[0] - s0[0], s1[1] - s0[1], s1[2] - s0[2]]; const rts = n + warm;
  const rt = rec.t0.map((t, i) => (rec.t2[i] - t) / 2).sort((a, b) => a - b);
  const q = (p) => rt[Math.min(rt.length - 1, Math.floor(p / 100 * rt.length))];
  const side = (name, t) => `${name} on-cpu ${(t[0] / 1e6).toFixed(0)} ms, run-queue wait ${(t[1] / 1e6).toFixed(0)} ms over ${t[2]} slices (${(t[2] / rts).toFixed(3)} per round trip)`;
  console.log(`${process.versions.bun ? 'bun' : 'node'} LIGHT size ${size} n ${n}+${warm} warm-up: one-way p50 ${(q(50) / 1e3).toFixed(2)} µs p98 ${(q(98) / 1e3).toFixed(0)} p99 ${(q(99) / 1e3).toFixed(0)} p99.5 ${(q(99.5) / 1e3).toFixed(0)}, ${rt.filter((v) => v > 1e6).length} over 1 ms; wall ${((rec.t2.at(-1) - rec.t0[0]) / 1e6).toFixed(0)} ms measured; ${side('ping', me)}; ${side('peer', peer.total)}; load ${readFileSync('/proc/loadavg', 'utf8').trim()}`);
  unlinkSync(peerOut); box.close(); process.exit(0);
}
unlinkSync(peerOut);
box.close();
const k = peer.tA.length - n; // the peer also recorded the warm-up
const peerThreads = peer.threads; delete peer.threads;
console.log('threads (on-cpu ms / runqueue ms / slices): ping', threads(), '| peer', peerThreads);
for (const key of Object.keys(peer)) peer[key] = peer[key].slice(k);
writeFileSync(out, JSON.stringify({ size, n, ping: rec, peer }));
// analysis
const rt = rec.t0.map((t, i) => (rec.t2[i] - t) / 2);
const sorted = [...rt].sort((a, b) => a - b);
const q = (p) => sorted[Math.min(sorted.length - 1, Math.floor(p / 100 * sorted.length))];
const med = q(50);
console.log(`${process.versions.bun ? 'bun' : 'node'} size ${size} n ${n}: one-way p50 ${(med / 1e3).toFixed(2)} µs p99 ${(q(99) / 1e3).toFixed(2)} p99.9 ${(q(99.9) / 1e3).toFixed(2)} max ${(sorted.at(-1) / 1e3).toFixed(1)}; load ${readFileSync('/proc/loadavg', 'utf8').trim()}`);
const segs = (i) => ({ send: rec.t1[i] - rec.t0[i], deliver: peer.tA[i] - rec.t1[i], echo: peer.tB[i] - peer.tA[i], back: rec.t2[i] - peer.tB[i] });
const medSeg = {};
for (const s of ['send', 'deliver', 'echo', 'back']) { const v = rt.map((_, i) => segs(i)[s]).sort((a, b) => a - b); medSeg[s] = v[v.length >> 1]; }
console.log('median segments µs', Object.fromEntries(Object.entries(medSeg).map(([k, v]) => [k, (v / 1e3).toFixed(2)])));
const slowIdx = rt.map((v, i) => [v, i]).filter(([v]) => v > Math.max(2 * med, q(99))).map(([, i]) => i);
let explained = 0, fault = 0; const agg = { send: 0, deliver: 0, echo: 0, back: 0 };
for (const i of slowIdx) {
  const sg = segs(i); const excess = 2 * (rt[i] - med);
  let worst = 'send'; for (const s of Object.keys(sg)) if (sg[s] - medSeg[s] > sg[worst] - medSeg[worst]) worst = s;
  agg[worst]++;
  // run-queue wait recorded for this round trip: ping's (measured after t2) and the peer's (after tB)
  const w = rec.wait[i] + peer.wait[i];
  if (w >= 0.5 * excess) explained++;
  if (rec.minflt[i] + peer.minflt[i] > 0) fault++;
}
console.log(`slow round trips (> max(2×p50, p99)): ${slowIdx.length}; worst segment: ${JSON.stringify(agg)}; run-queue wait ≥ half the excess in ${explained}; with minor faults ${fault}`);
const tot = (a) => a.reduce((x, y) => x + y, 0);
console.log(`whole run: ping runqueue wait ${(tot(rec.wait) / 1e6).toFixed(1)} ms over ${tot(rec.slices)} slices, peer ${(tot(peer.wait) / 1e6).toFixed(1)} ms over ${tot(peer.slices)}; minflt ping ${tot(rec.minflt)} peer ${tot(peer.minflt)}; wall ${((rec.t2.at(-1) - rec.t0[0]) / 1e6).toFixed(0)} ms`);
for (const i of slowIdx.slice(0, 12)) { const sg = segs(i); console.log(`  #${i} one-way ${(rt[i] / 1e3).toFixed(1)}: send ${(sg.send / 1e3).toFixed(1)} deliver ${(sg.deliver / 1e3).toFixed(1)} echo ${(sg.echo / 1e3).toFixed(1)} back ${(sg.back / 1e3).toFixed(1)} | wait ping ${(rec.wait[i] / 1e3).toFixed(0)} peer ${(peer.wait[i] / 1e3).toFixed(0)} µs, slices ${rec.slices[i]}/${peer.slices[i]}, minflt ${rec.minflt[i]}/${peer.minflt[i]}`); }
const po = new Map(); for (const o of peer.off) po.set(o, (po.get(o) ?? 0) + 1);
console.log('peer saw ping blocks at offsets', JSON.stringify([...po]), '; ping saw echo at', JSON.stringify([...offs]));
