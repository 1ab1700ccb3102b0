// SPDX-License-Identifier: MIT
// Packed tensors in safetensors files. A quantized weight <name> is stored as
//   <name>               U8 [rows, row_code_bytes]   element codes (block/layout.hpp)
//   <name>.scales        U8 [rows, blocks_per_row]   one scale byte per block
//   <name>.tensor_scale  F32 [1]                     two-level formats (NVFP4) only: S_dec
// and described in __metadata__ under "blockcast.<name>" by a JSON object
//   {"format": "mxfp4", "block_size": 32, "shape": [rows, cols], "method": "ed"}
// so a reader knows how to decode it.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "blockcast/block/format_table.hpp"
#include "blockcast/block/packed.hpp"
#include "blockcast/io/safetensors.hpp"

namespace blockcast::io {

inline std::string quantized_metadata_key(const std::string& name) { return "blockcast." + name; }

/// Adds a packed tensor of a preset format (and its description) to a writer.
template <class Format>
void add_quantized(safetensors_writer& out, const std::string& name, const packed_tensor<Format>& p,
                   const std::string& method) {
  const std::string format_name(preset_name<Format>());
  if (format_name.empty()) detail::fail(name, "only preset formats can be stored (readers know them by name)");
  const auto rows = static_cast<std::uint64_t>(p.rows()), cols = static_cast<std::uint64_t>(p.cols());
  out.add(name, dtype::u8, {rows, static_cast<std::uint64_t>(row_code_bytes<Format>(p.cols()))}, p.codes());
  out.add(name + ".scales", dtype::u8, {rows, static_cast<std::uint64_t>(blocks_per_row<Format>(p.cols()))}, p.scales());
  if constexpr (Format::has_tensor_scale) {
    const float s = p.tensor_scale();
    out.add_f32(name + ".tensor_scale", {1}, span<const float>(&s, 1));
  }
  const nlohmann::json d = {{"format", format_name}, {"block_size", Format::block_size}, {"shape", {rows, cols}}, {"method", method}};
  out.set_metadata(quantized_metadata_key(name), d.dump());
}

/// What a file says about a quantized tensor (throws io_error if it is not described).
struct quantized_description {
  std::string format, method;
  std::size_t block_size = 0, rows = 0, cols = 0;
};

inline quantized_description describe_quantized(const safetensors_file& f, const std::string& name) {
  const auto it = f.metadata().find(quantized_metadata_key(name));
  if (it == f.metadata().end()) detail::fail(f.path(), "tensor '" + name + "' is not a blockcast quantized tensor");
  quantized_description d;
  try {
    const auto j = nlohmann::json::parse(it->second);
    d.format = j.at("format").get<std::string>();
    d.method = j.value("method", "");
    d.block_size = j.at("block_size").get<std::size_t>();
    d.rows = j.at("shape").at(0).get<std::size_t>();
    d.cols = j.at("shape").at(1).get<std::size_t>();
  } catch (const nlohmann::json::exception& e) {
    detail::fail(f.path(), "tensor '" + name + "': bad description: " + e.what());
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
  packed_tensor<Format> p(d.rows, d.cols);
  const auto codes = f.bytes(f.find(name));
  const auto scales = f.bytes(f.find(name + ".scales"));
  if (codes.size() != p.codes().size() || scales.size() != p.scales().size())
    detail::fail(f.path(), "tensor '" + name + "': " + std::to_string(codes.size()) + " code and " +
                               std::to_string(scales.size()) + " scale bytes for a " + d.format + " " +
                               std::to_string(d.rows) + " x " + std::to_string(d.cols) + " tensor");
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
