// SPDX-License-Identifier: MIT
// Integer elements of the MX formats: two's complement k / 2^(Bits-2), i.e. one sign bit,
// one integer bit and Bits-2 fraction bits (MXINT8: k/64, OCP MX v1.0 section 5.4).
#pragma once

#include <cstdint>

#include "blockcast/element/bits.hpp"
#include "blockcast/element/grid.hpp"
#include "blockcast/policy.hpp"

namespace blockcast {

template <int Bits>
struct int_format {
  static_assert(Bits >= 2 && Bits <= 8, "int_format: 2 to 8 bits");

  static constexpr bool is_float = false;
  static constexpr int bits = Bits;
  static constexpr int fraction_bits = Bits - 2;
  static constexpr bool has_inf = false;
  static constexpr bool has_nan = false;
  static constexpr int emax = 0;  // largest value just below 2 = 2^(emax+1)
  /// Symmetric range: |k| <= 2^(Bits-1) - 1 (the usual default; -2^(Bits-1) is optional).
  static constexpr std::uint8_t max_magnitude = static_cast<std::uint8_t>((1u << (Bits - 1)) - 1u);
  static constexpr std::uint8_t code_mask = static_cast<std::uint8_t>((1u << Bits) - 1u);

  // One uniform binade: the grid is k * 2^-fraction_bits everywhere below 2.
  static constexpr detail::grid_spec grid{0, fraction_bits, 0, max_magnitude};
  // With the full range, negative values may reach k = -2^(Bits-1).
  static constexpr detail::grid_spec grid_full_negative{0, fraction_bits, 1,
                                                        max_magnitude + 1u};

  static constexpr int to_int(std::uint8_t code) {
    const int k = code & code_mask;
    return k >= (1 << (Bits - 1)) ? k - (1 << Bits) : k;
  }
  static constexpr float decode(std::uint8_t code) {
    return static_cast<float>(to_int(code)) * detail::exp2i(-fraction_bits);
  }
  static constexpr std::uint8_t make_code(bool negative, std::uint32_t magnitude,
                                          bool /*full_range*/ = false) {
    const std::uint32_t k = negative ? (0u - magnitude) : magnitude;
    return static_cast<std::uint8_t>(k & code_mask);
  }
  static constexpr const detail::grid_spec& grid_for(bool negative, bool full_range) {
    return negative && full_range ? grid_full_negative : grid;
  }

  /// Nearest code of a single value, saturating (Inf too); NaN maps to 0.
  static std::uint8_t encode(float x, rounding mode = rounding::nearest_even,
                             std::uint32_t random = 0, bool full_range = false) {
    const std::uint32_t u = detail::float_bits(x);
    const bool negative = (u >> 31) != 0;
    const std::uint32_t abs_bits = u & detail::fp32_abs_mask;
    if (abs_bits > detail::fp32_inf_bits) return 0;
    const auto& g = grid_for(negative, full_range);
    if (abs_bits == detail::fp32_inf_bits) return make_code(negative, g.max_magnitude);
    return make_code(negative, detail::round_to_grid(abs_bits, 0, g, mode, random));
  }

  static constexpr float max_normal() { return decode(max_magnitude); }
  static constexpr float min_subnormal() { return decode(1); }
};

/// The MXINT8 element: k/64, k in [-127, 127] (or [-128, 127] with the full range).
using int8 = int_format<8>;
static_assert(int8::max_normal() == 127.0f / 64.0f);

}  // namespace blockcast
