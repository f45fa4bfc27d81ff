/**
 * The promise form of the request engine (engine.ts): which request each promise waits for, and
 * the loop that drives the engine's completion queue while promises wait. The engine settles
 * requests; this resolves or rejects the promises of those that have one.
 */

/** What the driver needs of the engine. */
export interface DrivenEngine {
  /** Poll once, post what fits; how many requests settled. */
  progress(): number;
  readonly disposed: boolean;
}

/** Empty polls of the driver before it polls once a millisecond instead of every turn. */
const IDLE_POLLS = 64;

export class RequestWaiters {
  readonly #engine: DrivenEngine;
  readonly #resolve: (((bytes: number) => void) | undefined)[];
  readonly #reject: (((error: Error) => void) | undefined)[];
  #promised = 0;
  #driving = false;

  /** For an engine whose request table has `slots` slots. */
  constructor(engine: DrivenEngine, slots: number) {
    this.#engine = engine;
    this.#resolve = new Array(slots).fill(undefined);
    this.#reject = new Array(slots).fill(undefined);
  }

  /** A promise of request `slot` (submitted, not yet settled): resolves with its bytes, rejects with its error. */
  wait(slot: number): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      this.#resolve[slot] = resolve;
      this.#reject[slot] = reject;
      this.#promised++;
      this.#drive();
    });
  }

  /** Request `slot` settled: resolve or reject its promise, if it has one. */
  settle(slot: number, bytes: number, error: Error | undefined): void {
    const resolve = this.#resolve[slot];
    const reject = this.#reject[slot];
    if (!resolve || !reject) return;
    this.#resolve[slot] = this.#reject[slot] = undefined;
    this.#promised--;
    if (error) reject(error);
    else resolve(bytes);
  }

  /**
   * Drive the CQ while promises wait: progress() once per turn of the event loop (setImmediate)
   * while completions come, then every millisecond (setTimeout) after IDLE_POLLS empty polls, so
   * an idle wait does not spin. Not the CQ's wait(): it polls into the CQ's shared completion
   * array, which any other poll before this loop resumes would overwrite (completions lost).
   */
  #drive(): void {
    if (this.#driving) return;
    this.#driving = true;
    const engine = this.#engine;
    const loop = async () => {
      try {
        let idle = 0;
        while (this.#promised > 0 && !engine.disposed) {
          const settled = engine.progress();
          if (this.#promised === 0 || engine.disposed) break;
          idle = settled > 0 ? 0 : idle + 1;
          await new Promise((resolve) => (idle < IDLE_POLLS ? setImmediate(resolve) : setTimeout(resolve, 1)));
        }
      } finally {
        // Synchronously with the last settle: a promise made in its continuation starts a new loop.
        this.#driving = false;
      }
    };
    loop().catch((error: unknown) => {
      // progress() threw (e.g. a region disposed under a queued request): every waiter learns it.
      const e = error instanceof Error ? error : new Error(String(error));
      for (let slot = 0; slot < this.#reject.length; slot++) {
        const reject = this.#reject[slot];
        if (reject) {
          this.#resolve[slot] = this.#reject[slot] = undefined;
          this.#promised--;
          reject(e);
        }
      }
    });
  }
}
