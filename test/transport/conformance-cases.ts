/**
 * The transport conformance cases, shared by every tier that has a Transport to check: the host
 * tier runs them against shm and the in-process transport (conformance.test.ts), the rxe tier
 * against RdmaTransport across two nodes (test/rxe/rdma-conformance.test.ts). What the mechanisms
 * rely on, and nothing about addresses.
 */
import { afterEach, expect, it } from 'vitest';
import { ClosedError, CorruptionError, MemwireError, UsageError } from '../../src/index.js';
import { decodeDescriptor, DESCRIPTOR_BYTES, encodeDescriptor } from '../../src/transport/descriptor.js';
import { PostStatus, type ProcessIdentity, type SegmentDescriptor, type Target, type Transport } from '../../src/transport/types.js';
import { finished, uniqueName } from '../helpers.js';
import { startPostboxChild } from '../postbox/helpers.js';

/** A process of another node, as the far-node case sees it. */
export interface FarNode {
  readonly node: string;
  /** A process that runs on that node. */
  readonly resident: ProcessIdentity;
  /** Bytes [offset, offset + length) of the target as a process of that node reads them in place. */
  snapshot(descriptor: SegmentDescriptor, offset: number, length: number): Promise<Uint8Array>;
}

export interface Impl {
  name: string;
  /** Two transports standing for two processes on one node. */
  pair(): [Transport, Transport];
  /** A process identity that is certainly dead. */
  deadIdentity(): Promise<{ pid: number; start: bigint }>;
  /** A process on another node of the last pair's world, where the implementation has one. */
  farNode?(): FarNode;
}


/** Define the conformance cases for `impl` (call inside a describe). */
export function conformanceCases(impl: Impl): void {
  const owned: Target[] = [];
  afterEach(() => {
    for (const t of owned.splice(0)) t.dispose();
  });

  function expose(t: Transport, label: string, size = 4096): Target {
    const target = t.expose(uniqueName(label), size);
    owned.push(target);
    return target;
  }

  it('expose gives a zero-filled target and a descriptor without addresses', () => {
    const [a] = impl.pair();
    const target = expose(a, 'tx-expose', 1000);
    expect(target.size).toBe(1000);
    expect(target.isOwner).toBe(true);
    expect(target.bytes.length).toBe(1000);
    expect(target.bytes.every((b) => b === 0)).toBe(true);
    expect(target.descriptor).toMatchObject({ transport: a.kind, node: a.node, size: 1000 });
    expect(Object.values(target.descriptor).every((v) => typeof v === 'string' || typeof v === 'number')).toBe(true);
  });

  it('find returns the descriptor, or undefined for a missing name', () => {
    const [a, b] = impl.pair();
    const target = expose(a, 'tx-find');
    expect(b.find(target.descriptor.name)).toMatchObject({ name: target.descriptor.name, size: target.size });
    expect(b.find(uniqueName('tx-missing'))).toBeUndefined();
  });

  it('an image writes into the target only through write()/put(); publish orders after them', () => {
    const [a, b] = impl.pair();
    const target = expose(a, 'tx-image');
    const image = b.attach(target.descriptor);
    image.source.set([1, 2, 3, 4], 64);
    image.write(64, 4);
    expect([...target.bytes.subarray(64, 68)]).toEqual([1, 2, 3, 4]);
    image.put(128, new Uint8Array([9, 8, 7]));
    image.publish(256, 42);
    expect([...target.bytes.subarray(128, 131)]).toEqual([9, 8, 7]);
    expect(Atomics.load(target.int32, 64)).toBe(42);
    image.dispose();
  });

  it('atomic operations act on the 8-aligned target word; read copies target bytes back', () => {
    const [a, b] = impl.pair();
    const target = expose(a, 'tx-atomics');
    const image = b.attach(target.descriptor);
    Atomics.store(target.int32, 4, 5);
    expect(image.load(16)).toBe(5);
    expect(image.add(16, 2)).toBe(5);
    expect(Atomics.load(target.int32, 4)).toBe(7);
    expect(image.compareExchange(16, 7, 11)).toBe(7);
    expect(image.compareExchange(16, 7, 13)).toBe(11);
    expect(Atomics.load(target.int32, 4)).toBe(11);
    target.bytes.set([5, 6, 7], 100);
    const into = new Uint8Array(3);
    image.read(100, into);
    expect([...into]).toEqual([5, 6, 7]);
    image.dispose();
  });

  it('atomic words are 8-aligned (RDMA atomics are 64-bit): a 4-aligned one is a UsageError; publish takes 4-aligned words', () => {
    const [a, b] = impl.pair();
    const target = expose(a, 'tx-align');
    const image = b.attach(target.descriptor);
    expect(() => image.load(12)).toThrow(UsageError);
    expect(() => image.add(4, 1)).toThrow(UsageError);
    expect(() => image.compareExchange(20, 0, 1)).toThrow(UsageError);
    expect(() => image.load(4096)).toThrow(UsageError);
    expect(Atomics.load(target.int32, 3)).toBe(0); // nothing was done
    expect(image.publish(12, 9)).toBeTypeOf('number');
    expect(Atomics.load(target.int32, 3)).toBe(9);
    expect(() => image.publish(6, 1)).toThrow(UsageError);
    image.dispose();
  });

  it('posts return a PostStatus and complete by progress()/settled(); the async forms give the same answers', async () => {
    const [a, b] = impl.pair();
    const target = expose(a, 'tx-async');
    const image = b.attach(target.descriptor);
    const statuses = [image.put(64, new Uint8Array([1, 2, 3])), image.publish(128, 4), image.notify(128)];
    for (const status of statuses) expect([PostStatus.DONE, PostStatus.POSTED]).toContain(status);
    while (image.progress() > 0);
    await image.settled();
    expect(image.failed).toBeUndefined();
    expect([...target.bytes.subarray(64, 67)]).toEqual([1, 2, 3]);
    expect(await image.loadAsync(128)).toBe(4);
    expect(await image.addAsync(128, 3)).toBe(4);
    expect(await image.compareExchangeAsync(128, 7, 8)).toBe(7);
    expect(Atomics.load(target.int32, 32)).toBe(8);
    const into = new Uint8Array(3);
    await image.readAsync(64, into);
    expect([...into]).toEqual([1, 2, 3]);
    await expect(image.loadAsync(3)).rejects.toThrow(UsageError);
    expect(await b.findAsync(target.descriptor.name)).toEqual(b.find(target.descriptor.name));
    expect(await b.findAsync(uniqueName('tx-none'))).toBeUndefined();
    expect(await a.isAliveAsync(b.self)).toBe(true);
    expect(await a.isAliveAsync(await impl.deadIdentity())).toBe(false);
    const viaAsync = await b.attachAsync(target.descriptor);
    viaAsync.put(200, new Uint8Array([42]));
    await viaAsync.settled();
    expect(target.bytes[200]).toBe(42);
    viaAsync.dispose();
    const exposed = await a.exposeAsync(uniqueName('tx-exposed'), 512);
    expect(exposed.descriptor).toMatchObject({ transport: a.kind, node: a.node, size: 512 });
    expect(await b.findAsync(exposed.descriptor.name)).toMatchObject({ size: 512 });
    exposed.dispose();
    exposed.dispose();
    expect(await b.findAsync(exposed.descriptor.name)).toBeUndefined();
    await b.removeAsync(exposed.descriptor.name); // missing: not an error
    image.dispose();
    expect(() => image.progress()).toThrow(ClosedError);
    await expect(image.settled()).rejects.toThrow(ClosedError);
  });

  it('openLocal reads the same target in place', () => {
    const [a, b] = impl.pair();
    const target = expose(a, 'tx-local');
    const local = b.openLocal(target.descriptor);
    expect(local.isOwner).toBe(false);
    target.bytes[10] = 77;
    expect(local.bytes[10]).toBe(77);
    local.dispose();
    // The owner's target still works after another handle is gone.
    target.bytes[11] = 1;
    expect(target.bytes[11]).toBe(1);
  });

  it('notify wakes an async waiter; wait sees a changed value; a wait times out', async () => {
    const [a, b] = impl.pair();
    const target = expose(a, 'tx-wake');
    const image = b.attach(target.descriptor);
    const pending = target.waitAsync(0, 0, { timeoutMs: 10_000 });
    setTimeout(() => {
      image.publish(0, 1);
      image.notify(0);
    }, 10);
    expect(await pending).toBe('ok');
    expect(target.wait(0, 0, { timeoutMs: 0 })).toBe('not-equal');
    expect(target.wait(4, 0, { timeoutMs: 5, spin: 0 })).toBe('timed-out');
    expect(await target.waitAsync(4, 0, { timeoutMs: 5, spin: 0 })).toBe('timed-out');
    image.dispose();
  });

  it('bounds are enforced: an out-of-range put, write or read is a UsageError', () => {
    const [a, b] = impl.pair();
    const target = expose(a, 'tx-bounds', 256);
    const image = b.attach(target.descriptor);
    expect(() => image.put(250, new Uint8Array(7))).toThrow(UsageError);
    expect(() => image.write(-1, 4)).toThrow(UsageError);
    expect(() => image.read(255, new Uint8Array(2))).toThrow(UsageError);
    image.dispose();
  });

  it('a descriptor for a missing target, or of the wrong size, is refused with a typed error', () => {
    const [a, b] = impl.pair();
    const target = expose(a, 'tx-wrong');
    expect(() => b.attach({ ...target.descriptor, name: uniqueName('tx-nothing') })).toThrow(UsageError);
    expect(() => b.attach({ ...target.descriptor, size: target.size + 64 })).toThrow(CorruptionError);
    expect(() => b.openLocal({ ...target.descriptor, transport: 'other' })).toThrow(MemwireError);
  });

  it('a name in use is refused; dispose twice is harmless; use after dispose is ClosedError', () => {
    const [a, b] = impl.pair();
    const target = expose(a, 'tx-dispose');
    expect(() => b.expose(target.descriptor.name, 64)).toThrow(UsageError);
    const image = b.attach(target.descriptor);
    image.dispose();
    image.dispose();
    expect(() => image.put(0, new Uint8Array(1))).toThrow(ClosedError);
    target.dispose();
    target.dispose();
    expect(() => target.wake(0)).toThrow(ClosedError);
    expect(b.find(target.descriptor.name)).toBeUndefined(); // the owner's dispose removed the name
  });

  it('liveness: self is alive, a dead process is not; remove() drops a name', async () => {
    const [a, b] = impl.pair();
    expect(a.isAlive(a.self)).toBe(true);
    expect(a.isAlive(b.self)).toBe(true);
    expect(a.isAlive(await impl.deadIdentity())).toBe(false);
    const target = expose(a, 'tx-remove');
    b.remove(target.descriptor.name);
    expect(b.find(target.descriptor.name)).toBeUndefined();
    b.remove(target.descriptor.name); // a missing name is not an error
  });

  it('another node: the synchronous calls refuse it (UsageError, undefined, false); the async forms reach it where the transport can', async () => {
    const [a] = impl.pair();
    const far = impl.farNode?.();
    const other = far?.node ?? 'no-such-node';
    await expect(a.exposeAsync(uniqueName('tx-far'), 64, { node: 'no-such-node' })).rejects.toThrow(MemwireError);
    expect(() => a.expose(uniqueName('tx-far'), 64, { node: other })).toThrow(UsageError);
    expect(a.isAlive(a.self, other)).toBe(false);
    if (!far) return;
    // A target on the other node, made and reached with the async forms only.
    const exposed = await a.exposeAsync(uniqueName('tx-far'), 256, { node: far.node });
    expect(exposed.descriptor.node).toBe(far.node);
    expect(a.find(exposed.descriptor.name, far.node)).toBeUndefined();
    expect(await a.findAsync(exposed.descriptor.name, far.node)).toEqual(exposed.descriptor);
    expect(() => a.attach(exposed.descriptor)).toThrow(UsageError);
    const image = await a.attachAsync(exposed.descriptor);
    expect(() => image.load(0)).toThrow(UsageError);
    expect(() => image.read(0, new Uint8Array(1))).toThrow(UsageError);
    image.put(8, new Uint8Array([3, 4]));
    image.publish(16, 77);
    await image.settled();
    expect(await image.addAsync(24, 5)).toBe(0);
    expect(await image.loadAsync(24)).toBe(5);
    // What a process of that node reads in place.
    const seen = await far.snapshot(exposed.descriptor, 0, 32);
    expect([...seen.subarray(8, 10)]).toEqual([3, 4]);
    expect(new DataView(seen.buffer, seen.byteOffset).getInt32(16, true)).toBe(77);
    expect(new DataView(seen.buffer, seen.byteOffset).getInt32(24, true)).toBe(5);
    expect(await a.isAliveAsync(far.resident, far.node)).toBe(true);
    image.dispose();
    exposed.dispose();
    expect(await a.findAsync(exposed.descriptor.name, far.node)).toBeUndefined();
  });

  // A case of the shm transport only (the in-process transport has no other process; RdmaTransport's
  // other processes are on the far node, covered above): registered for shm alone rather than
  // reported as skipped elsewhere — the container tier counts every skip as a missing piece.
  if (impl.name === 'shm') it('across processes (shm only): a child attaches the descriptor, writes, publishes and notifies', async () => {
    const [a] = impl.pair();
    const target = expose(a, 'tx-child');
    const pending = target.waitAsync(0, 0, { timeoutMs: 20_000 });
    const child = startPostboxChild('image-writer', '-', '-', JSON.stringify(target.descriptor));
    await finished(child);
    expect(await pending).toBe('ok');
    expect(Atomics.load(target.int32, 0)).toBe(1);
    expect([...target.bytes.subarray(64, 72)]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it('descriptors round-trip through shared memory and hostile records are CorruptionErrors', () => {
    const [a] = impl.pair();
    const target = expose(a, 'tx-desc');
    const record = new Uint8Array(DESCRIPTOR_BYTES);
    encodeDescriptor(target.descriptor, record);
    expect(decodeDescriptor(record, 'r')).toEqual(target.descriptor);
    for (let i = 0; i < 200; i++) {
      const junk = record.slice();
      junk[Math.floor(Math.random() * 24)] = Math.floor(Math.random() * 256);
      junk[16 + Math.floor(Math.random() * 60)] = Math.floor(Math.random() * 256);
      try {
        decodeDescriptor(junk, 'r');
      } catch (error) {
        expect(error).toBeInstanceOf(CorruptionError);
      }
    }
  });
}
