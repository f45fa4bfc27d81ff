/**
 * The peer process of the shmem benches: joins the bench's pool and plays one role against the
 * parent, through a public control block the parent allocated (shmem-control.ts). It leaves
 * when done, and on its own when the parent dies (checked every 2^20 spins).
 *
 *   shmem-peer.js <role> <pool> <parent pid> <control offset> [role args...]
 *
 *   lock-b <lock id> <total>       the waiter of the contended hand-off (bench shmem-lock)
 *   signal-b <parent member> <total> <spin> <async 0|1>   echo every signal back (bench shmem-signal)
 *   alloc <size> <window>          malloc/free churn until told to stop (bench shmem-alloc)
 */
import { ShmemPool } from '../src/index.js';
import { processRunning } from './lib/peer.js';
import { CONTROL_ACK, CONTROL_BYTES, CONTROL_COUNT, CONTROL_HELD, CONTROL_READY, CONTROL_STOP, CONTROL_WAITING } from './shmem-control.js';


const [role, poolName, parentText, controlText, ...rest] = process.argv.slice(2);
const parentPid = Number(parentText);
const pool = ShmemPool.open(poolName, { timeoutMs: 5000 });
const control = pool.region.view('int32', Number(controlText), CONTROL_BYTES / 4);

let spins = 0;
function guard(): void {
  if ((++spins & 0xfffff) === 0 && !processRunning(parentPid)) {
    process.stderr.write(`shmem-peer ${role}: parent ${parentPid} is gone; leaving\n`);
    process.exit(3);
  }
}

try {
  switch (role) {
    case 'lock-b': {
      // Hand-offs until the parent sets CONTROL_STOP (it decides when its warm-up has settled).
      const [id] = rest.map(Number);
      Atomics.store(control, CONTROL_READY, 1);
      handOffs: for (let i = 0; ; i++) {
        while (Atomics.load(control, CONTROL_HELD) !== i) {
          if (Atomics.load(control, CONTROL_STOP) !== 0) break handOffs;
          guard();
        }
        Atomics.store(control, CONTROL_WAITING, i);
        pool.setLock(id);
        Atomics.store(control, CONTROL_ACK, i);
        pool.clearLock(id);
      }
      break;
    }
    case 'signal-b': {
      // Answer every signal until the parent sets CONTROL_STOP and signals once more.
      const [parent, spin, useAsync] = rest.map(Number);
      Atomics.store(control, CONTROL_READY, 1);
      const options = { spin, timeoutMs: 10_000 };
      for (;;) {
        const got = useAsync ? await pool.waitSignalAsync(options) : pool.waitSignal(options);
        if (Atomics.load(control, CONTROL_STOP) !== 0) break;
        if (got === 0) {
          guard();
          spins |= 0xfffff; // check the parent at once
          continue;
        }
        for (let k = 0; k < got; k++) pool.signal(parent);
      }
      break;
    }
    case 'alloc': {
      const [size, window] = rest.map(Number);
      const ring = new Array<number>(window).fill(-1);
      Atomics.store(control, CONTROL_READY, 1);
      while (Atomics.load(control, CONTROL_READY) !== 2) guard();
      let pairs = 0;
      let at = 0;
      while (Atomics.load(control, CONTROL_STOP) === 0) {
        for (let k = 0; k < 64; k++) {
          if (ring[at] >= 0) pool.free(ring[at]);
          ring[at] = pool.malloc(size);
          at = at + 1 === window ? 0 : at + 1;
        }
        pairs += 64;
      }
      for (const offset of ring) if (offset >= 0) pool.free(offset);
      Atomics.store(control, CONTROL_COUNT, pairs);
      break;
    }
    default:
      process.stderr.write(`shmem-peer: unknown role ${role}\n`);
      process.exitCode = 2;
  }
} finally {
  pool.dispose();
}
