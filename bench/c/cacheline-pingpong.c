/*
 * The machine's state, not an anchor: two threads pinned to two CPUs hand one counter back and
 * forth through two cache lines (each thread stores to its own line and spins on the other's),
 * and the one-way hand-off time is printed. On this project's VM it flips between two levels
 * (about 290 ns and 85 ns, 2026-12-07, AMD EPYC host) for seconds at a time whatever runs inside
 * the VM — the host moves the two vCPUs — and every cross-CPU latency bench moves with it. The
 * benches run this next to the measurements they compare (bench/lib/machine-state.ts), so a
 * comparison across a change of state is seen as one.
 *
 *   cacheline-pingpong <hand-offs> <cpuA> <cpuB>
 *
 * Prints one JSON line: {"p50": ns, "p99": ns} of the one-way time (round trip / 2).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench-util.h"

static _Alignas(64) atomic_long there;
static _Alignas(64) atomic_long back;
static long rounds;
static int cpu_b;

static void *echo(void *unused) {
  (void)unused;
  pin(cpu_b); /* sched_setaffinity(0) pins the calling thread */
  for (long i = 1; i <= rounds; i++) {
    /* acquire/release: the round trip is a real hand-off of each line, as in a message ring */
    while (atomic_load_explicit(&there, memory_order_acquire) != i) {
    }
    atomic_store_explicit(&back, i, memory_order_release);
  }
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 4 || (rounds = atol(argv[1])) < 1) {
    fprintf(stderr, "usage: cacheline-pingpong <hand-offs> <cpuA> <cpuB>\n");
    return 2;
  }
  int cpu_a = atoi(argv[2]);
  cpu_b = atoi(argv[3]);
  pin(cpu_a);
  double *samples = malloc(sizeof(double) * rounds);
  pthread_t thread;
  if (!samples || pthread_create(&thread, NULL, echo, NULL) != 0) {
    fprintf(stderr, "cacheline-pingpong: out of memory or threads\n");
    return 1;
  }
  long long prev = now_ns();
  for (long i = 1; i <= rounds; i++) {
    atomic_store_explicit(&there, i, memory_order_release);
    while (atomic_load_explicit(&back, memory_order_acquire) != i) {
    }
    long long t = now_ns();
    samples[i - 1] = (t - prev) / 2.0;
    prev = t;
  }
  pthread_join(thread, NULL);
  qsort(samples, rounds, sizeof(double), cmp);
  printf("{\"p50\": %.1f, \"p99\": %.1f}\n", pct(samples, rounds, 50), pct(samples, rounds, 99));
  return 0;
}
