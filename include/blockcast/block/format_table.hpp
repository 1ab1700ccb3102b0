// SPDX-License-Identifier: MIT
// The presets by name, for tools that take a format on the command line.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "blockcast/block/block_format.hpp"
#include "blockcast/error.hpp"

namespace blockcast {

/// A type tag that carries a block format through a runtime dispatch.
template <class Format>
struct format_tag {
  using type = Format;
};

/// What a tool shows about a preset.
struct format_info {
  std::string_view name;     // "mxfp4"
  std::string_view element;  // "fp4_e2m1"
  std::string_view scale;    // "e8m0"
  int element_bits;
  std::size_t block_size;
  double bits_per_value;  // element + scale bits per value (tensor scale not counted)
  float max_value;        // largest finite element magnitude (before scaling)
  float min_value;        // smallest positive element magnitude
  bool tensor_scale;      // has an FP32 tensor scale (two-level)
};

namespace detail {
template <class Format>
constexpr format_info make_info(std::string_view name, std::string_view element,
                                std::string_view scale) {
  using e = typename Format::element_type;
  return {name, element, scale, Format::element_bits, Format::block_size,
          Format::bits_per_value, e::max_normal(), e::min_subnormal(), Format::has_tensor_scale};
}
}  // namespace detail

/// The presets, in the order tools list them (BLOCKCAST_PRESETS).
inline const std::array<format_info, preset_count>& preset_formats() {
#define BLOCKCAST_PRESET_INFO(alias, element, scale, block, element_name, scale_name) \
  detail::make_info<alias>(#alias, element_name, scale_name),
  static const std::array<format_info, preset_count> table{{BLOCKCAST_PRESETS(BLOCKCAST_PRESET_INFO)}};
#undef BLOCKCAST_PRESET_INFO
  return table;
}

/// Calls f(format_tag<F>{}) for the preset named `name` and returns its result; throws
/// unknown_format (listing the known names) for any other name.
template <class Visitor>
decltype(auto) visit_format(std::string_view name, Visitor&& f) {
#define BLOCKCAST_PRESET_VISIT(alias, ...) \
  if (name == #alias) return f(format_tag<alias>{});
  BLOCKCAST_PRESETS(BLOCKCAST_PRESET_VISIT)
#undef BLOCKCAST_PRESET_VISIT
  std::string known;
  for (const auto& info : preset_formats()) known += (known.empty() ? "" : ", ") + std::string(info.name);
  detail::fail<unknown_format>("unknown format '" + std::string(name) + "' (known: " + known + ")");
}

/// The table entry of a preset; throws unknown_format for an unknown name.
inline const format_info& find_format(std::string_view name) {
  for (const auto& info : preset_formats())
    if (info.name == name) return info;
  return visit_format(name, [](auto) -> const format_info& { return preset_formats()[0]; });
}

/// The preset name of a block format ("mxfp4"), or an empty view for user-defined formats.
template <class Format>
std::string_view preset_name() {
  for (const auto& info : preset_formats())
    if (visit_format(info.name, [](auto tag) { return std::is_same_v<typename decltype(tag)::type, Format>; }))
      return info.name;
  return {};
}

}  // namespace blockcast
