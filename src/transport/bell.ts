/**
 * Bell values: every mechanism on a Transport (postbox/, segments/) rings a sleeper's bell word
 * with a published store of a fresh value, then a wake.
 */
let bellCount = 0;
/**
 * A value to publish into a bell word before waking it. A bell is rung with a post (a published
 * store), not an atomic add (contract 5 of transport/types.ts): the sleeper compares the word
 * with what it read before it looked for work, so it needs only a value that differs from that —
 * a per-process counter mixed with the pid makes a repeat by another ringer improbable, and a
 * missed wake-up would cost at most one wait slice (every sleep here is bounded).
 */
export function bellNonce(pid: number): number {
  bellCount = (bellCount + 1) | 0;
  return (Math.imul(pid, 0x9e3779b1) + bellCount) | 0 || 1;
}
