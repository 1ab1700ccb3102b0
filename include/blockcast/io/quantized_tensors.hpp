// SPDX-License-Identifier: MIT
// Packed tensors in safetensors files. A quantized weight <name> is stored as
//   <name>               U8 [rows, row_code_bytes]   element codes (block/layout.hpp)
//   <name>.scales        U8 [rows, blocks_per_row]   one scale byte per block
//   <name>.tensor_scale  F32 [1]                     two-level formats (NVFP4) only: S_dec
// and described in __metadata__ under "blockcast.<name>" by a JSON object
//   {"format": "mxfp4", "block_size": 32, "shape": [rows, cols], "method": "ed"}
// so a reader knows how to decode it. "shape" is the tensor's own shape: a convolution's
// [out, in, kh, kw] is packed as rows = out, cols = in * kh * kw.
#pragma once

#include <limits>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "blockcast/block/format_table.hpp"
#include "blockcast/block/packed.hpp"
#include "blockcast/io/safetensors.hpp"

namespace blockcast::io {

inline std::string quantized_metadata_key(const std::string& name) { return "blockcast." + name; }

namespace detail {
// The safetensors entries of a quantized tensor: (name, dtype, shape), codes first.
struct stored_entry {
  std::string name;
  dtype type;
  std::vector<std::uint64_t> shape;
};

template <class Format>
std::vector<stored_entry> quantized_entries(const std::string& name, std::size_t rows, std::size_t cols) {
  std::vector<stored_entry> e{{name, dtype::u8, {rows, row_code_bytes<Format>(cols)}},
                              {name + ".scales", dtype::u8, {rows, blocks_per_row<Format>(cols)}}};
  if constexpr (Format::has_tensor_scale) e.push_back({name + ".tensor_scale", dtype::f32, {1}});
  return e;
}

// The __metadata__ description; `shape` is the tensor's own (rows = shape[0], cols = the rest).
template <class Format>
std::string quantized_description_json(const std::string& name, const std::vector<std::uint64_t>& shape,
                                       const std::string& method) {
  const std::string format_name(preset_name<Format>());
  if (format_name.empty()) fail(name, "only preset formats can be stored (readers know them by name)");
  return nlohmann::json{{"format", format_name}, {"block_size", Format::block_size}, {"shape", shape}, {"method", method}}.dump();
}

inline std::pair<std::size_t, std::size_t> matrix_dims(const std::string& name, const std::vector<std::uint64_t>& shape) {
  if (shape.size() < 2) fail(name, "a quantized tensor needs at least 2 dimensions (rows = the first)");
  std::uint64_t cols = 1;
  for (std::size_t i = 1; i < shape.size(); ++i) {
    if (shape[i] != 0 && cols > std::numeric_limits<std::uint32_t>::max() / shape[i]) fail(name, "shape overflows");
    cols *= shape[i];
  }
  if (shape[0] > std::numeric_limits<std::uint32_t>::max()) fail(name, "shape overflows");
  return {static_cast<std::size_t>(shape[0]), static_cast<std::size_t>(cols)};
}
}  // namespace detail

/// Adds a packed tensor of a preset format (and its description) to a writer. `shape` is the
/// tensor's shape when it is not the packed rows x cols (e.g. a convolution's [out, in, kh, kw]).
template <class Format>
void add_quantized(safetensors_writer& out, const std::string& name, const packed_tensor<Format>& p,
                   const std::string& method, std::vector<std::uint64_t> shape = {}) {
  if (shape.empty()) shape = {p.rows(), p.cols()};
  if (detail::matrix_dims(name, shape) != std::pair<std::size_t, std::size_t>(p.rows(), p.cols()))
    detail::fail(name, "shape does not match the packed " + std::to_string(p.rows()) + " x " + std::to_string(p.cols()) + " tensor");
  const std::string description = detail::quantized_description_json<Format>(name, shape, method);
  const auto entries = detail::quantized_entries<Format>(name, p.rows(), p.cols());
  out.add(entries[0].name, entries[0].type, entries[0].shape, p.codes());
  out.add(entries[1].name, entries[1].type, entries[1].shape, p.scales());
  if constexpr (Format::has_tensor_scale) {
    const float s = p.tensor_scale();
    out.add_f32(entries[2].name, entries[2].shape, span<const float>(&s, 1));
  }
  out.set_metadata(quantized_metadata_key(name), description);
}

/// Streaming form, step 1: declares the tensor's entries and description (before any write).
template <class Format>
void declare_quantized(safetensors_stream_writer& out, const std::string& name, const std::vector<std::uint64_t>& shape,
                       const std::string& method) {
  const auto [rows, cols] = detail::matrix_dims(name, shape);
  for (const auto& e : detail::quantized_entries<Format>(name, rows, cols)) out.declare(e.name, e.type, e.shape);
  out.set_metadata(quantized_metadata_key(name), detail::quantized_description_json<Format>(name, shape, method));
}

/// Streaming form, step 2: writes the declared tensor's codes, scales (and tensor scale).
template <class Format>
void write_quantized(safetensors_stream_writer& out, const std::string& name, const packed_tensor<Format>& p) {
  out.write(name, p.codes());
  out.write(name + ".scales", p.scales());
  if constexpr (Format::has_tensor_scale) {
    const float s = p.tensor_scale();
    out.write(name + ".tensor_scale", span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(&s), 4));
  }
}

/// What a file says about a quantized tensor (throws io_error if it is not described).
struct quantized_description {
  std::string format, method;
  std::size_t block_size = 0, rows = 0, cols = 0;
  std::vector<std::uint64_t> shape;  // the tensor's own shape; rows = shape[0], cols = the rest
};

inline bool is_quantized(const safetensors_file& f, const std::string& name) {
  return f.metadata().count(quantized_metadata_key(name)) != 0;
}

inline quantized_description describe_quantized(const safetensors_file& f, const std::string& name) {
  const auto it = f.metadata().find(quantized_metadata_key(name));
  if (it == f.metadata().end()) detail::fail(f.path(), "tensor '" + name + "' is not a blockcast quantized tensor");
  quantized_description d;
  try {
    const auto j = nlohmann::json::parse(it->second);
    d.format = j.at("format").get<std::string>();
    d.method = j.value("method", "");
    d.block_size = j.at("block_size").get<std::size_t>();
    d.shape = j.at("shape").get<std::vector<std::uint64_t>>();
  } catch (const nlohmann::json::exception& e) {
    detail::fail(f.path(), "tensor '" + name + "': bad description: " + e.what());
  }
  try {
    std::tie(d.rows, d.cols) = detail::matrix_dims(name, d.shape);
  } catch (const io_error& e) {
    detail::fail(f.path(), std::string("bad description: ") + e.what());
  }
  return d;
}

/// Reads a quantized tensor stored by add_quantized, checking format and sizes.
template <class Format>
packed_tensor<Format> read_quantized(const safetensors_file& f, const std::string& name) {
  const quantized_description d = describe_quantized(f, name);
  if (d.format != preset_name<Format>() || d.block_size != Format::block_size)
    detail::fail(f.path(), "tensor '" + name + "' is " + d.format + " (blocks of " + std::to_string(d.block_size) +
                               "), not " + std::string(preset_name<Format>()));
  const auto codes = f.bytes(f.find(name));
  const auto scales = f.bytes(f.find(name + ".scales"));
  // sizes checked before allocating: a corrupt description may claim any shape
  const std::uint64_t code_row = row_code_bytes<Format>(d.cols), scale_row = blocks_per_row<Format>(d.cols);
  const bool sizes_match = d.rows == 0 ? codes.size() == 0 && scales.size() == 0
                                       : codes.size() % d.rows == 0 && codes.size() / d.rows == code_row &&
                                             scales.size() % d.rows == 0 && scales.size() / d.rows == scale_row;
  if (!sizes_match)
    detail::fail(f.path(), "tensor '" + name + "': " + std::to_string(codes.size()) + " code and " +
                               std::to_string(scales.size()) + " scale bytes for a " + d.format + " " +
                               std::to_string(d.rows) + " x " + std::to_string(d.cols) + " tensor");
  packed_tensor<Format> p(d.rows, d.cols);
  std::copy(codes.begin(), codes.end(), p.codes().begin());
  std::copy(scales.begin(), scales.end(), p.scales().begin());
  if constexpr (Format::has_tensor_scale) {
    const auto s = f.to_float(f.find(name + ".tensor_scale"));
    if (s.size() != 1) detail::fail(f.path(), "tensor '" + name + ".tensor_scale' must hold one value");
    p.set_tensor_scale(s[0]);
  }
  return p;
}

}  // namespace blockcast::io
