/**
 * The one loop that services every agent link of a process (the agent's and the clients'):
 * each turn polls every link's completion queue and, less often, its connection-manager
 * channel — all non-blocking calls, so no helper thread (koffi's libuv pool, Bun's Workers) is
 * ever parked for a control connection. A turn that found work is followed at once
 * (setImmediate); an idle loop backs off to IDLE_DELAY_MS after BUSY_WINDOW_MS, which bounds
 * how late a control message or a doorbell is noticed (documented in docs/across-machines.md).
 */
/**
 * How long after work the pump keeps polling every ACTIVE_DELAY_MS. Shorter than the postbox's
 * liveness interval (IS_ALIVE every 100 ms per channel): with a 100 ms window that periodic
 * traffic alone kept an idle agent polling every millisecond for ever — under the rxe guest's
 * TCG ~40 % of a vCPU, taken from the busy-polling processes (issue 12).
 */
const BUSY_WINDOW_MS = 20;
const ACTIVE_DELAY_MS = 1;
export const IDLE_DELAY_MS = 4;

/** A task returns true when it did something (so the next turn comes at once). */
export type PumpTask = (now: number) => boolean;

class Pump {
  readonly #tasks = new Set<PumpTask>();
  #scheduled = false;
  #lastWork = 0;

  add(task: PumpTask): void {
    this.#tasks.add(task);
    this.#lastWork = performance.now();
    this.#schedule(0);
  }

  delete(task: PumpTask): void {
    this.#tasks.delete(task);
  }

  /** Run a turn soon (e.g. after something was queued to send). */
  kick(): void {
    this.#lastWork = performance.now();
  }

  #schedule(delay: number): void {
    if (this.#scheduled || this.#tasks.size === 0) return;
    this.#scheduled = true;
    if (delay === 0) setImmediate(this.#turn);
    else setTimeout(this.#turn, delay);
  }

  #turn = (): void => {
    this.#scheduled = false;
    const now = performance.now();
    let worked = false;
    for (const task of [...this.#tasks]) {
      // A task handles its own failures (it drops its link); one must never stop the others.
      try {
        if (task(now)) worked = true;
      } catch {
        /* the task reported it */
      }
    }
    if (worked) this.#lastWork = now;
    this.#schedule(worked ? 0 : now - this.#lastWork < BUSY_WINDOW_MS ? ACTIVE_DELAY_MS : IDLE_DELAY_MS);
  };
}

/** The process's pump. */
export const pump = new Pump();
