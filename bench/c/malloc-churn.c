/*
 * Anchor of bench `shmem-alloc`: glibc malloc + free pairs per second, with the same FIFO churn
 * as the bench (a window of live blocks; each step frees the oldest and mallocs a new one), in 1
 * or 2 processes. A ceiling rather than a peer: glibc's heap is private memory, per process (and
 * per thread arena), so two processes never share or contend for it as memwire's pool does.
 *
 *   malloc-churn <size> <window> <seconds> <processes 1|2> <cpuA> <cpuB>
 *
 * With 2 processes both start together (a flag in MAP_SHARED memory) and churn for the same
 * time; the rate is the sum of both counts over the parent's elapsed time. Prints one JSON line.
 * Built by the bench with `gcc -O2`.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench-util.h"

struct shared {
  _Alignas(64) atomic_int go;
  _Alignas(64) atomic_llong child_pairs;
};

/* Keep the compiler from proving a malloc'd pointer unused and removing the malloc/free pair. */
static inline void escape(void *p) { __asm__ volatile("" : : "r"(p) : "memory"); }

static long long churn(size_t size, int window, long long until_ns) {
  void **ring = calloc((size_t)window, sizeof *ring);
  if (!ring) {
    perror("calloc");
    exit(1);
  }
  long long pairs = 0;
  int at = 0;
  while (now_ns() < until_ns) {
    for (int k = 0; k < 64; k++) {
      free(ring[at]);
      ring[at] = malloc(size);
      if (!ring[at]) {
        perror("malloc");
        exit(1);
      }
      escape(ring[at]);
      at = at + 1 == window ? 0 : at + 1;
    }
    pairs += 64;
  }
  for (int i = 0; i < window; i++) free(ring[i]);
  free(ring);
  return pairs;
}

int main(int argc, char **argv) {
  if (argc != 7) {
    fprintf(stderr, "usage: malloc-churn <size> <window> <seconds> <processes 1|2> <cpuA> <cpuB>\n");
    return 2;
  }
  size_t size = (size_t)atoll(argv[1]);
  int window = atoi(argv[2]);
  double seconds = atof(argv[3]);
  int processes = atoi(argv[4]);
  int cpu_a = atoi(argv[5]), cpu_b = atoi(argv[6]);
  if (size == 0 || window <= 0 || seconds <= 0 || (processes != 1 && processes != 2)) {
    fprintf(stderr, "malloc-churn: bad arguments\n");
    return 2;
  }
  struct shared *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (s == MAP_FAILED) {
    perror("mmap");
    return 1;
  }
  long long warm_ns = 50 * 1000000LL; /* as the bench warms its JIT: 50 ms of the same churn */
  long long run_ns = (long long)(seconds * 1e9);
  pid_t child = -1;
  if (processes == 2) {
    child = fork();
    if (child < 0) {
      perror("fork");
      return 1;
    }
    if (child == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      pin(cpu_b);
      churn(size, window, now_ns() + warm_ns);
      atomic_fetch_add(&s->go, 1);
      while (atomic_load(&s->go) < 2) {
      }
      atomic_store(&s->child_pairs, churn(size, window, now_ns() + run_ns));
      _exit(0);
    }
  }
  pin(cpu_a);
  churn(size, window, now_ns() + warm_ns);
  if (processes == 2) {
    while (atomic_load(&s->go) < 1) {
    }
    atomic_store(&s->go, 2);
  }
  long long start = now_ns();
  long long pairs = churn(size, window, start + run_ns);
  long long theirs = 0;
  if (processes == 2) {
    int status = 0;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      fprintf(stderr, "malloc-churn: the second process failed\n");
      return 1;
    }
    theirs = atomic_load(&s->child_pairs);
  }
  double elapsed = (now_ns() - start) / 1e9;
  printf("{\"pairsPerSecond\": %.1f, \"processes\": %d, \"size\": %zu}\n", (double)(pairs + theirs) / elapsed, processes, size);
  return 0;
}
