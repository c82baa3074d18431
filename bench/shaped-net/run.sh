#!/usr/bin/env bash
# run.sh N RATE -- COMMAND...   sets up N shaped namespaces (netns.sh up N RATE; RATE none for
# the unshaped baseline), runs COMMAND as N MPI ranks, one per namespace, under mpirun in the
# root namespace, and removes everything on exit, also on Ctrl-C or kill (trap EXIT INT TERM).
# MPI traffic goes over TCP on 10.88.0.0/24 only (btl tcp,self: no shared memory, no loopback
# path between ranks), so it crosses the shaped veth links. Extra mpirun flags: MPIRUN_ARGS.
# --mca plm rsh overrides an environment that disables remote launch (OMPI_MCA_plm=isolated).
# PIN=1 starts each rank through pin.sh (rank r on its own share of the host's CPUs).
# The ranks get OMP_WAIT_POLICY=PASSIVE (as `terse train --np` gives them) unless it is set.
# Example: run.sh 2 100mbit -- /work/main/build/lead/apps/terse/terse train --model mlp ...
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
die() {
  echo "run.sh: error: $*" >&2
  exit 2
}
if ! (($# >= 4)) || [[ $3 != -- ]]; then die "usage: run.sh N RATE -- COMMAND... (got '$*')"; fi
n=$1 rate=$2
shift 3
command -v mpirun >/dev/null || die "mpirun not found on PATH; apt-get install openmpi-bin"

hostfile=$(mktemp /tmp/terse-shaped-hosts.XXXXXX)
mpirun_pid=
# shellcheck disable=SC2317 # called from the traps
cleanup() {
  trap - EXIT INT TERM
  # mpirun ends its orteds and ranks on TERM; netns.sh down kills whatever is left over.
  if [[ -n $mpirun_pid ]] && kill -0 "$mpirun_pid" 2>/dev/null; then
    kill -TERM "$mpirun_pid" 2>/dev/null || true
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      kill -0 "$mpirun_pid" 2>/dev/null || break
      sleep 0.5
    done
  fi
  rm -f "$hostfile"
  "$here/netns.sh" down
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

pin=()
[[ ${PIN:-0} == 1 ]] && pin=("$here/pin.sh")
"$here/netns.sh" up "$n" "$rate"
for ((i = 1; i <= n; i++)); do echo "10.88.0.$i slots=1"; done >"$hostfile"

# In the background and waited for: bash runs a trap only after its foreground child returns, so
# a TERM would otherwise wait for the whole training run.
# shellcheck disable=SC2086
mpirun --allow-run-as-root --oversubscribe --bind-to none -n "$n" --hostfile "$hostfile" \
  --mca plm rsh --mca plm_rsh_agent "$here/rsh-agent.sh" --mca plm_rsh_no_tree_spawn 1 \
  --mca btl tcp,self --mca btl_tcp_if_include 10.88.0.0/24 \
  --mca oob_tcp_if_include 10.88.0.0/24 -x OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}" \
  ${MPIRUN_ARGS:-} "${pin[@]}" "$@" &
mpirun_pid=$!
rc=0
wait "$mpirun_pid" || rc=$?
mpirun_pid=
exit "$rc"
