/**
 * NodeAgent — seed 000's "remote shared memory manager", one per node (`memwire agent`):
 *
 *  - listens for rdma_cm connections on its device's address; each peer (a process of this node,
 *    a process of another node, another agent) says HELLO first (wire.ts);
 *  - allocates targets for remote writers as shm objects of this node (SharedRegion
 *    `agent.<name>`, which local readers map with SharedRegion.open(targetRegionName(name)))
 *    and registers them (iova = their offset within the page) on the protection domain of the asking peer's connection,
 *    so that peer's RDMA WRITEs land straight in the pages the readers map — no CPU of this node
 *    touches the data;
 *  - answers FIND with a descriptor holding no address (name, size, rkey, base; registering the target
 *    on the finder's own connection the first time), REMOVE, and IS_ALIVE (pid + start time of a
 *    process of this node);
 *  - adopts the targets processes of this node made themselves (RdmaTransport.expose(): the shm
 *    object `agent.<name>`, made without asking the agent): a FIND for a name it does not hold
 *    maps that object and serves it like its own. It forgets a target (deregisters it everywhere,
 *    unmaps it) once the name no longer holds that object — removed or made anew by a process of
 *    this node: the name is left alone — or, adopted, once its creator is dead (then it removes
 *    the name too, if it still holds that object: nobody else can): checked on each ALLOCATE
 *    and FIND of the name and every LIVENESS_CHECK_MS. A forgotten target is no longer found,
 *    but stays registered and mapped for FORGET_GRACE_MS: a remote writer that has not yet
 *    noticed the creator's end (a receiver announcing "sleeping" to a sender that just closed)
 *    writes into memory nobody reads, instead of failing its RC queue pair — and with it every
 *    other image sharing that connection;
 *  - relays doorbells: a DOORBELL message becomes FUTEX_WAKE on that word of the target;
 *  - pushes GONE to every peer when a process of this node that said HELLO as a local process
 *    disconnects or dies; reclaims (deregisters, unlinks) the targets a lost peer owned;
 *  - stop() (SIGTERM in the CLI): BYE to every peer, deregister everything, remove its names.
 *    After a crash (SIGKILL) the next agent on the node removes the names the dead one left
 *    (regions whose creator is dead), when it starts.
 *
 * Who may connect: anyone who reaches the listening address over RDMA (see
 * docs/across-machines.md, "Security"); a peer can write only into targets registered on its own
 * connection, and only within them.
 */
import { statSync } from 'node:fs';
import { errnoName } from '../errno-names.js';
import { ClosedError, SystemError, TimeoutError, UsageError } from '../errors.js';
import { isProcessAlive, selfPid, selfStartTime } from '../shm/process-identity.js';
import { SHM_DIRECTORY, shmNameFor } from '../shm/names.js';
import { SharedRegion } from '../shm/region.js';
import { CmListener, type CmConnection } from '../verbs/rdma-cm.js';
import { deviceAddress } from './discover.js';
import { AgentLink, RECV_SLOTS, type LinkOwner } from './link.js';
import { directRegistrar, type TargetRegistrar, type TargetRegistration } from './registrar.js';
import { ErrorCode, ProtocolError, Role, type Message } from './wire.js';

/** The default port of `memwire agent`. */
export const DEFAULT_AGENT_PORT = 7471;
/** Prefix of the shm names of agent targets (one agent per node owns them). */
export const TARGET_PREFIX = 'agent.';
/** How often the agent checks that its node's HELLO'd processes still run. */
export const LIVENESS_CHECK_MS = 500;
// Bounds one accept (request + establishment); a pending accept ends at once when stop() disposes the listener.
const ACCEPT_SLICE_MS = 5000;
const BYE_FLUSH_MS = 500;
// How long a FIND waits for a process of this node to finish initialising a target it is making.
const ADOPT_OPEN_MS = 50;
/**
 * How long a forgotten target stays registered (see the file comment). Writers learn that its
 * creator is gone by their own liveness checks — a postbox's every LIVENESS_INTERVAL_MS through
 * this agent's IS_ALIVE — so this is many such rounds even on a slow (TCG) guest. 5 s was too
 * short once: in the container tier, with two TCG guests on the host's two cores, a receiver's
 * late acknowledgment to a sender that had closed reached the forgotten ack block after its
 * deregistration (IBV_WC_REM_ACCESS_ERR, the receiver's connection to that node lost).
 */
export const FORGET_GRACE_MS = 15_000;

/** The SharedRegion name under which a target called `name` lives on its node. */
export function targetRegionName(name: string): string {
  return `${TARGET_PREFIX}${name}`;
}

export interface NodeAgentOptions {
  /** The RDMA device this agent serves (e.g. "rxe1"). */
  readonly device: string;
  /** The IPv4 address to listen on; default: the device's own (from its RoCE v2 GID). */
  readonly address?: string;
  /** Default DEFAULT_AGENT_PORT; 0 picks a free port (see `agent.port`). */
  readonly port?: number;
  /** The node's name in WELCOME and in messages; default the device name. */
  readonly node?: string;
  readonly registrar?: TargetRegistrar;
  /** Where the agent says what it does (one line each); default nowhere. */
  readonly log?: (line: string) => void;
}

interface Peer {
  readonly link: AgentLink;
  hello?: { pid: number; startTime: bigint; role: number; node: string };
}

interface Target {
  readonly name: string;
  readonly region: SharedRegion;
  /** The peer it was allocated for; undefined: adopted (a process of this node made it). */
  readonly owner: Peer | undefined;
  /** The object's inode: the name still holds this target while the path has it. */
  readonly ino: number;
  readonly registrations: Map<Peer, TargetRegistration>;
}

/** The inode the shm name of `region` holds now, or undefined if it holds nothing. */
function inodeOf(region: SharedRegion): number | undefined {
  try {
    return statSync(`${SHM_DIRECTORY}${region.shmName}`).ino;
  } catch {
    return undefined;
  }
}

const ROLE_NAMES: Record<number, string> = { [Role.LOCAL_PROCESS]: 'local process', [Role.REMOTE_PROCESS]: 'process', [Role.AGENT]: 'agent' };

export class NodeAgent implements LinkOwner {
  readonly device: string;
  readonly node: string;
  readonly address: string;
  readonly port: number;
  /** Names of targets a dead earlier agent of this node left, removed at start. */
  readonly removedAtStart: readonly string[];
  readonly #listener: CmListener;
  readonly #registrar: TargetRegistrar;
  readonly #log: (line: string) => void;
  readonly #peers = new Map<AgentLink, Peer>();
  readonly #targets = new Map<string, Target>();
  /** Forgotten targets still registered until `until` (FORGET_GRACE_MS). */
  readonly #retired = new Set<{ readonly target: Target; readonly until: number }>();
  readonly #liveness: ReturnType<typeof setInterval>;
  #stopping: Promise<void> | undefined;

  private constructor(options: NodeAgentOptions, address: string, listener: CmListener, removed: string[]) {
    this.device = options.device;
    this.node = options.node ?? options.device;
    this.address = address;
    this.port = listener.port;
    this.removedAtStart = removed;
    this.#listener = listener;
    this.#registrar = options.registrar ?? directRegistrar;
    this.#log = options.log ?? (() => {});
    this.#liveness = setInterval(() => this.#checkLiveness(), LIVENESS_CHECK_MS);
    void this.#acceptLoop();
  }

  /**
   * Remove what a dead agent of this node left, then listen. UsageError for bad options,
   * NoDeviceError / SystemError (e.g. EADDRINUSE: another agent listens there) otherwise.
   */
  static start(options: NodeAgentOptions): NodeAgent {
    if (!options || typeof options.device !== 'string' || !options.device) throw new UsageError('NodeAgent.start needs { device }');
    const address = options.address ?? deviceAddress(options.device).ipv4;
    const removed: string[] = [];
    for (const stale of SharedRegion.listStale()) {
      if (!stale.name.startsWith(TARGET_PREFIX)) continue;
      try {
        SharedRegion.unlink(stale.name);
        removed.push(stale.name.slice(TARGET_PREFIX.length));
      } catch {
        /* removed by someone else meanwhile */
      }
    }
    const listener = CmListener.listen({ address, port: options.port ?? DEFAULT_AGENT_PORT });
    const agent = new NodeAgent(options, address, listener, removed);
    if (removed.length) agent.#log(`removed ${removed.length} target(s) a dead agent left: ${removed.join(', ')}`);
    agent.#log(`agent of node ${agent.node} listening on ${address}:${agent.port} (${options.device}), pid ${selfPid}`);
    return agent;
  }

  /** Names of the targets this agent holds. */
  get targets(): string[] {
    return [...this.#targets.keys()];
  }

  /** Connected peers (HELLO'd or not). */
  get peerCount(): number {
    return this.#peers.size;
  }

  async #acceptLoop(): Promise<void> {
    while (!this.#stopping) {
      let connection: CmConnection;
      try {
        connection = await this.#listener.accept({ timeoutMs: ACCEPT_SLICE_MS, qp: { maxRecvWr: RECV_SLOTS * 2, maxSendWr: 128 } });
      } catch (error) {
        if (error instanceof ClosedError || this.#stopping) return;
        if (!(error instanceof TimeoutError)) this.#log(`accept failed: ${(error as Error).message}`);
        continue;
      }
      if (this.#stopping) {
        connection.dispose();
        return;
      }
      try {
        const link = new AgentLink(connection, this, 'a new peer');
        this.#peers.set(link, { link });
      } catch (error) {
        this.#log(`could not set up a connection: ${(error as Error).message}`);
        connection.dispose();
      }
    }
  }

  #reply(peer: Peer, message: Message): void {
    try {
      peer.link.send(message);
    } catch {
      /* the link is gone; onLost cleans up */
    }
  }

  #error(peer: Peer, requestId: number, code: number, text: string): void {
    this.#reply(peer, { type: 'error', requestId, code, text });
  }

  onMessage(link: AgentLink, m: Message): void {
    const peer = this.#peers.get(link);
    if (!peer || this.#stopping) return;
    if (!peer.hello && m.type !== 'hello') {
      link.lose(new ProtocolError(`the first message must be HELLO, got ${m.type.toUpperCase()}`));
      return;
    }
    switch (m.type) {
      case 'hello':
        if (peer.hello) {
          link.lose(new ProtocolError('HELLO sent twice'));
          return;
        }
        peer.hello = { pid: m.pid, startTime: m.startTime, role: m.role, node: m.node };
        link.label = `${ROLE_NAMES[m.role]} pid ${m.pid}${m.node ? ` of ${m.node}` : ''}`;
        this.#log(`hello from ${link.label}`);
        this.#reply(peer, { type: 'welcome', requestId: m.requestId, pid: selfPid, startTime: selfStartTime, node: this.node });
        return;
      case 'allocate':
        this.#allocate(peer, m.requestId, m.name, m.size);
        return;
      case 'find': {
        let target: Target | undefined;
        try {
          target = this.#current(m.name) ?? this.#adopt(m.name);
        } catch (error) {
          return this.#error(peer, m.requestId, ErrorCode.SYSTEM, `cannot serve target ${JSON.stringify(m.name)} of node ${this.node}: ${(error as Error).message}`);
        }
        if (!target) return this.#error(peer, m.requestId, ErrorCode.NOT_FOUND, `no target ${JSON.stringify(m.name)} on node ${this.node}`);
        try {
          const reg = this.#registrationFor(target, peer);
          this.#reply(peer, { type: 'descriptor', requestId: m.requestId, size: target.region.size, rkey: reg.rkey, base: reg.base, name: m.name });
        } catch (error) {
          this.#error(peer, m.requestId, ErrorCode.SYSTEM, (error as Error).message);
        }
        return;
      }
      case 'remove': {
        const target = this.#current(m.name);
        if (target) this.#removeTarget(target, `removed by ${link.label}`);
        else {
          // A target of this node the agent never served: remove its name as a local process would.
          try {
            SharedRegion.unlink(targetRegionName(m.name));
          } catch {
            return this.#error(peer, m.requestId, ErrorCode.NOT_FOUND, `no target ${JSON.stringify(m.name)} on node ${this.node}`);
          }
          this.#log(`removed target ${JSON.stringify(m.name)} (not served): removed by ${link.label}`);
        }
        this.#reply(peer, { type: 'done', requestId: m.requestId });
        return;
      }
      case 'is-alive':
        this.#reply(peer, { type: 'alive', requestId: m.requestId, alive: isProcessAlive(m.pid, m.startTime) });
        return;
      case 'doorbell': {
        const target = this.#targets.get(m.name);
        if (!target) return this.#error(peer, m.requestId, ErrorCode.NOT_FOUND, `doorbell for a target ${JSON.stringify(m.name)} that node ${this.node} does not hold`);
        if (m.offset + 4 > target.region.size) {
          return this.#error(peer, m.requestId, ErrorCode.BAD_REQUEST, `doorbell offset ${m.offset} is outside target ${JSON.stringify(m.name)} (${target.region.size} bytes)`);
        }
        // FUTEX_WAKE on this agent's mapping wakes waiters of every mapping of the same object.
        target.region.futex(m.offset).wake(m.count === 0 ? 0x7fffffff : m.count);
        return;
      }
      case 'gone':
      case 'bye':
        return; // notices between agents: nothing this agent holds depends on them
      default:
        link.lose(new ProtocolError(`a peer may not send ${m.type.toUpperCase()} to an agent`));
    }
  }

  #allocate(peer: Peer, requestId: number, name: string, size: number): void {
    if (this.#current(name)) return this.#error(peer, requestId, ErrorCode.EXISTS, `target ${JSON.stringify(name)} already exists on node ${this.node}`);
    let region: SharedRegion | undefined;
    try {
      region = SharedRegion.create(targetRegionName(name), size);
      const target: Target = { name, region, owner: peer, ino: inodeOf(region) ?? -1, registrations: new Map() };
      const reg = this.#registrationFor(target, peer);
      this.#targets.set(name, target);
      this.#log(`allocated ${JSON.stringify(name)} (${size} bytes) for ${peer.link.label}`);
      this.#reply(peer, { type: 'descriptor', requestId, size: region.size, rkey: reg.rkey, base: reg.base, name });
    } catch (error) {
      region?.dispose();
      const code = error instanceof SystemError && error.errno === 17 ? ErrorCode.EXISTS : error instanceof UsageError ? ErrorCode.BAD_REQUEST : ErrorCode.SYSTEM;
      const detail = error instanceof SystemError ? ` (${errnoName(error.errno)})` : '';
      this.#error(peer, requestId, code, `cannot allocate ${JSON.stringify(name)} of ${size} bytes on node ${this.node}${detail}: ${(error as Error).message}`);
    }
  }

  /** The target's registration on `peer`'s connection, made the first time that peer needs it. */
  #registrationFor(target: Target, peer: Peer): TargetRegistration {
    let reg = target.registrations.get(peer);
    if (!reg) {
      reg = this.#registrar.register(peer.link.connection.pd, target.region);
      target.registrations.set(peer, reg);
    }
    return reg;
  }

  /**
   * The target `name` if this agent holds it and it is still what the name holds (and, adopted,
   * its creator runs); a stale one is forgotten here.
   */
  #current(name: string): Target | undefined {
    const target = this.#targets.get(name);
    if (!target) return undefined;
    const why = this.#staleness(target);
    if (why === undefined) return target;
    this.#forget(target, why);
    return undefined;
  }

  /** Why `target` is no longer served, or undefined while it is. */
  #staleness(target: Target): string | undefined {
    if (inodeOf(target.region) !== target.ino) return 'its name was removed or holds another object now';
    if (!target.owner) {
      const c = target.region.creator;
      if (!isProcessAlive(c.pid, c.start)) return `its creator (pid ${c.pid}) is gone`;
    }
    return undefined;
  }

  /**
   * Serve the target a process of this node made as `agent.<name>` (RdmaTransport.expose), if
   * there is one and its creator runs. SystemError/CorruptionError/TimeoutError from opening it.
   */
  #adopt(name: string): Target | undefined {
    const regionName = targetRegionName(name);
    let before: number;
    try {
      before = statSync(`${SHM_DIRECTORY}${shmNameFor(regionName)}`).ino;
    } catch {
      return undefined;
    }
    let region: SharedRegion;
    try {
      region = SharedRegion.open(regionName, { timeoutMs: ADOPT_OPEN_MS });
    } catch (error) {
      if (error instanceof SystemError && error.errno === 2) return undefined; // gone meanwhile
      throw error;
    }
    // The same object before and after the open: the inode recorded is the one mapped.
    const ino = inodeOf(region);
    const c = region.creator;
    if (ino !== before || !isProcessAlive(c.pid, c.start)) {
      // A dead creator's object still under its name: remove the name (as #forget does), so a
      // remote peer's clean-up of a dead process — which can only ask for it by name — is done.
      if (ino === before && !isProcessAlive(c.pid, c.start) && inodeOf(region) === ino) {
        try {
          SharedRegion.unlink(regionName);
          this.#log(`removed the name of ${JSON.stringify(name)}: its creator (pid ${c.pid}) is gone`);
        } catch {
          /* removed meanwhile */
        }
      }
      region.close();
      return undefined;
    }
    const target: Target = { name, region, owner: undefined, ino, registrations: new Map() };
    this.#targets.set(name, target);
    this.#log(`serving ${JSON.stringify(name)} (${region.size} bytes) made by pid ${c.pid} of this node`);
    return target;
  }

  #deregister(target: Target): void {
    if (this.#targets.get(target.name) === target) this.#targets.delete(target.name);
    for (const reg of target.registrations.values()) {
      try {
        reg.dispose();
      } catch {
        /* its connection's PD already went with the connection */
      }
    }
    target.registrations.clear();
  }

  /** Deregister everywhere first (no NIC writes into it any more), then unmap and remove the name (if it still holds this target). */
  #removeTarget(target: Target, why: string): void {
    this.#deregister(target);
    const ours = inodeOf(target.region) === target.ino;
    target.region.close();
    if (ours) {
      try {
        SharedRegion.unlink(target.region.name);
      } catch {
        /* removed meanwhile */
      }
    }
    this.#log(`removed target ${JSON.stringify(target.name)}: ${why}`);
  }

  /**
   * Stop serving a stale target: no longer found; deregistered and unmapped after
   * FORGET_GRACE_MS (at once with `now`). The name is left to whoever holds it now — except an
   * adopted target whose creator is dead while the name still holds that very object (same
   * inode): nobody else will remove it (the creator cannot; remote peers find it no more, so their
   * own clean-up — a postbox sender removing a dead receiver's endpoint — cannot reach it), so the
   * agent removes the name, as a peer on this node would. The mapping stays for the grace.
   */
  #forget(target: Target, why: string, now = false): void {
    this.#targets.delete(target.name);
    if (!target.owner && inodeOf(target.region) === target.ino) {
      const c = target.region.creator;
      if (!isProcessAlive(c.pid, c.start)) {
        try {
          SharedRegion.unlink(target.region.name);
          this.#log(`removed the name of target ${JSON.stringify(target.name)}: its creator (pid ${c.pid}) is gone`);
        } catch {
          /* removed meanwhile */
        }
      }
    }
    if (now) {
      this.#deregister(target);
      target.region.close();
    } else this.#retired.add({ target, until: Date.now() + FORGET_GRACE_MS });
    this.#log(`forgot target ${JSON.stringify(target.name)}: ${why}`);
  }

  /** Release the forgotten targets whose grace is over (all of them with `all`). */
  #release(all: boolean): void {
    const now = Date.now();
    for (const r of this.#retired) {
      if (!all && r.until > now) continue;
      this.#retired.delete(r);
      this.#deregister(r.target);
      r.target.region.close();
    }
  }

  onLost(link: AgentLink, reason: Error): void {
    const peer = this.#peers.get(link);
    this.#peers.delete(link);
    if (!peer || this.#stopping) return;
    this.#log(`lost ${link.label}: ${reason.message}`);
    for (const r of this.#retired) {
      r.target.registrations.get(peer)?.dispose();
      r.target.registrations.delete(peer);
    }
    for (const target of [...this.#targets.values()]) {
      if (target.owner === peer) this.#removeTarget(target, `its owner (${link.label}) is gone`);
      else {
        target.registrations.get(peer)?.dispose();
        target.registrations.delete(peer);
      }
    }
    const hello = peer.hello;
    if (hello?.role === Role.LOCAL_PROCESS) {
      for (const other of this.#peers.values()) {
        if (other.hello) this.#reply(other, { type: 'gone', requestId: 0, pid: hello.pid, startTime: hello.startTime });
      }
    }
  }

  #checkLiveness(): void {
    for (const target of [...this.#targets.values()]) {
      const why = this.#staleness(target);
      if (why !== undefined) this.#forget(target, why);
    }
    this.#release(false);
    for (const peer of [...this.#peers.values()]) {
      const h = peer.hello;
      if (h?.role === Role.LOCAL_PROCESS && !isProcessAlive(h.pid, h.startTime)) {
        peer.link.lose(new ProtocolError(`process ${h.pid} of this node is no longer running`));
      }
    }
  }

  /**
   * Stop: no new connections; BYE to every peer (waiting up to BYE_FLUSH_MS for the sends);
   * every target deregistered and its name removed; every connection closed. Idempotent.
   */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      clearInterval(this.#liveness);
      this.#listener.dispose();
      const peers = [...this.#peers.values()];
      for (const peer of peers) this.#reply(peer, { type: 'bye', requestId: 0, reason: 1 });
      await Promise.all(peers.map((p) => p.link.flush(BYE_FLUSH_MS)));
      // Targets allocated for peers are removed; adopted ones stay their creators' (only unserved).
      for (const target of [...this.#targets.values()]) {
        if (target.owner) this.#removeTarget(target, 'the agent stops');
        else this.#forget(target, 'the agent stops', true);
      }
      this.#release(true);
      for (const peer of peers) peer.link.close();
      this.#peers.clear();
      this.#log(`agent of node ${this.node} stopped`);
    })();
    return this.#stopping;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}
