// SPDX-License-Identifier: MIT
// llama.cpp importance matrices (`llama-imatrix` output) as diagonal calibration statistics:
// per weight, the mean square of each input channel, the diagonal of H. Both of llama.cpp's
// files are read (docs/calibration_stats.md, "Importance matrices"):
//
//   GGUF (general.type "imatrix"): per weight "<name>.in_sum2" F32 [K, n_mat] (sums of x^2),
//     "<name>.counts" F32 [1, n_mat] (samples), optionally "<name>.in_sum" (sums of x);
//   legacy .dat, little endian: i32 n_entries; per entry i32 name length, the name, i32 ncall,
//     i32 nval, f32 values[nval] = mean(x^2) * ncall; then optionally i32 chunks, i32 length and
//     the dataset's name.
//
// Names are llama.cpp's ("blk.0.attn_q.weight"); gguf_weight_name maps a LLaMA-family
// Hugging Face name to it. ED from a diagonal model is RTN with each block's scale chosen by
// importance (ptq::diagonal_model, ed_options::scale_search).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include "blockcast/io/gguf.hpp"
#include "blockcast/io/io_error.hpp"
#include "blockcast/io/mapped_file.hpp"
#include "blockcast/io/staged_file.hpp"

namespace blockcast::io {

/// One weight's importance: the mean square of each input channel over `samples` inputs
/// (the legacy file stores chunks, not samples: there it is the chunk count).
struct importance {
  std::vector<double> mean_square;
  double samples = 0;
};

/// An importance matrix: llama.cpp weight name -> importance.
struct importance_matrix {
  std::string path;
  std::map<std::string, importance> weights;

  /// The importance of weight `name`, given as llama.cpp names it or by its Hugging Face
  /// name (gguf_weight_name), or nullptr.
  const importance* find(const std::string& name) const;
};

/// llama.cpp's name of a LLaMA-family Hugging Face weight ("model.layers.3.mlp.up_proj.weight"
/// -> "blk.3.ffn_up.weight"); other names are returned unchanged.
inline std::string gguf_weight_name(const std::string& hf) {
  static const std::regex layer(R"(model\.layers\.(\d+)\.(self_attn|mlp)\.(q|k|v|o|gate|up|down)_proj\.weight)");
  static const std::map<std::string, std::string> module{{"q", "attn_q"},      {"k", "attn_k"},   {"v", "attn_v"},
                                                         {"o", "attn_output"}, {"gate", "ffn_gate"}, {"up", "ffn_up"},
                                                         {"down", "ffn_down"}};
  std::smatch m;
  if (std::regex_match(hf, m, layer)) return "blk." + m[1].str() + "." + module.at(m[3].str()) + ".weight";
  if (hf == "lm_head.weight") return "output.weight";
  if (hf == "model.embed_tokens.weight") return "token_embd.weight";
  return hf;
}

inline const importance* importance_matrix::find(const std::string& name) const {
  auto it = weights.find(name);
  if (it == weights.end()) it = weights.find(gguf_weight_name(name));
  return it == weights.end() ? nullptr : &it->second;
}

namespace detail {

inline void check_importance(const std::string& path, const std::string& name, const importance& imp) {
  for (std::size_t j = 0; j < imp.mean_square.size(); ++j)
    if (!std::isfinite(imp.mean_square[j]) || imp.mean_square[j] < 0)
      fail(path, "entry " + in_quotes(name) + ": value " + std::to_string(j) + " is " + std::to_string(imp.mean_square[j]) +
                     " (mean squares are finite and >= 0)");
}

/// Bounds-checked little-endian reads of a legacy file.
struct dat_cursor {
  const std::string& path;
  const std::uint8_t* data;
  std::uint64_t size, at = 0;
  std::uint64_t left() const { return size - at; }
  void need(std::uint64_t n, const std::string& what) const {
    if (n > left())
      fail(path, "truncated: " + what + ": " + std::to_string(n) + " bytes needed at offset " + std::to_string(at) + ", " +
                     std::to_string(left()) + " left");
  }
  std::int32_t i32(const std::string& what) {
    need(4, what);
    std::uint32_t u = 0;
    for (int i = 0; i < 4; ++i) u |= static_cast<std::uint32_t>(data[at + static_cast<std::uint64_t>(i)]) << (8 * i);
    at += 4;
    return static_cast<std::int32_t>(u);
  }
  float f32(const std::string& what) {
    const std::uint32_t u = static_cast<std::uint32_t>(i32(what));
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
};

inline importance_matrix read_imatrix_dat(const std::string& path, const mapped_file& file) {
  importance_matrix out{path, {}};
  dat_cursor c{path, file.data(), file.size()};
  const std::int32_t entries = c.i32("the entry count");
  if (entries < 1 || static_cast<std::uint64_t>(entries) > c.left() / 16)
    fail(path, "entry count " + std::to_string(entries) + " is impossible for a file of " + std::to_string(file.size()) +
                   " bytes (not a llama.cpp importance matrix?)");
  for (std::int32_t e = 0; e < entries; ++e) {
    const std::string where = "entry " + std::to_string(e);
    const std::int32_t length = c.i32("the name length of " + where);
    if (length < 1 || length > 4096) fail(path, where + ": name length " + std::to_string(length) + " (1 to 4096)");
    c.need(static_cast<std::uint64_t>(length), "the name of " + where);
    const std::string name(reinterpret_cast<const char*>(c.data + c.at), static_cast<std::size_t>(length));
    c.at += static_cast<std::uint64_t>(length);
    const std::int32_t calls = c.i32("the call count of entry " + in_quotes(name));
    const std::int32_t values = c.i32("the value count of entry " + in_quotes(name));
    if (calls < 1) fail(path, "entry " + in_quotes(name) + ": call count " + std::to_string(calls) + " (>= 1)");
    if (values < 1) fail(path, "entry " + in_quotes(name) + ": value count " + std::to_string(values) + " (>= 1)");
    c.need(4 * static_cast<std::uint64_t>(values), "the " + std::to_string(values) + " values of entry " + in_quotes(name));
    importance imp{std::vector<double>(static_cast<std::size_t>(values)), static_cast<double>(calls)};
    for (auto& v : imp.mean_square) v = static_cast<double>(c.f32("a value")) / calls;  // stored: mean * ncall
    check_importance(path, name, imp);
    if (!out.weights.emplace(name, std::move(imp)).second) fail(path, "entry " + in_quotes(name) + " appears twice");
  }
  if (c.left() == 0) return out;  // the trailer is optional
  c.i32("the chunk count");
  if (c.left() == 0) return out;
  const std::int32_t length = c.i32("the dataset name's length");
  if (length < 0 || static_cast<std::uint64_t>(length) != c.left())
    fail(path, "the dataset name's length " + std::to_string(length) + " does not match the " + std::to_string(c.left()) +
                   " bytes left");
  return out;
}

inline importance_matrix read_imatrix_gguf(const std::string& path) {
  const gguf_file f(path);
  importance_matrix out{path, {}};
  auto floats = [&](const gguf_tensor& t) {
    if (t.type != ggml_f32) fail(path, "tensor " + in_quotes(t.name) + " is not F32");
    std::vector<float> v(static_cast<std::size_t>(t.elements()));
    f.read(t, 0, v.size() * 4, v.data());
    return v;
  };
  const std::string sum2 = ".in_sum2", counts = ".counts";
  for (const auto& t : f.tensors()) {
    if (t.name.size() <= sum2.size() || t.name.compare(t.name.size() - sum2.size(), sum2.size(), sum2) != 0) continue;
    const std::string name = t.name.substr(0, t.name.size() - sum2.size());
    if (!f.contains(name + counts)) fail(path, "tensor " + in_quotes(t.name) + " has no " + in_quotes(name + counts));
    const auto& c = f.find(name + counts);
    const std::uint64_t matrices = t.dims.size() < 2 ? 1 : t.dims[1];
    if (t.dims.empty() || t.dims[0] == 0 || t.dims.size() > 2 || c.elements() != matrices)
      fail(path, "tensors " + in_quotes(t.name) + " and " + in_quotes(c.name) + " have shapes that do not match");
    if (matrices != 1)
      fail(path, "entry " + in_quotes(name) + " holds " + std::to_string(matrices) +
                     " matrices (experts); blockcast reads importance of 2-D weights only");
    const std::vector<float> sums = floats(t), n = floats(c);
    if (!(n[0] > 0) || !std::isfinite(n[0])) fail(path, "entry " + in_quotes(name) + ": count " + std::to_string(n[0]) + " (> 0)");
    importance imp{std::vector<double>(sums.size()), static_cast<double>(n[0])};
    for (std::size_t j = 0; j < sums.size(); ++j) imp.mean_square[j] = static_cast<double>(sums[j]) / imp.samples;
    check_importance(path, name, imp);
    out.weights.emplace(name, std::move(imp));
  }
  if (out.weights.empty()) fail(path, "no '<weight>.in_sum2' tensors: not a llama.cpp importance matrix");
  return out;
}

}  // namespace detail

/// Whether the file at `path` looks like an importance matrix rather than safetensors
/// statistics: a GGUF file, or a name ending in ".dat".
inline bool is_imatrix_file(const std::string& path) {
  const mapped_file file(path);
  const bool gguf = file.size() >= 4 && std::memcmp(file.data(), "GGUF", 4) == 0;
  return gguf || (path.size() > 4 && path.compare(path.size() - 4, 4, ".dat") == 0);
}

/// Reads an importance matrix of either kind; an io_error names the file, the entry and what
/// is wrong.
inline importance_matrix read_imatrix(const std::string& path) {
  const mapped_file file(path);
  if (file.size() >= 4 && std::memcmp(file.data(), "GGUF", 4) == 0) return detail::read_imatrix_gguf(path);
  return detail::read_imatrix_dat(path, file);
}

/// The legacy .dat form's bytes (as llama-imatrix --output-format dat: values = mean * ncall).
inline std::vector<std::uint8_t> imatrix_dat_bytes(const std::map<std::string, importance>& weights, std::int32_t calls) {
  std::vector<std::uint8_t> out;
  auto i32 = [&](std::int32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::uint8_t>(static_cast<std::uint32_t>(v) >> (8 * i)));
  };
  i32(static_cast<std::int32_t>(weights.size()));
  for (const auto& [name, imp] : weights) {
    i32(static_cast<std::int32_t>(name.size()));
    out.insert(out.end(), name.begin(), name.end());
    i32(calls);
    i32(static_cast<std::int32_t>(imp.mean_square.size()));
    for (double v : imp.mean_square) {
      const float f = static_cast<float>(v * calls);
      std::uint32_t u;
      std::memcpy(&u, &f, 4);
      i32(static_cast<std::int32_t>(u));
    }
  }
  i32(calls);  // the chunk count; no dataset name
  return out;
}

/// Writes the legacy .dat form to `path` (atomically: staged, then renamed).
inline void write_imatrix_dat(const std::string& path, const std::map<std::string, importance>& weights, std::int32_t calls) {
  const std::vector<std::uint8_t> bytes = imatrix_dat_bytes(weights, calls);
  detail::staged_file file(path, path);
  file.open();
  file.put(bytes.data(), bytes.size());
  file.commit();
}

/// Writes the GGUF form (general.type "imatrix"; in_sum2 = mean * samples, counts = samples).
inline void write_imatrix_gguf(const std::string& path, const std::map<std::string, importance>& weights) {
  gguf_stream_writer out(path);
  out.set_metadata("general.type", gguf_value::string("imatrix"));
  std::vector<std::pair<std::string, std::vector<float>>> tensors;
  for (const auto& [name, imp] : weights) {
    std::vector<float> sums(imp.mean_square.size());
    for (std::size_t j = 0; j < sums.size(); ++j) sums[j] = static_cast<float>(imp.mean_square[j] * imp.samples);
    out.declare(name + ".in_sum2", {sums.size(), 1}, ggml_f32);
    out.declare(name + ".counts", {1, 1}, ggml_f32);
    tensors.emplace_back(name + ".in_sum2", std::move(sums));
    tensors.emplace_back(name + ".counts", std::vector<float>{static_cast<float>(imp.samples)});
  }
  for (const auto& [name, v] : tensors)
    out.write(name, span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(v.data()), v.size() * 4));
  out.commit();
}

}  // namespace blockcast::io
