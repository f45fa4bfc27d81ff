/**
 * Listing RDMA devices for `memwire doctor`, with the "no device" cases told apart: libibverbs
 * missing, a kernel without RDMA (ENOSYS), or simply zero devices. The listing itself is
 * src/verbs/device.ts; this turns its NoDeviceError into a status doctor can print.
 */
import { errnoName } from '../errno-names.js';
import { listDevices } from '../verbs/device.js';
import { NoDeviceError } from '../verbs/errors.js';

export type DeviceListing =
  | { status: 'ok'; names: string[] }
  | { status: 'no-library'; detail: string }
  | { status: 'no-kernel-support'; errno: number; errnoName: string; detail: string }
  | { status: 'error'; errno: number; errnoName: string; detail: string };

export function listDeviceNames(): DeviceListing {
  try {
    return { status: 'ok', names: listDevices().map((d) => d.name) };
  } catch (error) {
    if (!(error instanceof NoDeviceError)) throw error;
    if (error.reason === 'no-library') return { status: 'no-library', detail: error.detail };
    if (error.reason === 'no-kernel-support') {
      return { status: 'no-kernel-support', errno: error.errno, errnoName: errnoName(error.errno), detail: error.detail };
    }
    return { status: 'error', errno: error.errno, errnoName: errnoName(error.errno), detail: error.detail };
  }
}
