// SPDX-License-Identifier: MIT
// The command line's enumerated options, each a table: the table feeds CLI11's checks, the
// help text and every message naming the choices, and options are parsed into enums once.
// Formats are the library's preset table (format_table.hpp), layouts io::layouts.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "blockcast/error.hpp"
#include "blockcast/io/layout.hpp"

namespace blockcast::cli {

enum class method { rtn, ed, gptq };
enum class out_dtype { bf16, f32 };

template <class Id>
struct choice {
  Id id;
  std::string_view name, help;
};

inline constexpr choice<method> methods[] = {
    {method::rtn, "rtn", "round to nearest"},
    {method::ed, "ed", "error diffusion (needs --calibration)"},
    {method::gptq, "gptq", "GPTQ (needs --calibration)"},
};
inline constexpr choice<out_dtype> out_dtypes[] = {{out_dtype::bf16, "bf16", "BF16"}, {out_dtype::f32, "f32", "F32"}};

/// Every name of a table, for CLI11's IsMember and for messages.
template <class Table>
std::vector<std::string> names_of(const Table& table) {
  std::vector<std::string> out;
  for (const auto& c : table) out.emplace_back(c.name);
  return out;
}
inline std::vector<std::string> layout_names(bool writable_only) {
  std::vector<std::string> out;
  for (const auto& l : io::layouts)
    if (l.writable || !writable_only) out.emplace_back(l.name);
  return out;
}
inline std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

template <class Table>
std::string_view name_of(const Table& table, decltype(table[0].id) id) {
  for (const auto& c : table)
    if (c.id == id) return c.name;
  return {};
}

/// The entry of `table` called `name`; throws invalid_argument naming `what` and the choices.
template <class Table>
auto parse_choice(const Table& table, const std::string& name, const char* what) {
  for (const auto& c : table)
    if (c.name == name) return c.id;
  blockcast::detail::fail<invalid_argument>(std::string("unknown ") + what + " '" + name + "' (known: " + joined(names_of(table)) + ")");
}

inline std::string_view name_of(method m) { return name_of(methods, m); }
inline std::string_view name_of(out_dtype d) { return name_of(out_dtypes, d); }

}  // namespace blockcast::cli
