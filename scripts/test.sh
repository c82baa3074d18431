#!/usr/bin/env bash
# The whole test suite: install, build (release, warnings as errors), run every CTest test;
# then the core layers again under AddressSanitizer + UndefinedBehaviorSanitizer.
# Set TERSE_SKIP_SANITIZERS=1 to skip the sanitizer pass.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
scripts/build.sh release
ctest --preset release -j 2 --timeout 600
if [ "${TERSE_SKIP_SANITIZERS:-0}" != 1 ]; then
  scripts/build.sh debug
  ctest --preset debug -j 2 --timeout 600 -LE "multirank"
fi
