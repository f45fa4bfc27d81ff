/**
 * On a host whose kernel has no RDMA (this project's machines), the verbs entry points fail with
 * one clear, typed error: NoDeviceError "no RDMA device (ENOSYS: kernel has no RDMA support)".
 * Skips where a device exists (the Soft-RoCE guest) or libibverbs is not installed.
 */
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Context, listDevices, liveVerbsObjects, NoDeviceError } from '../../src/index.js';
import { listDeviceNames } from '../../src/rdma/devices.js';

const kernelHasRdma = existsSync('/sys/class/infiniband_verbs');
let libraryLoads = true;
try {
  listDevices();
} catch (error) {
  if (error instanceof NoDeviceError && error.reason === 'no-library') libraryLoads = false;
}
const skipReason = kernelHasRdma ? 'this kernel has RDMA support (the no-device case cannot be seen here)' : !libraryLoads ? 'libibverbs is not installed' : '';

describe.skipIf(!!skipReason)(`verbs without an RDMA device${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  it('listDevices() throws NoDeviceError naming ENOSYS', () => {
    let caught: unknown;
    try {
      listDevices();
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(NoDeviceError);
    const e = caught as NoDeviceError;
    expect(e.code).toBe('ERR_MEMWIRE_NO_DEVICE');
    expect(e.reason).toBe('no-kernel-support');
    expect(e.errno).toBe(38);
    expect(e.errnoName).toBe('ENOSYS');
    expect(e.message).toMatch(/^no RDMA device \(ENOSYS: kernel has no RDMA support\)/);
    expect(e.message).toContain('ibv_get_device_list');
  });

  it("doctor's device listing reports ENOSYS plainly", () => {
    const listing = listDeviceNames();
    expect(listing).toMatchObject({ status: 'no-kernel-support', errno: 38, errnoName: 'ENOSYS' });
    expect((listing as { detail: string }).detail).toBe(
      'ibv_get_device_list failed with ENOSYS: this kernel has no RDMA support (/sys/class/infiniband_verbs is missing)',
    );
  });

  it('Context.open() throws the same error and leaves nothing behind', () => {
    expect(() => Context.open('rxe0')).toThrow(NoDeviceError);
    expect(() => Context.open()).toThrow(/no RDMA device \(ENOSYS: kernel has no RDMA support\)/);
    expect(liveVerbsObjects()).toEqual({ contexts: 0, pds: 0, mrs: 0, cqs: 0, qps: 0, srqs: 0, channels: 0, cmIds: 0, ahs: 0 });
  });
});
