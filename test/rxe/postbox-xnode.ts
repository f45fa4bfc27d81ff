/**
 * The postbox all-to-all across two nodes of the guest (test/rxe/two-node.ts), shared by
 * postbox-xnode.test.ts (every size class, 0 B – 64 MiB) and postbox-xnode-soak.test.ts (a timed
 * soak): node A and node B each an agent and two processes running a Postbox over RdmaTransport
 * (test/fixtures/postbox-node-process.ts); every process sends to the three others — the one on
 * its node through shm, the two on the other node through RDMA — and checks what it receives.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect } from 'vitest';
import { twoNodes, type Proc, type TwoNodeNode } from './two-node.js';

const FIXTURE = fileURLToPath(new URL('../../dist/test/fixtures/postbox-node-process.js', import.meta.url));

export interface AllToAllPlan {
  /** Sizes every pair sends first; `bigLadder` instead for the first process of each node. */
  readonly ladder: number[];
  readonly bigLadder?: number[];
  readonly count?: number;
  readonly durationMs?: number;
  readonly maxRandom: number;
  readonly timeoutMs: number;
}

export interface PairResult {
  readonly from: string;
  readonly to: string;
  readonly sent: number;
  readonly ok: number;
  readonly lost: number;
  readonly duplicated: number;
  readonly corrupted: number;
  readonly reordered: number;
  readonly bytes: number;
  readonly max: number;
}

/** Run the all-to-all between a1, a2 on A and b1, b2 on B (both agents already listening on `port`); one result per ordered pair. */
export async function allToAll(A: TwoNodeNode, B: TwoNodeNode, port: number, plan: AllToAllPlan, tag: string): Promise<PairResult[]> {
  const goFile = fileURLToPath(new URL(`../../.cache/postbox-xnode-go.${tag}.${process.pid}`, import.meta.url));
  rmSync(goFile, { force: true });
  const agents = { A: { address: A.address, port }, B: { address: B.address, port } };
  const members = [
    { node: A, name: 'a1', big: true },
    { node: A, name: 'a2', big: false },
    { node: B, name: 'b1', big: true },
    { node: B, name: 'b2', big: false },
  ];
  // How `who` is named by a process of node `on` (the postbox adds "@node" across nodes).
  const named = (who: (typeof members)[number], on: TwoNodeNode) => (who.node === on ? who.name : `${who.name}@${who.node.name}`);
  const ladders = Object.fromEntries(members.map((m) => [m.name, m.big && plan.bigLadder ? plan.bigLadder : plan.ladder]));
  const procs: { name: string; proc: Proc }[] = [];
  try {
    for (const m of members) {
      const others = members.filter((o) => o !== m).map((o) => named(o, m.node));
      const config = {
        node: m.node.name,
        name: m.name,
        device: m.node.device,
        agents,
        peers: others,
        senders: others,
        ladders,
        count: plan.count,
        durationMs: plan.durationMs,
        maxRandom: plan.maxRandom,
        goFile,
        timeoutMs: plan.timeoutMs,
      };
      procs.push({ name: m.name, proc: m.node.run([JSON.stringify(config)], FIXTURE) });
    }
    for (const p of procs) await p.proc.line(/^ready$/, 60_000);
    mkdirSync(dirname(goFile), { recursive: true });
    writeFileSync(goFile, 'go');
    const bound = plan.timeoutMs + 30_000;
    const outputs = await Promise.all(
      procs.map(async (p) => {
        const end = await p.proc.line(/^(done|failed .*)$/, bound);
        const out = p.proc.output();
        process.stdout.write(`--- ${p.name}\n${out.split('\n').filter((l) => /^(sent|recv|first-fault|failed)/.test(l)).join('\n')}\n`);
        if (end[1] !== 'done') {
          // What the agents saw (targets served, forgotten, connections lost) says why.
          for (const n of [A, B]) for (const agent of n.agents) process.stdout.write(`--- agent of ${n.name}\n${agent.output()}\n`);
        }
        expect(end[1], `${p.name}:\n${out}`).toBe('done');
        return { name: p.name, out };
      }),
    );
    for (const p of procs) expect(await p.proc.exit).toEqual({ code: 0, signal: null });
    const sent = new Map<string, number>(); // "from>to" (bare names)
    for (const { name, out } of outputs) {
      for (const m of out.matchAll(/^sent (\S+) (\d+) (\d+)$/gm)) sent.set(`${name}>${m[1].split('@')[0]}`, Number(m[2]));
    }
    const results: PairResult[] = [];
    for (const { name, out } of outputs) {
      for (const m of out.matchAll(/^recv (\S+) ok=(\d+) lost=(\d+) duplicated=(\d+) corrupted=(\d+) reordered=(\d+) bytes=(\d+) max=(\d+)$/gm)) {
        const from = m[1].split('@')[0];
        results.push({
          from, to: name, sent: sent.get(`${from}>${name}`) ?? -1,
          ok: Number(m[2]), lost: Number(m[3]), duplicated: Number(m[4]), corrupted: Number(m[5]), reordered: Number(m[6]), bytes: Number(m[7]), max: Number(m[8]),
        });
      }
    }
    return results;
  } finally {
    rmSync(goFile, { force: true });
    await Promise.all(procs.map((p) => p.proc.kill('SIGKILL')));
  }
}

/** Print the counts (one line per pair and the totals) and check them: every pair, nothing lost, duplicated, corrupted or reordered. */
export function checkCounts(results: PairResult[]): void {
  const total = { sent: 0, ok: 0, lost: 0, duplicated: 0, corrupted: 0, reordered: 0, bytes: 0 };
  for (const r of results) {
    process.stdout.write(`${r.from} -> ${r.to}: sent ${r.sent}, received ok ${r.ok}, lost ${r.lost}, duplicated ${r.duplicated}, corrupted ${r.corrupted}, reordered ${r.reordered}, ${r.bytes} bytes, largest ${r.max}\n`);
    for (const k of Object.keys(total) as (keyof typeof total)[]) total[k] += r[k];
  }
  process.stdout.write(`total: ${JSON.stringify(total)}\n`);
  expect(results).toHaveLength(12); // 4 processes × 3 senders each
  for (const r of results) {
    expect(r, `${r.from} -> ${r.to}`).toMatchObject({ lost: 0, duplicated: 0, corrupted: 0, reordered: 0 });
    expect(r.ok, `${r.from} -> ${r.to}`).toBe(r.sent);
    expect(r.sent).toBeGreaterThan(0);
  }
}

/**
 * Inside a describe: node A and node B, each with its agent on `port`, made before the tests and
 * disposed after them. Returns a getter (the nodes exist only once beforeAll has run).
 */
export function nodesWithAgents(port: number): () => [TwoNodeNode, TwoNodeNode] {
  let nodes: [TwoNodeNode, TwoNodeNode] | undefined;
  beforeAll(async () => {
    nodes = await twoNodes();
    await nodes[0].startAgent(port);
    await nodes[1].startAgent(port);
  }, 90_000);
  afterAll(async () => {
    await nodes?.[0].dispose();
    await nodes?.[1].dispose();
  }, 60_000);
  return () => nodes!;
}
