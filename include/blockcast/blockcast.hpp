// SPDX-License-Identifier: MIT
// blockcast: block-scaled number formats (OCP MX, NVFP4) and post-training quantization.
// The umbrella header of the core (depends on nothing outside the standard library and
// xsimd). PTQ (Eigen) and I/O headers are included separately.
#pragma once

#include "blockcast/version.hpp"
#include "blockcast/config.hpp"
#include "blockcast/error.hpp"
#include "blockcast/policy.hpp"
#include "blockcast/element/float_format.hpp"
#include "blockcast/element/int_format.hpp"
#include "blockcast/element/e8m0.hpp"
#include "blockcast/element/ue4m3.hpp"
#include "blockcast/block/block_format.hpp"
#include "blockcast/block/layout.hpp"
#include "blockcast/block/packed.hpp"
#include "blockcast/block/format_table.hpp"
#include "blockcast/kernels/reference.hpp"
#include "blockcast/api.hpp"
