#!/usr/bin/env bash
# Installs the Debian 12 packages terse builds and runs with. Needs root (or sudo).
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config git
  libopenmpi-dev openmpi-bin            # MPI engine
  libtorch-dev                          # models and autograd (libtorch 1.13 in Debian 12)
  libcli11-dev nlohmann-json3-dev zlib1g-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libopenblas-dev                       # CBLAS sgemm for muon's Newton-Schulz iteration
  dataset-fashion-mnist                 # /usr/share/datasets/fashion-mnist
  jargon-text                           # /usr/share/doc/jargon-text/jargon.txt.gz (--model lm)
  clang-format
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: run as root or install sudo" >&2; exit 1; }
  SUDO=sudo
fi
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
else
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Some images (minimal Docker ones) tell dpkg to skip /usr/share/doc/*, where jargon-text keeps
# its text (--model lm): then reinstall that one package with its directory re-included (a
# --path-include on the command line overrides the configuration's earlier --path-exclude).
jargon=/usr/share/doc/jargon-text/jargon.txt.gz
if [ ! -f "$jargon" ]; then
  echo "install-deps: $jargon missing (dpkg path-exclude?); reinstalling jargon-text with it included"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --reinstall \
    -o "DPkg::Options::=--path-include=/usr/share/doc/jargon-text/*" jargon-text
  [ -f "$jargon" ] || { echo "install-deps: $jargon still missing; see docs/data.md" >&2; exit 1; }
fi
