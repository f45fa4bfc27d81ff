import { defineConfig } from 'vitest/config';

// The rxe tier: tests that need a real RDMA device (Soft-RoCE in the QEMU guest of
// scripts/rxe/run.sh, or a host with devices). One file at a time, each test with a timeout.

export default defineConfig({
  test: {
    include: ['test/rxe/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
