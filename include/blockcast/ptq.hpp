// SPDX-License-Identifier: MIT
// Post-training quantization of layer weights (needs Eigen 3.4): error diffusion, GPTQ and
// RTN, calibration statistics and error metrics. Link the CMake target blockcast::ptq.
#pragma once

#include "blockcast/blockcast.hpp"
#include "blockcast/ptq/error_diffusion.hpp"
#include "blockcast/ptq/gptq.hpp"
#include "blockcast/ptq/input_stats.hpp"
#include "blockcast/ptq/matrix.hpp"
#include "blockcast/ptq/metrics.hpp"
#include "blockcast/ptq/quantized.hpp"
#include "blockcast/ptq/rtn.hpp"
