/**
 * What memwire needs from Deno's permission system, checked once at start-up under Deno (whichever
 * FFI backend is active), so a missing permission is one clear error naming the flag instead of a
 * prompt or a failure deep inside.
 *
 * Deno 2 lets only `--allow-all` read /dev, /proc and /sys through its file APIs ("NotCapable:
 * Requires all access"), even with `--allow-read=/proc`; memwire lists /dev/shm (stale clean-up,
 * find), reads /proc/<pid>/stat (liveness: pid + start time) and /sys/class/infiniband (devices).
 * `--allow-ffi` alone already grants full native access, so `-A` adds no real capability here.
 */
import { statSync } from 'node:fs';

export const DENO_PERMISSION_FLAGS = ['--allow-all'] as const;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const Deno = (globalThis as any).Deno as {
  permissions: { querySync(descriptor: { name: string }): { state: string } };
};

export function checkDenoPermissions(): void {
  const hint = 'run it as `deno run --allow-all <script>` (memwire needs FFI, and Deno 2 opens /dev/shm, /proc and /sys to --allow-all only)';
  if (Deno.permissions.querySync({ name: 'ffi' }).state !== 'granted') {
    throw new Error(`memwire under Deno needs --allow-ffi: ${hint}`);
  }
  try {
    statSync('/proc/self/stat');
  } catch (error) {
    const name = (error as Error).name;
    if (name === 'NotCapable' || name === 'PermissionDenied') throw new Error(`memwire under Deno needs --allow-all: ${hint}`, { cause: error });
    throw error;
  }
}
