// SPDX-License-Identifier: MIT
// Names that come from files (tensor names, shard names in an index) are data: this is how
// they are printed, and when one may name a file.
#pragma once

#include <cstddef>
#include <string>

namespace blockcast::io {

/// `text` made safe to print on one line of a terminal: control characters, DEL and
/// backslash are escaped (\n, \t, \xNN, \\), so a name cannot forge lines or send escape
/// sequences; names longer than `limit` bytes are cut, saying how long they were.
inline std::string printable(const std::string& text, std::size_t limit = 200) {
  static const char hex[] = "0123456789abcdef";
  std::string out;
  const std::size_t n = text.size() > limit ? limit : text.size();
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c == 0x7f) out += {'\\', 'x', hex[c >> 4], hex[c & 15]};
    else out += static_cast<char>(c);
  }
  if (n < text.size()) out += "...(" + std::to_string(text.size()) + " bytes)";
  return out;
}

/// Whether `s` ends with `suffix`.
inline bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// `name` in quotes, printable: for messages. Appended piece by piece: GCC 12 at -O3 in
/// C++20 reports a false -Wrestrict overlap in `"'" + std::string` (its bug 105329).
inline std::string in_quotes(const std::string& name) {
  std::string out = "'";
  out += printable(name);
  out += '\'';
  return out;
}

/// Whether `name` may be used as the name of a file in a directory: not empty, at most 255
/// bytes, not "." or "..", and no '/', NUL or other control character.
inline bool is_plain_file_name(const std::string& name) {
  if (name.empty() || name.size() > 255 || name == "." || name == "..") return false;
  for (const char ch : name) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '/' || c < 0x20 || c == 0x7f) return false;
  }
  return true;
}

}  // namespace blockcast::io
