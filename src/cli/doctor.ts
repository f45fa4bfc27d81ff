/**
 * `memwire doctor [--json]`: what this machine offers memwire, and whether shared memory works.
 * Exit status 0 when a region can be created, opened, used across handles and removed.
 */
import { statfsSync } from 'node:fs';
import { libc, RLIMIT_MEMLOCK, RLIMIT_SIZE, SC_PAGESIZE, STATVFS_SIZE } from '../../ffi/libc.js';
import { probeRdmacm } from '../../ffi/rdmacm.js';
import { libraryPath } from '../../ffi/backend.js';
import { platform } from '../platform.js';
import { listDeviceNames, type DeviceListing } from '../rdma/devices.js';
import { SharedRegion } from '../shm/region.js';
import { SHM_DIRECTORY } from '../shm/names.js';

interface Check {
  ok: boolean;
  detail: string;
}

export interface DoctorReport {
  runtime: string;
  runtimeVersion: string;
  backend: string;
  libc: string;
  kernel: string;
  pageSize: number;
  devShm: { path: string; totalBytes: number; freeBytes: number } | { path: string; error: string };
  memlock: { softBytes: number | 'unlimited'; hardBytes: number | 'unlimited' };
  sharedMemory: Check;
  libibverbs: Check & { path: string };
  librdmacm: Check & { path: string };
  rdmaDevices: DeviceListing;
  advice: string[];
}

const HOW_TO_GET_A_DEVICE =
  'To get an RDMA device: run the rxe tier (`npm run test:rxe`), which boots a small QEMU guest whose kernel has rdma_rxe; ' +
  'or, on a host whose kernel has rdma_rxe, run `sudo modprobe rdma_rxe && sudo rdma link add rxe0 type rxe netdev <interface>`.';

function rlimitValue(value: bigint): number | 'unlimited' {
  return value === 0xffffffffffffffffn ? 'unlimited' : Number(value);
}

function devShmFacts(): DoctorReport['devShm'] {
  const buf = new Uint8Array(STATVFS_SIZE);
  if ((libc.statvfs(SHM_DIRECTORY, buf) as number) !== 0) {
    try {
      const s = statfsSync(SHM_DIRECTORY);
      return { path: SHM_DIRECTORY, totalBytes: s.blocks * s.bsize, freeBytes: s.bavail * s.bsize };
    } catch (error) {
      return { path: SHM_DIRECTORY, error: (error as Error).message };
    }
  }
  const v = new DataView(buf.buffer);
  const frsize = Number(v.getBigUint64(8, true));
  return {
    path: SHM_DIRECTORY,
    totalBytes: Number(v.getBigUint64(16, true)) * frsize,
    freeBytes: Number(v.getBigUint64(32, true)) * frsize,
  };
}

function memlock(): DoctorReport['memlock'] {
  const buf = new BigUint64Array(RLIMIT_SIZE / 8);
  libc.getrlimit(RLIMIT_MEMLOCK, buf);
  return { softBytes: rlimitValue(buf[0]), hardBytes: rlimitValue(buf[1]) };
}

function checkSharedMemory(): Check {
  const name = `doctor.${process.pid}.${Date.now().toString(36)}`;
  let created: SharedRegion | undefined;
  let opened: SharedRegion | undefined;
  try {
    created = SharedRegion.create(name, 4096);
    opened = SharedRegion.open(name);
    Atomics.store(created.int32, 0, 0x5eed);
    const seen = Atomics.load(opened.int32, 0);
    if (seen !== 0x5eed) return { ok: false, detail: `a write through one mapping was not seen through the other (read ${seen})` };
    return { ok: true, detail: `created, opened, wrote and read back, removed ${created.shmName}` };
  } catch (error) {
    return { ok: false, detail: (error as Error).message };
  } finally {
    opened?.close();
    created?.dispose();
  }
}

function checkLibrary(load: () => void): Check {
  try {
    load();
    return { ok: true, detail: 'loads' };
  } catch (error) {
    return { ok: false, detail: (error as Error).message };
  }
}

export function runDoctor(): DoctorReport {
  const devices = listDeviceNames();
  const advice: string[] = [];
  const ibverbs = checkLibrary(() => {
    if (devices.status === 'no-library') throw new Error(devices.detail);
  });
  if (!ibverbs.ok) advice.push('Install the RDMA user space: `apt-get install libibverbs1 ibverbs-providers librdmacm1` (or run scripts/setup-host.sh).');
  if (devices.status === 'no-kernel-support' || (devices.status === 'ok' && devices.names.length === 0)) advice.push(HOW_TO_GET_A_DEVICE);
  const lock = memlock();
  if (lock.softBytes !== 'unlimited' && lock.softBytes < 64 * 1024 * 1024) {
    advice.push(`The memlock limit is ${lock.softBytes} bytes: RDMA registration pins memory; raise it (ulimit -l unlimited, or --ulimit memlock=-1 in Docker).`);
  }
  const report: DoctorReport = {
    runtime: platform.runtime,
    runtimeVersion: platform.runtimeVersion,
    backend: platform.backend,
    libc: platform.libc,
    kernel: platform.kernel,
    pageSize: libc.sysconf(SC_PAGESIZE) as number,
    devShm: devShmFacts(),
    memlock: lock,
    sharedMemory: checkSharedMemory(),
    libibverbs: { ...ibverbs, path: libraryPath('ibverbs') },
    librdmacm: { ...checkLibrary(probeRdmacm), path: libraryPath('rdmacm') },
    rdmaDevices: devices,
    advice,
  };
  return report;
}

function bytes(n: number | 'unlimited'): string {
  if (n === 'unlimited') return 'unlimited';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

export function formatDoctor(r: DoctorReport): string {
  const mark = (ok: boolean) => (ok ? 'ok  ' : 'FAIL');
  const devShm = 'error' in r.devShm ? `unreadable: ${r.devShm.error}` : `${bytes(r.devShm.freeBytes)} free of ${bytes(r.devShm.totalBytes)}`;
  const devices =
    r.rdmaDevices.status === 'ok'
      ? `${r.rdmaDevices.names.length} (${r.rdmaDevices.names.join(', ') || 'none'})`
      : r.rdmaDevices.status === 'no-library'
        ? 'unknown: libibverbs does not load'
        : `0 — ${r.rdmaDevices.detail}`;
  const lines = [
    'memwire doctor',
    `  runtime        ${r.runtime} ${r.runtimeVersion} (FFI backend: ${r.backend})`,
    `  libc           ${r.libc}; kernel ${r.kernel}; page size ${r.pageSize} B`,
    `  /dev/shm       ${devShm}`,
    `  memlock limit  soft ${bytes(r.memlock.softBytes)}, hard ${bytes(r.memlock.hardBytes)}`,
    `  [${mark(r.sharedMemory.ok)}] shared memory: ${r.sharedMemory.detail}`,
    `  [${r.libibverbs.ok ? 'ok  ' : 'no  '}] libibverbs (${r.libibverbs.path}): ${r.libibverbs.detail}`,
    `  [${r.librdmacm.ok ? 'ok  ' : 'no  '}] librdmacm (${r.librdmacm.path}): ${r.librdmacm.detail}`,
    `  RDMA devices   ${devices}`,
  ];
  if (r.advice.length) lines.push('', ...r.advice.map((a) => `  - ${a}`));
  return lines.join('\n');
}
