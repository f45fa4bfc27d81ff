/**
 * Checks every struct offset, size and constant in ffi/verbs-layout.ts against the C compiler:
 * a probe is generated from the layout tables, compiled with gcc against the installed
 * verbs.h / rdma_cma.h (libibverbs-dev, librdmacm-dev) and run; it prints JSON. Runs on the host:
 * no RDMA device is needed.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { C, IBV_QP_INIT_ATTR, IBV_SRQ_INIT_ATTR, LAYOUT_HEADERS, LAYOUTS } from '../../ffi/verbs-layout.js';

const haveGcc = spawnSync('gcc', ['--version']).status === 0;
const haveHeaders = existsSync('/usr/include/infiniband/verbs.h') && existsSync('/usr/include/rdma/rdma_cma.h');
const skipReason = !haveGcc ? 'gcc is not installed' : !haveHeaders ? 'libibverbs-dev / librdmacm-dev headers are not installed' : '';

function probeSource(): string {
  const lines: string[] = LAYOUT_HEADERS.map((h) => `#include <${h}>`);
  lines.push('int main(void) {', '  int first = 1;', '  printf("{");');
  const emit = (key: string, expr: string, fmt = '%lld', cast = '(long long)') =>
    lines.push(`  printf("%s\\"${key}\\": ${fmt}", first ? "" : ",", ${cast}(${expr})); first = 0;`);
  for (const s of LAYOUTS) {
    emit(`${s.c}#size`, `sizeof(${s.c})`);
    for (const field of Object.keys(s.fields)) emit(`${s.c}#${field}`, `offsetof(${s.c}, ${field})`);
  }
  for (const name of Object.keys(C)) emit(`const#${name}`, name);
  emit('const#__VERBS_ABI_IS_EXTENDED', '(unsigned long long)(uintptr_t)__VERBS_ABI_IS_EXTENDED == UINTPTR_MAX');
  lines.push('  printf("}\\n");', '  return 0;', '}');
  return lines.join('\n');
}

// In CI the probe must run: scripts/setup-host.sh installs gcc and the headers, so a skip there
// would hide a missing install step.
if (skipReason && process.env.CI) throw new Error(`verbs layout probe cannot run in CI: ${skipReason}`);

describe.skipIf(!!skipReason)(`struct layouts and constants vs. the C compiler${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  let dir = '';
  let actual: Record<string, number> = {};

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'memwire-layout-'));
    writeFileSync(join(dir, 'probe.c'), probeSource());
    execFileSync('gcc', ['-std=gnu11', '-Wall', '-o', join(dir, 'probe'), join(dir, 'probe.c')], { stdio: 'pipe' });
    actual = JSON.parse(execFileSync(join(dir, 'probe'), { encoding: 'utf8' }));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  for (const s of LAYOUTS) {
    it(`${s.c}: size and every field offset`, () => {
      const expected: Record<string, number> = { [`${s.c}#size`]: s.size };
      for (const [field, offset] of Object.entries(s.fields)) expected[`${s.c}#${field}`] = offset;
      const got = Object.fromEntries(Object.keys(expected).map((k) => [k, actual[k]]));
      expect(got).toEqual(expected);
    });
  }

  it('covers the shared receive queue structs and the QP init attribute that names an SRQ', () => {
    // Listed explicitly so that dropping one from LAYOUTS fails here instead of going unchecked.
    const probed = new Set(LAYOUTS.map((s) => s.c));
    for (const c of ['struct ibv_srq_init_attr', 'struct ibv_srq_attr', 'struct ibv_srq']) expect(probed.has(c), c).toBe(true);
    expect(LAYOUTS.find((s) => s.c === 'struct ibv_qp_init_attr')?.fields).toHaveProperty('srq');
    expect(actual['struct ibv_srq_init_attr#attr.max_wr']).toBe(IBV_SRQ_INIT_ATTR.fields['attr.max_wr']);
    expect(actual['struct ibv_qp_init_attr#srq']).toBe(IBV_QP_INIT_ATTR.fields.srq);
  });

  it('every constant has the value the headers give it', () => {
    const got = Object.fromEntries(Object.keys(C).map((k) => [k, actual[`const#${k}`]]));
    expect(got).toEqual({ ...C });
  });

  it('__VERBS_ABI_IS_EXTENDED is (void *)UINTPTR_MAX, as the verbs_context shims assume', () => {
    expect(actual['const#__VERBS_ABI_IS_EXTENDED']).toBe(1);
  });
});
