/**
 * The node agent across two nodes of the guest (test/rxe/two-node.ts): node A on DEV0, node B on
 * DEV1, each its own mount namespace and /dev/shm. A process of A has B's agent allocate a
 * target, RDMA-writes into it and rings its doorbell; a process of B, asleep on the target's
 * futex word, wakes and reads the bytes exactly. Then find / remove / liveness / GONE notices,
 * hostile control messages, `memwire doctor --agent` from A, and an agent stopped with SIGTERM
 * and killed with SIGKILL in the middle of a peer's stream of writes, each restarted under the
 * same address.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backend } from '../../ffi/backend.js';
import { runtimeName } from '../../ffi/runtime.js';
import { AgentClient, AgentError, ClosedError, deviceAddress, PeerGoneError, rdmaConnect, RdmaImage, SharedRegion, targetRegionName, WorkCompletionError } from '../../src/index.js';
import { BELL_SLOTS } from '../../src/agent/link.js';
import { encode, HEADER_BYTES, MAX_MESSAGE_BYTES, W_TYPE } from '../../src/agent/wire.js';
import { DEV0, DEV1, pattern, skipReason, suffix } from './helpers.js';
import { asleepInFutex, twoNodes, type Proc, type TwoNodeNode } from './two-node.js';

const PORT = 7471;
let A: TwoNodeNode;
let B: TwoNodeNode;
let agentB: Proc;

function clientOfB(options: { local?: boolean } = {}): Promise<AgentClient> {
  return AgentClient.connect({ address: B.address, port: PORT, source: options.local ? B.address : A.address, timeoutMs: 10_000, ...options });
}

async function until(test: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe.skipIf(!!skipReason)(`node agent across two nodes ${DEV0} → ${DEV1} (${runtimeName}, ${backend.name})${suffix}`, () => {
  beforeAll(async () => {
    [A, B] = await twoNodes();
    agentB = await B.startAgent(PORT);
  }, 90_000);

  afterAll(async () => {
    await A?.dispose();
    await B?.dispose();
  }, 60_000);

  it('finds each node\'s IPv4 address from its device (the RDMA_RXE_IP variables only override)', () => {
    const a = deviceAddress(DEV0);
    const b = deviceAddress(DEV1);
    expect(a.ipv4).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    expect(b.ipv4).not.toBe(a.ipv4);
    if (process.env.MEMWIRE_RXE_IP0) expect(a.ipv4).toBe(process.env.MEMWIRE_RXE_IP0);
    if (process.env.MEMWIRE_RXE_IP1) expect(b.ipv4).toBe(process.env.MEMWIRE_RXE_IP1);
  });

  it('a process of A writes into a target on B; a process of B, woken by the doorbell, reads it byte-exact; the nodes share no /dev/shm', async () => {
    const name = `t1.${process.pid}`;
    const bytes = 1 << 20;
    // The writer allocates, then waits for the go file until the reader sleeps on the target's
    // word: so 'ok' below means the doorbell woke it (not a word that was already 1).
    const goFile = fileURLToPath(new URL(`../../.cache/two-node-go.${name}`, import.meta.url));
    rmSync(goFile, { force: true });
    const writer = A.run(['write', B.address, PORT, A.address, name, bytes, 7, goFile]);
    try {
      await writer.line(/^allocated /, 60_000);
      const reader = B.run(['wait-read', name, bytes, 7, 60_000]);
      await reader.line(/^waiting$/, 60_000);
      await asleepInFutex(reader.child.pid!);
      mkdirSync(dirname(goFile), { recursive: true });
      writeFileSync(goFile, 'go');
      await writer.line(/^written /, 60_000);
      const read = await reader.line(/^read .*$/, 60_000);
      expect(read[0]).toBe('read ok 1 ok'); // woken from FUTEX_WAIT ('ok'), not a timeout; every byte as written
    } finally {
      rmSync(goFile, { force: true });
    }

    // Isolation: the target exists in B's /dev/shm only — not in A's, not in the guest's own.
    const shmName = `memwire.u${process.getuid!()}.${targetRegionName(name)}`;
    expect(B.shm()).toContain(shmName);
    expect(A.shm()).not.toContain(shmName);
    expect(() => SharedRegion.open(targetRegionName(name))).toThrow(/ENOENT/);
    // …and the other way round: nothing of A's reaches B.
    const marker = `only-on-A.${process.pid}`;
    writeFileSync(`/proc/${A.holderPid}/root/dev/shm/${marker}`, 'A');
    expect(A.shm()).toContain(marker);
    expect(B.shm()).not.toContain(marker);
    expect(existsSync(`/dev/shm/${marker}`)).toBe(false);

    // The owner ends: its target is deregistered and its name removed on B.
    await writer.kill('SIGTERM');
    await until(() => !B.shm().includes(shmName), 10_000, 'the owner\'s target removed from B');
  });

  it('find, remove, isAlive and a GONE notice when a process of B dies', async () => {
    const client = await clientOfB();
    try {
      expect(client.node).toBe('B');
      const name = `t2.${process.pid}`;
      const owner = await clientOfB();
      const made = await owner.allocate(name, 4096);
      expect(made).toMatchObject({ node: 'B', name, size: 4096 });
      const found = await client.find(name);
      expect(found).toMatchObject({ node: 'B', name, size: 4096 });
      const again = await owner.allocate(name, 4096).catch((e: unknown) => e);
      expect(again).toBeInstanceOf(AgentError);
      expect((again as AgentError).reason).toBe('EXISTS');

      // The finder writes through its own registration (its rkey, its connection).
      const src = new Uint8Array(256).fill(0xab);
      await client.write(client.registerMemory(src), 0, 256, found, 4096 - 256);
      // A write outside the target fails at the writer (the NIC checks the registration) and
      // costs that writer its connection, nobody else.
      const bad = await clientOfB();
      const badFind = await bad.find(name);
      const outside = await bad.write(bad.registerMemory(new Uint8Array(8)), 0, 8, { ...badFind, size: 1 << 20 }, 4096).catch((e: unknown) => e);
      expect((outside as Error).constructor.name).toMatch(/RemoteAccessError|RemoteOperationError/);
      await expect(bad.closed).resolves.toBeInstanceOf(PeerGoneError);
      bad.close();

      const local = B.run(['local', B.address, PORT, B.address]);
      const [, pid, start] = await local.line(/^hello (\d+) (\d+)$/);
      const checker = await clientOfB();
      expect(await checker.isAlive(Number(pid), BigInt(start))).toBe(true);
      expect(await checker.isAlive(Number(pid), BigInt(start) + 1n)).toBe(false);
      const gone = new Promise<[number, bigint, number]>((resolve) => checker.onGone((p, s) => resolve([p, s, performance.now()])));
      const killedAt = performance.now();
      await local.kill('SIGKILL');
      const [gonePid, goneStart, at] = await Promise.race([gone, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no GONE within 10 s')), 10_000))]);
      expect([gonePid, goneStart]).toEqual([Number(pid), BigInt(start)]);
      console.log(`GONE for a SIGKILLed process of B arrived ${(at - killedAt).toFixed(0)} ms after the kill (${runtimeName})`);
      expect(await checker.isAlive(Number(pid), BigInt(start))).toBe(false);

      await client.remove(name);
      const missing = await client.find(name).catch((e: unknown) => e);
      expect(missing).toBeInstanceOf(AgentError);
      expect((missing as AgentError).reason).toBe('NOT_FOUND');
      expect(B.shm().some((n) => n.endsWith(targetRegionName(name)))).toBe(false);
      checker.close();
      owner.close();
    } finally {
      client.close();
    }
  });

  it('doorbells to one word wait as one, at most BELL_SLOTS in flight, and a FIND goes ahead of them', async () => {
    // Issue 12: a sender's doorbell per message piled up in the link's queue and a FIND or
    // IS_ALIVE behind them went unanswered for over 10 s (src/agent/link.ts, send()).
    const owner = await clientOfB();
    const client = await clientOfB();
    try {
      const name = `bells.${process.pid}`;
      await owner.allocate(name, 4096);
      await client.find(name);
      for (let i = 0; i < 10_000; i++) client.doorbell(name, 0, 1);
      expect(client.link.bellsInFlight).toBeGreaterThan(0);
      expect(client.link.bellsInFlight).toBeLessThanOrEqual(BELL_SLOTS);
      expect(client.link.bellsWaiting).toBe(1);
      const found = await client.find(name);
      expect(found).toMatchObject({ name, size: 4096 });
      await until(() => client.link.bellsWaiting === 0 && client.link.bellsInFlight === 0, 10_000, 'the doorbells sent');
      await owner.remove(name);
    } finally {
      client.close();
      owner.close();
    }
  });

  it('hostile control messages drop that connection only; the agent keeps serving', async () => {
    const valid = encode({ type: 'find', requestId: 1, name: 'x' });
    const badType = valid.slice();
    new DataView(badType.buffer).setUint16(W_TYPE, 77, true);
    const cases: [string, Uint8Array][] = [
      ['short', new Uint8Array(HEADER_BYTES - 1)],
      ['bad magic', new Uint8Array(HEADER_BYTES)],
      ['unknown type', badType],
      ['FIND before HELLO', valid],
      ['a reply type from a client', encode({ type: 'done', requestId: 1 })],
      ['longer than a receive buffer', new Uint8Array(MAX_MESSAGE_BYTES + 64)],
    ];
    for (const [what, bytes] of cases) {
      const conn = await rdmaConnect({ address: B.address, port: PORT, source: A.address, timeoutMs: 10_000 });
      try {
        const mr = conn.pd.registerMemory(bytes.length ? bytes : new Uint8Array(1), {});
        expect(conn.qp.postSend({ wrId: 1, sge: { mr, length: bytes.length } })).toBe(0);
        // The agent drops the connection: a DISCONNECTED event here (or the send fails first).
        const dropped = await conn.disconnected({ timeoutMs: 10_000 }).then(
          () => 'disconnected',
          (e: unknown) => `error: ${(e as Error).message}`,
        );
        expect(dropped, what).toBe('disconnected');
      } finally {
        conn.dispose();
      }
    }
    const client = await clientOfB();
    expect(await client.isAlive(process.pid, 0n)).toBe(true);
    client.close();
    expect(agentB.child.exitCode).toBe(null);
  });

  it('RdmaImage: put, publish and notify reach a reader on B in order and byte-exact', async () => {
    const client = await clientOfB();
    try {
      const name = `t5.${process.pid}`;
      const bytes = 200_000;
      await client.allocate(name, 64 + bytes);
      const reader = B.run(['wait-read', name, bytes, 9, 60_000]);
      await reader.line(/^waiting$/, 30_000);
      const image = await RdmaImage.attach(client, name);
      expect(image.descriptor).toMatchObject({ transport: 'rdma', node: 'B', name, size: 64 + bytes });
      const data = pattern(bytes, 9);
      // Several writes of pieces, then the word, then the doorbell: all on one queue pair.
      for (let at = 0; at < bytes; at += 50_000) image.put(64 + at, data.subarray(at, Math.min(bytes, at + 50_000)));
      image.publish(0, 1);
      image.notify(0);
      await image.settled();
      expect((await reader.line(/^read .*$/, 60_000))[0]).toBe('read ok 1 ok');
      expect(await image.load64(0)).toBe(1n); // an RDMA atomic read of the 64-bit word: the published 1, then 4 zero bytes
      expect(() => image.put(64 + bytes, new Uint8Array(1))).toThrow(/outside the image/);
      image.dispose();
      image.dispose();
      expect(() => image.write(0, 4)).toThrow(ClosedError);
    } finally {
      client.close();
    }
  });

  it('SIGTERM: the agent says BYE, removes its targets and exits 0; restarted under the same address it serves again', async () => {
    const client = await clientOfB();
    const name = `t3.${process.pid}`;
    await client.allocate(name, 8192);
    expect(B.shm().some((n) => n.endsWith(targetRegionName(name)))).toBe(true);
    const exited = await agentB.kill('SIGTERM');
    expect(exited, `agent output:\n${agentB.output()}`).toEqual({ code: 0, signal: null });
    const why = await Promise.race([client.closed, new Promise<Error>((r) => setTimeout(() => r(new Error('not closed')), 10_000))]);
    expect(why).toBeInstanceOf(PeerGoneError);
    expect(why.message).toMatch(/BYE/);
    expect(B.shm().filter((n) => n.includes('agent.'))).toEqual([]);
    await expect(client.find(name)).rejects.toBeInstanceOf(PeerGoneError);
    client.close();

    agentB = await B.startAgent(PORT);
    const again = await clientOfB();
    expect(await again.isAlive(process.pid, 0n)).toBe(true);
    again.close();
  });

  it('memwire doctor --agent on node A says whether B\'s agent answers (device and source found by itself)', async () => {
    const ok = A.cli(['doctor', '--agent', `${B.address}:${PORT}`]);
    const line = await ok.line(/\] agent /, 60_000);
    expect(await ok.exit, ok.output()).toEqual({ code: 0, signal: null });
    expect(line.input).toMatch(/^\s*\[ok {2}\] agent /);
    expect(line.input).toContain('agent of node "B"');
    expect(line.input).toMatch(new RegExp(`from (${DEV0}|${DEV1}) \\(`));
    // Nobody listens on PORT + 1: a clear failure, exit 1, no hang.
    const none = A.cli(['doctor', '--agent', `${B.address}:${PORT + 1}`, '--device', DEV0]);
    const failed = await none.line(/\] agent /, 60_000);
    expect(await none.exit, none.output()).toEqual({ code: 1, signal: null });
    expect(failed.input).toMatch(/\[FAIL\] agent .*ConnectionError/);
  });

  it('SIGKILL mid-stream: the writer\'s writes and its client end with PeerGoneError, no hang; the next agent removes what the dead one left', async () => {
    const client = await clientOfB();
    const name = `t4.${process.pid}`;
    const target = await client.allocate(name, 1 << 20);
    const source = client.registerMemory(pattern(64 * 1024, 4));
    // A stream of 64 KiB RDMA WRITEs (up to 8 in flight) that runs until one fails.
    let written = 0;
    let streamError: unknown;
    const stream = (async () => {
      try {
        for (let i = 0; ; i++) {
          await Promise.all(Array.from({ length: 8 }, (_, k) => client.write(source, 0, 64 * 1024, target, ((i * 8 + k) % 16) * 64 * 1024)));
          written += 8;
        }
      } catch (error) {
        streamError = error;
      }
    })();
    await until(() => written >= 16 || streamError !== undefined, 30_000, 'the stream under way');
    expect(streamError).toBeUndefined();
    const killedAt = performance.now();
    await agentB.kill('SIGKILL');
    const why = await Promise.race([client.closed, new Promise<Error>((r) => setTimeout(() => r(new Error('not noticed within 10 s')), 10_000))]);
    const noticedMs = performance.now() - killedAt;
    expect(why).toBeInstanceOf(PeerGoneError);
    await Promise.race([stream, new Promise((_, reject) => setTimeout(() => reject(new Error('the stream did not end within 10 s')), 10_000))]);
    // A write in flight fails with PeerGoneError (link lost) or with the completion error the QP
    // reported first; every later one with PeerGoneError. None hangs.
    expect(streamError instanceof PeerGoneError || streamError instanceof WorkCompletionError, String(streamError)).toBe(true);
    await expect(client.write(source, 0, 8, target, 0)).rejects.toBeInstanceOf(PeerGoneError);
    console.log(`a SIGKILLed agent was noticed by its writing peer after ${noticedMs.toFixed(0)} ms, ${written} writes of 64 KiB done before (${runtimeName}): ${why.message}; the stream ended with ${(streamError as Error).constructor.name}`);
    // The dead agent could not clean up: its target is still in B's /dev/shm.
    expect(B.shm().some((n) => n.endsWith(targetRegionName(name)))).toBe(true);
    client.close();

    agentB = await B.startAgent(PORT);
    await agentB.line(new RegExp(`removed 1 target\\(s\\) a dead agent left: ${name.replace(/\./g, '\\.')}`), 10_000);
    expect(B.shm().filter((n) => n.includes('agent.'))).toEqual([]);
    const again = await clientOfB();
    const made = await again.allocate(name, 4096);
    expect(made.size).toBe(4096);
    again.close();
  });
});
