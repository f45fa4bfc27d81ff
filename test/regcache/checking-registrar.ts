/**
 * An in-process registrar for the host tests (the "none" kind with bookkeeping): every
 * registration gets a unique lkey/rkey, and every call is checked — a block is registered only
 * while mapped, a registration is given back once, while its block is still mapped.
 */
import type { BlockMemory, Registrar, Registration } from '../../src/index.js';

export interface Recorded {
  readonly key: number;
  readonly blockId: number;
  readonly slot: number;
  readonly block: BlockMemory;
  live: boolean;
}

let nextKey = 1;

export class CheckingRegistrar implements Registrar {
  readonly kind = 'checking';
  readonly byKey = new Map<number, Recorded>();
  readonly problems: string[] = [];
  /** Make the next register() throw this (once). */
  failNext: Error | undefined;

  register(block: BlockMemory): Registration {
    if (this.failNext) {
      const error = this.failNext;
      this.failNext = undefined;
      throw error;
    }
    if (block.region.closed) this.problems.push(`register of block ${block.blockId} whose mapping is closed`);
    for (const r of this.byKey.values()) {
      if (r.live && r.slot === block.slot) this.problems.push(`second live registration at slot ${block.slot} (blocks ${r.blockId}, ${block.blockId})`);
    }
    const key = nextKey++;
    this.byKey.set(key, { key, blockId: block.blockId, slot: block.slot, block, live: true });
    return { lkey: key, rkey: key, iova: 0 };
  }

  deregister(registration: Registration): void {
    const r = this.byKey.get(registration.lkey);
    if (!r) this.problems.push(`deregister of unknown key ${registration.lkey}`);
    else if (!r.live) this.problems.push(`double deregister of block ${r.blockId}`);
    else {
      if (r.block.region.closed) this.problems.push(`deregister of block ${r.blockId} after its unmap`);
      r.live = false;
    }
  }

  live(): Recorded[] {
    return [...this.byKey.values()].filter((r) => r.live);
  }
}
