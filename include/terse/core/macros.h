#pragma once

// TERSE_HD marks code that runs on the host and, when compiled by nvcc, on the device: the
// optimizer Rules and the RNG are written once and executed by both backends.
#if defined(__CUDACC__)
#define TERSE_HD __host__ __device__
#define TERSE_FORCEINLINE __forceinline__
#else
#define TERSE_HD
#define TERSE_FORCEINLINE inline __attribute__((always_inline))
#endif
