// The transport conformance suite (conformance-cases.ts) against the host's implementations,
// shm and in-process; the rxe tier runs the same cases against RdmaTransport.
import { spawn } from 'node:child_process';
import { truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { TimeoutError } from '../../src/index.js';
import { REGION_HEADER_SIZE } from '../../src/shm/region-layout.js';
import { Fabric } from '../../src/transport/inproc.js';
import { RdmaTransport } from '../../src/transport/rdma-transport.js';
import { ShmTransport } from '../../src/transport/shm.js';
import type { Transport } from '../../src/transport/types.js';
import { uniqueName } from '../helpers.js';
import { conformanceCases, type Impl } from './conformance-cases.js';

const impls: Impl[] = [
  {
    name: 'shm',
    pair: () => [new ShmTransport(), new ShmTransport()],
    deadIdentity: async () => {
      const child = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
      const pid = child.pid!;
      await new Promise((resolve) => child.on('exit', resolve));
      return { pid, start: 0n };
    },
  },
  // RdmaTransport's synchronous forms serve this node without any agent or device: its targets
  // are the node's shm objects agent.<name>. Across nodes it runs in the rxe tier.
  {
    name: 'rdma (this node only)',
    pair: () => [new RdmaTransport({ node: 'host', agents: {} }), new RdmaTransport({ node: 'host', agents: {} })],
    deadIdentity: async () => {
      const child = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
      const pid = child.pid!;
      await new Promise((resolve) => child.on('exit', resolve));
      return { pid, start: 0n };
    },
  },
  (() => {
    let fabric = new Fabric();
    let last: Transport | undefined;
    return {
      name: 'inproc',
      pair: () => {
        fabric = new Fabric();
        const pair: [Transport, Transport] = [fabric.transport(), fabric.transport()];
        last = pair[1];
        return pair;
      },
      deadIdentity: async () => {
        const t = fabric.transport();
        fabric.kill(t.self.pid);
        void last;
        return t.self;
      },
      farNode: () => {
        const transport = fabric.transport('far-node');
        return {
          node: transport.node,
          resident: transport.self,
          snapshot: async (descriptor, offset, length) => {
            const local = transport.openLocal(descriptor);
            const copy = local.bytes.slice(offset, offset + length);
            local.dispose();
            return copy;
          },
        };
      },
    };
  })(),
];

describe.each(impls)('transport conformance: $name', (impl) => conformanceCases(impl));

describe('shm transport: opening a target whose creator has not initialised it', () => {
  it('{ timeoutMs: 0 } is a TimeoutError at once (openLocal and attach); a ready target opens as usual', () => {
    const t = new ShmTransport();
    const name = uniqueName('uninit');
    const path = `/dev/shm/memwire.u${process.getuid!()}.${name}`;
    writeFileSync(path, '', { mode: 0o600 });
    truncateSync(path, REGION_HEADER_SIZE + 4096); // the right size, every byte zero: "being created"
    try {
      const descriptor = t.find(name)!;
      expect(descriptor.size).toBe(4096);
      expect(() => t.openLocal(descriptor, { timeoutMs: 0 })).toThrow(TimeoutError);
      expect(() => t.attach(descriptor, { timeoutMs: 0 })).toThrow(TimeoutError);
    } finally {
      unlinkSync(path);
    }
    const ready = t.expose(uniqueName('ready'), 4096);
    try {
      t.attach(ready.descriptor, { timeoutMs: 0 }).dispose();
    } finally {
      ready.dispose();
    }
  });
});
