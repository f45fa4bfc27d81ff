/*
 * Helpers shared by the C anchors of the benchmarks (included, not linked): a monotonic clock,
 * CPU pinning, and nearest-rank percentiles of a sorted sample.
 */
#ifndef MEMWIRE_BENCH_UTIL_H
#define MEMWIRE_BENCH_UTIL_H

#include <sched.h>
#include <time.h>

static long long now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* Pin the calling process to one CPU (a negative cpu leaves it unpinned). */
static void pin(int cpu) {
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  sched_setaffinity(0, sizeof set, &set);
}

/* qsort comparator for doubles. */
static int cmp(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return a < b ? -1 : a > b;
}

/* The q-th percentile (nearest rank) of n sorted values. */
static double pct(double *v, int n, double q) {
  int k = (int)((q / 100.0) * n + 0.999999) - 1;
  if (k < 0) k = 0;
  if (k >= n) k = n - 1;
  return v[k];
}

#endif
