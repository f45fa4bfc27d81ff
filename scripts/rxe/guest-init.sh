#!/bin/bash
# Stage 2 of the memwire rxe guest, PID 1 after switch_root (see scripts/rxe/run.sh and README.md).
# Mounts the scratch file systems, loads the RDMA modules, creates veth0/veth1 and rxe0/rxe1,
# runs the job with its stdout/stderr on the virtio-serial ports "out"/"err", writes its exit
# status to /run/rxe-vm/status and reboots (QEMU runs with -no-reboot, so that ends it).
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
R=/run/rxe-vm
# shellcheck source=/dev/null
source "$R/config"   # KVER MODROOT PROJECT MTU CMD_TIMEOUT SETUP_TIMEOUT VERBOSE

uptime_s() { local u _; read -r u _ </proc/uptime; echo "$u"; }
console() { echo "rxe-vm guest: $*" >/dev/console; }

shutdown_now() {
  sync
  busybox reboot -f 2>/dev/null
  sleep 2
  echo b >/proc/sysrq-trigger
  sleep 10
}

# Status files are written whole, then renamed, so the host never reads half of one.
put() { printf '%s\n' "$2" >"$R/$1.tmp" && mv -f "$R/$1.tmp" "$R/$1"; }

put booted "uptime $(uptime_s)s"

# Output ports: find /dev/vportNpM by the name given on the QEMU command line.
OUT=/dev/null ERR=/dev/console
for d in /sys/class/virtio-ports/*; do
  case $(cat "$d/name" 2>/dev/null) in
    out) OUT=/dev/${d##*/} ;;
    err) ERR=/dev/${d##*/} ;;
  esac
done
vlog() { [[ $VERBOSE == 1 ]] && echo "rxe-vm: [guest $(uptime_s)s] $*" >"$ERR"; console "$*"; }

SETUP_DEADLINE=$((SECONDS + SETUP_TIMEOUT))
setup_fail() {
  console "setup failed: $*"
  put setup-failed "$*"
  shutdown_now
}
# step DESCRIPTION COMMAND...: runs one setup command with what is left of the setup time.
step() {
  local desc=$1 left out; shift
  left=$((SETUP_DEADLINE - SECONDS))
  ((left > 0)) || setup_fail "$desc: setup time (${SETUP_TIMEOUT}s) used up"
  out=$(timeout -k 2 "$left" "$@" 2>&1) || setup_fail "$desc: '$*' failed: ${out:0:500}"
}

vlog "stage 2 started"
step "mount /dev/shm" mkdir -p /dev/shm /dev/pts
step "mount /dev/shm" mount -t tmpfs -o mode=1777,nosuid,nodev shm /dev/shm
step "mount /dev/pts" mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
step "mount /tmp" mount -t tmpfs -o mode=1777,nosuid,nodev tmp /tmp
mountpoint -q /sys/kernel/config || mount -t configfs configfs /sys/kernel/config 2>/dev/null
hostname memwire-rxe 2>/dev/null
step "loopback up" ip link set lo up

# The unpacked kernel package's modules, where modprobe (and the kernel's own requests) look.
step "bind /lib/modules" mkdir -p "/lib/modules/$KVER"
step "bind /lib/modules" mount --bind "$MODROOT/lib/modules/$KVER" "/lib/modules/$KVER"
step "load RDMA modules" modprobe -a veth rdma_rxe ib_uverbs rdma_ucm
vlog "modules loaded"

# Packets between the two ends come from "local" addresses: accept them, no reverse-path filter.
sysctl_set() { echo "$2" >"/proc/sys/net/ipv4/conf/$1/${3}"; }
for i in all default; do
  step "sysctl $i" sysctl_set "$i" 1 accept_local
  step "sysctl $i" sysctl_set "$i" 0 rp_filter
done
step "create veth pair" ip link add veth0 mtu "$MTU" type veth peer name veth1 mtu "$MTU"
for i in veth0 veth1; do
  step "sysctl $i" sysctl_set "$i" 1 accept_local
  step "sysctl $i" sysctl_set "$i" 0 rp_filter
done
step "address veth0" ip addr add 192.0.2.1/24 dev veth0
step "address veth1" ip addr add 192.0.2.2/24 dev veth1
step "veth0 up" ip link set veth0 up
step "veth1 up" ip link set veth1 up
step "rdma link rxe0" rdma link add rxe0 type rxe netdev veth0
step "rdma link rxe1" rdma link add rxe1 type rxe netdev veth1
vlog "rxe devices added"

# GID index 1 (::ffff:192.0.2.x, RoCE v2) shows up a moment after the address; the port must be ACTIVE.
wait_ready() {
  local dev=$1 want=$2 gid state
  while :; do
    gid=$(cat "/sys/class/infiniband/$dev/ports/1/gids/1" 2>/dev/null)
    state=$(cat "/sys/class/infiniband/$dev/ports/1/state" 2>/dev/null)
    [[ $gid == "$want" && $state == *ACTIVE* ]] && return 0
    ((SECONDS < SETUP_DEADLINE)) || setup_fail "$dev: GID 1 '$gid' (want $want), state '$state'"
    sleep 0.05
  done
}
wait_ready rxe0 0000:0000:0000:0000:0000:ffff:c000:0201
wait_ready rxe1 0000:0000:0000:0000:0000:ffff:c000:0202
put ready "uptime $(uptime_s)s"
vlog "rxe0/rxe1 ready, running the command"

ulimit -l unlimited
ulimit -n 65536 2>/dev/null
cd "$PROJECT" || true
timeout -k 10 "$CMD_TIMEOUT" bash "$R/job.sh" </dev/null >"$OUT" 2>"$ERR"
status=$?
vlog "command exited with $status"
put status "$status"
shutdown_now
