// SPDX-License-Identifier: MIT
// Kernels for avx512bw (compiled with its flags, see CMakeLists.txt).
#define BLOCKCAST_ARCH xsimd::avx512bw
#include "dispatch_kernels.hpp"
