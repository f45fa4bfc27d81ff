/**
 * The two-node harness of the rxe tier: bench/lib/two-node.ts (shared with the RDMA postbox
 * benches) with the tier's defaults — node A on DEV0, node B on DEV1 (MEMWIRE_RXE_IP0/IP1 may
 * override their addresses), and test/fixtures/two-node-process.ts as what a node runs unless told.
 */
import { fileURLToPath } from 'node:url';
import { TwoNodeNode, twoNodes as makeTwoNodes } from '../../bench/lib/two-node.js';
import { DEV0, DEV1 } from './helpers.js';

export { asleepInFutex, TwoNodeNode, type Proc } from '../../bench/lib/two-node.js';

const FIXTURE = fileURLToPath(new URL('../../dist/test/fixtures/two-node-process.js', import.meta.url));

/** Node A on DEV0, node B on DEV1. */
export function twoNodes(): Promise<[TwoNodeNode, TwoNodeNode]> {
  return makeTwoNodes({ dev0: DEV0, dev1: DEV1, ip0: process.env.MEMWIRE_RXE_IP0 ?? '', ip1: process.env.MEMWIRE_RXE_IP1 ?? '', script: FIXTURE });
}

/** One node of the tier (the fixture as its default script), for a test whose other node is this process. */
export function createNode(name: string, device: string, address = ''): Promise<TwoNodeNode> {
  return TwoNodeNode.create(name, device, address, FIXTURE);
}
