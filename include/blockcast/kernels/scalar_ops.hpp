// SPDX-License-Identifier: MIT
// The scalar building blocks shared by the reference and the SIMD kernels: the counter-based
// random bits of stochastic rounding, the shared-exponent rules and the two-level (NVFP4)
// tensor scale. The SIMD kernels implement the same arithmetic lane-wise.
#pragma once

#include <cstdint>
#include <limits>
#include <string>

#include "blockcast/block/block_format.hpp"
#include "blockcast/config.hpp"
#include "blockcast/element/bits.hpp"
#include "blockcast/error.hpp"
#include "blockcast/policy.hpp"

namespace blockcast::detail {

/// x unchanged, but opaque to the optimiser: a product passed through it is rounded to FP32
/// before the next addition. Compilers contract a * b + c into a fused multiply-add where the
/// target has one (GCC's default for C++, even with -std=c++17), and may then pick which of
/// two products stays unrounded; the kernels' documented orders need neither. T: a float, or
/// a SIMD register (__m128, __m256, __m512, float32x4_t).
template <class T>
BLOCKCAST_INLINE T fp32_rounded(T x) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  asm("" : "+v"(x));
#elif defined(__GNUC__) && (defined(__aarch64__) || defined(__arm__))
  asm("" : "+w"(x));
#else
  volatile T v = x;
  x = v;
#endif
  return x;
}

/// A 32-bit integer hash with good avalanche ("lowbias32", C. Wellons).
constexpr std::uint32_t mix32(std::uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

/// Per-tensor key of the generator: a function of the seed and the high half of the index.
constexpr std::uint32_t stochastic_key(std::uint64_t seed, std::uint32_t index_high) {
  return mix32(static_cast<std::uint32_t>(seed) ^
               mix32(static_cast<std::uint32_t>(seed >> 32) ^ mix32(index_high + 0x9e3779b9u)));
}

/// The 32 random bits of element `index` of a tensor: a pure function of (seed, index), so
/// stochastic rounding gives the same bits at every vector width and thread count.
constexpr std::uint32_t stochastic_bits(std::uint32_t key, std::uint32_t index_low) {
  return mix32(mix32(index_low + key) ^ key);
}
constexpr std::uint32_t stochastic_bits(std::uint64_t seed, std::uint64_t index) {
  return stochastic_bits(stochastic_key(seed, static_cast<std::uint32_t>(index >> 32)),
                         static_cast<std::uint32_t>(index));
}

/// The 23 fraction bits of the element's largest value normalised to [1, 2).
template <class Element>
constexpr std::uint32_t max_fraction_bits() {
  const int m = Element::grid.mbits;
  return (static_cast<std::uint32_t>(Element::max_magnitude) & ((1u << m) - 1u)) << (23 - m);
}

/// Shared block exponent (before the E8M0 bias) from the FP32 bits of the block's finite
/// amax, per scale rule, clamped to [-127, 127]. An all-zero block gets -127 (code 0x00).
template <class Element>
constexpr int shared_exponent(std::uint32_t amax_bits, scale_rule rule) {
  if (amax_bits == 0) return e8m0::min_exponent;
  int e = floor_log2_bits(amax_bits);
  const std::uint32_t fraction = normalized_fraction_bits(amax_bits);
  switch (rule) {
    case scale_rule::ocp_floor:
      break;
    case scale_rule::ceil:
      e += fraction != 0 ? 1 : 0;
      break;
    case scale_rule::even: {
      // amax rounded half-up to mbits fraction bits carries into the next binade
      const int m = Element::grid.mbits;
      e += fraction >= (1u << 23) - (1u << (22 - m)) ? 1 : 0;
      break;
    }
    case scale_rule::rceil:
      e += fraction > max_fraction_bits<Element>() ? 1 : 0;
      break;
  }
  e -= Element::emax;
  return e < e8m0::min_exponent ? e8m0::min_exponent
                                : (e > e8m0::max_exponent ? e8m0::max_exponent : e);
}

/// FP32 scales of a two-level format, in TransformerEngine's arithmetic order:
///   encode = min(scale_max * elem_max / tensor_amax, FLT_MAX)  (1 if tensor_amax is 0)
///   decode = 1 / encode
struct tensor_scales {
  float encode;
  float decode;
};

template <class Format>
tensor_scales two_level_tensor_scales(float tensor_amax) {
  using element = typename Format::element_type;
  constexpr float numerator = Format::scale_type::max_value() * element::max_normal();
  if (!(tensor_amax >= 0.0f) || tensor_amax == std::numeric_limits<float>::infinity())
    fail<invalid_argument>("tensor amax must be finite and >= 0, got " +
                           std::to_string(tensor_amax));
  float encode = 1.0f;
  if (tensor_amax > 0.0f) {
    encode = numerator / tensor_amax;
    if (encode > std::numeric_limits<float>::max()) encode = std::numeric_limits<float>::max();
  }
  return {encode, 1.0f / encode};
}

}  // namespace blockcast::detail
