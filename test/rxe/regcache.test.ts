/**
 * Seed 004 on real memory regions (rxe): two processes of node B (this one, the heap's creator,
 * and a child with its own verbs context) register blocks of one RegisteredHeap for remote write;
 * node A (this process, the other device) RDMA-writes into them.
 *
 *   - B-creator releases a block and a new one takes its slot; the child's next use purges its
 *     stale registration and registers the new block; A's WRITEs through the new rkey land in the
 *     new block byte-exact (read back on node B by both processes); a WRITE posted with the purged
 *     rkey fails with RemoteAccessError and lands nowhere.
 *   - A child whose RLIMIT_MEMLOCK is small (and without CAP_IPC_LOCK) gets a MemlockLimitError
 *     naming the limit; nothing stays allocated and the heap goes on working for others.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  Context, decodeEndpoint, encodeEndpoint, RegisteredHeap, RemoteAccessError, VerbsRegistrar,
} from '../../src/index.js';
import { uniqueName } from '../helpers.js';
import { DrivenChild } from '../regcache/driven-child.js';
import { DEV0, DEV1, expectNothingLive, pattern, skipReason, suffix } from './helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  const errors: unknown[] = [];
  for (const c of cleanups.splice(0).reverse()) {
    try {
      await c();
    } catch (error) {
      errors.push(error);
    }
  }
  if (errors.length) throw errors[0];
});

function open(dev: string) {
  const ctx = Context.open(dev);
  cleanups.push(() => ctx.dispose());
  const pd = ctx.allocPd();
  const cq = ctx.createCompletionQueue({ entries: 16 });
  return { ctx, pd, cq };
}

async function start(args: string[], wrapper: string[] = []): Promise<{ child: DrivenChild; endpoint: string }> {
  const child = new DrivenChild(args, 'regcache-rdma-child', wrapper);
  cleanups.push(() => child.kill());
  const line = await child.next(30_000);
  expect(line.startsWith('ready ')).toBe(true);
  return { child, endpoint: line.slice('ready '.length) };
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

describe.skipIf(skipReason)(`RegisteredHeap with real memory regions${suffix}`, () => {
  it('a stale registration is purged on next use; WRITEs through the new one land byte-exact; the purged rkey gives RemoteAccessError', async () => {
    const nodeB = open(DEV1);
    const heap = RegisteredHeap.create(uniqueName('rcrxe'), { blockBytes: 65536, keepFreeBlocks: 0, registrar: new VerbsRegistrar(nodeB.pd, { remoteWrite: true }) });
    cleanups.push(() => heap.dispose());
    const nodeA = open(DEV0);
    const qp = nodeA.pd.createQueuePair({ sendCq: nodeA.cq });
    const { child, endpoint } = await start([heap.name, DEV1]);
    expect(await child.ask(`connect ${encodeEndpoint(qp.localEndpoint())}`)).toEqual([]);
    qp.connect(decodeEndpoint(endpoint));
    const source = new Uint8Array(4096);
    const smr = nodeA.pd.registerMemory(source);
    const write = (wrId: number, rkey: number, remoteAddr: number) => {
      expect(qp.postSend({ wrId, opcode: 'write', sge: { mr: smr, length: 4096 }, remoteAddr, rkey })).toBe(0);
      return nodeA.cq.next({ timeoutMs: 20_000 });
    };

    const x = heap.malloc(4096)!;
    x.view.fill(0);
    const [id1, rkey1, addr1, purges1] = (await child.ask(`at ${x.block} ${x.offset}`)).map(Number);
    expect([id1, purges1]).toEqual([x.blockId, 0]);
    source.set(pattern(4096, 1));
    await write(1, rkey1, addr1);
    expect(hex(x.view)).toBe(hex(source)); // landed in the block, seen by the creator's mapping

    heap.free(x); // released to the OS: only this process's MR goes; the child's stays registered
    expect(heap.stats()).toMatchObject({ releases: 1, deregistrations: 1, registeredBlocks: 0 });
    const y = heap.malloc(4096)!;
    expect([y.block, y.blockId > x.blockId]).toEqual([x.block, true]);
    y.view.fill(0);
    expect(heap.lookup(y).mr).toBeDefined();
    expect(JSON.parse((await child.ask('stats'))[0])).toMatchObject({ registrations: 1, deregistrations: 0, stalePurges: 0 });

    // The child's next use of the slot: stale (blockId differs) → deregister, unmap, map and register the new block.
    const [id2, rkey2, addr2, purges2] = (await child.ask(`at ${y.block} ${y.offset}`)).map(Number);
    expect([id2, purges2]).toEqual([y.blockId, 1]);
    expect(rkey2).not.toBe(rkey1);
    source.set(pattern(4096, 2));
    await write(2, rkey2, addr2);
    expect(hex(y.view)).toBe(hex(source));
    expect((await child.ask('read 4096'))[0]).toBe(hex(source)); // the other process of node B reads the same bytes

    // The purged registration is gone from the NIC: a WRITE with its rkey is refused, never lands.
    source.set(pattern(4096, 3));
    expect(qp.postSend({ wrId: 3, opcode: 'write', sge: { mr: smr, length: 4096 }, remoteAddr: addr1, rkey: rkey1 })).toBe(0);
    await expect(nodeA.cq.next({ timeoutMs: 20_000 })).rejects.toBeInstanceOf(RemoteAccessError);
    expect(hex(y.view)).toBe(hex(pattern(4096, 2)));

    expect(await child.ask('exit', 30_000)).toEqual([]);
    heap.free(y);
    heap.dispose();
    for (const c of cleanups.splice(0).reverse()) await c();
    expectNothingLive();
  });

  it('RLIMIT_MEMLOCK too small → MemlockLimitError naming the limit; nothing stays allocated, the heap goes on', async () => {
    const nodeB = open(DEV1);
    const heap = RegisteredHeap.create(uniqueName('rcmemlock'), { blockBytes: 1 << 20, registrar: new VerbsRegistrar(nodeB.pd, { remoteWrite: true }) });
    cleanups.push(() => heap.dispose());
    // 64 KiB of locked memory and no CAP_IPC_LOCK (root would bypass the limit with it).
    const { child } = await start([heap.name, DEV1], ['prlimit', '--memlock=65536:65536', 'setpriv', '--inh-caps=-ipc_lock', '--bounding-set=-ipc_lock']);
    const refused = await child.ask('malloc 1000').then(
      () => 'no error',
      (error: Error) => error.message,
    );
    expect(refused).toMatch(/^child: MemlockLimitError ERR_MEMWIRE_MEMLOCK ibv_reg_mr\(.*\) failed: .*RLIMIT_MEMLOCK \(ulimit -l: soft 65536, hard 65536 bytes\)/);
    expect(JSON.parse((await child.ask('stats'))[0])).toMatchObject({ allocations: 0, registrations: 0 });
    const b = heap.malloc(1000)!; // the lock was released, the block is there, this process registers it
    expect(heap.lookup(b).mr?.length).toBe(1 << 20);
    expect(heap.stats()).toMatchObject({ allocations: 1, liveBlocks: 1 });
    expect(await child.ask('exit', 30_000)).toEqual([]);
    heap.free(b);
  });
});
