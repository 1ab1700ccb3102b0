// SPDX-License-Identifier: MIT
// Exact rounding of x / 2^scale_exp onto an element grid, in integer arithmetic on the FP32
// bits of x. Dividing by the scale in floating point would double-round where the quotient
// falls below FP32's normal range; here the quotient is never formed.
//
// An element grid (float or integer elements alike) is described by
//   emin  : exponent of the smallest normal binade (integers: 0, one uniform binade)
//   mbits : fraction bits; the quantum in binade e >= emin is 2^(e - mbits), below emin it
//           is 2^(emin - mbits) (subnormals)
// and the magnitude code of a grid value is ((max(e, emin) - emin) << mbits) + N, where N is
// the value in quanta: for IEEE-style codes this is exactly the exponent-and-fraction field,
// and for integers it is |k|.
#pragma once

#include <cstdint>

#include "blockcast/element/bits.hpp"
#include "blockcast/policy.hpp"

namespace blockcast::detail {

struct grid_spec {
  int emin;                 // smallest normal exponent of the grid
  int mbits;                // fraction bits
  int emax;                 // largest exponent with a finite value
  std::uint32_t max_magnitude;  // largest magnitude code (saturation bound)
};

/// Should the truncated quotient be incremented? `shift` >= 1 bits were dropped from the
/// significand `m` (m < 2^24) leaving `kept`; `random` is used by rounding::stochastic only.
///   stochastic: up iff U < remainder / 2^shift, with U drawn from the 32 random bits:
///   the top `shift` bits when shift <= 32, else all 32 bits against remainder >> (shift-32).
constexpr bool round_up(std::uint32_t m, int shift, std::uint32_t kept, rounding mode,
                        std::uint32_t random) {
  // For shift >= 25 the kept part is 0 and the remainder is m itself (< 2^24 < half).
  const std::uint32_t remainder = shift >= 25 ? m : (m & ((1u << shift) - 1u));
  switch (mode) {
    case rounding::nearest_even:
    case rounding::nearest_away: {
      if (shift >= 25) return false;
      const std::uint32_t half = 1u << (shift - 1);
      if (remainder != half) return remainder > half;
      return mode == rounding::nearest_away || (kept & 1u) != 0;
    }
    case rounding::toward_zero:
      return false;
    case rounding::stochastic:
      if (shift <= 32) return (random >> (32 - shift)) < remainder;
      return shift - 32 < 32 && random < (remainder >> (shift - 32));
  }
  return false;
}

/// Magnitude code of |x| / 2^scale_exp rounded onto the grid, saturating at max_magnitude.
/// `abs_bits` are the FP32 bits of |x|, finite.
constexpr std::uint32_t round_to_grid(std::uint32_t abs_bits, int scale_exp,
                                      const grid_spec& grid, rounding mode,
                                      std::uint32_t random = 0) {
  if (abs_bits == 0) return 0;
  // |x| = m * 2^e2 exactly.
  const std::uint32_t exponent_field = abs_bits >> 23;
  const std::uint32_t m = exponent_field ? ((abs_bits & 0x7fffffu) | 0x800000u) : abs_bits;
  const int e2 = exponent_field ? static_cast<int>(exponent_field) - 150 : -149;

  const int e = floor_log2_bits(abs_bits) - scale_exp;  // binade of the quotient
  if (e > grid.emax) return grid.max_magnitude;
  const int binade = e > grid.emin ? e : grid.emin;
  // The quantum of that binade, as a power of two in units of x (not of the quotient).
  const int shift = (binade - grid.mbits + scale_exp) - e2;
  std::uint32_t quanta = 0;
  if (shift <= 0) {
    quanta = m << -shift;  // exact: only for grids finer than FP32 near the bottom
  } else {
    const std::uint32_t kept = shift >= 25 ? 0u : (m >> shift);
    quanta = kept + (round_up(m, shift, kept, mode, random) ? 1u : 0u);
  }
  const std::uint32_t magnitude =
      (static_cast<std::uint32_t>(binade - grid.emin) << grid.mbits) + quanta;
  return magnitude < grid.max_magnitude ? magnitude : grid.max_magnitude;
}

}  // namespace blockcast::detail
