#!/usr/bin/env bash
# Smoke check of the rxe guest: the devices, their ports and GIDs, RC traffic between rxe0 and
# rxe1 (ibv_rc_pingpong, perftest's ib_write_bw / ib_write_lat, librdmacm's rping), and the
# guest environment memwire needs (node, /dev/shm, memlock, a writable project directory).
#
#   scripts/rxe/run.sh -- scripts/rxe/smoke.sh
#
# Prints one line per check and a final "N passed, N failed"; exits 1 if any check failed.
# Servers run on rxe0 pinned to vCPU 0, clients on rxe1 pinned to vCPU 1 (busy-polling peers).
set -u

if [[ ${MEMWIRE_RXE_GUEST:-} != 1 ]]; then
  echo "smoke.sh runs inside the rxe guest: scripts/rxe/run.sh -- scripts/rxe/smoke.sh" >&2
  exit 2
fi
DEV0=${MEMWIRE_RXE_DEV0:-rxe0} DEV1=${MEMWIRE_RXE_DEV1:-rxe1}
IP0=${MEMWIRE_RXE_IP0:-192.0.2.1} IP1=${MEMWIRE_RXE_IP1:-192.0.2.2}
GID=1            # ::ffff:<IPv4>, RoCE v2
T=60             # seconds any one program may take
LOG=$(mktemp -d /tmp/rxe-smoke.XXXXXX)
passed=0 failed=0

# Each line ends with the time since the previous one (that check's cost, under TCG).
LAST=${EPOCHREALTIME/./}
took() { local now=${EPOCHREALTIME/./} d; d=$((now - LAST)); LAST=$now; printf -v TOOK '[%d.%02ds]' $((d / 1000000)) $((d / 10000 % 100)); }
ok() { passed=$((passed + 1)); took; printf 'ok    %s %s\n' "$*" "$TOOK"; }
bad() { failed=$((failed + 1)); took; printf 'FAIL  %s %s\n' "$*" "$TOOK"; }
show() { sed 's/^/      | /' "$@"; }   # indented program output, after a failure
counter() { cat "/sys/class/infiniband/$1/ports/1/hw_counters/$2" 2>/dev/null || echo 0; }
netstat_of() { cat "/sys/class/net/$1/statistics/$2" 2>/dev/null || echo 0; }

# wait_listen PORT PID: until the server listens on PORT: a TCP socket (the out-of-band exchange
# of ibv_rc_pingpong and perftest) or an rdma_cm id (rping). Gives up after 15 s or if PID exits.
wait_listen() {
  local end=$((SECONDS + 15))
  while ((SECONDS < end)); do
    [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]] && return 0
    rdma resource show cm_id 2>/dev/null | grep -q "state LISTEN .*src-addr [^ ]*:$1 " && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

# pair NAME PORT "SERVER ARGS" "CLIENT ARGS": server on DEV0/vCPU 0, client on DEV1/vCPU 1 that
# connects to IP0; both must exit 0. Output in $LOG/NAME.server and $LOG/NAME.client.
pair() {
  local name=$1 port=$2 srv=$3 cli=$4 spid src=0 crc=0
  # shellcheck disable=SC2086
  timeout -k 2 "$T" taskset -c 0 $srv >"$LOG/$name.server" 2>&1 &
  spid=$!
  if ! wait_listen "$port" "$spid"; then
    kill "$spid" 2>/dev/null; wait "$spid"
    echo "server did not listen on port $port" >>"$LOG/$name.server"
    return 1
  fi
  # shellcheck disable=SC2086
  timeout -k 2 "$T" taskset -c 1 $cli >"$LOG/$name.client" 2>&1 || crc=$?
  wait "$spid" || src=$?
  echo "server exit $src, client exit $crc" >>"$LOG/$name.client"
  ((src == 0 && crc == 0))
}

# traffic_check BEFORE...: rxe1 sent and rxe0 received packets, over veth (not a loopback path).
snapshot() { echo "$(counter "$DEV1" sent_pkts) $(counter "$DEV0" rcvd_pkts) $(netstat_of veth1 tx_packets) $(netstat_of veth0 rx_packets)"; }
moved() {
  local -a a b; read -ra a <<<"$1"; read -ra b <<<"$2"
  ((b[0] > a[0] && b[1] > a[1] && b[2] > a[2] && b[3] > a[3])) &&
    echo "$DEV1 sent +$((b[0] - a[0])), $DEV0 received +$((b[1] - a[1])), veth1 tx +$((b[2] - a[2])) packets"
}

echo "# rxe smoke check: $(uname -r), $(nproc) vCPUs, $DEV0=$IP0 $DEV1=$IP1"

# --- devices and ports ---------------------------------------------------------------------
out=$(ibv_devices 2>&1)
if grep -qw "$DEV0" <<<"$out" && grep -qw "$DEV1" <<<"$out"; then
  ok "ibv_devices lists $DEV0 and $DEV1"
else
  bad "ibv_devices lists $DEV0 and $DEV1"; show <<<"$out"
fi

for dev in "$DEV0" "$DEV1"; do
  out=$(timeout "$T" ibv_devinfo -d "$dev" 2>&1)
  mtu=$(awk '/active_mtu:/ {print $2, $3}' <<<"$out")
  if grep -q 'state:.*PORT_ACTIVE' <<<"$out" && grep -q 'link_layer:.*Ethernet' <<<"$out"; then
    ok "ibv_devinfo -d $dev: port 1 PORT_ACTIVE, Ethernet, active_mtu $mtu"
  else
    bad "ibv_devinfo -d $dev: port 1 PORT_ACTIVE"; show <<<"$out"
  fi
done

for pair_ in "$DEV0 $IP0" "$DEV1 $IP1"; do
  read -r dev ip <<<"$pair_"
  IFS=. read -r a b c d <<<"$ip"
  want=$(printf '0000:0000:0000:0000:0000:ffff:%02x%02x:%02x%02x' "$a" "$b" "$c" "$d")
  got=$(cat "/sys/class/infiniband/$dev/ports/1/gids/$GID" 2>/dev/null)
  gtype=$(cat "/sys/class/infiniband/$dev/ports/1/gid_attrs/types/$GID" 2>/dev/null)
  if [[ $got == "$want" && $gtype == *v2* ]]; then
    ok "$dev GID $GID is ::ffff:$ip ($gtype)"
  else
    bad "$dev GID $GID is '$got' ($gtype), want ::ffff:$ip (RoCE v2)"
  fi
done

# --- RC traffic ------------------------------------------------------------------------------
before=$(snapshot)
if pair pingpong 18515 "ibv_rc_pingpong -d $DEV0 -g $GID -p 18515 -n 200 -c" \
                       "ibv_rc_pingpong -d $DEV1 -g $GID -p 18515 -n 200 -c $IP0"; then
  line=$(grep -m1 'bytes in' "$LOG/pingpong.client")
  if m=$(moved "$before" "$(snapshot)"); then
    ok "ibv_rc_pingpong $DEV1 -> $DEV0: $line; $m"
  else
    bad "ibv_rc_pingpong: no traffic counted from $DEV1 to $DEV0 over veth"; show "$LOG/pingpong.client"
  fi
else
  bad "ibv_rc_pingpong $DEV1 -> $DEV0"; show "$LOG/pingpong.server" "$LOG/pingpong.client"
fi

# perftest prints a header line starting with "#bytes" and then one result row.
result_row() { awk '/^ *#bytes/ {getline; print; exit}' "$1" | tr -s ' ' | sed 's/^ //'; }

for size in 65536 4096; do
  before=$(snapshot)
  if pair "bw$size" 18516 "ib_write_bw -d $DEV0 -x $GID -F -s $size -n 500 -p 18516" \
                          "ib_write_bw -d $DEV1 -x $GID -F -s $size -n 500 -p 18516 $IP0" &&
     row=$(result_row "$LOG/bw$size.client") && [[ -n $row ]] && moved "$before" "$(snapshot)" >/dev/null; then
    read -r bytes iters peak avg rate <<<"$row"
    ok "ib_write_bw $size B x $iters: average $avg MB/s (peak $peak MB/s, $rate Mpps)"
  else
    bad "ib_write_bw $size B"; show "$LOG/bw$size.server" "$LOG/bw$size.client"
  fi
done

before=$(snapshot)
if pair lat 18517 "ib_write_lat -d $DEV0 -x $GID -F -s 2 -n 2000 -p 18517" \
                  "ib_write_lat -d $DEV1 -x $GID -F -s 2 -n 2000 -p 18517 $IP0" &&
   row=$(result_row "$LOG/lat.client") && [[ -n $row ]] && moved "$before" "$(snapshot)" >/dev/null; then
  read -r bytes iters tmin _ ttyp tavg _ p99 p999 <<<"$row"
  ok "ib_write_lat $bytes B x $iters: typical $ttyp us (min $tmin, avg $tavg, 99% $p99, 99.9% $p999 us)"
else
  bad "ib_write_lat 2 B"; show "$LOG/lat.server" "$LOG/lat.client"
fi

# librdmacm: the client binds its source address to rxe1's, else both ends land on one device.
before=$(snapshot)
if pair rping 18518 "rping -s -a $IP0 -p 18518 -C 20 -S 64 -V" \
                    "rping -c -a $IP0 -I $IP1 -p 18518 -C 20 -S 64 -V" &&
   m=$(moved "$before" "$(snapshot)"); then
  ok "rping (rdma_cm) $IP1 -> $IP0, 20 validated pings; $m"
else
  bad "rping (rdma_cm) $IP1 -> $IP0"; show "$LOG/rping.server" "$LOG/rping.client"
fi

# --- what memwire needs of the guest -------------------------------------------------------
if [[ $(ulimit -l) == unlimited ]]; then ok "memlock ulimit is unlimited"; else bad "memlock ulimit is $(ulimit -l)"; fi

if [[ $(stat -f -c %T /dev/shm 2>/dev/null) == tmpfs ]] && echo x >/dev/shm/rxe-smoke.$$ && rm /dev/shm/rxe-smoke.$$; then
  ok "/dev/shm is a writable tmpfs"
else
  bad "/dev/shm is not a writable tmpfs"
fi

probe="$PWD/.cache/rxe-vm/smoke-write.$$"
if mkdir -p "${probe%/*}" && echo x >"$probe" && [[ $(cat "$probe") == x ]] && rm "$probe"; then
  ok "project directory $PWD is writable"
else
  bad "project directory $PWD is not writable"
fi

if out=$(timeout "$T" node -e 'console.log(1)' 2>&1) && [[ $out == 1 ]]; then
  ok "node $(node --version) runs (node -e)"
else
  bad "node -e 'console.log(1)'"; show <<<"$out"
fi

rm -rf "$LOG"
echo "$passed passed, $failed failed"
((failed == 0))
