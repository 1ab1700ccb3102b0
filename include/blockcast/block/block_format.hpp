// SPDX-License-Identifier: MIT
// Block formats: an element format, a scale format and a block size (data-only traits). A block
// of BlockSize consecutive values along a row shares one scale.
#pragma once

#include <cstddef>
#include <type_traits>

#include "blockcast/element/e8m0.hpp"
#include "blockcast/element/float_format.hpp"
#include "blockcast/element/int_format.hpp"
#include "blockcast/element/ue4m3.hpp"

namespace blockcast {

template <class Element, class Scale, std::size_t BlockSize>
struct block_format {
  static_assert(BlockSize >= 1 && BlockSize <= 4096, "block_format: block size must be 1..4096");
  static_assert(std::is_same_v<Scale, e8m0> || std::is_same_v<Scale, ue4m3>,
                "block_format: the scale must be e8m0 (MX) or ue4m3 (two-level, as NVFP4)");
  static_assert(!std::is_same_v<Scale, ue4m3> || Element::is_float,
                "block_format: a ue4m3 (two-level) scale needs a float element");

  using element_type = Element;
  using scale_type = Scale;
  static constexpr std::size_t block_size = BlockSize;
  /// Two-level scaling: UE4M3 block scales under an FP32 tensor scale (NVFP4).
  static constexpr bool has_tensor_scale = std::is_same_v<Scale, ue4m3>;
  static constexpr int element_bits = Element::bits;
  /// Storage per value, scales included (the tensor scale is not counted).
  static constexpr double bits_per_value =
      Element::bits + static_cast<double>(Scale::bits) / static_cast<double>(BlockSize);
};

template <class T>
struct is_block_format : std::false_type {};
template <class E, class S, std::size_t B>
struct is_block_format<block_format<E, S, B>> : std::true_type {};
template <class T>
inline constexpr bool is_block_format_v = is_block_format<T>::value;

// The presets: OCP MX v1.0 (E8M0 scale per 32) and NVIDIA NVFP4 (UE4M3 per 16 + FP32).
using mxfp8_e4m3 = block_format<fp8_e4m3, e8m0, 32>;
using mxfp8_e5m2 = block_format<fp8_e5m2, e8m0, 32>;
using mxfp6_e3m2 = block_format<fp6_e3m2, e8m0, 32>;
using mxfp6_e2m3 = block_format<fp6_e2m3, e8m0, 32>;
using mxfp4 = block_format<fp4_e2m1, e8m0, 32>;
using mxint8 = block_format<int8, e8m0, 32>;
using nvfp4 = block_format<fp4_e2m1, ue4m3, 16>;

}  // namespace blockcast
