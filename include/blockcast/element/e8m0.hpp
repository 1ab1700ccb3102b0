// SPDX-License-Identifier: MIT
// E8M0: the MX shared scale, an unsigned power of two 2^(code - 127) (OCP MX v1.0 5.4.1).
#pragma once

#include <cstdint>
#include <limits>

#include "blockcast/element/bits.hpp"

namespace blockcast {

struct e8m0 {
  static constexpr int bits = 8;
  static constexpr int bias = 127;
  static constexpr int min_exponent = -127;  // code 0x00 = 2^-127, an FP32 subnormal
  static constexpr int max_exponent = 127;   // code 0xfe = 2^127
  static constexpr std::uint8_t nan_code = 0xff;
  static constexpr bool has_nan = true;

  static constexpr bool is_nan(std::uint8_t code) { return code == nan_code; }
  static constexpr int exponent(std::uint8_t code) { return code - bias; }
  /// 2^(code - 127); built exactly, never as `code << 23` (wrong for code 0).
  static constexpr float decode_exact(std::uint8_t code) {
    return code == nan_code ? std::numeric_limits<float>::quiet_NaN()
                            : detail::exp2i(code - bias);
  }
  /// FP32 bits of 2^(code - 127) (code != 0xff): 0x00 is the subnormal 2^-127.
  static constexpr std::uint32_t value_bits(std::uint8_t code) {
    return code == 0 ? 0x00400000u : static_cast<std::uint32_t>(code) << 23;
  }
  static float decode(std::uint8_t code) {
    return code == nan_code ? std::numeric_limits<float>::quiet_NaN()
                            : detail::bits_float(value_bits(code));
  }
  /// Code of 2^e for e clamped to [-127, 127].
  static constexpr std::uint8_t from_exponent(int e) {
    e = e < min_exponent ? min_exponent : (e > max_exponent ? max_exponent : e);
    return static_cast<std::uint8_t>(e + bias);
  }
};

}  // namespace blockcast
