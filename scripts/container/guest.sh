#!/usr/bin/env bash
# Runs inside the rxe guest (scripts/rxe/run.sh), started by scripts/container/test.sh: runs the
# project's image with the guest's rxe0/rxe1, with the image's own command unless one is given.
#
#   scripts/container/guest.sh IMAGE HOST_STORE [COMMAND...]
#
# The guest's root is this host's root (9p, read-only, with a tmpfs overlay), so podman, runc and
# conmon are here already. Podman gets a store of its own on /run (tmpfs) and reads IMAGE from the
# host's store, seen through 9p, as a read-only additional image store: nothing is copied or
# loaded. What the container needs: the devices (--device /dev/infiniband), the host network (rdma_cm
# resolves the devices' addresses there), IPC_LOCK and an unlimited memlock (registration pins
# memory), and SYS_ADMIN: the two-node tests (test/rxe/two-node.ts) give each node its own mount
# namespace and /dev/shm (unshare -m, mount -t tmpfs). Its exit status is this script's.
set -Eeuo pipefail
IMAGE=${1:?usage: guest.sh IMAGE HOST_STORE [COMMAND...]}
HOST_STORE=${2:?usage: guest.sh IMAGE HOST_STORE [COMMAND...]}
shift 2
[[ ${MEMWIRE_RXE_GUEST:-} == 1 ]] || { echo "guest.sh: runs inside the rxe guest only (scripts/container/test.sh)" >&2; exit 2; }
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)

# runc needs a cgroup hierarchy; the guest's init mounts none.
mountpoint -q /sys/fs/cgroup || mount -t cgroup2 cgroup2 /sys/fs/cgroup

# shellcheck source=podman-env.sh
source "$ROOT/scripts/container/podman-env.sh"
P=/run/memwire-podman
podman_configure "$P/conf" "$P/storage" "$P/run" "$HOST_STORE"

# The 2-minute postbox soak across nodes runs in the QEMU tier (npm run test:rxe); here the same
# test runs for MEMWIRE_CONTAINER_SOAK_MS (default 20 s): the image is what this tier proves.
exec podman run --rm --pull=never --network host \
  -e MEMWIRE_XNODE_SOAK_MS="${MEMWIRE_CONTAINER_SOAK_MS:-20000}" \
  --device /dev/infiniband --cap-add IPC_LOCK --cap-add SYS_ADMIN --ulimit memlock=-1:-1 --shm-size 1g \
  "$IMAGE" "$@"
