#!/bin/bash
# Stage 2 of the memwire rxe guest, PID 1 after switch_root (see scripts/rxe/run.sh and README.md).
# Mounts the scratch file systems, creates veth0/veth1 and rxe0/rxe1 (the modules were loaded by
# the initramfs), runs the job with its stdout/stderr on the virtio-serial ports "out"/"err",
# writes its exit status to /run/rxe-vm/status and reboots (QEMU has -no-reboot: that ends it).
# Every program started here costs 0.1-0.3 s under TCG, so builtins are used where they can be.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
R=/run/rxe-vm
# shellcheck source=/dev/null
source "$R/config"   # KVER MODROOT PROJECT MTU CMD_TIMEOUT SETUP_TIMEOUT VERBOSE

uptime_s() { local u _; read -r u _ </proc/uptime; echo "$u"; }
console() { echo "rxe-vm guest: $*" >/dev/console; }
put() { printf '%s\n' "$2" >"$R/$1"; }   # a status file for the host

shutdown_now() {
  sync                           # the project share is cached (cache=loose): flush its writes
  echo b >/proc/sysrq-trigger    # immediate reset; QEMU exits because of -no-reboot
  sleep 10
}

put booted "uptime $(uptime_s)s"

# Output ports: /dev/vportNpM, found by the name given on the QEMU command line.
OUT=/dev/null ERR=/dev/console
for d in /sys/class/virtio-ports/*; do
  read -r name <"$d/name" 2>/dev/null || continue
  case $name in
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
# step DESCRIPTION COMMAND...: one setup command, bounded by what is left of the setup time.
step() {
  local desc=$1 left out; shift
  left=$((SETUP_DEADLINE - SECONDS))
  ((left > 0)) || setup_fail "$desc: setup time (${SETUP_TIMEOUT}s) used up"
  out=$(timeout -k 2 "$left" "$@" 2>&1) || setup_fail "$desc: '$*' failed: ${out:0:500}"
}

vlog "stage 2 started"
# /dev/shm for POSIX shared memory, a private /tmp, and the kernel package's modules where
# modprobe and the kernel's own module requests look for them.
busybox mkdir -p /dev/shm /dev/pts "/lib/modules/$KVER" || setup_fail "mkdir"
busybox mount -t tmpfs -o mode=1777,nosuid,nodev shm /dev/shm || setup_fail "mount /dev/shm"
busybox mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts || setup_fail "mount /dev/pts"
# A checkout under /tmp (CI may clone there) is mounted at its own path: a tmpfs over /tmp would
# hide it, so then /tmp stays the overlay's (guest-private writes, the host's files readable).
case "$PROJECT/" in
  /tmp/*) vlog "project under /tmp: no separate tmpfs on /tmp" ;;
  *) busybox mount -t tmpfs -o mode=1777,nosuid,nodev tmp /tmp || setup_fail "mount /tmp" ;;
esac
busybox mount -t configfs configfs /sys/kernel/config 2>/dev/null
busybox mount -o bind "$MODROOT/lib/modules/$KVER" "/lib/modules/$KVER" || setup_fail "bind /lib/modules/$KVER"
echo memwire-rxe >/proc/sys/kernel/hostname

# Normally loaded by the initramfs already.
[[ -d /sys/module/rdma_rxe && -d /sys/module/rdma_ucm && -d /sys/module/veth ]] ||
  step "load RDMA modules" modprobe -a veth rdma_rxe ib_uverbs rdma_ucm

# Packets between the two ends come from "local" addresses: accept them, no reverse-path filter.
sysctl_set() { echo "$2" 2>/dev/null >"/proc/sys/net/ipv4/conf/$1/$3"; }   # IFACE VALUE KEY
for i in all default; do
  sysctl_set "$i" 1 accept_local || setup_fail "sysctl net.ipv4.conf.$i.accept_local=1"
  sysctl_set "$i" 0 rp_filter || setup_fail "sysctl net.ipv4.conf.$i.rp_filter=0"
done
step "create veth pair" ip -batch - <<EOF
link set lo up
link add veth0 mtu $MTU type veth peer name veth1 mtu $MTU
EOF
for i in veth0 veth1; do
  sysctl_set "$i" 1 accept_local || setup_fail "sysctl net.ipv4.conf.$i.accept_local=1"
  sysctl_set "$i" 0 rp_filter || setup_fail "sysctl net.ipv4.conf.$i.rp_filter=0"
done
step "configure veth pair" ip -batch - <<EOF
addr add 192.0.2.1/24 dev veth0
addr add 192.0.2.2/24 dev veth1
link set veth0 up
link set veth1 up
EOF
step "rdma link rxe0/rxe1" rdma -b - <<EOF
link add rxe0 type rxe netdev veth0
link add rxe1 type rxe netdev veth1
EOF
vlog "rxe devices added"

# GID index 1 (::ffff:192.0.2.x, RoCE v2) shows up a moment after the address; the port must be ACTIVE.
exec {NAP_FD}<> <(:)   # a pipe nobody writes to: reading it with -t is a sleep
wait_ready() {
  local dev=$1 want=$2 gid='' state=''
  while :; do
    read -r gid <"/sys/class/infiniband/$dev/ports/1/gids/1" 2>/dev/null
    read -r state <"/sys/class/infiniband/$dev/ports/1/state" 2>/dev/null
    [[ $gid == "$want" && $state == *ACTIVE* ]] && return 0
    ((SECONDS < SETUP_DEADLINE)) || setup_fail "$dev: GID 1 is '$gid' (want $want), port state '$state'"
    read -r -t 0.05 -u "$NAP_FD" || true   # sleep 50 ms without starting a program
  done
}
wait_ready rxe0 0000:0000:0000:0000:0000:ffff:c000:0201
wait_ready rxe1 0000:0000:0000:0000:0000:ffff:c000:0202
put ready "uptime $(uptime_s)s"
vlog "rxe0/rxe1 ready, running the command"

ulimit -l unlimited
ulimit -n 65536 2>/dev/null
timeout -k 10 "$CMD_TIMEOUT" bash "$R/job.sh" </dev/null >"$OUT" 2>"$ERR"
status=$?
vlog "command exited with $status"
put status "$status"
shutdown_now
