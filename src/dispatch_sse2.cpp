// SPDX-License-Identifier: MIT
// Kernels for sse2 (compiled with its flags, see CMakeLists.txt).
#define BLOCKCAST_ARCH xsimd::sse2
#include "dispatch_kernels.hpp"
