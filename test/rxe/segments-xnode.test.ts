/**
 * Segment groups between two nodes on real rxe (issue 12): node A on DEV0 and node B on DEV1, each
 * its own mount namespace and /dev/shm and its agent; one process per node
 * (test/fixtures/segments-node-process.ts) runs a SegmentReceiver that accepts the other node's
 * sender ("sb@B" on A, "sa@A" on B) and a SegmentSender connected with connectAsync to the other
 * node's receiver ("rb@B", "ra@A") — messages both ways at once, as RDMA WRITEs through
 * RdmaTransport. Per pair: a burst that the receiver does not read yet (the 64-byte group's runs
 * are taken, so the sender falls back to the 1 KiB and then the 16 KiB partitions, until every
 * group is full), then a ladder of sizes that hits every group (0 B up to the largest message),
 * then random sizes; each receiver checks every message byte for byte and in order. The segments
 * live where the design says: the targets on the receiver's node, the return segment on the
 * sender's, nothing of one node in the other's /dev/shm.
 *
 * Then a receiver on B is SIGKILLed while A's sender streams to it: the sender's send() must fail
 * with PeerGoneError (RECEIVER_CHECK_MS, pid + start time asked of B's agent), not hang.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { backend } from '../../ffi/backend.js';
import { runtimeName } from '../../ffi/runtime.js';
import { targetRegionName } from '../../src/agent/agent.js';
import { nodeTag } from '../../src/transport/descriptor.js';
import { DEV0, DEV1, skipReason, suffix } from './helpers.js';
import { nodesWithAgents } from './postbox-xnode.js';
import type { Proc, TwoNodeNode } from './two-node.js';

const PORT = 7485;
const FIXTURE = fileURLToPath(new URL('../../dist/test/fixtures/segments-node-process.js', import.meta.url));
const GROUPS = [
  { partitionSize: 64, partitions: 32 },
  { partitionSize: 1024, partitions: 16 },
  { partitionSize: 16384, partitions: 8 },
];
const LARGEST = 16384 * 8 - 4;
// Every group by its own size (0 B … 63, 64 … 1023, 1024 …), the edges of a partition with the
// 4-byte length word (60/61, 1020/1021, 16380/16381), several partitions, the largest message.
const LADDER = [0, 1, 7, 8, 59, 60, 61, 64, 200, 1019, 1020, 1021, 1024, 5000, 16379, 16380, 16381, 16384, 40_000, 100_000, LARGEST];
const COUNT = 300;

function files(tag: string) {
  const at = (what: string) => fileURLToPath(new URL(`../../.cache/segments-xnode-${what}.${tag}.${process.pid}`, import.meta.url));
  const all = { goFile: at('go'), drainFile: at('drain'), finishFile: at('finish') };
  for (const f of Object.values(all)) rmSync(f, { force: true });
  mkdirSync(dirname(all.goFile), { recursive: true });
  return { ...all, clear: () => Object.values(all).forEach((f) => rmSync(f, { force: true })) };
}

const shmOf = (name: string) => `memwire.u${process.getuid!()}.${targetRegionName(name)}`;

describe.skipIf(!!skipReason)(`segment groups across two nodes ${DEV0} / ${DEV1} over RdmaTransport (${runtimeName}, ${backend.name})${suffix}`, () => {
  const nodes = nodesWithAgents(PORT);

  it('A → B and B → A at once: every group, fallback to larger partitions when the smaller runs are taken, byte-exact and in order; segments only where they belong', async () => {
    const [A, B] = nodes();
    const agents = { A: { address: A.address, port: PORT }, B: { address: B.address, port: PORT } };
    const f = files('sizes');
    const common = { agents, domain: 'sx', groups: GROUPS, ladder: LADDER, count: COUNT, maxRandom: 60_000, timeoutMs: 300_000, ...f };
    const start = (node: TwoNodeNode, config: object): Proc => node.run([JSON.stringify({ node: node.name, device: node.device, ...common, ...config })], FIXTURE);
    const pa = start(A, { receiver: 'ra', accept: ['sb@B'], sender: 'sa', to: 'rb@B' });
    const pb = start(B, { receiver: 'rb', accept: ['sa@A'], sender: 'sb', to: 'ra@A' });
    const procs = [pa, pb];
    try {
      for (const p of procs) await p.line(/^ready$/, 60_000);
      writeFileSync(f.goFile, 'go');
      expect((await pa.line(/^connected (.*)$/, 60_000))[1]).toBe('rb@B');
      expect((await pb.line(/^connected (.*)$/, 60_000))[1]).toBe('ra@A');
      for (const p of procs) {
        const burst = await p.line(/^burst placed=(\S*) fallback=(\d+) full=(\w+) refused=(\S+)$/, 120_000);
        process.stdout.write(`${burst[0]}\n`);
        // 100 + 4 bytes: 2 × 64 B (16 messages), then 1 × 1 KiB (16), then 1 × 16 KiB (8); then full.
        expect(burst.slice(1)).toEqual(['16,16,8', '24', 'true', '-1']);
      }
      writeFileSync(f.drainFile, 'drain');
      const outs: string[] = [];
      for (const p of procs) {
        const end = await p.line(/^(done|failed .*)$/, 300_000);
        const out = p.output();
        outs.push(out);
        process.stdout.write(`${out.split('\n').filter((l) => /^(sent|recv|first-fault|failed)/.test(l)).join('\n')}\n`);
        if (end[1] !== 'done') for (const n of [A, B]) for (const agent of n.agents) process.stdout.write(`--- agent of ${n.name}\n${agent.output()}\n`);
        expect(end[1], out).toBe('done');
      }
      const total = 40 + LADDER.length + COUNT;
      for (const [out, from] of [[outs[0], 'sb@B'], [outs[1], 'sa@A']]) {
        const recv = out.match(/^recv (\S+) ok=(\d+) lost=(\d+) duplicated=(\d+) corrupted=(\d+) reordered=(\d+) bytes=(\d+) max=(\d+)$/m);
        expect(recv?.slice(1, 7), out).toEqual([from, String(total), '0', '0', '0', '0']);
        expect(Number(recv![8])).toBe(LARGEST);
        expect(out).toMatch(new RegExp(`^sent ${total} \\d+$`, 'm'));
      }

      // Where the segments live: the targets of sa@A on B (written by RDMA), its return segment on A
      // (written by B's receiver by RDMA); neither node sees the other's.
      const targets = GROUPS.map((_, g) => shmOf(`sg.sx.seg.rb.sa.${nodeTag('A')}.${g}`));
      const returns = shmOf(`sg.sx.ret.rb.${nodeTag('B')}.sa`);
      for (const t of targets) {
        expect(B.shm()).toContain(t);
        expect(A.shm()).not.toContain(t);
      }
      expect(A.shm()).toContain(returns);
      expect(B.shm()).not.toContain(returns);
      expect(A.shm()).toContain(shmOf('sg.sx.mgr.ra'));
      expect(B.shm()).not.toContain(shmOf('sg.sx.mgr.ra'));

      writeFileSync(f.finishFile, 'finish');
      for (const p of procs) expect(await p.exit).toEqual({ code: 0, signal: null });
    } finally {
      f.clear();
      await Promise.all(procs.map((p) => p.kill('SIGKILL')));
    }
  }, 480_000);

  it('a receiver on B killed (SIGKILL) while A streams to it: A’s send() fails with PeerGoneError, no hang', async () => {
    const [A, B] = nodes();
    const agents = { A: { address: A.address, port: PORT }, B: { address: B.address, port: PORT } };
    const f = files('kill');
    const common = { agents, domain: 'sk', groups: GROUPS, ladder: [], count: 0, maxRandom: 64, stream: true, timeoutMs: 120_000, ...f };
    const receiver = B.run([JSON.stringify({ node: 'B', device: B.device, ...common, receiver: 'rk', accept: ['sk@A'] })], FIXTURE);
    const sender = A.run([JSON.stringify({ node: 'A', device: A.device, ...common, sender: 'sk', to: 'rk@B' })], FIXTURE);
    try {
      await receiver.line(/^ready$/, 60_000);
      await sender.line(/^ready$/, 60_000);
      writeFileSync(f.goFile, 'go');
      await sender.line(/^streaming$/, 120_000);
      const killedAt = Date.now();
      await receiver.kill('SIGKILL');
      const gone = await sender.line(/^gone (\w+): (.*)$/, 60_000);
      process.stdout.write(`sender: ${gone[0]} — ${Date.now() - killedAt} ms after the kill (guest clock, one run)\n`);
      expect(gone[1]).toBe('PeerGoneError');
      expect(gone[2]).toMatch(/rk@B/);
      writeFileSync(f.finishFile, 'finish');
      expect(await sender.exit).toEqual({ code: 0, signal: null });
    } finally {
      f.clear();
      await Promise.all([receiver, sender].map((p) => p.kill('SIGKILL')));
    }
  }, 240_000);
});
