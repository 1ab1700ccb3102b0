// SPDX-License-Identifier: MIT
// The quantized weights of a safetensors file, whatever layout holds them: blockcast's own
// (described in the metadata: quantized_tensors.hpp) or an engine's (compressed-tensors,
// ModelOpt, gpt-oss: hf_layouts.hpp). The layout is read from the file: a file holding two
// layouts is refused as ambiguous.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "blockcast/io/hf_layouts.hpp"
#include "blockcast/io/quantized_tensors.hpp"
#include "blockcast/io/safetensors.hpp"

namespace blockcast::io {

/// A quantized weight of a file.
struct quantized_weight {
  std::string name;                  // as a model names it: "<module>.weight" (gpt-oss "<name>")
  layout where = layout::blockcast;
  std::string format, method;        // preset name; method: blockcast's description only
  std::size_t rows = 0, cols = 0;
  std::vector<std::uint64_t> shape;  // the weight's own shape
  std::vector<std::string> entries;  // the file's tensors that hold it, codes first
};

/// Every quantized weight of `f` by name, checked (check_quantized, engine_weights).
inline std::map<std::string, quantized_weight> quantized_weights(const safetensors_file& f) {
  std::map<std::string, quantized_weight> out;
  for (const auto& [name, d] : quantized_tensors(f)) {
    quantized_weight w{name, layout::blockcast, d.format, d.method, d.rows, d.cols, d.shape, {d.names.codes, d.names.scales}};
    if (!d.names.tensor_scale.empty()) w.entries.push_back(d.names.tensor_scale);
    out.emplace(name, std::move(w));
  }
  const auto engine = engine_weights(f);
  if (!out.empty() && !engine.empty())
    detail::fail(f.path(), "holds blockcast-described tensors and " + std::string(info(engine.begin()->second.where).name) +
                               " weights (" + in_quotes(engine.begin()->first) + "): refused as ambiguous");
  for (const auto& [name, e] : engine) out.emplace(name, quantized_weight{e.name, e.where, e.format, {}, e.rows, e.cols, e.shape, e.entries});
  return out;
}

/// The tensors of a file that are parts of its quantized weights (codes, scales): listings
/// and decoders show the weights instead. Activation scales of a quantized module
/// ("<module>.input_scale", ".input_global_scale") are parts too: nothing without the weight.
inline std::set<std::string> weight_parts(const safetensors_file& f, const std::map<std::string, quantized_weight>& weights) {
  std::set<std::string> parts;
  for (const auto& [name, w] : weights) {
    for (const auto& e : w.entries) parts.insert(e);
    const std::string m = module_of(w.name);
    for (const char* s : {".input_scale", ".input_global_scale"})
      if (!m.empty() && f.contains(m + s)) parts.insert(m + s);
  }
  return parts;
}

/// Reads weight `w` of `f` as a packed tensor of Format (which must be its format).
template <class Format>
packed_tensor<Format> read_quantized_weight(const safetensors_file& f, const quantized_weight& w) {
  if (w.where == layout::blockcast) return read_quantized<Format>(f, w.name);
  return read_engine_weight<Format>(f, engine_weight{w.where, w.format, w.name, w.rows, w.cols, w.shape, w.entries});
}

}  // namespace blockcast::io
