#!/usr/bin/env bash
# pin.sh PROGRAM [ARGS...]   execs PROGRAM pinned to this MPI rank's share of the host's CPUs
# (run.sh with PIN=1 puts it in front of the rank command). All ranks of a shaped run share one
# host, and Open MPI cannot bind them: each namespace looks like its own host to it, so every
# rank would be bound to the same first cores. Unbound, the ranks' threads migrate and a rank
# that loses its cores for a moment arrives late at every collective (the wait the trainer
# reports as time_wait_s). Rank r of N gets CPUs [r*C, (r+1)*C) of the host's CPUs listed with
# hyper-thread siblings adjacent, C = CPUs / N (at least 1; ranks wrap when N > CPUs), so two
# ranks never share a physical core when C is even.
set -euo pipefail
(($# >= 1)) || {
  echo "pin.sh: error: usage: pin.sh PROGRAM [ARGS...]" >&2
  exit 2
}
rank=${OMPI_COMM_WORLD_RANK:?pin.sh: error: OMPI_COMM_WORLD_RANK is not set; run pin.sh under mpirun}
size=${OMPI_COMM_WORLD_SIZE:?pin.sh: error: OMPI_COMM_WORLD_SIZE is not set; run pin.sh under mpirun}
# CPUs sorted by (package, core, cpu): hyper-thread siblings end up next to each other.
mapfile -t cpus < <(for d in /sys/devices/system/cpu/cpu[0-9]*; do
  c=${d##*cpu}
  [[ -r $d/topology/core_id ]] || continue
  [[ -r $d/online && $(<"$d/online") == 0 ]] && continue
  echo "$(<"$d/topology/physical_package_id") $(<"$d/topology/core_id") $c"
done | sort -n -k1,1 -k2,2 -k3,3 | awk '{print $3}')
total=${#cpus[@]}
((total > 0)) || exec "$@"  # no topology visible: run unpinned
per=$((total / size))
((per >= 1)) || per=1
first=$(((rank * per) % total))
list=$(IFS=,; echo "${cpus[*]:first:per}")
exec taskset -c "$list" "$@"
