// `memwire doctor --agent` on a machine without an agent to reach (the host tier: usually no RDMA
// device at all): usage mistakes exit 2; an unreachable agent is a FAIL line with the typed
// error's name and exit 1, never a crash or a hang. The reachable case runs in the rxe guest
// (test/rxe/agent.test.ts).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { selfCommand } from '../../ffi/runtime.js';
import { parseAgentAddress } from '../../src/cli/doctor-agent.js';
import { DEFAULT_AGENT_PORT, UsageError } from '../../src/index.js';

const cli = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url));
const memwire = (...args: string[]) => {
  const [exe, ...argv] = selfCommand(cli, args);
  return spawnSync(exe, argv, { encoding: 'utf8', timeout: 60_000 });
};

describe('memwire doctor --agent', () => {
  it('takes an address with or without a port', () => {
    expect(parseAgentAddress('192.0.2.2')).toEqual({ address: '192.0.2.2', port: DEFAULT_AGENT_PORT });
    expect(parseAgentAddress('192.0.2.2:7500')).toEqual({ address: '192.0.2.2', port: 7500 });
    for (const bad of ['', 'rxe1', '192.0.2.256', '192.0.2.2:70000', '192.0.2.2:']) expect(() => parseAgentAddress(bad), bad).toThrow(UsageError);
  });

  it('--agent without a value, --device without one or without --agent: a usage mistake, exit 2', () => {
    const cases: [string[], RegExp][] = [
      [['doctor', '--agent'], /--agent needs a value/],
      [['doctor', '--agent', '--json'], /--agent needs a value/],
      [['doctor', '--agent', '192.0.2.2', '--device'], /--device needs a value/],
      [['doctor', '--device', 'rxe0'], /--device only goes with --agent/],
    ];
    for (const [args, message] of cases) {
      const run = memwire(...args);
      expect(run.status, run.stdout + run.stderr).toBe(2);
      expect(run.stderr).toMatch(message);
    }
  });

  it('an agent that cannot be reached: a FAIL line naming the error, exit 1 (text and JSON)', () => {
    // A bad address is refused before any RDMA call, so this holds with or without a device.
    const text = memwire('doctor', '--agent', '192.0.2.300');
    expect(text.status, text.stdout + text.stderr).toBe(1);
    expect(text.stdout).toMatch(/\[FAIL\] agent 192\.0\.2\.300: UsageError: --agent must look like/);
    // A well-formed address on a device this machine does not have: the typed error of the device lookup.
    const json = memwire('doctor', '--json', '--agent', '192.0.2.2:7471', '--device', 'no-such-device0');
    expect(json.status, json.stdout + json.stderr).toBe(1);
    const report = JSON.parse(json.stdout) as { sharedMemory: { ok: boolean }; agent: { ok: boolean; agent: string; detail: string } };
    expect(report.sharedMemory.ok).toBe(true);
    expect(report.agent).toMatchObject({ ok: false, agent: '192.0.2.2:7471' });
    expect(report.agent.detail).toMatch(/^(NoDeviceError|UsageError): /);
  });
});
