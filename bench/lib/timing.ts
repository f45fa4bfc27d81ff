/**
 * Statistics and timing for the benchmarks: percentiles, the monotonic clock and its own cost,
 * progress messages (on stderr, so stdout holds only the report), sleeping and time limits.
 */

/** Nearest-rank percentile (q in 0..100) of samples; sorts `samples` in place. */
export function percentiles(samples: Float64Array, qs: readonly number[]): number[] {
  if (samples.length === 0) throw new Error('no samples');
  samples.sort();
  return qs.map((q) => samples[Math.min(samples.length - 1, Math.max(0, Math.ceil((q / 100) * samples.length) - 1))]);
}

/** Nanoseconds on a monotonic clock (process.hrtime.bigint works on Node, Bun and Deno). */
export function nowNs(): bigint {
  return process.hrtime.bigint();
}

/** What one nowNs() plus the Number(delta) that follows costs here, in ns (median of 5 batches). */
export function timerCostNs(): number {
  const batches = new Float64Array(5);
  const n = 200_000;
  for (let b = 0; b < batches.length; b++) {
    const start = process.hrtime.bigint();
    let prev = start;
    let sink = 0;
    for (let i = 0; i < n; i++) {
      const now = process.hrtime.bigint();
      sink += Number(now - prev);
      prev = now;
    }
    batches[b] = Number(prev - start) / n + (sink < 0 ? 1 : 0);
  }
  return percentiles(batches, [50])[0];
}

/** Messages go to stderr, so stdout holds only the report. */
export function progress(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Reject with an Error naming `what` unless `promise` settles within `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: no answer within ${Math.round(ms)} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
