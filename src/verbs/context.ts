/**
 * Context: one opened RDMA device (struct ibv_context). Queries the device, its ports and GID
 * table, picks the RoCE v2 IPv4 GID by itself (overridable), reads its asynchronous events
 * (nextAsyncEvent, see async-events.ts), and is the parent of protection domains and completion
 * queues. dispose() releases every child first: queue pairs, then
 * completion queues, then memory regions and protection domains, then the device.
 */
import { forgetInlineVerbs, inlineVerbs, type InlineVerbs } from '../../ffi/verbs.js';
import { GID_SIZE, IBV_DEVICE_ATTR, IBV_GID_ENTRY, IBV_PORT_ATTR } from '../../ffi/verbs-layout.js';
import { ClosedError, MemwireError, UsageError } from '../errors.js';
import { AsyncEventReader, type AsyncEvent } from './async-events.js';
import { CompletionQueue, type CompletionQueueOptions } from './completion-queue.js';
import { listDevices, loadVerbs, withDeviceList, type DeviceInfo } from './device.js';
import { NoDeviceError } from './errors.js';
import { countLive, stopWatching, watchForLeak } from './live.js';
import { checkPointer, checkStatus, CleanupSteps, getU64, hex, NativeBlock } from './native.js';
import { ProtectionDomain } from './protection-domain.js';

export type PortState = 'NOP' | 'DOWN' | 'INIT' | 'ARMED' | 'ACTIVE' | 'ACTIVE_DEFER';
export type LinkLayer = 'InfiniBand' | 'Ethernet' | 'unspecified';
export type GidType = 'IB' | 'RoCE v1' | 'RoCE v2';

export interface DeviceAttributes {
  readonly firmwareVersion: string;
  readonly nodeGuid: string;
  readonly maxMrSize: number;
  readonly maxQp: number;
  readonly maxQpWr: number;
  readonly maxSge: number;
  /** SGEs per RDMA READ work request (max_sge_rd). */
  readonly maxSgeRd: number;
  readonly maxCq: number;
  readonly maxCqe: number;
  readonly maxMr: number;
  /** Shared receive queues: how many, receive requests each, SGEs per request. */
  readonly maxSrq: number;
  readonly maxSrqWr: number;
  readonly maxSrqSge: number;
  readonly maxPd: number;
  /** Outstanding RDMA READ / atomic requests a QP may receive (responder resources). */
  readonly maxQpRdAtom: number;
  /** Outstanding RDMA READ / atomic requests a QP may issue (initiator depth). */
  readonly maxQpInitRdAtom: number;
  /** 0: no atomics, 1: atomic within the HCA, 2: global. */
  readonly atomicCap: number;
  readonly physPortCount: number;
}

export interface PortAttributes {
  readonly state: PortState;
  /** MTU in bytes (256…4096). */
  readonly maxMtu: number;
  readonly activeMtu: number;
  readonly gidTableLength: number;
  /** Largest message, in bytes (8 MiB on older rxe, 2^31 on newer). */
  readonly maxMessageSize: number;
  readonly lid: number;
  readonly linkLayer: LinkLayer;
}

export interface GidEntry {
  readonly index: number;
  /** The GID as IPv6 text, e.g. "::ffff:192.0.2.1" or "fe80::…". */
  readonly gid: string;
  readonly raw: Uint8Array;
  readonly type: GidType;
  /** The IPv4 address, when the GID is IPv4-mapped (::ffff:a.b.c.d). */
  readonly ipv4?: string;
  /** Index of the network interface it belongs to (RoCE), or 0. */
  readonly ifindex: number;
}

export interface ContextOptions {
  /** Device name (e.g. "rxe0"); default: the first device. */
  readonly device?: string;
  /** GID index to use instead of the RoCE v2 IPv4 one picked by `gid()`. */
  readonly gidIndex?: number;
}

const PORT_STATES: Record<number, PortState> = { 0: 'NOP', 1: 'DOWN', 2: 'INIT', 3: 'ARMED', 4: 'ACTIVE', 5: 'ACTIVE_DEFER' };
const LINK_LAYERS: Record<number, LinkLayer> = { 1: 'InfiniBand', 2: 'Ethernet' };
const GID_TYPES: Record<number, GidType> = { 0: 'IB', 1: 'RoCE v1', 2: 'RoCE v2' };

/** enum ibv_mtu <-> bytes. */
export function mtuBytes(value: number): number {
  return value >= 1 && value <= 5 ? 128 << value : 0;
}
export function mtuEnum(bytes: number): number {
  const e = [256, 512, 1024, 2048, 4096].indexOf(bytes);
  if (e < 0) throw new UsageError(`MTU must be 256, 512, 1024, 2048 or 4096 bytes, got ${bytes}`);
  return e + 1;
}

/** A GID's 16 bytes as IPv6 text (IPv4-mapped ones as ::ffff:a.b.c.d). */
export function gidText(raw: Uint8Array): string {
  if (raw.subarray(0, 10).every((b) => b === 0) && raw[10] === 0xff && raw[11] === 0xff) {
    return `::ffff:${raw[12]}.${raw[13]}.${raw[14]}.${raw[15]}`;
  }
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((raw[i] << 8) | raw[i + 1]).toString(16));
  // Compress the longest run of zero groups (RFC 5952).
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/** Parse a GID written as IPv6 text (or a 32-digit hex string) into 16 bytes. */
export function parseGid(text: string): Uint8Array {
  const out = new Uint8Array(GID_SIZE);
  const bad = () => new UsageError(`gid ${JSON.stringify(text)} is not an IPv6 address or 32 hex digits`);
  if (typeof text !== 'string') throw bad();
  if (/^[0-9a-fA-F]{32}$/.test(text)) {
    for (let i = 0; i < 16; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
    return out;
  }
  let s = text;
  const v4 = /^(.*:)(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(s);
  let tail: number[] = [];
  if (v4) {
    const parts = v4.slice(2).map(Number);
    if (parts.some((p) => p > 255)) throw bad();
    tail = parts;
    s = `${v4[1]}0:0`; // placeholder groups, overwritten below
  }
  const halves = s.split('::');
  if (halves.length > 2) throw bad();
  const head = halves[0] ? halves[0].split(':') : [];
  const rest = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
  const fill = 8 - head.length - rest.length;
  if ((halves.length === 1 && fill !== 0) || fill < 0) throw bad();
  const groups = [...head, ...Array(fill).fill('0'), ...rest];
  for (let i = 0; i < 8; i++) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(groups[i])) throw bad();
    const g = parseInt(groups[i], 16);
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  }
  if (tail.length) out.set(tail, 12);
  return out;
}

export class Context {
  /** The device this context opened. */
  readonly device: DeviceInfo;
  #handle: number;
  readonly #owned: boolean;
  readonly #scratch: NativeBlock;
  readonly #pds = new Set<ProtectionDomain>();
  readonly #cqs = new Set<CompletionQueue>();
  readonly #gidOverride: number | undefined;
  #attributes: DeviceAttributes | undefined;
  readonly #asyncEvents: AsyncEventReader;
  /** @internal the static-inline verbs of this context. */
  readonly inline: InlineVerbs;

  /** @internal use Context.open(). */
  constructor(handle: number, device: DeviceInfo, owned: boolean, gidIndex?: number) {
    this.#handle = handle;
    this.device = device;
    this.#owned = owned;
    this.#gidOverride = gidIndex;
    let scratch: NativeBlock | undefined;
    try {
      scratch = new NativeBlock(4096, 'context scratch');
      this.inline = inlineVerbs(handle);
    } catch (error) {
      // Unwind in reverse.
      scratch?.free();
      if (owned) loadVerbs().ibv_close_device(handle);
      throw error;
    }
    this.#scratch = scratch;
    this.#asyncEvents = new AsyncEventReader(`RDMA context of ${device.name}`, (kind, address) => {
      if (kind === 'cq') return [...this.#cqs].find((cq) => !cq.disposed && cq.handle === address);
      for (const pd of this.#pds) {
        const found = pd.findChild(address);
        if (found) return found;
      }
      return undefined;
    });
    countLive('contexts', 1);
    watchForLeak(this, `RDMA context of ${device.name}`);
  }

  /**
   * Open a device by name (default: the first one). Throws NoDeviceError when there is none
   * (the message says why: no libibverbs, a kernel without RDMA — ENOSYS —, no device, or no
   * device of that name), SystemError when ibv_open_device fails.
   */
  static open(options: ContextOptions | string = {}): Context {
    const opts = typeof options === 'string' ? { device: options } : options;
    if (opts.gidIndex !== undefined && (!Number.isInteger(opts.gidIndex) || opts.gidIndex < 0)) {
      throw new UsageError(`gidIndex must be a non-negative integer, got ${opts.gidIndex}`);
    }
    const infos = listDevices();
    const v = loadVerbs();
    return withDeviceList((devices) => {
      if (devices.length === 0) throw new NoDeviceError('no-devices', 'none found', 'ibv_get_device_list returned no device');
      const found = opts.device === undefined ? devices[0] : devices.find((d) => d.name === opts.device);
      if (!found) {
        throw new NoDeviceError('not-found', `no device named ${JSON.stringify(opts.device)}`, `devices: ${devices.map((d) => d.name).join(', ')}`);
      }
      const handle = checkPointer('ibv_open_device', v.ibv_open_device(found.pointer) as number, { device: found.name });
      const info = infos.find((d) => d.name === found.name) ?? { name: found.name, guid: '', nodeType: 'unknown', transportType: 'unknown' };
      return new Context(handle, info, true, opts.gidIndex);
    });
  }

  /** The struct ibv_context address (for interop). ClosedError once disposed. */
  get handle(): number {
    if (!this.#handle) throw new ClosedError(`RDMA context of ${this.device.name}`);
    return this.#handle;
  }

  get disposed(): boolean {
    return this.#handle === 0;
  }

  /** ibv_query_device, cached after the first call. */
  query(): DeviceAttributes {
    if (this.#attributes) return this.#attributes;
    const handle = this.handle;
    const at = this.#scratch.address;
    const dv = this.#scratch.view;
    checkStatus('ibv_query_device', loadVerbs().ibv_query_device(handle, at) as number, { device: this.device.name });
    const f = IBV_DEVICE_ATTR.fields;
    const i32 = (o: number) => dv.getInt32(o, true);
    const fw = this.#scratch.bytes.subarray(f.fw_ver, f.fw_ver + 64);
    const guid = Array.from(this.#scratch.bytes.subarray(f.node_guid, f.node_guid + 8), (b) => b.toString(16).padStart(2, '0')).join('');
    this.#attributes = {
      firmwareVersion: new TextDecoder().decode(fw.indexOf(0) < 0 ? fw : fw.subarray(0, fw.indexOf(0))),
      nodeGuid: guid,
      maxMrSize: Math.min(getU64(dv, f.max_mr_size), Number.MAX_SAFE_INTEGER),
      maxQp: i32(f.max_qp),
      maxQpWr: i32(f.max_qp_wr),
      maxSge: i32(f.max_sge),
      maxSgeRd: i32(f.max_sge_rd),
      maxCq: i32(f.max_cq),
      maxCqe: i32(f.max_cqe),
      maxMr: i32(f.max_mr),
      maxSrq: i32(f.max_srq),
      maxSrqWr: i32(f.max_srq_wr),
      maxSrqSge: i32(f.max_srq_sge),
      maxPd: i32(f.max_pd),
      maxQpRdAtom: i32(f.max_qp_rd_atom),
      maxQpInitRdAtom: i32(f.max_qp_init_rd_atom),
      atomicCap: i32(f.atomic_cap),
      physPortCount: dv.getUint8(f.phys_port_cnt),
    };
    return this.#attributes;
  }

  /** ibv_query_port (through verbs_context->query_port, as the header does). */
  queryPort(port = 1): PortAttributes {
    const handle = this.handle;
    checkPortNumber(port);
    const at = this.#scratch.address + 512;
    const dv = this.#scratch.view;
    const base = 512;
    checkStatus('ibv_query_port', this.inline.ibv_query_port(handle, port, at), { device: this.device.name, port });
    const f = IBV_PORT_ATTR.fields;
    return {
      state: PORT_STATES[dv.getUint32(base + f.state, true)] ?? 'NOP',
      maxMtu: mtuBytes(dv.getUint32(base + f.max_mtu, true)),
      activeMtu: mtuBytes(dv.getUint32(base + f.active_mtu, true)),
      gidTableLength: dv.getInt32(base + f.gid_tbl_len, true),
      maxMessageSize: dv.getUint32(base + f.max_msg_sz, true),
      lid: dv.getUint16(base + f.lid, true),
      linkLayer: LINK_LAYERS[dv.getUint8(base + f.link_layer)] ?? 'unspecified',
    };
  }

  /** The valid entries of a port's GID table (ibv_query_gid_table), in index order. */
  gidTable(port = 1): GidEntry[] {
    const handle = this.handle;
    checkPortNumber(port);
    const { gidTableLength } = this.queryPort(port);
    const block = new NativeBlock(Math.max(1, gidTableLength) * IBV_GID_ENTRY.size, 'gid table');
    try {
      const n = this.inline.ibv_query_gid_table(handle, block.address, gidTableLength, 0);
      if (n < 0) checkStatus('ibv_query_gid_table', -n, { device: this.device.name, max_entries: gidTableLength });
      const out: GidEntry[] = [];
      const f = IBV_GID_ENTRY.fields;
      for (let i = 0; i < n; i++) {
        const o = i * IBV_GID_ENTRY.size;
        if (block.view.getUint32(o + f.port_num, true) !== port) continue;
        const raw = block.bytes.slice(o + f.gid, o + f.gid + GID_SIZE);
        const text = gidText(raw);
        out.push({
          index: block.view.getUint32(o + f.gid_index, true),
          gid: text,
          raw,
          type: GID_TYPES[block.view.getUint32(o + f.gid_type, true)] ?? 'IB',
          ...(text.startsWith('::ffff:') ? { ipv4: text.slice(7) } : {}),
          ifindex: block.view.getUint32(o + f.ndev_ifindex, true),
        });
      }
      return out.sort((a, b) => a.index - b.index);
    } finally {
      block.free();
    }
  }

  /**
   * The GID this context uses on `port`: the `gidIndex` given to open() if any, else the first
   * RoCE v2 entry whose GID is IPv4-mapped (::ffff:a.b.c.d), else (InfiniBand) index 0.
   * Throws MemwireError 'ERR_MEMWIRE_NO_GID' when a RoCE port has no such entry yet (an address
   * appears in the table a moment after it is added to the interface).
   */
  gid(port = 1): GidEntry {
    const table = this.gidTable(port);
    if (this.#gidOverride !== undefined) {
      const entry = table.find((e) => e.index === this.#gidOverride);
      if (!entry) throw new UsageError(`gidIndex ${this.#gidOverride} is not a valid GID of ${this.device.name} port ${port} (valid: ${table.map((e) => e.index).join(', ')})`);
      return entry;
    }
    const roce = table.find((e) => e.type === 'RoCE v2' && e.ipv4 !== undefined);
    if (roce) return roce;
    if (this.queryPort(port).linkLayer === 'InfiniBand' && table[0]) return table[0];
    throw new MemwireError(
      'ERR_MEMWIRE_NO_GID',
      `${this.device.name} port ${port} has no RoCE v2 IPv4 GID (table: ${table.map((e) => `${e.index}=${e.gid} ${e.type}`).join(', ') || 'empty'}); ` +
        'add an IPv4 address to its interface, or pass gidIndex',
    );
  }

  /** Allocate a protection domain (ibv_alloc_pd). */
  allocPd(): ProtectionDomain {
    const pd = new ProtectionDomain(this, this.handle);
    this.#pds.add(pd);
    return pd;
  }

  /** Create a completion queue (with its own completion channel unless `events: false`). */
  createCompletionQueue(options: CompletionQueueOptions = {}): CompletionQueue {
    const cq = new CompletionQueue(this, this.handle, options);
    this.#cqs.add(cq);
    return cq;
  }

  /**
   * The next asynchronous event of this device (ibv_get_async_event), acknowledged, with the
   * queue pair, completion queue or shared receive queue it names resolved to this context's
   * object (or the port number): e.g. IBV_EVENT_SRQ_LIMIT_REACHED when an armed SRQ runs low,
   * IBV_EVENT_QP_FATAL, IBV_EVENT_PORT_ERR. Resolves null when `timeoutMs` (default: no limit)
   * passes first. Does not block the event loop. One wait at a time (a second concurrent call is
   * a UsageError); ClosedError when the context is disposed, also while waiting.
   */
  nextAsyncEvent(options: { timeoutMs?: number } = {}): Promise<AsyncEvent | null> {
    return this.#asyncEvents.next(() => this.handle, options.timeoutMs ?? Infinity);
  }

  /** @internal */
  forget(child: ProtectionDomain | CompletionQueue): void {
    if (child instanceof ProtectionDomain) this.#pds.delete(child);
    else this.#cqs.delete(child);
  }

  /**
   * Release everything made from this context — queue pairs first, then completion queues, then
   * shared receive queues, memory regions and protection domains — and close the device.
   * Idempotent.
   */
  dispose(): void {
    const handle = this.#handle;
    if (!handle) return;
    const steps = new CleanupSteps();
    for (const pd of [...this.#pds]) steps.run(() => pd.disposeQueuePairs());
    for (const cq of [...this.#cqs]) steps.run(() => cq.dispose());
    for (const pd of [...this.#pds]) steps.run(() => pd.dispose());
    this.#handle = 0;
    this.#asyncEvents.close();
    stopWatching(this);
    forgetInlineVerbs(handle);
    if (this.#owned) {
      steps.run(() => checkStatus('ibv_close_device', loadVerbs().ibv_close_device(handle) as number, { device: this.device.name, context: hex(handle) }));
    }
    this.#scratch.free();
    countLive('contexts', -1);
    steps.finish();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

function checkPortNumber(port: number): void {
  if (!Number.isInteger(port) || port < 1 || port > 255) throw new UsageError(`port must be an integer 1..255, got ${port}`);
}
