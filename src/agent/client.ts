/**
 * AgentClient — how a process talks to a node agent (its own node's, or another node's), async:
 * connect (rdma_cm) and say HELLO; allocate / find / remove targets; ask whether a process of the
 * agent's node is alive; hear GONE notices; ring doorbells; RDMA WRITE into a target over the
 * same connection (the target is registered on this connection's protection domain; the remote
 * address of target offset x is `base + x`).
 *
 * Memory: buffers written from must be registered on `client.pd` (registerMemory) and stay
 * registered until the write resolves. Errors: AgentError for an agent's refusal (NOT_FOUND,
 * EXISTS, …), TimeoutError when no answer comes in time, PeerGoneError once the agent is gone
 * (it said BYE, disconnected, or its process died), ClosedError after close().
 */
import { ClosedError, MemwireError, PeerGoneError, TimeoutError, UsageError } from '../errors.js';
import { selfPid, selfStartTime } from '../shm/process-identity.js';
import type { MemoryAccess, MemoryRegion, Registrable } from '../verbs/memory-region.js';
import type { ProtectionDomain } from '../verbs/protection-domain.js';
import { rdmaConnect } from '../verbs/rdma-cm.js';
import { deviceAddress } from './discover.js';
import { DEFAULT_AGENT_PORT } from './agent.js';
import { AgentLink, RECV_SLOTS, type LinkOwner } from './link.js';
import { errorCodeName, ProtocolError, Role, type Message } from './wire.js';

/** What a writer needs of a target: no address (the remote address of offset x is base + x). */
export interface TargetDescriptor {
  /** The node whose agent holds it. */
  readonly node: string;
  readonly name: string;
  readonly size: number;
  /** Valid on the connection it was obtained on only. */
  readonly rkey: number;
  /** The remote address of byte 0: the target's offset within its page (< 4096), not an address of the node. */
  readonly base: number;
}

/** An agent refused a request; `reason` is the wire.ts ErrorCode name (NOT_FOUND, EXISTS, …). */
export class AgentError extends MemwireError {
  readonly reason: string;
  readonly node: string;
  constructor(node: string, reason: string, text: string) {
    super('ERR_MEMWIRE_AGENT', `agent of node ${JSON.stringify(node)} refused (${reason}): ${text}`);
    this.reason = reason;
    this.node = node;
  }
}

export interface AgentClientOptions {
  /** The agent's IPv4 address and port (default DEFAULT_AGENT_PORT). */
  readonly address: string;
  readonly port?: number;
  /** The local IPv4 address to connect from; or `device`, whose address is then used. */
  readonly source?: string;
  readonly device?: string;
  /** This process belongs to the agent's node: the agent watches it and pushes GONE when it ends. */
  readonly local?: boolean;
  /** This process's node name (told to the agent, for its messages). */
  readonly node?: string;
  /** Bound for connecting and for each request. Default 5000 ms. */
  readonly timeoutMs?: number;
}

type Pending = { expect: Message['type']; resolve: (m: Message) => void; reject: (e: Error) => void; timer: ReturnType<typeof setTimeout> };

export class AgentClient implements LinkOwner {
  /** The agent's node name (from WELCOME). */
  node = '';
  agentPid = 0;
  agentStartTime = 0n;
  readonly #timeoutMs: number;
  readonly #pending = new Map<number, Pending>();
  readonly #goneListeners = new Set<(pid: number, startTime: bigint) => void>();
  #link!: AgentLink;
  #nextId = 1;
  #lost: Error | undefined;
  #resolveClosed!: (reason: Error) => void;
  /** Resolves with the reason once the agent is gone or the client closed. */
  readonly closed: Promise<Error> = new Promise((resolve) => (this.#resolveClosed = resolve));

  private constructor(timeoutMs: number) {
    this.#timeoutMs = timeoutMs;
  }

  /**
   * Connect and say HELLO. ConnectionError / TimeoutError when the agent cannot be reached,
   * AgentError if it refuses, UsageError for bad options.
   */
  static async connect(options: AgentClientOptions): Promise<AgentClient> {
    if (!options || typeof options.address !== 'string') throw new UsageError('AgentClient.connect needs { address }');
    const timeoutMs = options.timeoutMs ?? 5000;
    const port = options.port ?? DEFAULT_AGENT_PORT;
    const source = options.source ?? (options.device ? deviceAddress(options.device).ipv4 : undefined);
    const connection = await rdmaConnect({ address: options.address, port, source, timeoutMs, qp: { maxRecvWr: RECV_SLOTS * 2, maxSendWr: 128 } });
    const client = new AgentClient(timeoutMs);
    try {
      client.#link = new AgentLink(connection, client, `agent at ${options.address}:${port}`);
    } catch (error) {
      connection.dispose();
      throw error;
    }
    try {
      const welcome = (await client.#request(
        { type: 'hello', requestId: 0, pid: selfPid, startTime: selfStartTime, role: options.local ? Role.LOCAL_PROCESS : Role.REMOTE_PROCESS, node: options.node ?? '' },
        'welcome',
      )) as Extract<Message, { type: 'welcome' }>;
      client.node = welcome.node;
      client.agentPid = welcome.pid;
      client.agentStartTime = welcome.startTime;
      client.#link.label = `agent of node ${welcome.node || `${options.address}:${port}`}`;
    } catch (error) {
      client.close();
      throw error;
    }
    return client;
  }

  /** Why the agent is gone (PeerGoneError) or ClosedError after close(); undefined while connected. */
  get lost(): Error | undefined {
    return this.#lost;
  }

  /** The protection domain writes go through: register source buffers here. */
  get pd(): ProtectionDomain {
    return this.#link.connection.pd;
  }

  /** Register `memory` on this connection's protection domain (for write()). */
  registerMemory(memory: Registrable, access?: MemoryAccess): MemoryRegion {
    return this.pd.registerMemory(memory, access);
  }

  #request(message: Message, expect: Message['type']): Promise<Message> {
    if (this.#lost) return Promise.reject(this.#lost);
    const requestId = this.#nextId++;
    if (this.#nextId > 0xffffffff) this.#nextId = 1;
    return new Promise<Message>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(requestId);
        reject(new TimeoutError(`agent of node ${JSON.stringify(this.node)}: no answer to ${message.type.toUpperCase()} within ${this.#timeoutMs} ms`));
      }, this.#timeoutMs);
      this.#pending.set(requestId, { expect, resolve, reject, timer });
      try {
        this.#link.send({ ...message, requestId } as Message);
      } catch (error) {
        clearTimeout(timer);
        this.#pending.delete(requestId);
        reject(this.#lost ?? error);
      }
    });
  }

  #descriptor(m: Message): TargetDescriptor {
    const d = m as Extract<Message, { type: 'descriptor' }>;
    return { node: this.node, name: d.name, size: d.size, rkey: d.rkey, base: d.base };
  }

  /** Ask the agent for a new target of `size` bytes named `name` on its node, owned by this client. */
  async allocate(name: string, size: number): Promise<TargetDescriptor> {
    return this.#descriptor(await this.#request({ type: 'allocate', requestId: 0, name, size }, 'descriptor'));
  }

  /** The descriptor of an existing target (registered for this connection). AgentError NOT_FOUND if none. */
  async find(name: string): Promise<TargetDescriptor> {
    return this.#descriptor(await this.#request({ type: 'find', requestId: 0, name }, 'descriptor'));
  }

  /** Remove a target: deregistered everywhere, its name unlinked (readers' mappings stay valid). */
  async remove(name: string): Promise<void> {
    await this.#request({ type: 'remove', requestId: 0, name }, 'done');
  }

  /** Whether the process (pid, start time) of the agent's node is running. */
  async isAlive(pid: number, startTime: bigint): Promise<boolean> {
    const m = await this.#request({ type: 'is-alive', requestId: 0, pid, startTime }, 'alive');
    return (m as Extract<Message, { type: 'alive' }>).alive;
  }

  /**
   * Ask the agent to FUTEX_WAKE up to `count` waiters (0: all) on the 32-bit word at `offset`
   * of target `name`. No answer; sent after every write posted before it on this connection, so
   * (RC ordering) the woken reader sees those writes.
   */
  doorbell(name: string, offset: number, count = 0): void {
    if (this.#lost) throw this.#lost;
    this.#link.send({ type: 'doorbell', requestId: 0, name, offset, count });
  }

  /**
   * RDMA WRITE `length` bytes of `source` (registered on `client.pd`) from `sourceOffset` to
   * `targetOffset` of `target`. Resolves when the NIC reports it done; rejects with the typed
   * completion error (e.g. RemoteAccessError for a range outside the target) or PeerGoneError.
   */
  write(source: MemoryRegion, sourceOffset: number, length: number, target: TargetDescriptor, targetOffset: number): Promise<void> {
    if (this.#lost) return Promise.reject(this.#lost);
    if (!Number.isInteger(targetOffset) || targetOffset < 0 || !Number.isInteger(length) || length < 0 || targetOffset + length > target.size) {
      return Promise.reject(new UsageError(`write of ${length} bytes at ${targetOffset} does not fit target ${JSON.stringify(target.name)} (${target.size} bytes)`));
    }
    return this.#link.write(source, sourceOffset, length, target.rkey, target.base + targetOffset);
  }

  /** @internal The control link (the RDMA transport posts its writes on it). */
  get link(): AgentLink {
    return this.#link;
  }

  /** Call `listener(pid, startTime)` for each GONE notice (a process of the agent's node ended). Returns an unsubscribe. */
  onGone(listener: (pid: number, startTime: bigint) => void): () => void {
    this.#goneListeners.add(listener);
    return () => this.#goneListeners.delete(listener);
  }

  onMessage(link: AgentLink, m: Message): void {
    switch (m.type) {
      case 'gone':
        for (const l of [...this.#goneListeners]) {
          try {
            l(m.pid, m.startTime);
          } catch {
            /* a listener's failure is its own */
          }
        }
        return;
      case 'bye':
        link.lose(new PeerGoneError(`agent of node ${this.node}`, 'it is stopping (BYE)'));
        return;
      case 'welcome':
      case 'descriptor':
      case 'done':
      case 'alive':
      case 'error': {
        const pending = this.#pending.get(m.requestId);
        if (!pending) return; // an answer that came after its request timed out
        this.#pending.delete(m.requestId);
        clearTimeout(pending.timer);
        if (m.type === 'error') pending.reject(new AgentError(this.node, errorCodeName(m.code), m.text));
        else if (m.type !== pending.expect) {
          const error = new ProtocolError(`expected ${pending.expect.toUpperCase()} in answer, got ${m.type.toUpperCase()}`);
          pending.reject(error);
          link.lose(error);
        } else pending.resolve(m);
        return;
      }
      default:
        link.lose(new ProtocolError(`an agent may not send ${m.type.toUpperCase()} to a client`));
    }
  }

  onLost(_link: AgentLink, reason: Error): void {
    this.#lost =
      reason instanceof PeerGoneError || reason instanceof ClosedError ? reason : new PeerGoneError(`agent of node ${this.node}`, `control connection lost: ${reason.message}`);
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer);
      p.reject(this.#lost);
    }
    this.#pending.clear();
    this.#resolveClosed(this.#lost);
  }

  /** Disconnect (idempotent). The agent reclaims the targets this client allocated. */
  close(): void {
    this.#link?.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
