/**
 * The control block the shmem benches share with their peer (bench/shmem-peer.ts): a public
 * block of the bench's pool, CONTROL_BYTES long. Int32 word indices, each on its own 64-byte line.
 */
export const CONTROL_HELD = 0; // shmem-lock: the iteration whose lock the parent holds
export const CONTROL_WAITING = 16; // shmem-lock: the iteration the peer is about to block in
export const CONTROL_ACK = 32; // shmem-lock: the iteration the peer acquired
export const CONTROL_READY = 48; // 1: the peer joined; 2 (shmem-alloc): go
export const CONTROL_STOP = 64; // shmem-alloc: stop churning; shmem-lock, shmem-signal: no more hand-offs
export const CONTROL_COUNT = 80; // shmem-alloc: the peer's pairs
export const CONTROL_BYTES = 384;
