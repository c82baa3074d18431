# Finds the optional engines and sets TERSE_HAVE_{CUDA,MPI,NCCL,TORCH,OPENMP}.
function(terse_resolve_switch name found)
  if(${name} STREQUAL "ON" AND NOT ${found})
    message(FATAL_ERROR "${name}=ON but it was not found; install it or pass -D${name}=AUTO")
  endif()
endfunction()

find_package(Threads REQUIRED)
find_package(ZLIB REQUIRED)
find_package(nlohmann_json 3 REQUIRED)

# A CBLAS for muon's Newton-Schulz matrix products (src/optim/newton_schulz.cc). Required: terse
# does not hand-write a GEMM, and a build whose optimizer list depends on the machine would be a
# surprise. OpenBLAS first (Debian libopenblas-dev), else any BLAS that has the cblas_ symbols.
set(BLA_VENDOR OpenBLAS)
find_package(BLAS QUIET)
if(NOT BLAS_FOUND)
  unset(BLA_VENDOR)
  find_package(BLAS QUIET)
endif()
if(BLAS_FOUND)
  include(CheckSymbolExists)
  set(CMAKE_REQUIRED_LIBRARIES ${BLAS_LIBRARIES})
  check_symbol_exists(cblas_sgemm "cblas.h" TERSE_HAVE_CBLAS)
  unset(CMAKE_REQUIRED_LIBRARIES)
endif()
if(NOT BLAS_FOUND OR NOT TERSE_HAVE_CBLAS)
  message(FATAL_ERROR "terse needs a BLAS with the CBLAS interface (cblas.h, cblas_sgemm) for the "
                      "muon optimizer: install libopenblas-dev (scripts/install-deps.sh does) and "
                      "configure again, or point CMake at another with -DBLAS_LIBRARIES=...")
endif()

find_package(OpenMP COMPONENTS CXX)
set(TERSE_HAVE_OPENMP ${OpenMP_CXX_FOUND})

set(TERSE_HAVE_MPI OFF)
if(NOT TERSE_MPI STREQUAL "OFF")
  find_package(MPI COMPONENTS CXX)
  if(MPI_CXX_FOUND)
    set(TERSE_HAVE_MPI ON)
  endif()
  terse_resolve_switch(TERSE_MPI TERSE_HAVE_MPI)
endif()

set(TERSE_HAVE_CUDA OFF)
if(NOT TERSE_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 90)
    endif()
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(CMAKE_CUDA_STANDARD 17)
    set(TERSE_HAVE_CUDA ON)
  endif()
  terse_resolve_switch(TERSE_CUDA TERSE_HAVE_CUDA)
endif()

# NCCL: GPU collectives, its unique id broadcast over MPI, so only with both CUDA and MPI. The
# hints cover the CUDA toolkit's copy (/usr/local/cuda) and Debian/Ubuntu's libnccl-dev.
set(TERSE_HAVE_NCCL OFF)
if(NOT TERSE_NCCL STREQUAL "OFF")
  if(TERSE_HAVE_CUDA AND TERSE_HAVE_MPI)
    find_path(TERSE_NCCL_INCLUDE_DIR nccl.h
              HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/local/cuda/include /usr/include)
    find_library(TERSE_NCCL_LIBRARY nccl
                 HINTS ${CUDAToolkit_LIBRARY_DIR} /usr/local/cuda/lib64 /usr/lib/x86_64-linux-gnu)
    if(TERSE_NCCL_INCLUDE_DIR AND TERSE_NCCL_LIBRARY)
      file(STRINGS ${TERSE_NCCL_INCLUDE_DIR}/nccl.h _terse_nccl_ver
           REGEX "^#define NCCL_(MAJOR|MINOR|PATCH) [0-9]+")
      string(REGEX REPLACE ".*NCCL_MAJOR ([0-9]+).*" "\\1" _major "${_terse_nccl_ver}")
      string(REGEX REPLACE ".*NCCL_MINOR ([0-9]+).*" "\\1" _minor "${_terse_nccl_ver}")
      string(REGEX REPLACE ".*NCCL_PATCH ([0-9]+).*" "\\1" _patch "${_terse_nccl_ver}")
      set(TERSE_NCCL_VERSION "${_major}.${_minor}.${_patch}")
      # 2.14 brought non-blocking communicators (ncclCommInitRankConfig, ncclInProgress), which
      # the backend needs to bound its set-up and enqueue waits by the communicator's timeout.
      if(TERSE_NCCL_VERSION VERSION_LESS 2.14)
        message(STATUS "terse: NCCL ${TERSE_NCCL_VERSION} at ${TERSE_NCCL_LIBRARY} is older than "
                       "2.14; the NCCL backend is not built")
      else()
        add_library(terse_nccl_lib UNKNOWN IMPORTED)
        set_target_properties(terse_nccl_lib PROPERTIES
          IMPORTED_LOCATION ${TERSE_NCCL_LIBRARY}
          INTERFACE_INCLUDE_DIRECTORIES ${TERSE_NCCL_INCLUDE_DIR})
        set(TERSE_HAVE_NCCL ON)
      endif()
    endif()
  elseif(TERSE_NCCL STREQUAL "ON")
    message(FATAL_ERROR "TERSE_NCCL=ON needs CUDA and MPI (CUDA=${TERSE_HAVE_CUDA}, "
                        "MPI=${TERSE_HAVE_MPI}); install them or pass -DTERSE_NCCL=AUTO")
  endif()
  terse_resolve_switch(TERSE_NCCL TERSE_HAVE_NCCL)
endif()

set(TERSE_HAVE_TORCH OFF)
if(NOT TERSE_TORCH STREQUAL "OFF")
  find_package(Torch QUIET)
  if(Torch_FOUND)
    set(TERSE_HAVE_TORCH ON)
    find_package(CLI11 REQUIRED)
  endif()
  terse_resolve_switch(TERSE_TORCH TERSE_HAVE_TORCH)
endif()

if(TERSE_BUILD_TESTS)
  find_package(GTest REQUIRED)
  include(GoogleTest)
endif()
if(TERSE_BUILD_BENCH)
  find_package(benchmark QUIET)
endif()
