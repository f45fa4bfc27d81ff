#!/usr/bin/env bash
# `npm run test:container`: the rxe tier inside the project's container image, against real
# Soft-RoCE devices. This host's kernel has no RDMA, so the container runs inside the QEMU guest of
# scripts/rxe/run.sh, which has rxe0/rxe1; the image is built here with podman and read by the
# guest from this host's image store. See docs/containers.md.
#
#   scripts/container/test.sh [--timeout SECONDS] [--build-only] [-- COMMAND...]
#
# 1. apt: podman, runc, mmdebstrap (if missing; needs root)
# 2. podman configured privately under .cache/container (scripts/container/podman-env.sh)
# 3. the base image: MEMWIRE_CONTAINER_BASE if set; else node:20-bookworm-slim if present or
#    pullable; else a local stand-in (scripts/container/base-image.sh)
# 4. the image: `podman build` of the Dockerfile (layers cached), then squashed to one layer —
#    the guest sees the store through 9p, which loses the whiteouts that layers stack on
# 5. scripts/rxe/run.sh -- scripts/container/guest.sh: the container runs with the image's own
#    command (the rxe tier) unless COMMAND is given; its output streams here (not with --build-only)
# Exit status: the container's (the tier's), or run.sh's harness codes (120-125), or 1 with a
# "test-container:" line when preparation fails. Nothing is left running or mounted.
set -Eeuo pipefail
{   # parsed whole before it runs (an edit during a run must not shift what bash executes)

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
CACHE=$ROOT/.cache/container
IMAGE=localhost/memwire-rxe:test
LAYERED=localhost/memwire-rxe:layers
STANDIN=localhost/memwire/node:20-bookworm-slim
OFFICIAL=docker.io/library/node:20-bookworm-slim
TIMEOUT=${MEMWIRE_CONTAINER_TIMEOUT:-3600}
BUILD_ONLY=0
PACKAGES=(podman runc mmdebstrap)

T0=$SECONDS
say() { printf 'test-container: [%4ss] %s\n' "$((SECONDS - T0))" "$*" >&2; }
die() { say "$*"; exit 1; }

while (($#)); do
  case $1 in
    --timeout) TIMEOUT=${2:?--timeout needs seconds}; shift 2 ;;
    --build-only) BUILD_ONLY=1; shift ;;
    --) shift; break ;;
    *) die "usage: scripts/container/test.sh [--timeout SECONDS] [--build-only] [-- COMMAND...]" ;;
  esac
done
[[ $TIMEOUT =~ ^[0-9]+$ ]] || die "--timeout must be a number of seconds, got '$TIMEOUT'"

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  [[ $(id -u) == 0 ]] || die "missing packages (${missing[*]}): run as root, or install them"
  say "installing ${missing[*]}"
  mkdir -p "$CACHE"
  export DEBIAN_FRONTEND=noninteractive
  apt_install() { apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 "${missing[@]}" >>"$CACHE/apt.log" 2>&1; }
  apt_install || { apt-get update -q >>"$CACHE/apt.log" 2>&1 || true; apt_install; } ||
    { tail -20 "$CACHE/apt.log" >&2; die "apt-get install ${missing[*]} failed"; }
fi
[[ $(id -u) == 0 ]] || die "podman runs rootful here (the guest has no user namespaces set up): run as root"

# shellcheck source=podman-env.sh
source "$ROOT/scripts/container/podman-env.sh"
podman_configure "$CACHE/conf" "$CACHE/storage" "$CACHE/run"
say "podman $(podman version --format '{{.Client.Version}}'), runc $(runc --version | sed -n 's/^runc version //p'); store ${CACHE#"$ROOT"/}/storage"

# One test-container at a time per checkout: they share the store and the image names (held
# until the guest has run the image).
exec 8>"$CACHE/.lock"
flock -w 600 8 || die "another test:container holds ${CACHE#"$ROOT"/}/.lock"

if [[ -n ${MEMWIRE_CONTAINER_BASE:-} ]]; then
  BASE=$MEMWIRE_CONTAINER_BASE
elif podman image exists "$OFFICIAL"; then
  BASE=$OFFICIAL
elif podman image exists "$STANDIN"; then
  BASE=$STANDIN
elif timeout 60 podman pull --quiet "$OFFICIAL" >"$CACHE/pull.log" 2>&1; then
  BASE=$OFFICIAL
else
  say "cannot pull $OFFICIAL ($(tail -1 "$CACHE/pull.log" | cut -c1-160)); making the local stand-in $STANDIN"
  "$ROOT/scripts/container/base-image.sh" "$STANDIN" >&2 || die "making the base image failed"
  BASE=$STANDIN
fi
say "base image $BASE"

# Where TLS is re-signed (NODE_EXTRA_CA_CERTS set on this host), npm in the build needs that CA.
SECRET=()
if [[ -s ${NODE_EXTRA_CA_CERTS:-} ]]; then
  SECRET=(--secret "id=ca-bundle,src=$NODE_EXTRA_CA_CERTS")
fi
say "building $IMAGE from the Dockerfile"
podman build --quiet --network host --pull=never --build-arg "BASE=$BASE" "${SECRET[@]}" \
  -t "$LAYERED" -f "$ROOT/Dockerfile" "$ROOT" >/dev/null || die "podman build failed"
mkdir -p "$CACHE/empty"   # the squash build's context: nothing to send
printf 'FROM %s\n' "$LAYERED" | podman build --quiet --network host --pull=never --squash-all \
  -t "$IMAGE" -f - "$CACHE/empty" >/dev/null || die "squashing the image failed"
podman image prune -f >/dev/null   # the previous builds' untagged images
say "image $IMAGE: $(podman image inspect "$IMAGE" --format '{{len .RootFS.Layers}} layer, {{.Size}} bytes')"
((BUILD_ONLY)) && { say "built (--build-only: not run)"; exit 0; }

say "running it in the rxe guest"
# The output streams through tee; the copy is checked below (and kept for a look afterwards).
rc=0
"$ROOT/scripts/rxe/run.sh" --timeout "$TIMEOUT" -- scripts/container/guest.sh "$IMAGE" "$CACHE/storage" "$@" |
  tee "$CACHE/last-run.log" || rc=$?
# The guest has both devices and the entry script exports every MEMWIRE_RXE_* the tests read, so a
# skipped test here means something is missing from the image or the entry: a failure. (Only for
# the tier itself, i.e. no COMMAND given.)
if ((rc == 0 && $# == 0)); then
  total=$(grep -E '^total: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped' "$CACHE/last-run.log" | tail -1)
  if [[ -z $total ]]; then
    say "the tier printed no 'total:' line"; rc=1
  elif [[ $total != *", 0 skipped" ]]; then
    say "$total: every rxe test must run in the container (why each skipped: ${CACHE#"$ROOT"/}/last-run.log)"; rc=1
  fi
fi
say "done: exit $rc"
exit "$rc"
}
