import { defineConfig } from 'vitest/config';

// The rxe tier: tests that need a real RDMA device (Soft-RoCE in the QEMU guest of
// scripts/rxe/run.sh, or a host with devices). One file at a time, each test with a timeout.
// The node agent (test/rxe/agent.test.ts) is work in progress (issue 12): in the guest it sometimes
// dies of SIGSEGV at exit after a clean SIGTERM stop (undiagnosed, docs/across-machines.md), and its
// byte-exact write/read-back path has not yet passed a run. Until both hold, the tier leaves that
// file out unless MEMWIRE_AGENT_TESTS=1 asks for it.
const agentTests = process.env.MEMWIRE_AGENT_TESTS === '1';

export default defineConfig({
  test: {
    include: ['test/rxe/**/*.test.ts'],
    exclude: agentTests ? ['**/node_modules/**'] : ['**/node_modules/**', 'test/rxe/agent.test.ts'],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
