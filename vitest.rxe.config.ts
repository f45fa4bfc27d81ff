import { defineConfig } from 'vitest/config';

// The rxe tier: tests that need a real RDMA device (Soft-RoCE in the QEMU guest of
// scripts/rxe/run.sh, or a host with devices). One file at a time, each test with a timeout.

// The postbox fault tests across nodes (issue 12) are not in the tier yet: after the control-plane
// fixes of 2026-12-07 they passed in the guest on Bun (receiver kill and restart, sender kill,
// garbage, agent kill), but no full run on Node finished within its time, and the guest's budget
// ran out before the two Node runs and one Bun run that would show them steady
// (docs/messaging-faults.md, "Where these tests stand"). They run with MEMWIRE_XNODE_FAULTS=1
// (the agent-restart half also needs MEMWIRE_XNODE_RESTART=1). Never on Deno: they were never
// run there — excluded by runtime, not skipped (the container tier counts a skip as a failure).
const onDeno = typeof (globalThis as { Deno?: unknown }).Deno !== 'undefined';
const NOT_YET = process.env.MEMWIRE_XNODE_FAULTS === '1' && !onDeno ? [] : ['test/rxe/postbox-xnode-faults.test.ts'];

export default defineConfig({
  test: {
    include: ['test/rxe/**/*.test.ts'],
    exclude: ['**/node_modules/**', ...NOT_YET],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
