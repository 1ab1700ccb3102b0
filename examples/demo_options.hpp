// SPDX-License-Identifier: MIT
// What both demos read from their command lines: comma-separated lists, and the formats to
// run (every preset by default), in order of bits per value.
#pragma once

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include "blockcast/block/format_table.hpp"

namespace demo {

/// The non-empty items of a comma-separated list.
inline std::vector<std::string> split(const std::string& list) {
  std::vector<std::string> out;
  std::stringstream s(list);
  for (std::string item; std::getline(s, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

/// The formats of a comma-separated list (empty: every preset), by bits per value.
inline std::vector<std::string> format_list(const std::string& formats) {
  std::vector<std::string> names = split(formats);
  if (names.empty())
    for (const auto& info : blockcast::preset_formats()) names.emplace_back(info.name);
  std::stable_sort(names.begin(), names.end(), [](const std::string& a, const std::string& b) {
    return blockcast::find_format(a).bits_per_value < blockcast::find_format(b).bits_per_value;
  });
  return names;
}

}  // namespace demo
