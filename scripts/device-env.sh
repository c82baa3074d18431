# Sourced by the scripts that build terse on the GPU machine (device-check.sh,
# slow-network-device.sh, device-bench.sh). That machine has no package registry, so what it
# lacks travels in the ignored .deps/ (scripts/make-device-deps.sh): the Debian headers and
# libraries (.deps/usr), Fashion-MNIST and the text corpus (.deps/datasets), and a static
# OpenBLAS (.deps/blaspack/openblas.tar.xz; terse needs CBLAS for Muon). Sets TERSE_CMAKE_ARGS
# (an array) for `cmake -S . -B DIR "${TERSE_CMAKE_ARGS[@]}"`.
prefix="$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null)"
deps=""
[ -d .deps/usr ] && deps="$PWD/.deps/usr"
if [ -d .deps/datasets/fashion-mnist ] && [ ! -d /usr/share/datasets/fashion-mnist ]; then
  mkdir -p /usr/share/datasets && cp -r .deps/datasets/fashion-mnist /usr/share/datasets/
fi
TERSE_CMAKE_ARGS=(-G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix;$deps"
  -DCMAKE_CUDA_ARCHITECTURES=90)
if [ -f .deps/blaspack/openblas.tar.xz ]; then
  blas=$PWD/.deps/openblas
  mkdir -p "$blas" && tar xJf .deps/blaspack/openblas.tar.xz -C "$blas"
  TERSE_CMAKE_ARGS+=(-DCMAKE_LIBRARY_PATH="$blas" -DCMAKE_C_FLAGS="-I$blas"
    -DCMAKE_CXX_FLAGS="-I$blas")
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 NCCL_NVLS_ENABLE=0
