// SPDX-License-Identifier: MIT
// FP32 bit access and exact powers of two. Exponents are always taken from the float's
// bits: log2f is wrong one binade below powers of two, and slow.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>

namespace blockcast::detail {

inline std::uint32_t float_bits(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}

inline float bits_float(std::uint32_t u) {
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

inline constexpr std::uint32_t fp32_abs_mask = 0x7fffffffu;
inline constexpr std::uint32_t fp32_inf_bits = 0x7f800000u;   // +Inf; larger = NaN
inline constexpr std::uint32_t fp32_qnan_bits = 0x7fc00000u;  // canonical quiet NaN

/// 2^e as a float, exact for e in [-149, 127] (subnormals included), constexpr.
constexpr float exp2i(int e) {
  float r = 1.0f;
  for (; e > 0; --e) r *= 2.0f;
  for (; e < 0; ++e) r *= 0.5f;
  return r;
}

/// floor(log2 |x|) for the FP32 magnitude bits `abs_bits` of a finite nonzero value,
/// subnormals included.
constexpr int floor_log2_bits(std::uint32_t abs_bits) {
  const int exponent_field = static_cast<int>(abs_bits >> 23);
  if (exponent_field != 0) return exponent_field - 127;
  int msb = 22;
  while (((abs_bits >> msb) & 1u) == 0) --msb;
  return msb - 149;
}

/// The 23 fraction bits of |x| normalised to [1, 2) (subnormals shifted up), as an integer.
constexpr std::uint32_t normalized_fraction_bits(std::uint32_t abs_bits) {
  if ((abs_bits >> 23) != 0) return abs_bits & 0x7fffffu;
  int msb = 22;
  while (((abs_bits >> msb) & 1u) == 0) --msb;
  return (abs_bits << (23 - msb)) & 0x7fffffu;
}

}  // namespace blockcast::detail
