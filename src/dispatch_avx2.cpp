// SPDX-License-Identifier: MIT
// Kernels for avx2 (compiled with its flags, see CMakeLists.txt).
#define BLOCKCAST_ARCH xsimd::avx2
#include "dispatch_kernels.hpp"
