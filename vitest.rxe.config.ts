import { defineConfig } from 'vitest/config';

// The rxe tier: tests that need a real RDMA device (Soft-RoCE in the QEMU guest of
// scripts/rxe/run.sh, or a host with devices). One file at a time, each test with a timeout.

// The postbox fault tests across nodes (issue 12) are not steady yet: under a loaded host (three
// guests on two cores) their control calls time out, and the restart halves do not pass at all
// (docs/messaging-faults.md, "Postboxes across nodes"). They run only when asked for:
// MEMWIRE_XNODE_FAULTS=1 (and MEMWIRE_XNODE_RESTART=1 for the restart halves).
const WORK_IN_PROGRESS = process.env.MEMWIRE_XNODE_FAULTS === '1' ? [] : ['test/rxe/postbox-xnode-faults.test.ts'];

export default defineConfig({
  test: {
    include: ['test/rxe/**/*.test.ts'],
    exclude: ['**/node_modules/**', ...WORK_IN_PROGRESS],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
