#!/usr/bin/env bash
# Entry point of the Dockerfile's image: make sure there is an RDMA device to test on, then run
# the given command (default: the rxe tier, `node scripts/test-all.mjs rxe-node rxe-bun`, the same
# command the QEMU guest runs).
#
# Devices: the host's (--device /dev/infiniband). If there is none and MEMWIRE_RXE_NETDEV names a
# network interface, an rxe device is created on it (`rdma link add rxe0 type rxe netdev …`,
# needs NET_ADMIN and the rdma_rxe module on the host). The tests use MEMWIRE_RXE_DEV0 and
# MEMWIRE_RXE_DEV1 (default: the first device, and the second or the first again).
set -Eeuo pipefail

ulimit -l unlimited 2>/dev/null || echo "docker-entry: memlock is limited ($(ulimit -l)); run with --ulimit memlock=-1" >&2

devices() { ls /sys/class/infiniband 2>/dev/null || true; }

if [[ -z $(devices) && -n ${MEMWIRE_RXE_NETDEV:-} ]]; then
  echo "docker-entry: no RDMA device; creating rxe0 on ${MEMWIRE_RXE_NETDEV}" >&2
  modprobe rdma_rxe 2>/dev/null || true
  rdma link add rxe0 type rxe netdev "$MEMWIRE_RXE_NETDEV"
  # The RoCE v2 GID of the interface's IPv4 address appears a moment after the link.
  for _ in $(seq 1 50); do
    ibv_devinfo -d rxe0 -v 2>/dev/null | grep -q 'GID\[.*::ffff:' && break
    sleep 0.1
  done
fi

mapfile -t found < <(devices)
if ((${#found[@]} == 0)); then
  echo "docker-entry: no RDMA device: pass --device /dev/infiniband (and the host's devices), or set MEMWIRE_RXE_NETDEV to a netdev to create rxe0 on (needs --cap-add NET_ADMIN)" >&2
  exit 1
fi
export MEMWIRE_RXE_DEV0=${MEMWIRE_RXE_DEV0:-${found[0]}}
export MEMWIRE_RXE_DEV1=${MEMWIRE_RXE_DEV1:-${found[1]:-${found[0]}}}
echo "docker-entry: devices ${found[*]}; testing ${MEMWIRE_RXE_DEV0} and ${MEMWIRE_RXE_DEV1}" >&2
exec "$@"
