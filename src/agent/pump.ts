/**
 * The one loop that services every agent link of a process (the agent's and the clients'),
 * without timers on its message path and without CPU while idle.
 *
 * A turn services every task (a link: poll its completion queue, take its messages, look at its
 * connection manager's channel) — all non-blocking calls. A turn that found work is followed at
 * once (setImmediate). A turn that found none puts the pump to sleep: every task arms its
 * wake-ups (ibv_req_notify_cq on its CQ) and names its fds (the CQ's completion channel, the
 * rdma_cm event channel); after one more service (a completion that landed before the arming
 * raises no event), one poll(2) over all those fds runs off the main thread (koffi: libuv's
 * pool; Bun: a Worker) in slices of at most SLEEP_SLICE_MS, so a helper thread is never parked
 * for long. A completion, a message or a disconnect wakes the pump at once — so a doorbell is
 * relayed, and a dead peer noticed, as soon as the event loop takes the wake-up, and an idle
 * agent uses no CPU between events (issue 12: the timer-driven pump this replaces — setImmediate
 * while busy, setTimeout 1 ms in a 20 ms busy window, 4 ms idle — kept a niced agent runnable
 * for ever under the rxe guest's TCG, ~0.4 ms a turn, taking ticks from the busy-polling
 * processes on the same vCPUs).
 *
 * While its owner drives a task itself (the Postbox's polls reap its images' completions through
 * link.progress(); DRIVEN_MS since its last progress()) the process is busy in its own loop: the
 * pump neither arms nor sleeps then — arming would wake its helper thread at every message of a
 * busy sender, and every off-thread poll costs that process's CPU — but runs a turn every
 * DRIVEN_MS on a timer (the process's other links: control answers, disconnects).
 */
import { NativeBlock } from '../native-block.js';
import { pollAny } from '../verbs/native.js';
import { POLLFD } from '../../ffi/verbs-layout.js';

/** Longest single off-thread poll(2) of the pump (a helper thread is parked at most this long). */
export const SLEEP_SLICE_MS = 250;
/**
 * A task progressed by its owner within this long is left to the owner: the pump turns on a timer
 * of this period instead of sleeping on fds, so a task whose owner stopped driving it is armed
 * within DRIVEN_MS.
 */
export const DRIVEN_MS = 50;
/** While a sleep is in flight, tasks added since (not in its fd set) are serviced this often. */
const UNCOVERED_DELAY_MS = 4;
/** When the off-thread poll itself fails (it should not): serviced on this timer instead. */
const FALLBACK_DELAY_MS = 4;
/** pollfd entries the pump's block holds; tasks beyond them are serviced on the short timer. */
const MAX_FDS = 256;

export interface PumpTask {
  /** Do what is due (non-blocking); true when it did something (the next turn comes at once). */
  service(now: number): boolean;
  /**
   * Arm the task's wake-ups and return the fds that signal them (readable = something to do), or
   * undefined when it cannot be waited on (it is then serviced on a short timer).
   */
  arm(): readonly number[] | undefined;
  /** After a sleep that covered it: `readable[i]` for its fds in arm()'s order. Must not throw. */
  woke(readable: readonly boolean[]): void;
  /** performance.now() of its owner's last own progress() (0: never). */
  readonly drivenAt: number;
}

/** @internal What the pump did since the process started (diagnosis: bench/, docs/across-machines.md). */
export interface PumpStats {
  /** Turns run (each services every task). */
  turns: number;
  /** Off-thread polls started; those that ended with a readable fd, and those whose time ran out. */
  sleeps: number;
  woken: number;
  sliceEnds: number;
  /** Turns queued on a timer (tasks left to their owners, added during a sleep, or not waitable). */
  timed: number;
}

class Pump {
  /** @internal */
  readonly stats: PumpStats = { turns: 0, sleeps: 0, woken: 0, sliceEnds: 0, timed: 0 };
  readonly #tasks = new Set<PumpTask>();
  /** A turn is queued (setImmediate or setTimeout). */
  #scheduled = false;
  /** An off-thread poll is in flight; the tasks there were when it began (watched, or left to their owners). */
  #sleeping = false;
  #covered = new Set<PumpTask>();
  #block: NativeBlock | undefined;

  add(task: PumpTask): void {
    this.#tasks.add(task);
    this.#schedule(0);
  }

  delete(task: PumpTask): void {
    this.#tasks.delete(task);
  }

  /**
   * Something was posted or queued outside a turn. Its completion wakes a sleeping pump (the CQ
   * is armed) or its owner reaps it; a turn is queued only when nothing else would come.
   */
  kick(): void {
    if (!this.#scheduled && !this.#sleeping) this.#schedule(0);
  }

  #schedule(delay: number): void {
    if (this.#scheduled || this.#tasks.size === 0) return;
    this.#scheduled = true;
    if (delay === 0) setImmediate(this.#turn);
    else {
      this.stats.timed++;
      setTimeout(this.#turn, delay);
    }
  }

  #serviceAll(tasks: Iterable<PumpTask>, now: number): boolean {
    let worked = false;
    for (const task of [...tasks]) {
      // A task handles its own failures (it drops its link); one must never stop the others.
      try {
        if (task.service(now)) worked = true;
      } catch {
        /* the task reported it */
      }
    }
    return worked;
  }

  #turn = (): void => {
    this.#scheduled = false;
    this.stats.turns++;
    if (this.#serviceAll(this.#tasks, performance.now())) this.#schedule(0);
    else this.#rest();
  };

  /** Nothing to do: arm every task and sleep on their fds (or leave driven tasks to their owners). */
  #rest(): void {
    if (this.#tasks.size === 0) return;
    if (this.#sleeping) {
      // A poll is in flight; a task added since is not in its set: serviced on a short timer until it returns.
      for (const task of this.#tasks) {
        if (!this.#covered.has(task)) {
          this.#schedule(UNCOVERED_DELAY_MS);
          return;
        }
      }
      return;
    }
    const now = performance.now();
    for (const task of this.#tasks) {
      if (task.drivenAt > 0 && now - task.drivenAt < DRIVEN_MS) {
        // Its owner polls it: a process busy with its own loop. No helper-thread poll then — each
        // koffi async call costs ~0.1 ms of CPU natively, milliseconds under TCG, on the busy
        // process's CPU (bench/README.md, RDMA postbox run 7: a pool thread at 8–11 % of the
        // pinned CPU with 20 ms sleeps) — only a turn every DRIVEN_MS for its other links
        // (control answers, disconnects).
        this.#schedule(DRIVEN_MS);
        return;
      }
    }
    const fds: number[] = [];
    const owners: PumpTask[] = [];
    const counts: number[] = [];
    let unwaitable = false;
    for (const task of this.#tasks) {
      let taskFds: readonly number[] | undefined;
      try {
        taskFds = task.arm();
      } catch {
        taskFds = undefined; // its next service() finds out what is wrong and reports it
      }
      if (!taskFds || fds.length + taskFds.length > MAX_FDS) {
        unwaitable = true;
        continue;
      }
      owners.push(task);
      counts.push(taskFds.length);
      fds.push(...taskFds);
    }
    // Ordering point: a completion that came between the last poll and the arming raised no
    // event, so the armed tasks are serviced once more before the sleep.
    if (this.#serviceAll(owners, now)) {
      this.#schedule(0);
      return;
    }
    if (unwaitable || fds.length === 0) {
      this.#schedule(UNCOVERED_DELAY_MS);
      return;
    }
    this.#block ??= new NativeBlock(MAX_FDS * POLLFD.size, 'agent link pump pollfds');
    this.#sleeping = true;
    this.stats.sleeps++;
    this.#covered = new Set(this.#tasks);
    pollAny(this.#block, 0, fds, SLEEP_SLICE_MS).then(
      (readable) => {
        this.#sleeping = false;
        if (readable.includes(true)) this.stats.woken++;
        else this.stats.sliceEnds++;
        let at = 0;
        for (let i = 0; i < owners.length; i++) {
          const mine = readable.slice(at, at + counts[i]);
          at += counts[i];
          if (this.#tasks.has(owners[i])) owners[i].woke(mine);
        }
        this.#covered.clear();
        this.#schedule(0);
      },
      () => {
        this.#sleeping = false;
        this.#covered.clear();
        this.#schedule(FALLBACK_DELAY_MS);
      },
    );
  }
}

/** The process's pump. */
export const pump = new Pump();
