/**
 * How the node agent registers a target with its NIC for one connection's protection domain —
 * behind one small interface so the registration tables of seed 004 (src/regcache/, issue 10)
 * can take its place without the agent changing. Today: one ibv_reg_mr_iova2 per (target,
 * connection). The iova is the target's offset within its page (`base`): the kernel refuses an
 * iova whose low 12 bits differ from the address's (EINVAL, measured on rxe / kernel 6.1), and
 * a SharedRegion's data starts 128 bytes into its first page. A writer adds `base` to a target
 * offset; no address of this node ever crosses the wire.
 */
import type { SharedRegion } from '../shm/region.js';
import type { MemoryRegion } from '../verbs/memory-region.js';
import type { ProtectionDomain } from '../verbs/protection-domain.js';

export interface TargetRegistration {
  readonly rkey: number;
  /** The remote address of the target's byte 0 (its offset within its page). */
  readonly base: number;
  /** Deregister (idempotent). Writes still in flight to it then fail at the writer. */
  dispose(): void;
}

export interface TargetRegistrar {
  /** Register `region`'s data bytes on `pd` for remote write, read and 64-bit atomics. */
  register(pd: ProtectionDomain, region: SharedRegion): TargetRegistration;
}

const PAGE = 4096;

/** One memory region per registration (ProtectionDomain.registerMemory with iova = base). */
export const directRegistrar: TargetRegistrar = {
  register(pd, region) {
    const base = region.address % PAGE;
    const mr: MemoryRegion = pd.registerMemory(region, { remoteWrite: true, remoteRead: true, remoteAtomic: true, iova: base });
    return { rkey: mr.rkey, base, dispose: () => mr.dispose() };
  },
};
