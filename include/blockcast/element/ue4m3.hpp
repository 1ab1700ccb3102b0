// SPDX-License-Identifier: MIT
// UE4M3: the NVFP4 block scale, an E4M3 value with the sign bit always 0 (0x7f = NaN).
// Formats with this scale use two-level scaling with an FP32 tensor scale (see
// kernels/reference.hpp, quantize_two_level).
#pragma once

#include <cstdint>

#include "blockcast/element/float_format.hpp"

namespace blockcast {

struct ue4m3 {
  using value_format = fp8_e4m3;
  static constexpr int bits = 8;
  static constexpr std::uint8_t nan_code = fp8_e4m3::nan_code;  // 0.1111.111
  static constexpr bool has_nan = true;

  static constexpr bool is_nan(std::uint8_t code) { return fp8_e4m3::is_nan(code); }
  static constexpr float decode(std::uint8_t code) { return fp8_e4m3::decode(code); }
  static constexpr float max_value() { return fp8_e4m3::max_normal(); }  // 448
  /// Round-to-nearest-even code of a value in [0, 448].
  static std::uint8_t encode(float x) { return fp8_e4m3::encode(x); }
};

}  // namespace blockcast
