#!/usr/bin/env bash
# Copies the Debian packages' files that the GPU machine lacks into .deps/ (git-ignored), for
# scripts/device-env.sh to use there (carry .deps/usr, .deps/datasets, .deps/blaspack).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .deps && mkdir -p .deps/datasets
for p in nlohmann-json3-dev libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev libbenchmark1debian zlib1g-dev zlib1g; do
  dpkg -L "$p" | while read -r f; do
    case "$f" in /usr/share/doc/* | /usr/src/*) continue ;; esac
    if [ -f "$f" ] || [ -L "$f" ]; then
      mkdir -p ".deps$(dirname "$f")"
      cp -a "$f" ".deps$f"
    fi
  done
done
cp -r /usr/share/datasets/fashion-mnist .deps/datasets/
# The --model lm corpus (Debian jargon-text); on the device pass --text .deps/datasets/jargon.txt.gz.
cp /usr/share/doc/jargon-text/jargon.txt.gz .deps/datasets/
# A static OpenBLAS with its headers (the GPU machine has no BLAS; scripts/device-env.sh unpacks it).
mkdir -p .deps/blaspack /tmp/blaspack.$$
cp /usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.a \
  /usr/include/x86_64-linux-gnu/openblas-pthread/{cblas.h,openblas_config.h} /tmp/blaspack.$$/
tar cJf .deps/blaspack/openblas.tar.xz -C /tmp/blaspack.$$ .
rm -rf /tmp/blaspack.$$
# Debian's ip and tc for the shaped-network harness (the GPU machine has neither; carry
# .deps/iproute2): the binaries with their libraries and this machine's loader, started by
# wrappers through that loader with --library-path, so that what `ip netns exec` starts gets the
# host's own environment (no LD_LIBRARY_PATH leaks into the ranks).
mkdir -p .deps/iproute2/bin .deps/iproute2/libexec .deps/iproute2/lib
for tool in ip tc; do
  bin=$(PATH=/usr/sbin:/sbin:$PATH command -v "$tool")
  cp "$bin" .deps/iproute2/libexec/
  ldd "$bin" | awk '/=> \//{print $3} /^\t\/lib/{print $1}' |
    while read -r lib; do cp -L "$lib" .deps/iproute2/lib/; done
  printf '%s\n' '#!/bin/sh' 'd=$(dirname "$(readlink -f "$0")")/..' \
    "exec \"\$d/lib/ld-linux-x86-64.so.2\" --library-path \"\$d/lib\" \"\$d/libexec/$tool\" \"\$@\"" \
    >".deps/iproute2/bin/$tool"
  chmod +x ".deps/iproute2/bin/$tool"
done
du -sh .deps
