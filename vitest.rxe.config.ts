import { defineConfig } from 'vitest/config';

// The rxe tier: tests that need a real RDMA device (Soft-RoCE in the QEMU guest of
// scripts/rxe/run.sh, or a host with devices). One file at a time, each test with a timeout.
// The node agent's tests (test/rxe/agent.test.ts) run on Node and Bun. Under Deno they are left
// out for now (issue 12): there the agent stops cleanly on SIGTERM (logs "stopped", BYEs sent,
// targets removed) but its process then ends *by* SIGTERM instead of exiting 0, and the tests
// after that one fail in cascade (no agent restarted). Seen in one guest run; not yet diagnosed
// (scripts/rxe/agent-stop-loop.mjs, without the two-node namespaces, saw 10/10 Deno stops exit 0).
// MEMWIRE_AGENT_TESTS=1 runs them under Deno anyway.
const isDeno = typeof (globalThis as { Deno?: unknown }).Deno !== 'undefined';
const skipAgentTests = isDeno && process.env.MEMWIRE_AGENT_TESTS !== '1';

export default defineConfig({
  test: {
    include: ['test/rxe/**/*.test.ts'],
    exclude: skipAgentTests ? ['**/node_modules/**', 'test/rxe/agent.test.ts'] : ['**/node_modules/**'],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
