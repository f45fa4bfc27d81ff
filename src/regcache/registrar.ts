/**
 * Who registers a block's memory for the NIC (seed 004's "application program interface"): a
 * registered heap asks its registrar once per block and process — lazily, the first time the
 * process allocates from the block or looks it up — and gives the registration back when the
 * block is released or found stale, or on dispose.
 *
 * Two implementations:
 *   - noneRegistrar: shared memory only. Keys are 0; the heap is then simply a growable shared
 *     heap, usable on any machine.
 *   - VerbsRegistrar: ibv_reg_mr on the block's mapping through a ProtectionDomain, with the
 *     access flags the heap's role needs and no more (least privilege). ibv_reg_mr failing with
 *     ENOMEM or EPERM, which is how an RLIMIT_MEMLOCK too small shows, becomes a
 *     MemlockLimitError naming the limit.
 *
 * A registrar is also the conformance point for tests: an in-process fake can count and check
 * every register/deregister call.
 */
import { readFileSync } from 'node:fs';
import { SystemError } from '../errors.js';
import type { SharedRegion } from '../shm/region.js';
import type { MemoryAccess, MemoryRegion } from '../verbs/memory-region.js';
import type { ProtectionDomain } from '../verbs/protection-domain.js';

/** One process's registration of one block (FIG. 4's lmr/rmr pair is one ibv_mr today). */
export interface Registration {
  readonly lkey: number;
  readonly rkey: number;
  /**
   * The RDMA address of the block's data byte 0 as a peer must name it (remote_addr = iova +
   * offset). 0 for the "none" registrar. The verbs registrar registers with iova = the mapping's
   * address (ProtectionDomain.registerMemory has no iova argument yet), so it is that address.
   */
  readonly iova: number;
  /** The verbs registrar's memory region (an SGE's `mr`, whose offset is the block data offset). */
  readonly mr?: MemoryRegion;
}

/** What the heap hands a registrar: one block's data area, mapped in this process. */
export interface BlockMemory {
  /** The block's mapping (data area: `region.address`, `region.size` bytes). */
  readonly region: SharedRegion;
  readonly blockId: number;
  readonly slot: number;
}

export interface Registrar {
  /** 'none', 'verbs', or a test's own name. */
  readonly kind: string;
  /** Register a block's data area. Throws a typed error (MemlockLimitError, SystemError) on failure. */
  register(block: BlockMemory): Registration;
  /** Give a registration back. Must not throw for one already given back. */
  deregister(registration: Registration): void;
}

const NONE: Registration = Object.freeze({ lkey: 0, rkey: 0, iova: 0 });

/** Shared memory only: nothing is registered, keys are 0. */
export const noneRegistrar: Registrar = Object.freeze({
  kind: 'none',
  register: () => NONE,
  deregister: () => {},
});

/** RLIMIT_MEMLOCK as /proc/self/limits shows it ("Max locked memory"), e.g. "65536 65536 bytes". */
export function memlockLimit(): { soft: string; hard: string } {
  try {
    const line = readFileSync('/proc/self/limits', 'latin1')
      .split('\n')
      .find((l) => l.startsWith('Max locked memory'));
    const fields = line?.slice('Max locked memory'.length).trim().split(/\s+/) ?? [];
    return { soft: fields[0] ?? 'unknown', hard: fields[1] ?? 'unknown' };
  } catch {
    return { soft: 'unknown', hard: 'unknown' };
  }
}

/**
 * ibv_reg_mr was refused because the pages could not be pinned: RLIMIT_MEMLOCK (ulimit -l) is
 * too small for what this process has registered. `soft`/`hard` are the limits at the time.
 */
export class MemlockLimitError extends SystemError {
  readonly soft: string;
  readonly hard: string;
  readonly requested: number;
  constructor(cause: SystemError, requested: number) {
    super(cause.call, cause.errno, { ...cause.args, RLIMIT_MEMLOCK: memlockLimit().soft }, 'ERR_MEMWIRE_MEMLOCK');
    const limit = memlockLimit();
    this.soft = limit.soft;
    this.hard = limit.hard;
    this.requested = requested;
    this.message =
      `${cause.message}: registering ${requested} bytes would exceed the locked-memory limit ` +
      `RLIMIT_MEMLOCK (ulimit -l: soft ${limit.soft}, hard ${limit.hard} bytes); raise it, or keep fewer blocks registered`;
  }
}

const ENOMEM = 12;
const EPERM = 1;
const EAGAIN = 11;

/**
 * Registers blocks with ibv_reg_mr in `pd`. `access` defaults to local write only: a heap whose
 * blocks are RDMA WRITE targets asks for `{ remoteWrite: true }`, a source heap needs nothing
 * more (the NIC reads a send source under the lkey alone).
 */
export class VerbsRegistrar implements Registrar {
  readonly kind = 'verbs';
  readonly pd: ProtectionDomain;
  readonly access: MemoryAccess;

  constructor(pd: ProtectionDomain, access: MemoryAccess = { localWrite: true }) {
    this.pd = pd;
    this.access = access;
  }

  register(block: BlockMemory): Registration {
    let mr: MemoryRegion;
    try {
      mr = this.pd.registerMemory(block.region, this.access);
    } catch (error) {
      if (error instanceof SystemError && (error.errno === ENOMEM || error.errno === EPERM || error.errno === EAGAIN)) {
        throw new MemlockLimitError(error, block.region.size);
      }
      throw error;
    }
    return { lkey: mr.lkey, rkey: mr.rkey, iova: mr.addr, mr };
  }

  deregister(registration: Registration): void {
    registration.mr?.dispose();
  }
}
