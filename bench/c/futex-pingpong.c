/*
 * Anchor of bench `shmem-signal`: two processes (fork) bounce a signal through two futex words
 * in shared memory (MAP_SHARED | MAP_ANONYMOUS), as memwire's signal()/waitSignal() do with
 * their counters: the signaller increments the other side's word and calls FUTEX_WAKE; the
 * waiter sleeps in FUTEX_WAIT (shared, not private) until its word moves. No spinning at all.
 *
 *   futex-pingpong <round trips> <warmup> <cpuA> <cpuB>
 *
 * A times each round trip with CLOCK_MONOTONIC; one-way latency = round trip / 2. Prints one
 * JSON line with p50 and p99 in µs. Built by the bench with `gcc -O2`.
 */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench-util.h"

struct shared {
  _Alignas(64) atomic_int a; /* signals to A */
  _Alignas(64) atomic_int b; /* signals to B */
};

static void signal_word(atomic_int *w) {
  atomic_fetch_add(w, 1);
  syscall(SYS_futex, w, FUTEX_WAKE, 1, NULL, NULL, 0);
}

/* Wait until *w differs from seen; returns the new value. */
static int wait_word(atomic_int *w, int seen) {
  int v;
  while ((v = atomic_load(w)) == seen) syscall(SYS_futex, w, FUTEX_WAIT, seen, NULL, NULL, 0);
  return v;
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: futex-pingpong <round trips> <warmup> <cpuA> <cpuB>\n");
    return 2;
  }
  int iterations = atoi(argv[1]), warmup = atoi(argv[2]), total = iterations + warmup;
  struct shared *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (s == MAP_FAILED) return perror("mmap"), 1;
  pid_t child = fork();
  if (child < 0) return perror("fork"), 1;
  if (child == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    pin(atoi(argv[4]));
    int seen = 0;
    for (int i = 0; i < total; i++) {
      seen = wait_word(&s->b, seen);
      signal_word(&s->a);
    }
    _exit(0);
  }
  pin(atoi(argv[3]));
  double *v = calloc(iterations, sizeof *v);
  int seen = 0;
  for (int i = 0; i < total; i++) {
    long long t0 = now_ns();
    signal_word(&s->b);
    seen = wait_word(&s->a, seen);
    long long t1 = now_ns();
    if (i >= warmup) v[i - warmup] = (double)(t1 - t0) / 2000.0;
  }
  waitpid(child, NULL, 0);
  qsort(v, iterations, sizeof *v, cmp);
  printf("{\"p50us\":%.3f,\"p99us\":%.3f}\n", pct(v, iterations, 50), pct(v, iterations, 99));
  return 0;
}
