// SPDX-License-Identifier: MIT
// JSON from files, parsed with a bound on nesting: nlohmann::json parses iteratively but
// dumps recursively, so a deeply nested value read from a file (an index's metadata, a
// header) would overflow the stack when written back. Nothing blockcast reads nests deeper
// than a few levels.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace blockcast::io {

/// The deepest nesting accepted in JSON read from files.
inline constexpr int max_json_depth = 64;

/// Parses [first, last) as JSON; throws nlohmann::json::exception (out_of_range) when the
/// nesting is deeper than max_json_depth, as it does for malformed text.
inline nlohmann::json parse_json(const char* first, const char* last) {
  const nlohmann::json::parser_callback_t limit = [](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
    if (depth > max_json_depth)
      throw nlohmann::json::out_of_range::create(406, "nested deeper than " + std::to_string(max_json_depth) + " levels",
                                                 nullptr);
    return true;
  };
  return nlohmann::json::parse(first, last, limit);
}
inline nlohmann::json parse_json(const std::string& text) { return parse_json(text.data(), text.data() + text.size()); }

}  // namespace blockcast::io
