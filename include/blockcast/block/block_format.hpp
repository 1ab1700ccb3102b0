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

// The presets, one line each: OCP MX v1.0 (E8M0 scale per 32) and NVIDIA NVFP4 (UE4M3 per 16
// + FP32): mxfp8_e4m3, mxfp8_e5m2, mxfp6_e3m2, mxfp6_e2m3, mxfp4, mxint8, nvfp4. Every list of
// presets (these aliases, the preset table and visit_format in format_table.hpp, the
// runtime-dispatch library) is generated from this one, in this order: adding a preset is a
// line here plus its golden data.
//   X(alias, element type, scale type, block size, element name, scale name)
#define BLOCKCAST_PRESETS(X)                                  \
  X(mxfp8_e4m3, fp8_e4m3, e8m0, 32, "fp8_e4m3", "e8m0")      \
  X(mxfp8_e5m2, fp8_e5m2, e8m0, 32, "fp8_e5m2", "e8m0")      \
  X(mxfp6_e3m2, fp6_e3m2, e8m0, 32, "fp6_e3m2", "e8m0")      \
  X(mxfp6_e2m3, fp6_e2m3, e8m0, 32, "fp6_e2m3", "e8m0")      \
  X(mxfp4, fp4_e2m1, e8m0, 32, "fp4_e2m1", "e8m0")           \
  X(mxint8, int8, e8m0, 32, "int8", "e8m0")                  \
  X(nvfp4, fp4_e2m1, ue4m3, 16, "fp4_e2m1", "ue4m3 + fp32")

#define BLOCKCAST_PRESET_ALIAS(alias, element, scale, block, element_name, scale_name) \
  using alias = block_format<element, scale, block>;
BLOCKCAST_PRESETS(BLOCKCAST_PRESET_ALIAS)
#undef BLOCKCAST_PRESET_ALIAS

/// How many presets there are.
#define BLOCKCAST_PRESET_ONE(...) +1
inline constexpr std::size_t preset_count = 0 BLOCKCAST_PRESETS(BLOCKCAST_PRESET_ONE);
#undef BLOCKCAST_PRESET_ONE

/// Whether Format is one of the presets.
template <class Format>
struct is_preset
    : std::bool_constant<(false
#define BLOCKCAST_PRESET_IS(alias, ...) || std::is_same_v<Format, alias>
                              BLOCKCAST_PRESETS(BLOCKCAST_PRESET_IS)
#undef BLOCKCAST_PRESET_IS
                              )> {
};

}  // namespace blockcast
