#!/usr/bin/env bash
# Installs the Debian packages memwire's tests and benchmarks use on the host, if missing:
#   libibverbs1 ibverbs-providers librdmacm1  — so `memwire doctor` can load the RDMA libraries
#   ucx-utils                                  — ucx_perftest, the shared-memory benchmark anchor
#   gcc libc6-dev                              — C baselines the benchmarks compile
#   libibverbs-dev librdmacm-dev               — verbs.h / rdma_cma.h: test/unit/verbs-layout checks
#                                                every struct offset against them (it skips without)
# Idempotent; runs apt-get only when something is missing. Needs root (or sudo).
set -euo pipefail
packages=(libibverbs1 ibverbs-providers librdmacm1 ucx-utils gcc libc6-dev libibverbs-dev librdmacm-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup-host: all Debian packages present"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "setup-host: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup-host: done"
