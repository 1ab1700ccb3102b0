// SPDX-License-Identifier: MIT
// Packed tensors in safetensors files. A quantized weight <name> is stored as
//   <name>               U8 [rows, row_code_bytes]   element codes (block/layout.hpp)
//   <name>.scales        U8 [rows, blocks_per_row]   one scale byte per block
//   <name>.tensor_scale  F32 [1]                     two-level formats (NVFP4) only: S_dec
// and described in __metadata__ under "blockcast.<name>" by a JSON object
//   {"format": "mxfp4", "block_size": 32, "shape": [rows, cols], "method": "ed",
//    "scales": "<name>.scales", "tensor_scale": "<name>.tensor_scale"}
// so a reader knows how to decode it. "shape" is the tensor's own shape: a convolution's
// [out, in, kh, kw] is packed as rows = out, cols = in * kh * kw. The description names the
// scale entries, so they are never confused with a tensor of the model that happens to be
// called "<name>.scales": when that name is taken, the writer picks "<name>.scales.1" (and so
// on), and readers go by the description (files without the names use the defaults above).
#pragma once

#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "blockcast/block/format_table.hpp"
#include "blockcast/block/packed.hpp"
#include "blockcast/io/json.hpp"
#include "blockcast/io/names.hpp"
#include "blockcast/io/safetensors.hpp"

namespace blockcast::io {

inline std::string quantized_metadata_key(const std::string& name) { return "blockcast." + name; }

/// The entries a quantized tensor is stored in.
struct quantized_names {
  std::string codes, scales, tensor_scale;  // tensor_scale empty for one-level formats
};

namespace detail {
// `base` + suffix, or + suffix + ".1", ".2", ... when that is in `taken`.
inline std::string free_name(const std::string& base, const char* suffix, const std::set<std::string>& taken) {
  std::string name = base + suffix;
  for (int i = 1; taken.count(name); ++i) name = base + suffix + "." + std::to_string(i);
  return name;
}

template <class Format>
quantized_names choose_names(const std::string& name, std::set<std::string> taken) {
  taken.insert(name);
  quantized_names n{name, free_name(name, ".scales", taken), {}};
  taken.insert(n.scales);
  if constexpr (Format::has_tensor_scale) n.tensor_scale = free_name(name, ".tensor_scale", taken);
  return n;
}


// The __metadata__ description; `shape` is the tensor's own (rows = shape[0], cols = the rest).
template <class Format>
std::string quantized_description_json(const quantized_names& n, const std::vector<std::uint64_t>& shape,
                                       const std::string& method) {
  const std::string format_name(preset_name<Format>());
  if (format_name.empty()) fail(n.codes, "only preset formats can be stored (readers know them by name)");
  nlohmann::json j{{"format", format_name}, {"block_size", Format::block_size}, {"shape", shape}, {"method", method},
                   {"scales", n.scales}};
  if constexpr (Format::has_tensor_scale) j["tensor_scale"] = n.tensor_scale;
  return j.dump();
}

}  // namespace detail

/// A tensor of `shape` as the matrix it is quantized as: rows = shape[0], cols = the product
/// of the rest. Throws io_error naming `name` for fewer than 2 dimensions or overflow.
inline std::pair<std::size_t, std::size_t> matrix_shape(const std::string& name, const std::vector<std::uint64_t>& shape) {
  if (shape.size() < 2) detail::fail(name, "a quantized tensor needs at least 2 dimensions (rows = the first)");
  std::uint64_t cols = 1;
  for (std::size_t i = 1; i < shape.size(); ++i) {
    if (shape[i] != 0 && cols > std::numeric_limits<std::uint32_t>::max() / shape[i]) detail::fail(name, "shape overflows");
    cols *= shape[i];
  }
  if (shape[0] > std::numeric_limits<std::uint32_t>::max()) detail::fail(name, "shape overflows");
  return {static_cast<std::size_t>(shape[0]), static_cast<std::size_t>(cols)};
}
/// The entries a rows x cols tensor of Format is stored in under `n`: codes, scales, tensor scale.
template <class Format>
std::vector<stored_entry> quantized_entries(const quantized_names& n, std::size_t rows, std::size_t cols) {
  std::vector<stored_entry> e{{n.codes, dtype::u8, {rows, row_code_bytes<Format>(cols)}},
                              {n.scales, dtype::u8, {rows, blocks_per_row<Format>(cols)}}};
  if constexpr (Format::has_tensor_scale) e.push_back({n.tensor_scale, dtype::f32, {1}});
  return e;
}

/// Adds a packed tensor of a preset format (and its description) to a writer. `shape` is the
/// tensor's shape when it is not the packed rows x cols (e.g. a convolution's [out, in, kh, kw]).
/// `taken`: names of the file's other tensors, so the scale entries do not take one of them.
template <class Format>
void add_quantized(safetensors_writer& out, const std::string& name, const packed_tensor<Format>& p,
                   const std::string& method, std::vector<std::uint64_t> shape = {}, const std::set<std::string>& taken = {}) {
  if (shape.empty()) shape = {p.rows(), p.cols()};
  if (matrix_shape(name, shape) != std::pair<std::size_t, std::size_t>(p.rows(), p.cols()))
    detail::fail(name, "shape does not match the packed " + std::to_string(p.rows()) + " x " + std::to_string(p.cols()) + " tensor");
  const quantized_names n = detail::choose_names<Format>(name, taken);
  const std::string description = detail::quantized_description_json<Format>(n, shape, method);
  const auto entries = quantized_entries<Format>(n, p.rows(), p.cols());
  out.add(entries[0].name, entries[0].type, entries[0].shape, p.codes());
  out.add(entries[1].name, entries[1].type, entries[1].shape, p.scales());
  if constexpr (Format::has_tensor_scale) {
    const float s = p.tensor_scale();
    out.add_f32(entries[2].name, entries[2].shape, span<const float>(&s, 1));
  }
  out.set_metadata(quantized_metadata_key(name), description);
}

/// Streaming form, step 1: declares the tensor's entries and description (before any write).
/// `taken`: the names of the file's other tensors. Returns the entry names for step 2.
template <class Format>
quantized_names declare_quantized(safetensors_stream_writer& out, const std::string& name, const std::vector<std::uint64_t>& shape,
                                  const std::string& method, const std::set<std::string>& taken = {}) {
  const auto [rows, cols] = matrix_shape(name, shape);
  const quantized_names n = detail::choose_names<Format>(name, taken);
  for (const auto& e : quantized_entries<Format>(n, rows, cols)) out.declare(e.name, e.type, e.shape);
  out.set_metadata(quantized_metadata_key(name), detail::quantized_description_json<Format>(n, shape, method));
  return n;
}

/// Streaming form, step 2: writes the declared tensor's codes, scales (and tensor scale).
template <class Format>
void write_quantized(safetensors_stream_writer& out, const quantized_names& n, const packed_tensor<Format>& p) {
  out.write(n.codes, p.codes());
  out.write(n.scales, p.scales());
  if constexpr (Format::has_tensor_scale) {
    const float s = p.tensor_scale();
    out.write(n.tensor_scale, span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(&s), 4));
  }
}

/// What a file says about a quantized tensor (throws io_error if it is not described).
struct quantized_description {
  std::string format, method;
  std::size_t block_size = 0, rows = 0, cols = 0;
  std::vector<std::uint64_t> shape;  // the tensor's own shape; rows = shape[0], cols = the rest
  quantized_names names;             // where its codes and scales are stored
};

inline bool is_quantized(const safetensors_file& f, const std::string& name) {
  return f.metadata().count(quantized_metadata_key(name)) != 0;
}

/// The description as written, without checking it against the tensors (check_quantized does).
inline quantized_description describe_quantized(const safetensors_file& f, const std::string& name) {
  const auto it = f.metadata().find(quantized_metadata_key(name));
  if (it == f.metadata().end()) detail::fail(f.path(), "tensor " + in_quotes(name) + " is not a blockcast quantized tensor");
  quantized_description d;
  try {
    const auto j = parse_json(it->second);
    d.format = j.at("format").get<std::string>();
    d.method = j.value("method", "");
    d.block_size = j.at("block_size").get<std::size_t>();
    d.shape = j.at("shape").get<std::vector<std::uint64_t>>();
    d.names = {name, j.value("scales", name + ".scales"), j.value("tensor_scale", name + ".tensor_scale")};
  } catch (const nlohmann::json::exception& e) {
    detail::fail(f.path(), "tensor " + in_quotes(name) + ": bad description: " + e.what());
  }
  try {
    std::tie(d.rows, d.cols) = matrix_shape(name, d.shape);
  } catch (const io_error& e) {
    detail::fail(f.path(), std::string("bad description: ") + e.what());
  }
  return d;
}

/// The description of a quantized tensor, checked against the file: a preset format with its
/// block size, codes and scales of the sizes the shape needs (U8), and for two-level formats
/// a tensor scale that is one finite F32 > 0. Throws io_error naming the file and tensor.
inline quantized_description check_quantized(const safetensors_file& f, const std::string& name) {
  quantized_description d = describe_quantized(f, name);
  const std::string where = "tensor " + in_quotes(name) + ": ";
  if (!f.contains(d.names.codes) || f.find(d.names.codes).type != dtype::u8)
    detail::fail(f.path(), where + "its codes must be a U8 tensor");
  const format_info* info = nullptr;
  for (const auto& preset : preset_formats())
    if (preset.name == d.format) info = &preset;
  if (!info) detail::fail(f.path(), where + "unknown format " + in_quotes(d.format));
  const bool two_level = info->tensor_scale;
  visit_format(d.format, [&](auto tag) {
    using F = typename decltype(tag)::type;
    if (d.block_size != F::block_size)
      detail::fail(f.path(), where + d.format + " has blocks of " + std::to_string(F::block_size) + ", the description says " +
                                 std::to_string(d.block_size));
    if (!f.contains(d.names.scales) || d.names.scales == name)
      detail::fail(f.path(), where + "no scales tensor " + in_quotes(d.names.scales));
    const auto& codes = f.find(d.names.codes);
    const auto& scales = f.find(d.names.scales);
    // the byte counts (not only the shapes) decide: a corrupt description may claim any shape
    const std::uint64_t code_bytes = codes.end - codes.begin, scale_bytes = scales.end - scales.begin;
    const std::uint64_t code_row = row_code_bytes<F>(d.cols), scale_row = blocks_per_row<F>(d.cols);
    const bool sizes_match = scales.type == dtype::u8 &&
                             (d.rows == 0 ? code_bytes == 0 && scale_bytes == 0
                                          : code_bytes % d.rows == 0 && code_bytes / d.rows == code_row &&
                                                scale_bytes % d.rows == 0 && scale_bytes / d.rows == scale_row);
    if (!sizes_match)
      detail::fail(f.path(), where + std::to_string(code_bytes) + " code and " + std::to_string(scale_bytes) +
                                 " scale bytes (U8) for a " + d.format + " " + std::to_string(d.rows) + " x " +
                                 std::to_string(d.cols) + " tensor");
  });
  if (two_level) {
    if (!f.contains(d.names.tensor_scale)) detail::fail(f.path(), where + "no tensor scale " + in_quotes(d.names.tensor_scale));
    const auto& t = f.find(d.names.tensor_scale);
    if (t.type != dtype::f32 || t.elements() != 1) detail::fail(f.path(), where + "the tensor scale must be one F32 value");
    const float s = f.to_float(t)[0];
    if (!(std::isfinite(s) && s > 0)) detail::fail(f.path(), where + "the tensor scale " + std::to_string(s) + " is not finite and > 0");
  } else {
    d.names.tensor_scale.clear();
  }
  return d;
}

/// Every quantized tensor of a file, checked (check_quantized), by name; and no entry is the
/// codes or scales of two tensors.
inline std::map<std::string, quantized_description> quantized_tensors(const safetensors_file& f) {
  std::map<std::string, quantized_description> out;
  std::map<std::string, std::string> owner;  // entry -> the quantized tensor it belongs to
  for (const auto& t : f.tensors()) {
    if (!is_quantized(f, t.name)) continue;
    auto d = check_quantized(f, t.name);
    for (const auto* entry : {&d.names.codes, &d.names.scales, &d.names.tensor_scale}) {
      if (entry->empty()) continue;
      const auto [it, fresh] = owner.emplace(*entry, t.name);
      if (!fresh) detail::fail(f.path(), "tensor " + in_quotes(*entry) + " is claimed by quantized tensors " + in_quotes(it->second) + " and " + in_quotes(t.name));
    }
    out.emplace(t.name, std::move(d));
  }
  return out;
}

/// The scale entries of a file's quantized tensors: parts of those tensors, not tensors of
/// their own (listings and decoders skip them).
inline std::set<std::string> scale_entries(const std::map<std::string, quantized_description>& quantized) {
  std::set<std::string> names;
  for (const auto& [name, d] : quantized) {
    names.insert(d.names.scales);
    if (!d.names.tensor_scale.empty()) names.insert(d.names.tensor_scale);
  }
  return names;
}

/// Reads a quantized tensor stored by add_quantized, checking format and sizes.
template <class Format>
packed_tensor<Format> read_quantized(const safetensors_file& f, const std::string& name) {
  const quantized_description d = check_quantized(f, name);
  if (d.format != preset_name<Format>())
    detail::fail(f.path(), "tensor " + in_quotes(name) + " is " + d.format + ", not " + std::string(preset_name<Format>()));
  const auto codes = f.bytes(f.find(d.names.codes));
  const auto scales = f.bytes(f.find(d.names.scales));
  packed_tensor<Format> p(d.rows, d.cols);
  std::copy(codes.begin(), codes.end(), p.codes().begin());
  std::copy(scales.begin(), scales.end(), p.scales().begin());
  if constexpr (Format::has_tensor_scale) p.set_tensor_scale(f.to_float(f.find(d.names.tensor_scale))[0]);
  return p;
}

}  // namespace blockcast::io
