#!/usr/bin/env bash
# expect_failure.sh MAX_SECONDS PATTERN COMMAND...
# Runs COMMAND and passes only when it exits non-zero within MAX_SECONDS and its output (stdout
# and stderr together) matches the extended regex PATTERN. A job that hangs is killed at
# 2 x MAX_SECONDS so CTest gets a clear message rather than its own TIMEOUT.
set -u
max_s=$1
pattern=$2
shift 2
log=$(mktemp)
trap 'rm -f "$log"' EXIT
start=$(date +%s.%N)
timeout --signal=KILL $((max_s * 2)) "$@" >"$log" 2>&1
rc=$?
end=$(date +%s.%N)
elapsed=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
cat "$log"
echo "---- expect_failure: exit code $rc after ${elapsed} s (limit ${max_s} s)"
status=0
if [ "$rc" -eq 0 ]; then
  echo "FAIL: the job exited 0; a failed rank must end it non-zero"
  status=1
fi
if awk -v e="$elapsed" -v m="$max_s" 'BEGIN { exit !(e > m) }'; then
  echo "FAIL: the job took ${elapsed} s, more than ${max_s} s"
  status=1
fi
if ! grep -Eq -- "$pattern" "$log"; then
  echo "FAIL: the output does not match: $pattern"
  status=1
fi
[ "$status" -eq 0 ] && echo "PASS"
exit "$status"
