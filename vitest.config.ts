import { defineConfig } from 'vitest/config';

// Tests start real processes and spin on shared memory: on two cores, files run one at a time.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The rxe tier needs an RDMA device: it runs inside the Soft-RoCE guest (npm run test:rxe).
    exclude: ['test/rxe/**', '**/node_modules/**'],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    globalSetup: ['test/global-setup.ts'],
  },
});
