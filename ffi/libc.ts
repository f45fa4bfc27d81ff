/**
 * libc, as memwire uses it: POSIX shared memory, mmap, futex (through syscall), errno and the few
 * process facts doctor and stale clean-up need. C names, integers and addresses only; meaning
 * lives in src/shm.
 *
 * Every function returns what C returns (e.g. -1) and leaves errno to be read at once with
 * `errno()`; src/errors.ts turns that into a SystemError.
 */
import { backend, ERRNO_UNKNOWN, openLibrary } from './backend.js';
import type { AsyncResult, FnDecl, NativeFn } from './types.js';

/** Declarations, one per C function, with the C prototype beside it. */
export const LIBC = {
  shm_open: { name: 'shm_open', c: 'int shm_open(const char *name, int oflag, mode_t mode)', returns: 'i32', args: ['cstr', 'i32', 'u32'] },
  shm_unlink: { name: 'shm_unlink', c: 'int shm_unlink(const char *name)', returns: 'i32', args: ['cstr'] },
  ftruncate: { name: 'ftruncate', c: 'int ftruncate(int fd, off_t length)', returns: 'i32', args: ['i32', 'i64'] },
  fallocate: { name: 'fallocate', c: 'int fallocate(int fd, int mode, off_t offset, off_t len)', returns: 'i32', args: ['i32', 'i32', 'i64', 'i64'] },
  fstat: { name: 'fstat', c: 'int fstat(int fd, struct stat *buf)', returns: 'i32', args: ['i32', 'buf'] },
  mmap: { name: 'mmap', c: 'void *mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset)', returns: 'i64', args: ['ptr', 'u64', 'i32', 'i32', 'i32', 'i64'] },
  munmap: { name: 'munmap', c: 'int munmap(void *addr, size_t length)', returns: 'i32', args: ['ptr', 'u64'] },
  close: { name: 'close', c: 'int close(int fd)', returns: 'i32', args: ['i32'] },
  // syscall() is variadic; declared with fixed integer arguments, which x86_64 passes the same way
  // (and koffi will not run variadic functions asynchronously).
  futex: { name: 'syscall', c: 'long syscall(long SYS_futex, uint32_t *uaddr, int op, uint32_t val, const struct timespec *timeout, uint32_t *uaddr2, uint32_t val3)', returns: 'i64', args: ['i64', 'ptr', 'i32', 'u32', 'buf', 'ptr', 'u32'] },
  futexTimed: { name: 'syscall', c: 'long syscall(long SYS_futex, uint32_t *uaddr, int op, uint32_t val, const struct timespec *timeout (address), uint32_t *uaddr2, uint32_t val3)', returns: 'i64', args: ['i64', 'ptr', 'i32', 'u32', 'ptr', 'ptr', 'u32'] },
  strerror: { name: 'strerror', c: 'char *strerror(int errnum)', returns: 'cstr', args: ['i32'] },
  sysconf: { name: 'sysconf', c: 'long sysconf(int name)', returns: 'i64', args: ['i32'] },
  getpid: { name: 'getpid', c: 'pid_t getpid(void)', returns: 'i32', args: [] },
  getuid: { name: 'getuid', c: 'uid_t getuid(void)', returns: 'u32', args: [] },
  geteuid: { name: 'geteuid', c: 'uid_t geteuid(void)', returns: 'u32', args: [] },
  kill: { name: 'kill', c: 'int kill(pid_t pid, int sig)', returns: 'i32', args: ['i32', 'i32'] },
  getrlimit: { name: 'getrlimit', c: 'int getrlimit(int resource, struct rlimit *rlim)', returns: 'i32', args: ['i32', 'buf'] },
  statvfs: { name: 'statvfs', c: 'int statvfs(const char *path, struct statvfs *buf)', returns: 'i32', args: ['cstr', 'buf'] },
  gnu_get_libc_version: { name: 'gnu_get_libc_version', c: 'const char *gnu_get_libc_version(void)', returns: 'cstr', args: [] },
  sched_setaffinity: { name: 'sched_setaffinity', c: 'int sched_setaffinity(pid_t pid, size_t cpusetsize, const cpu_set_t *mask)', returns: 'i32', args: ['i32', 'u64', 'buf'] },
  sched_getaffinity: { name: 'sched_getaffinity', c: 'int sched_getaffinity(pid_t pid, size_t cpusetsize, cpu_set_t *mask)', returns: 'i32', args: ['i32', 'u64', 'buf'] },
  // poll() on one descriptor, run off-thread (callAsync) to wait for a completion/CM channel;
  // fcntl() is variadic, declared with its one integer argument (passed the same way on x86_64).
  poll: { name: 'poll', c: 'int poll(struct pollfd *fds, nfds_t nfds, int timeout)', returns: 'i32', args: ['ptr', 'u64', 'i32'] },
  fcntl: { name: 'fcntl', c: 'int fcntl(int fd, int cmd, long arg)', returns: 'i32', args: ['i32', 'i32', 'i64'] },
  // Give the CPU to another runnable thread (benches: a busy-polling loop that shares its CPU
  // with the kernel thread doing the transfer's work, e.g. ksoftirqd under rxe).
  sched_yield: { name: 'sched_yield', c: 'int sched_yield(void)', returns: 'i32', args: [] },
} as const satisfies Record<string, FnDecl>;

// Linux x86_64 constants (asm-generic / glibc headers).
export const O_RDONLY = 0;
export const O_RDWR = 2;
export const O_CREAT = 0o100;
export const O_EXCL = 0o200;
export const PROT_NONE = 0;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_FIXED = 0x10;
export const MAP_ANONYMOUS = 0x20;
export const MAP_NORESERVE = 0x4000;
export const SYS_futex = 202;
export const FUTEX_WAIT = 0; // not FUTEX_PRIVATE_FLAG: the words are shared between processes
export const FUTEX_WAKE = 1;
export const SC_PAGESIZE = 30;
export const RLIMIT_MEMLOCK = 8;
export const SIGKILL = 9;

/** struct stat on x86_64: 144 bytes; st_mode at 24 (u32), st_uid at 28 (u32), st_size at 48 (i64). */
export const STAT_SIZE = 144;
export const STAT_MODE = 24;
export const STAT_UID = 28;
export const STAT_SIZE_FIELD = 48;
/** struct statvfs on x86_64: f_bsize 0, f_frsize 8, f_blocks 16, f_bfree 24, f_bavail 32 (u64). */
export const STATVFS_SIZE = 112;
/** struct rlimit: rlim_cur 0, rlim_max 8 (u64; RLIM_INFINITY is all ones). */
export const RLIMIT_SIZE = 16;

type Bound = { [K in keyof typeof LIBC]: NativeFn };

const lib = openLibrary('libc');
/** The bound functions. Bound eagerly: libc is always there, and a missing symbol should fail at start. */
export const libc: Bound = Object.fromEntries(
  Object.entries(LIBC).map(([key, decl]) => [key, lib.bind(decl)]),
) as Bound;

export function errno(): number {
  return backend.errno();
}

/**
 * poll() off the calling thread; `pollfdAddress` is a struct pollfd that must stay valid until
 * the promise settles. Bounded by `timeoutMs` so the helper thread is never parked for long.
 */
export async function pollAsync(pollfdAddress: number, count: number, timeoutMs: number): Promise<AsyncResult> {
  const r = await lib.callAsync(LIBC.poll, [pollfdAddress, count, timeoutMs]);
  if (r.errno !== ERRNO_UNKNOWN) return r;
  // The failed call's errno stayed on its thread (Deno). Ask again here, without waiting: a lasting
  // fault (EFAULT, EINVAL, ENOMEM) fails the same way and now sets this thread's errno; otherwise the
  // failure was a passing one (EINTR), reported as such, with the descriptor's state as it is now.
  const again = libc.poll(pollfdAddress, count, 0) as number;
  return again < 0 ? { value: again, errno: errno() } : again > 0 ? { value: again, errno: 0 } : { value: -1, errno: EINTR };
}

/**
 * futex(FUTEX_WAIT) on a shared word, off the calling thread (libuv's pool under koffi, a Worker
 * under Bun, Deno's blocking pool under Deno). Resolves with the syscall's result and errno.
 * `timeoutAddress` is the address of a struct timespec that must stay valid until the promise
 * settles, or 0 for no timeout.
 */
export async function futexWaitAsync(address: number, expected: number, timeoutAddress: number): Promise<AsyncResult> {
  const r = await lib.callAsync(LIBC.futexTimed, [SYS_futex, address, FUTEX_WAIT, expected >>> 0, timeoutAddress, 0, 0]);
  if (r.errno !== ERRNO_UNKNOWN) return r;
  // errno stayed on the pool thread (Deno): classify the failure here, without waiting. A word that
  // changed is EAGAIN; otherwise a FUTEX_WAIT with a zero timeout either times out at once (the
  // failure was ETIMEDOUT or EINTR: the caller re-checks the word and its deadline either way) or
  // fails for a lasting reason (EFAULT, EINVAL), which it now reports on this thread.
  const word = new Uint32Array(backend.view(address, 4))[0];
  if (word !== expected >>> 0) return { value: -1, errno: EAGAIN };
  const again = libc.futexTimed(SYS_futex, address, FUTEX_WAIT, expected >>> 0, zeroTimespec(), 0, 0) as number;
  if (again === 0) return { value: 0, errno: 0 }; // woken meanwhile
  const code = errno();
  return { value: -1, errno: code };
}

const EINTR = 4;
const EAGAIN = 11;

let zeroTimespecBuffer: BigInt64Array | undefined;
/** The address of a struct timespec { 0, 0 }, kept alive for the life of the process. */
function zeroTimespec(): number {
  zeroTimespecBuffer ??= new BigInt64Array(2);
  return backend.addressOf(zeroTimespecBuffer);
}
