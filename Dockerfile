# memwire's rxe tier in a container, run against RDMA devices the host already has (real
# InfiniBand/RoCE NICs, or Soft-RoCE devices made on the host with `rdma link add`). The image holds
# Debian 12's RDMA user space, Node 20, the project with its npm dependencies (Bun and Deno among
# them) and its build; its default command is the rxe tier, the same one `npm run test:rxe` runs in
# the QEMU guest. docs/containers.md says how to build and run it; `npm run test:container`
# (scripts/container/test.sh) builds it with podman and runs it inside that guest.
#
#   docker build -t memwire-rxe .
#   docker run --rm --network host --device /dev/infiniband --cap-add IPC_LOCK --cap-add SYS_ADMIN \
#     --ulimit memlock=-1:-1 memwire-rxe
#
# BASE: any Debian 12 image with Node >= 20 and npm in /usr/local (the official node image, or the
# stand-in scripts/container/bases.sh makes where no registry is reachable).
ARG BASE=node:20-bookworm-slim
FROM ${BASE}

# The RDMA user space (libibverbs and its providers, librdmacm), the C tools the tier compares
# with (ibv_rc_pingpong, perftest, rping) and iproute2 for the entry script (ip, rdma).
# taskset comes with util-linux, which is essential in Debian.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libibverbs1 ibverbs-providers librdmacm1 ibverbs-utils rdmacm-utils perftest iproute2 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/memwire
# Dependencies first, so a source change does not repeat them. `npm install`, not `npm ci`: the
# lockfile cannot list every platform's optional packages (README, "npm install, not npm ci").
# Where TLS is re-signed by a proxy, hand the CA bundle in as a build secret, e.g.
#   --secret id=ca-bundle,src=/etc/ssl/certs/ca-certificates.crt
# (podman and docker alike; a secret never lands in a layer). Without it, Node's own CAs are used.
COPY package.json package-lock.json ./
RUN --mount=type=secret,id=ca-bundle \
    if [ -s /run/secrets/ca-bundle ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/ca-bundle; fi \
 && npm install --no-audit --no-fund --no-update-notifier \
 && npm cache clean --force
COPY . .
RUN npm run build \
 && scripts/container/check-image.sh

ENTRYPOINT ["scripts/docker-entry.sh"]
CMD ["node", "scripts/test-all.mjs", "rxe-node", "rxe-bun"]
