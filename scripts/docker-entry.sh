#!/usr/bin/env bash
# Entry point of the Dockerfile's image: find the RDMA devices the container was given, tell the
# tests which two to use and their IPv4 addresses, then run the command (default: the rxe tier,
# `node scripts/test-all.mjs rxe-node rxe-bun`, the command the QEMU guest runs).
#
# Devices come from the host: `--device /dev/infiniband` (and --network host, without which
# rdma_cm cannot resolve the devices' addresses). The container does not create devices: make
# Soft-RoCE ones on the host (`rdma link add rxe0 type rxe netdev eth0`; docs/containers.md says
# why). Exported for the tests, each only if not already set:
#   MEMWIRE_RXE_DEV0/DEV1  the first two devices (or the only one, twice: loopback)
#   MEMWIRE_RXE_IP0/IP1    the IPv4 address of each device's network interface (port 1's netdev),
#                          which the rdma_cm tests bind to
set -Eeuo pipefail

say() { echo "docker-entry: $*" >&2; }

ulimit -l unlimited 2>/dev/null || say "memlock is limited ($(ulimit -l) KiB); run with --ulimit memlock=-1:-1"

mapfile -t found < <(ls /sys/class/infiniband 2>/dev/null || true)
if ((${#found[@]} == 0)); then
  say "no RDMA device: run with --device /dev/infiniband --network host on a host that has one (docs/containers.md)"
  exit 1
fi
export MEMWIRE_RXE_DEV0=${MEMWIRE_RXE_DEV0:-${found[0]}}
export MEMWIRE_RXE_DEV1=${MEMWIRE_RXE_DEV1:-${found[1]:-${found[0]}}}

# The uverbs character device of an RDMA device, e.g. /dev/infiniband/uverbs0 (empty if none).
uverbs_node() {
  local d ibdev
  for d in /sys/class/infiniband_verbs/uverbs*; do
    [[ -r $d/ibdev ]] || continue
    read -r ibdev <"$d/ibdev"
    [[ $ibdev == "$1" ]] && { echo "/dev/infiniband/${d##*/}"; return 0; }
  done
  return 0   # none: the caller says so (a failing function would end the script under set -e)
}

# The network interface of port 1: RoCE devices name it per GID (gid_attrs/ndevs, readable for the
# GIDs in use); IPoIB and others through `rdma link`.
netdev_of() {
  local f nd=''
  for f in "/sys/class/infiniband/$1/ports/1/gid_attrs/ndevs/"{0,1}; do
    nd=$(cat "$f" 2>/dev/null || true)
    [[ -n $nd ]] && { echo "$nd"; return; }
  done
  rdma link show "$1/1" 2>/dev/null | sed -n 's/.* netdev \([^ ]*\).*/\1/p' || true
}

ipv4_of() {   # the first global IPv4 address of an interface
  ip -4 -o addr show dev "$1" scope global 2>/dev/null | sed -n 's|.* inet \([0-9.]*\)/.*|\1|p' | head -1 || true
}

for i in 0 1; do
  dev_var=MEMWIRE_RXE_DEV$i ip_var=MEMWIRE_RXE_IP$i
  dev=${!dev_var}
  [[ -d /sys/class/infiniband/$dev ]] || { say "$dev_var=$dev: no such RDMA device (found: ${found[*]})"; exit 1; }
  node=$(uverbs_node "$dev")
  if [[ -z $node || ! -c $node ]]; then
    say "$dev has no uverbs device node${node:+ ($node)} in the container: run with --device /dev/infiniband"
    exit 1
  fi
  if [[ -z ${!ip_var:-} ]]; then
    netdev=$(netdev_of "$dev")
    ip=${netdev:+$(ipv4_of "$netdev")}
    if [[ -n $ip ]]; then
      export "$ip_var=$ip"
    else
      say "$dev: no IPv4 address found (netdev '${netdev:-none}'): the rdma_cm tests will skip; set $ip_var, or run with --network host"
    fi
  fi
done
say "devices ${found[*]}; testing ${MEMWIRE_RXE_DEV0} (${MEMWIRE_RXE_IP0:-no IPv4}) and ${MEMWIRE_RXE_DEV1} (${MEMWIRE_RXE_IP1:-no IPv4})"
exec "$@"
