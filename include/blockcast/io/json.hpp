// SPDX-License-Identifier: MIT
// JSON from files, parsed with a bound on nesting: nlohmann::json parses iteratively but
// dumps recursively, so a deeply nested value read from a file (an index's metadata, a
// header) would overflow the stack when written back. Nothing blockcast reads nests deeper
// than a few levels.
#pragma once

#include <algorithm>
#include <string>

#include <nlohmann/json.hpp>

namespace blockcast::io {

/// The deepest nesting accepted in JSON read from files.
inline constexpr int max_json_depth = 64;

/// The deepest nesting of arrays and objects in JSON text (brackets inside strings do not
/// count). Linear, and without building anything: nlohmann's parser callbacks, the obvious
/// place for this check, make parsing quadratic in the number of object members.
inline int json_depth(const char* first, const char* last) {
  int depth = 0, deepest = 0;
  bool in_string = false;
  for (const char* p = first; p != last; ++p) {
    if (in_string) {
      if (*p == '\\' && p + 1 != last) ++p;
      else if (*p == '"') in_string = false;
    } else if (*p == '"') {
      in_string = true;
    } else if (*p == '[' || *p == '{') {
      deepest = std::max(deepest, ++depth);
    } else if (*p == ']' || *p == '}') {
      --depth;
    }
  }
  return deepest;
}

/// Parses [first, last) as JSON; throws nlohmann::json::exception (out_of_range) when the
/// nesting is deeper than max_json_depth, as it does for malformed text.
inline nlohmann::json parse_json(const char* first, const char* last) {
  if (json_depth(first, last) > max_json_depth)
    throw nlohmann::json::out_of_range::create(406, "nested deeper than " + std::to_string(max_json_depth) + " levels", nullptr);
  return nlohmann::json::parse(first, last);
}
inline nlohmann::json parse_json(const std::string& text) { return parse_json(text.data(), text.data() + text.size()); }

}  // namespace blockcast::io
