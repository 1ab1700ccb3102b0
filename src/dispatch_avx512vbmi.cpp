// SPDX-License-Identifier: MIT
// Kernels for AVX-512 with VBMI and VNNI (compiled with their flags, see CMakeLists.txt).
#define BLOCKCAST_ARCH blockcast::simd::avx512vbmi
#include "dispatch_kernels.hpp"
