#!/usr/bin/env bash
# Open MPI rsh agent (--mca plm_rsh_agent): Open MPI calls it as `rsh-agent.sh [options] HOST
# COMMAND...`, like ssh. HOST is a namespace address 10.88.0.(1+i); the command (orted) runs in
# namespace terse-ns<i> through `ip netns exec`, so the rank's traffic crosses the shaped link.
set -euo pipefail
while [[ $# -gt 0 && $1 == -* ]]; do shift; done # ssh-style options (e.g. -x) mean nothing here
(($# >= 2)) || {
  echo "rsh-agent.sh: error: expected HOST COMMAND..., got '$*'" >&2
  exit 2
}
host=$1
shift
[[ $host =~ ^10\.88\.0\.([0-9]+)$ ]] && ((BASH_REMATCH[1] >= 1 && BASH_REMATCH[1] <= 200)) || {
  echo "rsh-agent.sh: error: host must be a namespace address 10.88.0.1..200, got '$host';" \
    "use the hostfile written by run.sh" >&2
  exit 2
}
ns=terse-ns$((BASH_REMATCH[1] - 1))
# Like ssh, the command arrives as words to be joined and run by a shell.
exec ip netns exec "$ns" /bin/sh -c "$*"
