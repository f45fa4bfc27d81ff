/*
 * Anchor of bench `shmem-lock`: a PTHREAD_PROCESS_SHARED, PTHREAD_MUTEX_ROBUST mutex in shared
 * memory (MAP_SHARED | MAP_ANONYMOUS, inherited across fork), measured with the same protocol
 * as memwire's ShmemPool locks (bench/shmem-lock.ts):
 *
 *   uncontended <pairs> <batches>
 *       one process, batches of lock+unlock pairs; prints the p50 ns per pair.
 *   contended <iterations> <warmup> <hold_us> <cpuA> <cpuB>
 *       two processes (fork). Per iteration A holds the mutex; B announces that it is about to
 *       lock and blocks in pthread_mutex_lock; A keeps holding for hold_us (so B really sleeps
 *       in the kernel), reads the clock, unlocks and spins until B, now holding the mutex, has
 *       stored an acknowledgment; the sample is that interval (hand-off = unlock → the waiter
 *       runs as holder). Prints p50 and p99 in µs.
 *
 * Output: one JSON line. Built by the bench with `gcc -O2 -pthread`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench-util.h"

struct shared {
  pthread_mutex_t mutex;
  _Alignas(64) atomic_int held;    /* A: iteration whose lock A holds */
  _Alignas(64) atomic_int waiting; /* B: iteration it is about to block in */
  _Alignas(64) atomic_int ack;     /* B: iteration it acquired */
};

static void lock(pthread_mutex_t *m) {
  int r = pthread_mutex_lock(m);
  if (r == EOWNERDEAD) pthread_mutex_consistent(m);
  else if (r != 0) {
    fprintf(stderr, "pthread_mutex_lock: %s\n", strerror(r));
    exit(1);
  }
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: robust-mutex uncontended <pairs> <batches> | contended <iterations> <warmup> <hold_us> <cpuA> <cpuB>\n");
    return 2;
  }
  struct shared *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (s == MAP_FAILED) return perror("mmap"), 1;
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  pthread_mutex_init(&s->mutex, &attr);

  if (strcmp(argv[1], "uncontended") == 0 && argc >= 4) {
    int pairs = atoi(argv[2]), batches = atoi(argv[3]);
    double *v = calloc(batches, sizeof *v);
    for (int b = -2; b < batches; b++) {
      long long t0 = now_ns();
      for (int i = 0; i < pairs; i++) {
        lock(&s->mutex);
        pthread_mutex_unlock(&s->mutex);
      }
      if (b >= 0) v[b] = (double)(now_ns() - t0) / pairs;
    }
    qsort(v, batches, sizeof *v, cmp);
    printf("{\"p50ns\":%.3f}\n", pct(v, batches, 50));
    return 0;
  }
  if (strcmp(argv[1], "contended") == 0 && argc >= 7) {
    int iterations = atoi(argv[2]), warmup = atoi(argv[3]), hold_us = atoi(argv[4]);
    int total = iterations + warmup;
    atomic_store(&s->held, -1);
    atomic_store(&s->waiting, -1);
    atomic_store(&s->ack, -1);
    lock(&s->mutex);
    atomic_store(&s->held, 0);
    pid_t child = fork();
    if (child < 0) return perror("fork"), 1;
    if (child == 0) { /* B */
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      pin(atoi(argv[6]));
      for (int i = 0; i < total; i++) {
        while (atomic_load(&s->held) != i) ;
        atomic_store(&s->waiting, i);
        lock(&s->mutex);
        atomic_store(&s->ack, i);
        pthread_mutex_unlock(&s->mutex);
      }
      _exit(0);
    }
    pin(atoi(argv[5]));
    double *v = calloc(iterations, sizeof *v);
    for (int i = 0; i < total; i++) {
      if (i > 0) {
        lock(&s->mutex);
        atomic_store(&s->held, i);
      }
      while (atomic_load(&s->waiting) != i) ;
      long long until = now_ns() + hold_us * 1000LL;
      while (now_ns() < until) ;
      long long t0 = now_ns();
      pthread_mutex_unlock(&s->mutex);
      while (atomic_load(&s->ack) != i) ;
      long long t1 = now_ns();
      if (i >= warmup) v[i - warmup] = (double)(t1 - t0) / 1000.0;
    }
    waitpid(child, NULL, 0);
    qsort(v, iterations, sizeof *v, cmp);
    printf("{\"p50us\":%.3f,\"p99us\":%.3f}\n", pct(v, iterations, 50), pct(v, iterations, 99));
    return 0;
  }
  fprintf(stderr, "robust-mutex: bad arguments\n");
  return 2;
}
