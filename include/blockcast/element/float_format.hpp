// SPDX-License-Identifier: MIT
// eXmY floating-point element formats (OCP OFP8, OCP MX v1.0 FP6/FP4): one template, every
// constant derived at compile time.
#pragma once

#include <array>
#include <cstdint>
#include <limits>

#include "blockcast/element/bits.hpp"
#include "blockcast/element/grid.hpp"
#include "blockcast/policy.hpp"

namespace blockcast {

/// Which codes of an eXmY format are special.
enum class specials : std::uint8_t {
  ieee,        ///< all-ones exponent: Inf (fraction 0) and NaN (else), as IEEE 754 (E5M2)
  finite_nan,  ///< no Inf; only S.1..1.1..1 is NaN: the OCP "fn" rule (E4M3)
  none,        ///< every code is a finite number (FP6, FP4)
};

/// A sign + ExpBits + ManBits floating-point element with subnormals and +-0.
template <int ExpBits, int ManBits, specials Specials>
struct float_format {
  static_assert(ExpBits >= 1 && ManBits >= 0, "float_format: need at least one exponent bit");
  static_assert(1 + ExpBits + ManBits <= 8, "float_format: element codes are at most 8 bits");
  static_assert(Specials != specials::ieee || (ExpBits >= 2 && ManBits >= 1),
                "float_format: IEEE specials need >= 2 exponent and >= 1 mantissa bits");
  static_assert(Specials != specials::finite_nan || ExpBits + ManBits >= 2,
                "float_format: finite_nan needs a code left for finite values");

  static constexpr bool is_float = true;
  static constexpr int exponent_bits = ExpBits;
  static constexpr int mantissa_bits = ManBits;
  static constexpr int bits = 1 + ExpBits + ManBits;
  static constexpr specials special_values = Specials;
  static constexpr bool has_inf = Specials == specials::ieee;
  static constexpr bool has_nan = Specials != specials::none;

  static constexpr int bias = (1 << (ExpBits - 1)) - 1;
  static constexpr int emin = 1 - bias;  // exponent of the smallest normal
  static constexpr int max_exponent_field =
      Specials == specials::ieee ? (1 << ExpBits) - 2 : (1 << ExpBits) - 1;
  static constexpr int emax = max_exponent_field - bias;

  static constexpr std::uint8_t sign_mask = static_cast<std::uint8_t>(1u << (bits - 1));
  static constexpr std::uint8_t magnitude_mask = static_cast<std::uint8_t>(sign_mask - 1u);
  /// Largest finite magnitude code: the saturation bound.
  static constexpr std::uint8_t max_magnitude = static_cast<std::uint8_t>(
      ((max_exponent_field << ManBits) | ((1 << ManBits) - 1)) -
      (Specials == specials::finite_nan ? 1 : 0));
  /// Canonical (quiet) NaN code, positive; 0 for formats without NaN.
  static constexpr std::uint8_t nan_code =
      Specials == specials::ieee
          ? static_cast<std::uint8_t>((((1 << ExpBits) - 1) << ManBits) | (1 << (ManBits - 1)))
          : Specials == specials::finite_nan ? magnitude_mask : 0;
  /// +Inf code; 0 for formats without Inf.
  static constexpr std::uint8_t inf_code =
      Specials == specials::ieee ? static_cast<std::uint8_t>(((1 << ExpBits) - 1) << ManBits)
                                 : 0;

  static constexpr detail::grid_spec grid{emin, ManBits, emax, max_magnitude};
  static constexpr const detail::grid_spec& grid_for(bool /*negative*/, bool /*full_range*/) {
    return grid;
  }

  static constexpr bool is_nan(std::uint8_t code) {
    const int magnitude = code & magnitude_mask;
    if constexpr (Specials == specials::ieee) {
      return (magnitude >> ManBits) == (1 << ExpBits) - 1 && (magnitude & ((1 << ManBits) - 1));
    } else if constexpr (Specials == specials::finite_nan) {
      return magnitude == magnitude_mask;
    } else {
      return false;
    }
  }
  static constexpr bool is_inf(std::uint8_t code) {
    return has_inf && (code & magnitude_mask) == inf_code;
  }

  /// Value of a code (bits above `bits` are ignored), from the format's definition.
  static constexpr float decode_exact(std::uint8_t code) {
    code = static_cast<std::uint8_t>(code & ((1u << bits) - 1u));
    const bool negative = (code & sign_mask) != 0;
    float value = 0.0f;
    if (is_nan(code)) {
      value = std::numeric_limits<float>::quiet_NaN();
    } else if (is_inf(code)) {
      value = std::numeric_limits<float>::infinity();
    } else {
      const int magnitude = code & magnitude_mask;
      const int exponent_field = magnitude >> ManBits;
      const int fraction = magnitude & ((1 << ManBits) - 1);
      value = exponent_field == 0
                  ? static_cast<float>(fraction) * detail::exp2i(emin - ManBits)
                  : static_cast<float>((1 << ManBits) + fraction) *
                        detail::exp2i(exponent_field - bias - ManBits);
    }
    return negative ? -value : value;
  }

  /// Value of a code (bits above `bits` are ignored): decode_exact, tabulated.
  static constexpr float decode(std::uint8_t code);

  /// Code of a magnitude code with a sign.
  static constexpr std::uint8_t make_code(bool negative, std::uint32_t magnitude,
                                          bool /*full_range*/ = false) {
    return static_cast<std::uint8_t>((negative ? sign_mask : 0u) | magnitude);
  }

  /// Nearest code of a single value (no block scale), saturating finite values. Inf stays Inf
  /// where the format has it and saturates otherwise; NaN maps to the NaN code, or to +0 in
  /// formats without NaN (in MX blocks the NaN is carried by the block scale instead).
  static std::uint8_t encode(float x, rounding mode = rounding::nearest_even,
                             std::uint32_t random = 0) {
    const std::uint32_t u = detail::float_bits(x);
    const bool negative = (u >> 31) != 0;
    const std::uint32_t abs_bits = u & detail::fp32_abs_mask;
    if (abs_bits > detail::fp32_inf_bits) return make_code(negative, nan_code);
    if (abs_bits == detail::fp32_inf_bits && has_inf) return make_code(negative, inf_code);
    if (abs_bits == detail::fp32_inf_bits) return make_code(negative, max_magnitude);
    return make_code(negative, detail::round_to_grid(abs_bits, 0, grid, mode, random));
  }

  static constexpr float max_normal() { return decode(max_magnitude); }
  static constexpr float min_normal() { return decode(static_cast<std::uint8_t>(1u << ManBits)); }
  /// Smallest positive value (a subnormal when ManBits > 0).
  static constexpr float min_subnormal() { return decode(1); }
};

namespace detail {
/// Every value of a format, indexed by code; built at compile time.
template <class Format>
struct value_table {
  static constexpr std::array<float, (1u << Format::bits)> make() {
    std::array<float, (1u << Format::bits)> t{};
    for (unsigned c = 0; c < t.size(); ++c) t[c] = Format::decode_exact(static_cast<std::uint8_t>(c));
    return t;
  }
  static constexpr std::array<float, (1u << Format::bits)> values = make();
};
}  // namespace detail

template <int ExpBits, int ManBits, specials Specials>
constexpr float float_format<ExpBits, ManBits, Specials>::decode(std::uint8_t code) {
  return detail::value_table<float_format>::values[code & ((1u << bits) - 1u)];
}

// The OCP element formats. Value comments: largest finite magnitude.
using fp8_e4m3 = float_format<4, 3, specials::finite_nan>;  // 0.1111.110 = 1.75 * 2^8  = 448
using fp8_e5m2 = float_format<5, 2, specials::ieee>;        // 0.11110.11 = 1.75 * 2^15 = 57344
using fp6_e3m2 = float_format<3, 2, specials::none>;        // 0.111.11   = 1.75 * 2^4  = 28
using fp6_e2m3 = float_format<2, 3, specials::none>;        // 0.11.111   = 1.875 * 2^2 = 7.5
using fp4_e2m1 = float_format<2, 1, specials::none>;        // 0.11.1     = 1.5 * 2^2   = 6

static_assert(fp8_e4m3::max_magnitude == 0x7e && fp8_e4m3::nan_code == 0x7f);
static_assert(fp8_e5m2::max_magnitude == 0x7b && fp8_e5m2::inf_code == 0x7c);
static_assert(fp4_e2m1::max_magnitude == 0x7 && fp4_e2m1::emax == 2);

}  // namespace blockcast
