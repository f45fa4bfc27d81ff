# memwire's rxe tier in a container, against the host's RDMA devices (real NICs, or Soft-RoCE).
# Kept in step with the guest tier (scripts/rxe/run.sh): the same Debian 12 user space and RDMA
# packages, the same test command (node scripts/test-all.mjs rxe-node rxe-bun).
#
#   docker build -t memwire-rxe .
#   docker run --rm --network host --device /dev/infiniband \
#     --cap-add IPC_LOCK --cap-add NET_ADMIN --ulimit memlock=-1 \
#     -e MEMWIRE_RXE_NETDEV=eth0 memwire-rxe
#
# With no RDMA device present, the entry script creates rxe0 on MEMWIRE_RXE_NETDEV (needs
# NET_ADMIN and the host's rdma_rxe module). Not built or run on the project's machines: they have
# no Docker engine (README, "RDMA verbs").
FROM debian:12

ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates curl gnupg xz-utils \
      rdma-core ibverbs-providers ibverbs-utils libibverbs-dev librdmacm-dev \
      perftest rdmacm-utils iproute2 kmod procps util-linux \
 && rm -rf /var/lib/apt/lists/*

# Node 20 (NodeSource's Debian repository).
RUN curl -fsSL https://deb.nodesource.com/setup_20.x | bash - \
 && apt-get install -y --no-install-recommends nodejs \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/memwire
# Dependencies first (cached layer): the dev dependencies too, Bun among them (the npm package
# "bun"), as on the project's machines. npm install, as .ci/run does: the lockfile cannot list
# every platform's optional packages (the registry mirror it was made against lacks some).
COPY package.json package-lock.json ./
RUN npm install --no-audit --no-fund
COPY . .
RUN npm run build

ENV MEMWIRE_RXE_NETDEV=""
ENTRYPOINT ["scripts/docker-entry.sh"]
CMD ["node", "scripts/test-all.mjs", "rxe-node", "rxe-bun"]
