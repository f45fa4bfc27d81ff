/**
 * Counts of live verbs objects per kind, so tests (and leak checks) can see that everything
 * made was released. Each object adds itself once created and removes itself once destroyed.
 */
export interface LiveVerbsObjects {
  contexts: number;
  pds: number;
  mrs: number;
  cqs: number;
  qps: number;
  /** Shared receive queues. */
  srqs: number;
  channels: number;
  cmIds: number;
  ahs: number;
}

const counts: LiveVerbsObjects = { contexts: 0, pds: 0, mrs: 0, cqs: 0, qps: 0, srqs: 0, channels: 0, cmIds: 0, ahs: 0 };

/** @internal */
export function countLive(kind: keyof LiveVerbsObjects, delta: 1 | -1): void {
  counts[kind] += delta;
}

/** A snapshot of how many verbs objects of each kind are alive in this process. */
export function liveVerbsObjects(): LiveVerbsObjects {
  return { ...counts };
}

/**
 * The safety net: a top-level verbs object (a Context, an rdma_cm listener) collected without
 * dispose() is reported as a process warning. It never frees anything itself — the NIC may
 * still be writing into memory the object registered.
 */
const leakNet = new FinalizationRegistry<string>((what) => {
  process.emitWarning(`${what} was garbage-collected without dispose(): its RDMA resources stay allocated until the process exits`, {
    code: 'MEMWIRE_LEAK',
  });
});

/** @internal */
export function watchForLeak(object: object, what: string): void {
  leakNet.register(object, what, object);
}

/** @internal */
export function stopWatching(object: object): void {
  leakNet.unregister(object);
}
