/**
 * Interop with rdma-core: examples/rc-pingpong (memwire) against `ibv_rc_pingpong` (C), both
 * ways — memwire server + C client, C server + memwire client — over dev0 (server) and dev1
 * (client). The memwire side runs on this test's runtime (Node, Bun or Deno). Each pair is bounded by a
 * timeout; both processes must exit 0 and report the iteration count.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { selfCommand } from '../../ffi/runtime.js';
import { Context } from '../../src/index.js';
import { DEV0, DEV1, IP0, skipReason, suffix } from './helpers.js';

const EXAMPLE = fileURLToPath(new URL('../../examples/rc-pingpong/rc-pingpong.mjs', import.meta.url));
const ITERS = 100;
const SIZE = 4096;
const hasTool = spawnSync('sh', ['-c', 'command -v ibv_rc_pingpong'], { encoding: 'utf8' }).status === 0;
const hasBuild = (() => {
  try {
    readFileSync(fileURLToPath(new URL('../../dist/src/index.js', import.meta.url)));
    return true;
  } catch {
    return false;
  }
})();
const why = skipReason || (!hasTool ? 'ibv_rc_pingpong is not installed (package ibverbs-utils)' : !hasBuild ? 'dist/ is not built (npm run build)' : '');

function gidIndexOf(dev: string): number {
  const ctx = Context.open(dev);
  try {
    return ctx.gid().index;
  } finally {
    ctx.dispose();
  }
}

function serverAddress(): string {
  if (IP0) return IP0;
  const ctx = Context.open(DEV0);
  try {
    return ctx.gid().ipv4 ?? '127.0.0.1';
  } finally {
    ctx.dispose();
  }
}

interface Run {
  child: ChildProcess;
  out: string;
  done: Promise<number | null>;
}

const running: Run[] = [];

function start(cpu: number, argv: string[]): Run {
  const child = spawn('taskset', ['-c', String(cpu), ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
  const run: Run = { child, out: '', done: new Promise((resolve) => child.once('exit', (code) => resolve(code))) };
  child.stdout!.on('data', (d) => (run.out += d));
  child.stderr!.on('data', (d) => (run.out += d));
  running.push(run);
  return run;
}

function listening(port: number): boolean {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  return ['/proc/net/tcp', '/proc/net/tcp6'].some((table) => {
    try {
      return readFileSync(table, 'utf8')
        .split('\n')
        .some((line) => {
          const f = line.trim().split(/\s+/);
          return f[3] === '0A' && f[1]?.endsWith(hex);
        });
    } catch {
      return false;
    }
  });
}

async function waitListening(port: number, server: Run): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!listening(port)) {
    if (server.child.exitCode !== null) throw new Error(`server exited before listening: ${server.out}`);
    if (Date.now() > deadline) throw new Error(`server did not listen on ${port} within 20 s: ${server.out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function pair(serverArgv: string[], clientArgv: string[], port: number): Promise<[Run, Run]> {
  const server = start(0, serverArgv);
  await waitListening(port, server);
  const client = start(1, clientArgv);
  const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no exit within 90 s\nserver: ${server.out}\nclient: ${client.out}`)), 90_000));
  const [s, c] = await Promise.race([Promise.all([server.done, client.done]), timeout]);
  expect({ server: s, client: c, serverOut: s === 0 ? '' : server.out, clientOut: c === 0 ? '' : client.out }).toEqual({ server: 0, client: 0, serverOut: '', clientOut: '' });
  return [server, client];
}

describe.skipIf(why !== '')(`interop with ibv_rc_pingpong${why ? ` (skipped: ${why})` : suffix}`, () => {
  afterEach(() => {
    for (const run of running.splice(0)) if (run.child.exitCode === null) run.child.kill('SIGKILL');
  });

  const gid0 = why ? 0 : gidIndexOf(DEV0);
  const gid1 = why ? 0 : gidIndexOf(DEV1);
  const ip = why ? '' : serverAddress();
  const common = ['-s', String(SIZE), '-n', String(ITERS)];

  it('memwire server, ibv_rc_pingpong client', { timeout: 120_000 }, async () => {
    const port = 18600 + Math.floor(Math.random() * 200);
    const [server, client] = await pair(
      selfCommand(EXAMPLE, ['-d', DEV0, '-g', String(gid0), '-p', String(port), ...common]),
      ['ibv_rc_pingpong', '-d', DEV1, '-g', String(gid1), '-p', String(port), ...common, ip],
      port,
    );
    expect(server.out).toContain(`${ITERS} iters in`);
    expect(client.out).toContain(`${ITERS} iters in`);
  });

  it('ibv_rc_pingpong server, memwire client', { timeout: 120_000 }, async () => {
    const port = 18800 + Math.floor(Math.random() * 200);
    const [server, client] = await pair(
      ['ibv_rc_pingpong', '-d', DEV0, '-g', String(gid0), '-p', String(port), ...common],
      selfCommand(EXAMPLE, ['-d', DEV1, '-g', String(gid1), '-p', String(port), ...common, ip]),
      port,
    );
    expect(server.out).toContain(`${ITERS} iters in`);
    expect(client.out).toContain(`${ITERS} iters in`);
  });
});
