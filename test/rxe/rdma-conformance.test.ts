/**
 * The transport conformance suite (test/transport/conformance-cases.ts) against RdmaTransport in
 * the rxe guest: this test process is node A (on DEV0, the guest's own /dev/shm), node B is a
 * mount namespace with its own /dev/shm and an agent on DEV1 (test/rxe/two-node.ts).
 *
 * Which cases cross nodes: the "pair" cases are two RdmaTransports of node A — the this-node
 * forms (contract 6: expose, attach, find … serve this node, the shm objects agent.<name>; no
 * agent and no RDMA is involved, as on the host, where the same cases run too). The "another
 * node" case is the cross-node one: a target allocated on B by B's agent, written with RDMA
 * WRITEs, published, atomically added to and read back with the async forms from A, then read in
 * place by a process of B (its snapshot); B's agent answers isAlive for B's agent process. The
 * shm-only case (a child process attaching by descriptor) does not apply and says so.
 */
import { describe } from 'vitest';
import { spawn } from 'node:child_process';
import { backend } from '../../ffi/backend.js';
import { runtimeName } from '../../ffi/runtime.js';
import { RdmaTransport } from '../../src/index.js';
import { processStartTime } from '../../src/shm/process-identity.js';
import { afterAll, beforeAll } from 'vitest';
import { conformanceCases, type Impl } from '../transport/conformance-cases.js';
import { DEV0, DEV1, IP1, skipReason, suffix } from './helpers.js';
import { createNode, type Proc, type TwoNodeNode } from './two-node.js';

const PORT = 7491;
let B: TwoNodeNode;
let agentB: Proc;
const made: RdmaTransport[] = [];

function transportOfA(): RdmaTransport {
  const t = new RdmaTransport({ node: 'A', agents: { B: { address: B.address, port: PORT } }, device: DEV0, timeoutMs: 20_000 });
  made.push(t);
  return t;
}

const impl: Impl = {
  name: 'rdma',
  pair: () => [transportOfA(), transportOfA()],
  deadIdentity: async () => {
    const child = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
    const pid = child.pid!;
    await new Promise((resolve) => child.on('exit', resolve));
    return { pid, start: 0n };
  },
  farNode: () => {
    const pid = agentB.child.pid!;
    return {
      node: 'B',
      resident: { pid, start: processStartTime(pid) ?? 0n },
      snapshot: async (descriptor, offset, length) => {
        const dump = B.run(['dump', descriptor.name, offset, length]);
        const m = await dump.line(/^dump ([0-9a-f]*)$/, 60_000);
        return new Uint8Array(Buffer.from(m[1], 'hex'));
      },
    };
  },
};

describe.skipIf(!!skipReason)(`transport conformance: RdmaTransport, node A (${DEV0}, this process) and node B (${DEV1}) (${runtimeName}, ${backend.name})${suffix}`, () => {
  beforeAll(async () => {
    B = await createNode('B', DEV1, IP1);
    agentB = await B.startAgent(PORT);
  }, 90_000);

  afterAll(async () => {
    for (const t of made.splice(0)) t.dispose();
    await B?.dispose();
  }, 60_000);

  conformanceCases(impl);
});
