/**
 * One side of an RDMA bench's connection (context, PD, CQs, an RC QP, one registered buffer),
 * the endpoint both sides exchange, and starting the server side as a peer process
 * (rdma-peer.ts, same runtime).
 *
 * The buffer is memwire's internal NativeBlock (page-aligned mmap'd memory) on purpose: the
 * public API registers memory the caller owns, and perftest's buffer is page-aligned, so ours is
 * too (see BenchSide).
 */
import { fileURLToPath } from 'node:url';
import { Context, type CompletionQueue, type MemoryRegion, type ProtectionDomain, type QueuePair, type QueuePairEndpoint } from '../../src/index.js';
import { NativeBlock } from '../../src/verbs/native.js';
import { selfCommand } from '../../ffi/runtime.js';
import { pinProcess } from './cpu.js';
import { Peer } from './peer.js';
import type { DevicePair } from './rdma-devices.js';

/** A QP endpoint plus the buffer the other side writes into. */
export interface BenchEndpoint extends QueuePairEndpoint {
  addr: number;
  rkey: number;
}

/**
 * Context, PD, a send and a receive CQ (no completion channel: the loops busy-poll, as perftest
 * does), an RC QP and one buffer of `bufferBytes`, registered for remote write, whose bytes JS
 * reads directly (`bytes`). The buffer is page-aligned native memory (mmap), as perftest's
 * (memalign to the page size): a JS ArrayBuffer starts anywhere in a page, so a 4 KiB message
 * would span two pages and rxe would copy every packet in more pieces than perftest's.
 */
export class BenchSide {
  readonly ctx: Context;
  readonly pd: ProtectionDomain;
  readonly sendCq: CompletionQueue;
  readonly recvCq: CompletionQueue;
  readonly qp: QueuePair;
  readonly mr: MemoryRegion;
  readonly bytes: Uint8Array;

  /**
   * `recvEvents`: the receive CQ gets a completion channel, for `recvCq.wait()` (an idle server).
   * `maxSendSge`: SGEs per send work request (default 1; the coalescing bench gathers 32).
   * `maxChain`: the longest post list (default 32).
   */
  constructor(device: string, gidIndex: number, bufferBytes: number, depth: number, recvEvents = false, maxSendSge = 1, maxChain = 32) {
    this.ctx = Context.open({ device, gidIndex });
    try {
      this.pd = this.ctx.allocPd();
      this.sendCq = this.ctx.createCompletionQueue({ entries: depth, events: false, batch: 16 });
      this.recvCq = this.ctx.createCompletionQueue({ entries: depth, events: recvEvents, batch: 16 });
      this.qp = this.pd.createQueuePair({ sendCq: this.sendCq, recvCq: this.recvCq, maxSendWr: depth, maxRecvWr: depth, maxSendSge, maxRecvSge: 1, maxChain: Math.min(maxChain, depth) });
      this.#block = new NativeBlock(bufferBytes, 'bench buffer');
      this.bytes = this.#block.bytes.subarray(0, bufferBytes);
      this.mr = this.pd.registerMemory({ address: this.#block.address, length: bufferBytes }, { remoteWrite: true });
    } catch (error) {
      this.ctx.dispose();
      this.#block?.free();
      throw error;
    }
  }

  readonly #block: NativeBlock | undefined;

  endpoint(): BenchEndpoint {
    return { ...this.qp.localEndpoint(), addr: this.mr.addr, rkey: this.mr.rkey };
  }

  connect(remote: BenchEndpoint): void {
    this.qp.connect(remote);
  }

  dispose(): void {
    this.ctx.dispose(); // deregisters the buffer before it is unmapped
    this.#block?.free();
  }
}

export function parseEndpoint(text: string): BenchEndpoint {
  const e = JSON.parse(text) as BenchEndpoint;
  if (typeof e.gid !== 'string' || !Number.isInteger(e.qpn) || !Number.isInteger(e.rkey) || !Number.isSafeInteger(e.addr)) {
    throw new Error(`bad endpoint: ${text}`);
  }
  return e;
}

export type PeerMode = 'write-lat' | 'send-lat' | 'bw';

/**
 * Start the server process (rdma-peer.js, same runtime) on dev0 with `client`'s endpoint, pin it
 * to `cpu`, wait for its endpoint and connect `client` to it. The caller stops the peer.
 */
export async function startServerPeer(mode: PeerMode, pair: DevicePair, size: number, total: number, client: BenchSide, cpu: number | null): Promise<{ peer: Peer; remote: BenchEndpoint }> {
  const script = fileURLToPath(new URL('../rdma-peer.js', import.meta.url));
  const argv = [mode, pair.dev0, String(pair.gidIndex), String(size), String(total), String(process.pid), JSON.stringify(client.endpoint())];
  const peer = Peer.start(`rdma ${mode} server`, selfCommand(script, argv));
  try {
    if (cpu !== null) pinProcess(peer.pid, [cpu]); // every thread: the runtime's helpers stay off the client's CPU
    await peer.waitFor('its endpoint (READY line)', () => /^READY .*\n/m.test(peer.stdout), 30_000);
    if (cpu !== null) pinProcess(peer.pid, [cpu]); // again: threads its runtime started meanwhile
    const remote = parseEndpoint(/^READY (.*)$/m.exec(peer.stdout)![1]);
    client.connect(remote);
    return { peer, remote };
  } catch (error) {
    await peer.stop();
    throw error;
  }
}
