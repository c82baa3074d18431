#!/usr/bin/env bash
# Shaped-network namespaces for terse measurements (issue 5).
#   netns.sh up N RATE   N namespaces terse-ns0..N-1 (10.88.0.1+i/24) on veth pairs to the
#                        bridge terse-br0 in the root namespace (10.88.0.254/24, so that mpirun
#                        there reaches the orteds); tbf RATE (tc syntax: 100mbit, 1gbit) on the
#                        egress of both ends of every veth, i.e. both directions of every link.
#                        RATE none: same topology, no tbf (the unshaped baseline).
#   netns.sh down        removes every terse-ns* namespace, veth and the bridge (idempotent).
#   netns.sh status      lists the namespaces, addresses and qdiscs.
# Needs root. netem is not available on this kernel, so only rate is shaped, not delay.
set -euo pipefail

readonly kPrefix=terse-ns
readonly kBridge=terse-br0
readonly kSubnet=10.88.0
readonly kRootAddr=${kSubnet}.254
readonly kMaxRanks=200

die() {
  echo "netns.sh: error: $*" >&2
  exit 2
}

# Rate in bit/s from tc syntax (100mbit, 1gbit, 500kbit, 1000000bit).
rate_bits() {
  local r=${1,,}
  case "$r" in
    *gbit) echo $((${r%gbit} * 1000000000)) ;;
    *mbit) echo $((${r%mbit} * 1000000)) ;;
    *kbit) echo $((${r%kbit} * 1000)) ;;
    *bit) echo $((${r%bit})) ;;
    *) return 1 ;;
  esac
}

shape() { # dev [netns]
  local dev=$1 ns=${2:-} bits burst
  [[ $RATE == none ]] && return 0
  bits=$(rate_bits "$RATE")
  # tbf needs a bucket of at least rate/HZ bytes or it cannot reach the rate (HZ <= 1000; take
  # 250 to be safe), and at least a few MTUs. BURST (bytes) overrides it: a bucket of 4 ms of
  # line rate (500 KB at 1 Gbit/s) lets a message smaller than that leave an idle link at veth
  # speed, where a real NIC would serialise it at the line rate.
  burst=$((bits / 8 / 250))
  ((burst < 32768)) && burst=32768
  if [[ -n ${BURST:-} ]]; then
    [[ $BURST =~ ^[0-9]+$ ]] && ((BURST >= 1600)) ||
      die "BURST must be a byte count >= 1600 (one MTU and a header), got '$BURST'"
    burst=$BURST
  fi
  if [[ -n $ns ]]; then
    ip netns exec "$ns" tc qdisc replace dev "$dev" root tbf rate "$RATE" burst "$burst" latency 50ms
  else
    tc qdisc replace dev "$dev" root tbf rate "$RATE" burst "$burst" latency 50ms
  fi
}

down() {
  local ns pids dev
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${kPrefix}[0-9]*$" || true); do
    # Processes left in the namespace (orteds, ranks of an interrupted run) would keep it alive.
    mapfile -t pids < <(ip netns pids "$ns" 2>/dev/null || true)
    if ((${#pids[@]} > 0)); then
      kill "${pids[@]}" 2>/dev/null || true
      sleep 1
      mapfile -t pids < <(ip netns pids "$ns" 2>/dev/null || true)
      ((${#pids[@]} == 0)) || kill -9 "${pids[@]}" 2>/dev/null || true
    fi
    ip netns del "$ns" || true # deleting the namespace deletes its veth end and so the pair
  done
  # Root-side veth ends left over from a half-finished `up`.
  for dev in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' |
    grep "^tns[0-9]*b$" || true); do
    ip link del "$dev" 2>/dev/null || true
  done
  ip link del "$kBridge" 2>/dev/null || true
}

up() {
  [[ $N =~ ^[0-9]+$ ]] && ((N >= 1 && N <= kMaxRanks)) ||
    die "N must be an integer in [1, $kMaxRanks], got '$N'"
  [[ $RATE == none ]] || rate_bits "$RATE" >/dev/null ||
    die "RATE must look like 100mbit, 1gbit, 500kbit or be none (no shaping), got '$RATE'"
  ((EUID == 0)) || die "needs root (ip netns, tc), running as uid $EUID; run it with sudo"
  down
  ip link add "$kBridge" type bridge
  ip addr add "${kRootAddr}/24" dev "$kBridge"
  ip link set "$kBridge" up
  local i ns
  for ((i = 0; i < N; i++)); do
    ns=${kPrefix}$i
    ip netns add "$ns"
    ip link add "tns${i}b" type veth peer name "tns${i}n"
    ip link set "tns${i}n" netns "$ns"
    ip link set "tns${i}b" master "$kBridge"
    ip link set "tns${i}b" up
    ip netns exec "$ns" ip link set lo up
    ip netns exec "$ns" ip link set "tns${i}n" name eth0
    ip netns exec "$ns" ip addr add "${kSubnet}.$((i + 1))/24" dev eth0
    ip netns exec "$ns" ip link set eth0 up
    shape "tns${i}b"      # bridge -> namespace
    shape eth0 "$ns"      # namespace -> bridge
  done
}

status() {
  ip -br addr show "$kBridge" 2>/dev/null || echo "no bridge $kBridge"
  local ns
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${kPrefix}" | sort -V || true); do
    echo "$ns: $(ip netns exec "$ns" ip -br -4 addr show eth0 | awk '{print $3}')" \
      "$(ip netns exec "$ns" tc qdisc show dev eth0)"
  done
}

cmd=${1:-}
case "$cmd" in
  up)
    (($# == 3)) || die "usage: netns.sh up N RATE (e.g. up 4 100mbit)"
    N=$2 RATE=$3
    # A failure half-way leaves nothing behind.
    trap 'rc=$?; if ((rc != 0)); then down; fi' EXIT
    up
    ;;
  down) down ;;
  status) status ;;
  *) die "usage: netns.sh up N RATE | down | status (got '${cmd}')" ;;
esac
