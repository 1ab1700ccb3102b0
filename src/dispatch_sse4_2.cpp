// SPDX-License-Identifier: MIT
// Kernels for sse4_2 (compiled with its flags, see CMakeLists.txt).
#define BLOCKCAST_ARCH xsimd::sse4_2
#include "dispatch_kernels.hpp"
