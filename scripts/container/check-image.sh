#!/usr/bin/env bash
# Checks, inside the image, that each runtime starts and loads its FFI backend and the native
# libraries memwire needs: `memwire doctor --json` under Node (koffi), Bun (bun:ffi) and Deno
# (Deno's own FFI) must name that runtime and backend, create and open a shared-memory region, and load
# libibverbs and librdmacm. The Dockerfile runs it as the build's last step (a broken image is
# never tagged); run it again in a built image with
#   podman run --rm --entrypoint scripts/container/check-image.sh memwire-rxe
# Needs no RDMA device. Prints one line per runtime; exits 1 if any check fails.
set -euo pipefail
cd "$(dirname "$0")/../.."

CLI=dist/src/cli/main.js
failed=0
check() {   # RUNTIME BACKEND COMMAND...
  local runtime=$1 backend=$2 out; shift 2
  if ! out=$(timeout 60 "$@" "$CLI" doctor --json 2>&1); then
    echo "check-image: FAIL $runtime: '$* $CLI doctor --json' failed: ${out:0:800}" >&2
    failed=1; return
  fi
  # The verdict is computed by node from the JSON report (node is the one runtime always present).
  if ! node -e '
    const [want, backend, text] = process.argv.slice(1);
    let r;
    try { r = JSON.parse(text); } catch { console.error("not JSON: " + text.slice(0, 400)); process.exit(1); }
    const wrong = [];
    if (r.runtime !== want) wrong.push(`runtime is ${r.runtime}`);
    if (r.backend !== backend) wrong.push(`backend is ${r.backend}`);
    for (const k of ["sharedMemory", "libibverbs", "librdmacm"]) if (!r[k]?.ok) wrong.push(`${k}: ${r[k]?.detail}`);
    if (wrong.length) { console.error(wrong.join("; ")); process.exit(1); }
    console.log(`check-image: ok   ${r.runtime} ${r.runtimeVersion} (${r.backend}): shared memory, libibverbs, librdmacm`);
  ' "$runtime" "$backend" "$out"; then
    echo "check-image: FAIL $runtime (above)" >&2
    failed=1
  fi
}
check node koffi node
check bun bun:ffi node_modules/.bin/bun --bun
check deno deno node_modules/.bin/deno run --allow-all
exit "$failed"
