/**
 * The RDMA device list: names, GUIDs, node and transport types, with "no device" told apart —
 * libibverbs missing, a kernel without RDMA (ENOSYS), zero devices — as a NoDeviceError.
 */
import { backend } from '../../ffi/backend.js';
import { errno as lastErrno } from '../../ffi/libc.js';
import { verbs } from '../../ffi/verbs.js';
import { C, IBV_DEVICE } from '../../ffi/verbs-layout.js';
import { errnoName } from '../errno-names.js';
import { NoDeviceError } from './errors.js';

export type NodeType = 'CA' | 'switch' | 'router' | 'RNIC' | 'usNIC' | 'usNIC UDP' | 'unspecified' | 'unknown';
export type TransportType = 'InfiniBand' | 'iWARP' | 'usNIC' | 'usNIC UDP' | 'unspecified' | 'unknown';

export interface DeviceInfo {
  /** Kernel device name, e.g. "rxe0", "mlx5_0". */
  readonly name: string;
  /** Node GUID as 16 hex digits in wire order (as `ibv_devices` prints it). */
  readonly guid: string;
  readonly nodeType: NodeType;
  readonly transportType: TransportType;
}

const NODE_TYPES: Record<number, NodeType> = {
  [C.IBV_NODE_CA]: 'CA', [C.IBV_NODE_SWITCH]: 'switch', [C.IBV_NODE_ROUTER]: 'router',
  [C.IBV_NODE_RNIC]: 'RNIC', [C.IBV_NODE_USNIC]: 'usNIC', [C.IBV_NODE_USNIC_UDP]: 'usNIC UDP',
  [C.IBV_NODE_UNSPECIFIED]: 'unspecified',
};
const TRANSPORT_TYPES: Record<number, TransportType> = {
  [C.IBV_TRANSPORT_IB]: 'InfiniBand', [C.IBV_TRANSPORT_IWARP]: 'iWARP', [C.IBV_TRANSPORT_USNIC]: 'usNIC',
  [C.IBV_TRANSPORT_USNIC_UDP]: 'usNIC UDP', [C.IBV_TRANSPORT_UNSPECIFIED]: 'unspecified',
};

const ENOSYS = 38;

/** The bound libibverbs, or NoDeviceError('no-library'). */
export function loadVerbs(): ReturnType<typeof verbs> {
  try {
    return verbs();
  } catch (error) {
    throw new NoDeviceError('no-library', 'libibverbs cannot be loaded', (error as Error).message, 0, { cause: error });
  }
}

/** A GUID returned by value as __be64 (its bytes in wire order), as hex. */
function guidHex(value: number | bigint): string {
  const bytes = new DataView(new ArrayBuffer(8));
  bytes.setBigUint64(0, BigInt(value), true);
  let out = '';
  for (let i = 0; i < 8; i++) out += bytes.getUint8(i).toString(16).padStart(2, '0');
  return out;
}

/**
 * Call `fn` with the native device list (pointer per device), freeing the list afterwards.
 * An empty list is passed as-is; the "kernel has no RDMA" case throws NoDeviceError.
 */
export function withDeviceList<T>(fn: (devices: readonly { name: string; pointer: number }[]) => T): T {
  const v = loadVerbs();
  const count = new Int32Array(1);
  const list = v.ibv_get_device_list(count) as number;
  if (!list) {
    const code = lastErrno();
    if (code === ENOSYS) {
      throw new NoDeviceError(
        'no-kernel-support',
        'ENOSYS: kernel has no RDMA support',
        'ibv_get_device_list failed with ENOSYS: this kernel has no RDMA support (/sys/class/infiniband_verbs is missing)',
        code,
      );
    }
    throw new NoDeviceError('error', `${errnoName(code)}: ibv_get_device_list failed`, `ibv_get_device_list failed: ${errnoName(code)} (errno ${code})`, code);
  }
  try {
    const n = count[0];
    const pointers = n ? new DataView(backend.view(list, 8 * n)) : undefined;
    const devices = [];
    for (let i = 0; i < n; i++) {
      const pointer = pointers!.getUint32(8 * i, true) + pointers!.getUint32(8 * i + 4, true) * 0x1_0000_0000;
      devices.push({ name: String(v.ibv_get_device_name(pointer)), pointer });
    }
    return fn(devices);
  } finally {
    v.ibv_free_device_list(list);
  }
}

/** The RDMA devices of this machine. Throws NoDeviceError when libibverbs or the kernel lacks RDMA. */
export function listDevices(): DeviceInfo[] {
  const v = loadVerbs();
  return withDeviceList((devices) =>
    devices.map(({ name, pointer }) => {
      const dev = new DataView(backend.view(pointer, IBV_DEVICE.size));
      return {
        name,
        guid: guidHex(v.ibv_get_device_guid(pointer) as number | bigint),
        nodeType: NODE_TYPES[dev.getInt32(IBV_DEVICE.fields.node_type, true)] ?? 'unknown',
        transportType: TRANSPORT_TYPES[dev.getInt32(IBV_DEVICE.fields.transport_type, true)] ?? 'unknown',
      };
    }),
  );
}
