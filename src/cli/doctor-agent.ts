/**
 * `memwire doctor --agent <addr>[:port] [--device <dev>]`: is a node agent reachable from here?
 * Picks the local RDMA device (and source address) from the routing table unless --device names
 * one (agent/discover.ts sourceFor), connects, says HELLO, asks IS_ALIVE about the agent's own
 * process (one full request/answer), and closes. Never throws: every failure is part of the answer.
 */
import { DEFAULT_AGENT_PORT } from '../agent/agent.js';
import { AgentClient } from '../agent/client.js';
import { deviceAddress, parseEndpoint, sourceFor } from '../agent/discover.js';

export interface AgentCheck {
  ok: boolean;
  /** The agent's address:port as asked. */
  agent: string;
  /** The local device and address connected from (empty when none could be picked). */
  device: string;
  source: string;
  how: string;
  /** From the agent's WELCOME (when reached). */
  node?: string;
  agentPid?: number;
  /** Connect + HELLO + one request, in ms (when reached). */
  ms?: number;
  detail: string;
}

/** "a.b.c.d" or "a.b.c.d:port" → address and port (DEFAULT_AGENT_PORT when none). UsageError otherwise. */
export function parseAgentAddress(text: string): { address: string; port: number } {
  return parseEndpoint(/:\d+$/.test(text ?? '') ? text : `${text}:${DEFAULT_AGENT_PORT}`, '--agent');
}

export async function checkAgent(text: string, options: { device?: string; timeoutMs?: number } = {}): Promise<AgentCheck> {
  const answer: AgentCheck = { ok: false, agent: text, device: '', source: '', how: '', detail: '' };
  let client: AgentClient | undefined;
  try {
    const { address, port } = parseAgentAddress(text);
    answer.agent = `${address}:${port}`;
    const from = options.device ? { ...deviceAddress(options.device), how: '--device' } : sourceFor(address);
    answer.device = from.device;
    answer.source = from.ipv4;
    answer.how = from.how;
    const t0 = performance.now();
    client = await AgentClient.connect({ address, port, source: from.ipv4, timeoutMs: options.timeoutMs ?? 5000 });
    const alive = await client.isAlive(client.agentPid, client.agentStartTime);
    answer.ms = performance.now() - t0;
    answer.node = client.node;
    answer.agentPid = client.agentPid;
    answer.ok = alive;
    answer.detail = alive
      ? `agent of node ${JSON.stringify(client.node)} (pid ${client.agentPid}) answered HELLO and IS_ALIVE`
      : `agent of node ${JSON.stringify(client.node)} answered, but says its own process (pid ${client.agentPid}) is not running`;
  } catch (error) {
    answer.detail = `${(error as Error).name}: ${(error as Error).message}`;
  } finally {
    client?.close();
  }
  return answer;
}

export function formatAgentCheck(c: AgentCheck): string {
  const from = c.device ? ` from ${c.device} (${c.source}; ${c.how})` : '';
  const took = c.ms !== undefined ? `, ${c.ms.toFixed(1)} ms` : '';
  return `  [${c.ok ? 'ok  ' : 'FAIL'}] agent ${c.agent}${from}: ${c.detail}${took}`;
}
