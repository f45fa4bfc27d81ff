#!/usr/bin/env node
/**
 * Start/stop cycles of `memwire agent` in the rxe guest (issue 12: the agent once died of
 * SIGSEGV at exit after a clean SIGTERM stop). Each cycle starts the agent on DEV1 under the
 * runtime asked for, connects a client from DEV0 (every other cycle: two clients, one of which
 * allocates a target the other finds and writes into), sends SIGTERM, and records how the agent
 * process ended. Prints one line a cycle and a summary; exits 1 if any stop was not "exit 0".
 *
 *   scripts/rxe/run.sh -- node scripts/rxe/agent-stop-loop.mjs [--cycles N] [--cores DIR] [--dist DIR] node bun deno
 *
 * --cores DIR: allow core dumps of the agent (the guest's core_pattern is pointed at DIR; the
 * first two crashes per runtime keep their core, for gdb on the host: the guest's root is the
 * host's, so the binaries match).
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

const argv = process.argv.slice(2);
let cycles = 30;
let coreDir = '';
let dist = `${root}/dist`;
const runtimes = [];
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--cycles') cycles = Number(argv[++i]);
  else if (argv[i] === '--cores') coreDir = resolve(argv[++i]);
  else if (argv[i] === '--dist') dist = resolve(argv[++i]); // another build (e.g. before a fix), same layout
  else runtimes.push(argv[i]);
}
const { AgentClient, deviceAddress } = await import(`${dist}/src/index.js`);
if (!runtimes.length) runtimes.push('node');

const DEV0 = process.env.MEMWIRE_RXE_DEV0 || 'rxe0';
const DEV1 = process.env.MEMWIRE_RXE_DEV1 || 'rxe1';
const ip0 = process.env.MEMWIRE_RXE_IP0 || deviceAddress(DEV0).ipv4;
const ip1 = process.env.MEMWIRE_RXE_IP1 || deviceAddress(DEV1).ipv4;
const PORT = 7480;
const CLI = `${dist}/src/cli/main.js`;
const bin = (name) => `${root}/node_modules/.bin/${name}`;
const COMMANDS = {
  node: [process.execPath, CLI],
  bun: [bin('bun'), '--bun', CLI],
  deno: [bin('deno'), 'run', '--allow-all', CLI],
};

if (coreDir) {
  mkdirSync(coreDir, { recursive: true });
  writeFileSync('/proc/sys/kernel/core_pattern', `${coreDir}/core.%e.%p`);
}

function startAgent(runtime, allowCore) {
  const argvAgent = [...COMMANDS[runtime], 'agent', '--device', DEV1, '--listen', `${ip1}:${PORT}`, '--node', 'B'];
  const child = spawn('sh', ['-c', `ulimit -c ${allowCore ? 'unlimited' : 0}; exec "$@"`, 'sh', ...argvAgent], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exit = new Promise((r) => child.on('exit', (code, signal) => r({ code, signal })));
  const listening = new Promise((resolveListening, reject) => {
    const timer = setTimeout(() => reject(new Error(`agent did not listen within 60 s:\n${out}`)), 60_000);
    child.stdout.on('data', () => {
      if (/listening on /.test(out)) {
        clearTimeout(timer);
        resolveListening();
      }
    });
    void exit.then((e) => reject(new Error(`agent exited ${JSON.stringify(e)} before listening:\n${out}`)));
  });
  return { child, exit, listening, output: () => out };
}

async function cycle(runtime, i, allowCore) {
  const agent = startAgent(runtime, allowCore);
  await agent.listening;
  const clients = [];
  try {
    const a = await AgentClient.connect({ address: ip1, port: PORT, source: ip0, timeoutMs: 10_000 });
    clients.push(a);
    if (i % 2 === 1) {
      const name = `loop.${process.pid}.${i}`;
      await a.allocate(name, 8192);
      const b = await AgentClient.connect({ address: ip1, port: PORT, source: ip0, timeoutMs: 10_000 });
      clients.push(b);
      const found = await b.find(name);
      const src = new Uint8Array(512).fill(i & 0xff);
      await b.write(b.registerMemory(src), 0, src.length, found, 0);
      b.doorbell(name, 0);
    }
  } catch (error) {
    console.log(`  (client side failed: ${error.message})`);
  }
  const t0 = performance.now();
  agent.child.kill('SIGTERM');
  const ended = await Promise.race([agent.exit, new Promise((r) => setTimeout(() => r({ code: null, signal: 'HUNG' }), 30_000))]);
  const ms = performance.now() - t0;
  if (ended.signal === 'HUNG') agent.child.kill('SIGKILL');
  for (const c of clients) c.close();
  return { ...ended, ms, output: agent.output() };
}

let bad = 0;
for (const runtime of runtimes) {
  let crashes = 0;
  let clean = 0;
  for (let i = 0; i < cycles; i++) {
    const r = await cycle(runtime, i, !!coreDir && crashes < 2);
    const ok = r.code === 0 && r.signal === null;
    if (ok) clean++;
    else {
      crashes++;
      bad++;
    }
    console.log(`${runtime} cycle ${i} (${i % 2 ? 'two clients, a target' : 'one client'}): ${ok ? 'exit 0' : `code ${r.code} signal ${r.signal}`} after ${r.ms.toFixed(0)} ms`);
    if (!ok) console.log(r.output.split('\n').map((l) => `    | ${l}`).join('\n'));
  }
  console.log(`SUMMARY ${runtime}: ${clean}/${cycles} clean stops`);
}
process.exit(bad ? 1 : 0);
