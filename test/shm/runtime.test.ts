// Which runtime and FFI backend this run exercises: asserted first, so a Bun run that silently
// fell back to koffi (or the reverse) fails instead of passing for the wrong reason.
import { describe, expect, it } from 'vitest';
import { platform } from '../../src/index.js';

describe('runtime and backend', () => {
  it('are the ones this run was started for', () => {
    const runtime = process.env.MEMWIRE_EXPECT_RUNTIME;
    const backend = process.env.MEMWIRE_EXPECT_BACKEND;
    console.log(`runtime ${platform.runtime} ${platform.runtimeVersion}, backend ${platform.backend}`);
    // Deno picks its own FFI unless MEMWIRE_DENO_BACKEND=koffi asks for koffi through npm.
    const expected = platform.runtime === 'bun' ? 'bun:ffi' : platform.runtime === 'deno' && process.env.MEMWIRE_DENO_BACKEND !== 'koffi' ? 'deno' : 'koffi';
    expect(platform.backend).toBe(expected);
    if (runtime) expect(platform.runtime).toBe(runtime);
    if (backend) expect(platform.backend).toBe(backend);
  });
});
