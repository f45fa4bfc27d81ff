#!/usr/bin/env bash
# Runs one command inside a throw-away QEMU guest that has two real Soft-RoCE (rdma_rxe) devices,
# rxe0 and rxe1, on a veth pair. For hosts whose kernel has no RDMA. See scripts/rxe/README.md.
#
#   scripts/rxe/run.sh [--timeout SECONDS] [--mtu 1500|9000] [--verbose] -- <command...>
#
# Exit status: the command's own, or one of the harness codes below (each also prints a line
# starting with "rxe-vm:" on stderr).
set -Eeuo pipefail

# The whole script is one { … } block, so bash parses all of it before running any: bash reads a
# script as it goes, and an edit of this file during a run (runs last minutes) otherwise makes it
# execute a shifted fragment — seen as "line 373: RE/setup-failed): No such file or directory".
{

readonly EXIT_GUEST_LOST=120   # the guest died or hung during the command without reporting status
readonly EXIT_USAGE=121        # bad arguments
readonly EXIT_HOST=122         # host preparation failed: apt, kernel download, cache build, qemu start
readonly EXIT_BOOT=123         # the guest did not boot (to its second stage) in time
readonly EXIT_TIMEOUT=124      # the command ran out of time (same code as timeout(1))
readonly EXIT_SETUP=125        # modules, veth, sysctls or rxe devices failed or timed out in the guest

SELF_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
ROOT=$(cd "$SELF_DIR/../.." && pwd -P)
CACHE="$ROOT/.cache/rxe-vm"

CMD_TIMEOUT=${MEMWIRE_RXE_TIMEOUT:-600}
BOOT_TIMEOUT=${MEMWIRE_RXE_BOOT_TIMEOUT:-90}
SETUP_TIMEOUT=${MEMWIRE_RXE_SETUP_TIMEOUT:-90}
MTU=${MEMWIRE_RXE_MTU:-1500}
MEM=${MEMWIRE_RXE_MEM:-2048}
SMP=${MEMWIRE_RXE_SMP:-2}
VERBOSE=${MEMWIRE_RXE_VERBOSE:-0}

APT_PACKAGES=(qemu-system-x86 busybox-static kmod iproute2 rdma-core ibverbs-utils ibverbs-providers
  libibverbs-dev librdmacm-dev rdmacm-utils perftest)
# What the initramfs loads before it can mount the host's root (9p over virtio-pci, overlayfs)
# and talk on the output ports (virtio_console); then, in the background while it mounts, the
# RDMA stack. Dependencies are resolved by modprobe on the host. (insmod of modules carried in the
# initramfs is cheaper under TCG than modprobe reading them through 9p.)
BOOT_MODULES=(virtio_pci 9pnet_virtio 9p overlay virtio_console)
RDMA_MODULES=(veth rdma_rxe ib_uverbs rdma_ucm)

T0=${EPOCHREALTIME/./}
say() { printf 'rxe-vm: %s\n' "$*" >&2; }
info() { [[ $VERBOSE == 1 ]] && printf 'rxe-vm: [%5ss] %s\n' "$(elapsed)" "$*" >&2 || true; }
elapsed() { local us=$((${EPOCHREALTIME/./} - T0)); printf '%d.%d' $((us / 1000000)) $((us / 100000 % 10)); }
die() { local code=$1; shift; say "$*"; exit "$code"; }

usage() {
  cat >&2 <<'EOF'
usage: scripts/rxe/run.sh [--timeout SECONDS] [--mtu MTU] [--verbose] -- <command...>
Runs <command...> in a QEMU guest with Soft-RoCE devices rxe0/rxe1 (see scripts/rxe/README.md).
EOF
  exit $EXIT_USAGE
}

while (($#)); do
  case $1 in
    --timeout) [[ $# -ge 2 ]] || usage; CMD_TIMEOUT=$2; shift 2 ;;
    --timeout=*) CMD_TIMEOUT=${1#*=}; shift ;;
    --mtu) [[ $# -ge 2 ]] || usage; MTU=$2; shift 2 ;;
    --mtu=*) MTU=${1#*=}; shift ;;
    -v|--verbose) VERBOSE=1; shift ;;
    -h|--help) usage ;;
    --) shift; break ;;
    *) break ;;
  esac
done
(($#)) || usage
for n in CMD_TIMEOUT BOOT_TIMEOUT SETUP_TIMEOUT MTU MEM SMP; do
  [[ ${!n} =~ ^[0-9]+$ && ${!n} -gt 0 ]] || die $EXIT_USAGE "$n must be a positive integer, got '${!n}'"
done
((MTU >= 1280 && MTU <= 65535)) || die $EXIT_USAGE "MTU must be within 1280..65535, got $MTU"

# --------------------------------------------------------------------------------------------
# Host preparation: packages, kernel, initramfs. Everything here fails with EXIT_HOST.

host_fail() { die $EXIT_HOST "host preparation failed: $*"; }

ensure_packages() {
  local missing=() p
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  [[ $(id -u) == 0 ]] || host_fail "missing packages (${missing[*]}); run as root or install them"
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >"$CACHE/apt.log" 2>&1; then
    apt-get update -q >>"$CACHE/apt.log" 2>&1 || true
    apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$CACHE/apt.log" 2>&1 ||
      { tail -20 "$CACHE/apt.log" >&2; host_fail "apt-get install ${missing[*]}"; }
  fi
}

# The kernel package linux-image-amd64 depends on, e.g. linux-image-6.1.0-28-amd64 -> 6.1.0-28-amd64.
resolve_kver() {
  if [[ -n ${MEMWIRE_RXE_KVER:-} ]]; then echo "$MEMWIRE_RXE_KVER"; return; fi
  # apt-cache takes ~0.8 s: remember its answer until the package lists change.
  local key pkg
  key=$(stat -c '%Y' /var/lib/apt/lists /var/lib/apt/lists/*Packages* 2>/dev/null | md5sum | cut -c1-16)
  if [[ -f $CACHE/kver.$key ]]; then cat "$CACHE/kver.$key"; return; fi
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: linux-image-\([0-9].*-amd64\)$/\1/p' | head -1)
  if [[ -n $pkg ]]; then
    rm -f "$CACHE"/kver.*; echo "$pkg" >"$CACHE/kver.$key"
  else
    # No apt lists (or no network): fall back to the newest complete cache.
    pkg=$(ls -1d "$CACHE"/*/.complete 2>/dev/null | sed 's|/.complete$||; s|.*/||' | sort -V | tail -1)
  fi
  [[ -n $pkg ]] || host_fail "cannot tell which kernel linux-image-amd64 depends on (run apt-get update)"
  echo "$pkg"
}

# Finds the compressed payload inside a bzImage and writes the uncompressed ELF vmlinux,
# the way the kernel's scripts/extract-vmlinux does.
extract_vmlinux() {
  local in=$1 out=$2 spec hex tool off
  for spec in '\x1f\x8b\x08:gzip -dc' '\xfd\x37\x7a\x58\x5a\x00:xz -dc' '\x28\xb5\x2f\xfd:zstd -dcq' \
              '\x02\x21\x4c\x18:lz4 -dc' '\x5d\x00\x00\x00:xz -dc --format=lzma'; do
    hex=${spec%%:*}; tool=${spec#*:}
    command -v "${tool%% *}" >/dev/null || continue
    for off in $(LC_ALL=C grep -obUaP -- "$hex" "$in" 2>/dev/null | cut -d: -f1 | head -5); do
      # The payload is followed by other data, so the decompressor complains at the end: ignore it.
      tail -c "+$((off + 1))" "$in" | $tool >"$out.tmp" 2>/dev/null || true
      if [[ $(head -c 4 "$out.tmp" 2>/dev/null | od -An -tx1 | tr -d ' \n') == 7f454c46 ]]; then
        mv "$out.tmp" "$out"; return 0
      fi
    done
  done
  rm -f "$out.tmp"; return 1
}

# Has the ELF a PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY = 18)? Then QEMU can boot it directly.
has_pvh_note() {
  command -v readelf >/dev/null || return 0   # cannot tell: try it
  local notes; notes=$(readelf -n "$1" 2>/dev/null) || return 1
  grep -E '^\s+Xen\s' <<<"$notes" | grep -qE '\(0x00000012\)|PHYS32_ENTRY'
}

prepare_kernel() {
  local kdir=$1 kver=$2 tmp deb
  [[ -f $kdir/.complete ]] && return 0
  say "preparing guest kernel $kver in ${kdir#"$ROOT"/} (one time)"
  rm -rf "$kdir"; mkdir -p "$kdir"
  tmp=$(mktemp -d "$CACHE/dl.XXXXXX")
  chmod 777 "$tmp"   # apt-get download runs as _apt
  (cd "$tmp" && apt-get download "linux-image-$kver" >"$tmp/download.log" 2>&1) ||
    { apt-get update -q >/dev/null 2>&1; (cd "$tmp" && apt-get download "linux-image-$kver" >>"$tmp/download.log" 2>&1); } ||
    { cat "$tmp/download.log" >&2; rm -rf "$tmp"; host_fail "apt-get download linux-image-$kver"; }
  deb=$(ls "$tmp"/linux-image-*.deb | head -1)
  dpkg-deb --field "$deb" Version >"$kdir/deb-version"
  dpkg -x "$deb" "$kdir/root" || { rm -rf "$tmp"; host_fail "dpkg -x $deb"; }
  rm -rf "$tmp"
  [[ -d $kdir/root/lib/modules/$kver ]] || host_fail "no /lib/modules/$kver in the kernel package"
  depmod -b "$kdir/root" "$kver" || host_fail "depmod -b $kdir/root $kver"
  cp "$kdir/root/boot/vmlinuz-$kver" "$kdir/vmlinuz"
  if extract_vmlinux "$kdir/vmlinuz" "$kdir/vmlinux" && has_pvh_note "$kdir/vmlinux"; then
    info "extracted vmlinux with a PVH entry"
  else
    rm -f "$kdir/vmlinux"; say "could not extract a PVH-bootable vmlinux; booting the bzImage (slower)"
  fi
  touch "$kdir/.complete"
}

# newc cpio writer, for hosts without cpio(1): files are given as "archive-path<TAB>host-path|dir|link:target".
write_cpio() {
  perl -e '
    use strict; my $ino = 1000;
    sub hdr { my ($name, $mode, $size) = @_;
      my $h = sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
        $ino++, $mode, 0, 0, 1, 0, $size, 0, 0, 0, 0, length($name) + 1, 0);
      my $s = $h . $name . "\0"; $s .= "\0" x ((4 - length($s) % 4) % 4); print $s; }
    sub pad { my $n = shift; print "\0" x ((4 - $n % 4) % 4); }
    binmode STDOUT;
    while (my $l = <STDIN>) { chomp $l; my ($name, $src) = split /\t/, $l, 2;
      if ($src eq "dir") { hdr($name, 040755, 0); next; }
      if ($src =~ /^link:(.*)$/) { hdr($name, 0120777, length $1); print $1; pad(length $1); next; }
      open(my $f, "<", $src) or die "$src: $!"; binmode $f; local $/; my $d = <$f>; close $f;
      my $mode = (-x $src) ? 0100755 : 0100644;
      hdr($name, $mode, length $d); print $d; pad(length $d); }
    hdr("TRAILER!!!", 0, 0); print "\0" x 512;'
}

# modules_for DIR KVER NAMES...: the .ko paths modprobe would insmod, in order, each once.
modules_for() {
  local dir=$1 kver=$2 out; shift 2
  out=$(modprobe -d "$dir" -S "$kver" --show-depends -a "$@" 2>&1) || host_fail "modprobe --show-depends $*: $out"
  awk '$1 == "insmod" && !seen[$2]++ { print $2 }' <<<"$out"
}

prepare_initramfs() {
  local kdir=$1 kver=$2 boot rdma key out work mod name i=0
  boot=$(modules_for "$kdir/root" "$kver" "${BOOT_MODULES[@]}")
  rdma=$(modules_for "$kdir/root" "$kver" "${RDMA_MODULES[@]}" | grep -vxF -f <(echo "$boot") || true)
  key=$( { cat "$SELF_DIR/initramfs-init"; echo "$boot" "$rdma"; sha256sum /bin/busybox; } | sha256sum | cut -c1-16)
  out="$kdir/initramfs-$key.cpio"
  [[ -f $out ]] && { echo "$out"; return 0; }
  work=$(mktemp -d "$CACHE/initramfs.XXXXXX")
  add_module() {   # GROUP PATH: copied (uncompressed) as mods/GROUP/NN-name.ko, NN = load order
    i=$((i + 1)); name=$(printf '%02d-%s' "$i" "$(basename "$2")"); name=${name%.xz}; name=${name%.zst}
    mkdir -p "$work/mods/$1"
    case $2 in
      *.ko.xz) xz -dc "$2" >"$work/mods/$1/$name" ;;
      *.ko.zst) zstd -dcq "$2" >"$work/mods/$1/$name" ;;
      *) cp "$2" "$work/mods/$1/$name" ;;
    esac
    printf '%s\t%s\n' "mods/$1/$name" "$work/mods/$1/$name"
  }
  {
    printf '%s\t%s\n' bin dir dev dir proc dir sys dir mods dir mods/boot dir mods/rdma dir
    printf '%s\t%s\n' init "$SELF_DIR/initramfs-init" bin/busybox /bin/busybox bin/sh link:busybox
    for mod in $boot; do add_module boot "$mod"; done
    for mod in $rdma; do add_module rdma "$mod"; done
  } >"$work/list" || { rm -rf "$work"; host_fail "collecting the initramfs modules"; }
  write_cpio <"$work/list" >"$out.tmp" || { rm -rf "$work"; host_fail "building the initramfs"; }
  rm -rf "$work"
  find "$kdir" -maxdepth 1 -name "initramfs-*.cpio" -mmin +60 -delete   # stale builds of an older init script
  mv "$out.tmp" "$out"
  info "built ${out#"$ROOT"/} ($(wc -w <<<"$boot $rdma") modules)"
  echo "$out"
}

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9   # one preparation at a time; the VMs themselves run concurrently
ensure_packages
KVER=$(resolve_kver)
KDIR="$CACHE/$KVER"
prepare_kernel "$KDIR" "$KVER"
INITRD=$(prepare_initramfs "$KDIR" "$KVER")
flock -u 9
exec 9>&-
KERNEL="$KDIR/vmlinuz"
[[ -f $KDIR/vmlinux && ${MEMWIRE_RXE_BZIMAGE:-0} != 1 ]] && KERNEL="$KDIR/vmlinux"
info "kernel $KVER ($(basename "$KERNEL")), initramfs $(basename "$INITRD")"

# --------------------------------------------------------------------------------------------
# The run directory: a host-only temp dir holding the output FIFOs and logs, and share/, which
# the guest mounts (9p, read-write) at /run/rxe-vm for the job file and the status files.

RUN=$(mktemp -d "${TMPDIR:-/tmp}/memwire-rxe.XXXXXX")
SHARE="$RUN/share"
mkdir -p "$SHARE"
chmod 755 "$RUN" "$SHARE"
QEMU_PID=
CAT_PIDS=()

cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  if [[ -n $QEMU_PID ]] && kill -0 "$QEMU_PID" 2>/dev/null; then
    kill -TERM "$QEMU_PID" 2>/dev/null || true
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$QEMU_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$QEMU_PID" 2>/dev/null || true
    wait "$QEMU_PID" 2>/dev/null || true
  fi
  local p
  for p in "${CAT_PIDS[@]}"; do
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill "$p" 2>/dev/null || true
  done
  if [[ -s $RUN/console.log ]]; then cp "$RUN/console.log" "$CACHE/last-console.log" 2>/dev/null || true; fi
  if [[ $VERBOSE == 1 && -s $RUN/qemu.log ]]; then say "qemu said:"; cat "$RUN/qemu.log" >&2; fi
  rm -rf "$RUN"
  exit "$rc"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM
trap 'exit 129' HUP

# The job the guest runs: environment, working directory, command. Quoted with %q for bash.
NODE_BIN=$(command -v node 2>/dev/null || true)
GUEST_PATH="$ROOT/node_modules/.bin"
[[ -n $NODE_BIN ]] && GUEST_PATH+=":$(dirname "$(readlink -f "$NODE_BIN")"):$(dirname "$NODE_BIN")"
GUEST_PATH+=":${PATH}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
GUEST_PATH=$(tr ':' '\n' <<<"$GUEST_PATH" | awk 'NF && !seen[$0]++' | paste -sd:)
{
  echo '# generated by scripts/rxe/run.sh'
  envq() { printf 'export %s=%q\n' "$1" "$2"; }
  envq PATH "$GUEST_PATH"
  envq HOME "${HOME:-/root}"
  envq USER "${USER:-root}"
  envq LANG "${LANG:-C.UTF-8}"
  envq TERM "${TERM:-dumb}"
  # Host variables handed through: every MEMWIRE_* and the names in MEMWIRE_RXE_PASSENV.
  for v in $(compgen -e | grep -E '^MEMWIRE_' || true) CI NODE_OPTIONS FORCE_COLOR NO_COLOR DEBUG ${MEMWIRE_RXE_PASSENV:-}; do
    [[ -v $v ]] && envq "$v" "${!v}"
  done
  envq MEMWIRE_RXE_GUEST 1
  envq MEMWIRE_RXE_DEV0 rxe0
  envq MEMWIRE_RXE_DEV1 rxe1
  envq MEMWIRE_RXE_IP0 192.0.2.1
  envq MEMWIRE_RXE_IP1 192.0.2.2
  envq MEMWIRE_RXE_MTU "$MTU"
  printf 'cd -- %q || exit 126\n' "$ROOT"
  printf 'exec'; printf ' %q' "$@"; printf '\n'
} >"$SHARE/job.sh"
printf '%s\n' "$ROOT" >"$SHARE/project"   # read by the initramfs (busybox sh): a plain line
printf '%s=%q\n' KVER "$KVER" MODROOT "$KDIR/root" PROJECT "$ROOT" MTU "$MTU" \
  CMD_TIMEOUT "$CMD_TIMEOUT" SETUP_TIMEOUT "$SETUP_TIMEOUT" VERBOSE "$VERBOSE" >"$SHARE/config"

# --------------------------------------------------------------------------------------------
# Boot. Output ports: the guest command's stdout and stderr go to two virtio-serial ports whose
# QEMU backends are FIFOs read by cat on this side (QEMU wants O_WRONLY fds >= 3 via -add-fd).

mkfifo "$RUN/out.fifo" "$RUN/err.fifo"
cat "$RUN/out.fifo" & CAT_PIDS+=($!)
cat "$RUN/err.fifo" >&2 & CAT_PIDS+=($!)

NINEP="security_model=none,multidevs=remap"
APPEND="console=ttyS0 quiet loglevel=4 panic=-1 reboot=t mitigations=off tsc=reliable no_timer_check"
APPEND+=" ${MEMWIRE_RXE_KERNEL_ARGS:-}"
qarg() { printf '%s' "${1//,/,,}"; }   # a path inside a QEMU option: commas doubled
QEMU=(qemu-system-x86_64
  -name memwire-rxe -machine "${MEMWIRE_RXE_MACHINE:-pc}" -accel tcg,thread=multi -cpu max -smp "$SMP" -m "$MEM"
  -nodefaults -no-user-config -display none -vga none -no-reboot -nic none
  -kernel "$KERNEL" -initrd "$INITRD" -append "$APPEND"
  -serial "file:$(qarg "$RUN/console.log")"
  -fsdev "local,id=fsroot,path=/,readonly=on,$NINEP"
  -device virtio-9p-pci,fsdev=fsroot,mount_tag=hostroot
  -fsdev "local,id=fsproj,path=$(qarg "$ROOT"),$NINEP"
  -device virtio-9p-pci,fsdev=fsproj,mount_tag=project
  -fsdev "local,id=fsrun,path=$(qarg "$SHARE"),$NINEP"
  -device virtio-9p-pci,fsdev=fsrun,mount_tag=rxerun
  -add-fd fd=3,set=1 -add-fd fd=4,set=2
  -chardev file,id=gout,path=/dev/fdset/1,append=on
  -chardev file,id=gerr,path=/dev/fdset/2,append=on
  -device virtio-serial-pci,id=vser
  -device virtserialport,bus=vser.0,chardev=gout,name=out
  -device virtserialport,bus=vser.0,chardev=gerr,name=err
)
info "starting qemu"
"${QEMU[@]}" </dev/null >"$RUN/qemu.log" 2>&1 3>"$RUN/out.fifo" 4>"$RUN/err.fifo" &
QEMU_PID=$!

show_logs() {
  if [[ -s $RUN/qemu.log ]]; then say "qemu said:"; tail -20 "$RUN/qemu.log" >&2; fi
  if [[ -s $RUN/console.log ]]; then say "guest console (last lines):"; tail -30 "$RUN/console.log" >&2; fi
}

# Waits until a file appears in the share; returns 1 if QEMU exits first, 2 on timeout.
wait_for() {
  local file=$1 limit=$2 start=$SECONDS
  while :; do
    [[ -e $SHARE/$file ]] && return 0
    kill -0 "$QEMU_PID" 2>/dev/null || { [[ -e $SHARE/$file ]] && return 0; return 1; }
    ((SECONDS - start < limit)) || return 2
    sleep 0.1
  done
}

rc=0; wait_for booted "$BOOT_TIMEOUT" || rc=$?
if ((rc)); then
  show_logs
  ((rc == 2)) && die $EXIT_BOOT "guest did not boot within ${BOOT_TIMEOUT}s"
  [[ -s $RUN/console.log ]] || die $EXIT_HOST "qemu exited at once (see what it said above)"
  die $EXIT_BOOT "guest stopped before it booted"
fi
info "guest booted ($(cat "$SHARE/booted"))"

rc=0; wait_for ready "$SETUP_TIMEOUT" || rc=$?
if [[ -e $SHARE/setup-failed ]]; then
  show_logs; die $EXIT_SETUP "guest setup failed: $(cat "$SHARE/setup-failed")"
fi
if ((rc)); then
  show_logs
  ((rc == 2)) && die $EXIT_SETUP "guest setup did not finish within ${SETUP_TIMEOUT}s"
  die $EXIT_SETUP "guest stopped during setup"
fi
info "rxe ready ($(cat "$SHARE/ready"))"

# The guest enforces the command timeout itself (and reports 124); this is the backstop.
rc=0; wait_for status "$((CMD_TIMEOUT + 20))" || rc=$?
if ((rc == 2)); then
  say "command did not finish within ${CMD_TIMEOUT}s and the guest did not stop it; killing the guest"
  exit $EXIT_TIMEOUT
elif ((rc)); then
  show_logs; die $EXIT_GUEST_LOST "guest stopped during the command without reporting its status"
fi
STATUS=
for _ in $(seq 1 20); do   # the file may be created a moment before it is written
  STATUS=$(cat "$SHARE/status" 2>/dev/null || true); [[ -n $STATUS ]] && break; sleep 0.1
done
[[ $STATUS =~ ^[0-9]+$ ]] || die $EXIT_GUEST_LOST "guest reported a bad status '$STATUS'"
info "command exited with $STATUS; waiting for the guest to power off"

for _ in $(seq 1 150); do kill -0 "$QEMU_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$QEMU_PID" 2>/dev/null; then
  info "guest did not power off in 15s; killing qemu"
else
  wait "$QEMU_PID" 2>/dev/null || true
  QEMU_PID=
fi
[[ $STATUS == 124 ]] && say "command timed out after ${CMD_TIMEOUT}s"
info "done"
exit "$STATUS"
}
