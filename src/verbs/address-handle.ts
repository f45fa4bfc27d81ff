/**
 * AddressHandle (struct ibv_ah): the path to a remote port, for unreliable datagram (UD) sends.
 * Made from a protection domain; destroyed by its dispose() or the PD's. Work requests that use
 * it keep it reachable until their completion is polled.
 */
import { GID_SIZE, IBV_AH_ATTR } from '../../ffi/verbs-layout.js';
import { ClosedError, UsageError } from '../errors.js';
import { parseGid } from './context.js';
import { loadVerbs } from './device.js';
import { countLive } from './live.js';
import { checkPointer, checkStatus, hex, NativeBlock } from './native.js';
import type { ProtectionDomain } from './protection-domain.js';

export interface AddressHandleOptions {
  /** The remote GID (RoCE: its ::ffff:a.b.c.d). */
  readonly gid: string;
  readonly lid?: number;
  readonly port?: number;
  /** Default: the context's own GID index for the port (RoCE v2 IPv4). */
  readonly sgidIndex?: number;
  readonly hopLimit?: number;
  readonly trafficClass?: number;
  readonly serviceLevel?: number;
}

export class AddressHandle {
  readonly pd: ProtectionDomain;
  readonly gid: string;
  #handle: number;

  /** @internal use pd.createAddressHandle(). */
  constructor(pd: ProtectionDomain, pdHandle: number, options: AddressHandleOptions) {
    const port = options.port ?? 1;
    const hopLimit = options.hopLimit ?? 64;
    for (const [name, value, max] of [['port', port, 255], ['hopLimit', hopLimit, 255], ['lid', options.lid ?? 0, 0xffff], ['trafficClass', options.trafficClass ?? 0, 255], ['serviceLevel', options.serviceLevel ?? 0, 15]] as const) {
      if (!Number.isInteger(value) || value < 0 || value > max) throw new UsageError(`${name} must be an integer 0..${max}, got ${value}`);
    }
    const dgid = parseGid(options.gid);
    const sgidIndex = options.sgidIndex ?? pd.context.gid(port).index;
    const block = new NativeBlock(IBV_AH_ATTR.size, 'ibv_ah_attr');
    try {
      const f = IBV_AH_ATTR.fields;
      block.bytes.set(dgid.subarray(0, GID_SIZE), f['grh.dgid']);
      block.view.setUint8(f['grh.sgid_index'], sgidIndex);
      block.view.setUint8(f['grh.hop_limit'], hopLimit);
      block.view.setUint8(f['grh.traffic_class'], options.trafficClass ?? 0);
      block.view.setUint16(f.dlid, options.lid ?? 0, true);
      block.view.setUint8(f.sl, options.serviceLevel ?? 0);
      block.view.setUint8(f.is_global, 1);
      block.view.setUint8(f.port_num, port);
      this.#handle = checkPointer('ibv_create_ah', loadVerbs().ibv_create_ah(pdHandle, block.address) as number, {
        pd: hex(pdHandle),
        dgid: options.gid,
        sgid_index: sgidIndex,
        port_num: port,
        hop_limit: hopLimit,
      });
    } finally {
      block.free();
    }
    this.pd = pd;
    this.gid = options.gid;
    countLive('ahs', 1);
  }

  /** The struct ibv_ah address. ClosedError once disposed. */
  get handle(): number {
    if (!this.#handle) throw new ClosedError('address handle');
    return this.#handle;
  }

  get disposed(): boolean {
    return this.#handle === 0;
  }

  /** ibv_destroy_ah. Idempotent. */
  dispose(): void {
    const handle = this.#handle;
    if (!handle) return;
    this.#handle = 0;
    countLive('ahs', -1);
    this.pd.forget(this);
    checkStatus('ibv_destroy_ah', loadVerbs().ibv_destroy_ah(handle) as number, { ah: hex(handle) });
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

