// SPDX-License-Identifier: MIT
// Quantized Linear weights in the safetensors layouts engines load (docs/layouts.md):
//
//   compressed-tensors  <m>.weight_packed U8 [out, in/2]   FP4 codes, even column in the low nibble
//                       <m>.weight_scale  F8_E4M3 [out, in/16] (NVFP4) or U8 [out, in/32] (MXFP4, E8M0)
//                       <m>.weight_global_scale F32 [1]    NVFP4: the inverse of the decode scale
//   modelopt (NVFP4)    <m>.weight U8 [out, in/2], <m>.weight_scale F8_E4M3 [out, in/16],
//                       <m>.weight_scale_2 F32 []          the decode scale
//   gpt-oss (MXFP4)     <n>_blocks U8 [..., rows, in/32, 16], <n>_scales U8 [..., rows, in/32]
//
// The codes and block scales are blockcast's own bytes (same nibble order, UE4M3 = E4M3 with
// the sign clear, E8M0 as is), so only names, dtypes and the tensor scale change. An engine
// decodes an NVFP4 value as e2m1 * block scale * S, S its FP32 decode scale: weight_scale_2,
// or 1 / weight_global_scale, the alpha its GEMM kernels apply. The global scale written is one
// whose FP32 reciprocal is exactly blockcast's decode scale, so both decode the same floats.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "blockcast/block/format_table.hpp"
#include "blockcast/block/layout.hpp"
#include "blockcast/block/packed.hpp"
#include "blockcast/io/layout.hpp"
#include "blockcast/io/safetensors.hpp"

namespace blockcast::io {

/// The module of a Linear weight "<module>.weight" ("" when `weight` is not named so).
inline std::string module_of(const std::string& weight) {
  const std::string suffix = ".weight";
  if (weight.size() <= suffix.size() || !ends_with(weight, suffix)) return {};
  return weight.substr(0, weight.size() - suffix.size());
}

/// Why layout `l` (compressed-tensors or modelopt) cannot hold `weight`, a rows x cols tensor of
/// `Format` with `dims` dimensions; empty when it can.
template <class Format>
std::string engine_layout_refusal(layout l, const std::string& weight, std::size_t dims, std::size_t cols) {
  const std::string_view format = preset_name<Format>();
  if (!holds(l, format)) return std::string(info(l).name) + " has no " + std::string(format);
  if (module_of(weight).empty()) return std::string(info(l).name) + " stores Linear weights named '<module>.weight'";
  if (dims != 2) return std::string(info(l).name) + " stores 2-D Linear weights";
  if (cols % Format::block_size != 0)
    return "rows of " + std::to_string(cols) + " values are not whole groups of " + std::to_string(Format::block_size);
  return {};
}

/// The entries a rows x cols weight of `Format` is stored in under layout `l` (compressed-tensors
/// or modelopt), codes first, then block scales, then the tensor scale of two-level formats.
/// Throws layout_error when the layout cannot hold it (engine_layout_refusal).
template <class Format>
std::vector<stored_entry> engine_layout_entries(layout l, const std::string& weight, std::size_t rows, std::size_t cols) {
  if (l != layout::compressed_tensors && l != layout::modelopt) fail_layout(weight, "not a safetensors engine layout");
  const std::string refusal = engine_layout_refusal<Format>(l, weight, 2, cols);
  if (!refusal.empty()) fail_layout(weight, refusal);
  const std::string m = module_of(weight);
  const dtype scale_type = Format::has_tensor_scale ? dtype::f8_e4m3 : dtype::u8;
  std::vector<stored_entry> e{{m + (l == layout::modelopt ? ".weight" : ".weight_packed"), dtype::u8, {rows, row_code_bytes<Format>(cols)}},
                              {m + ".weight_scale", scale_type, {rows, blocks_per_row<Format>(cols)}}};
  if constexpr (Format::has_tensor_scale) {
    if (l == layout::modelopt) e.push_back({m + ".weight_scale_2", dtype::f32, {}});
    else e.push_back({m + ".weight_global_scale", dtype::f32, {1}});
  }
  return e;
}

/// compressed-tensors' weight_global_scale for decode scale `decode`: a float g whose FP32
/// reciprocal is exactly `decode` (blockcast's decode scale is itself the reciprocal of an
/// encode scale, so one exists). Throws layout_error if none is within 64 ulps of 1/decode.
inline float global_scale_for(float decode, const std::string& weight) {
  if (!(std::isfinite(decode) && decode > 0)) fail_layout(weight, "tensor scale " + std::to_string(decode) + " is not finite and > 0");
  const float guess = static_cast<float>(1.0 / static_cast<double>(decode));
  float lo = guess, hi = guess;
  for (int i = 0; i <= 64; ++i) {
    for (const float g : {lo, hi})
      if (std::isfinite(g) && g > 0 && 1.0f / g == decode) return g;
    lo = std::nextafter(lo, 0.0f);
    hi = std::nextafter(hi, std::numeric_limits<float>::infinity());
  }
  fail_layout(weight, "no FP32 global scale has the reciprocal " + std::to_string(decode));
}

/// The tensor scale stored for decode scale `decode` under layout `l`.
inline float stored_tensor_scale(layout l, float decode, const std::string& weight) {
  return l == layout::compressed_tensors ? global_scale_for(decode, weight) : decode;
}

/// The decode scale of a stored tensor scale `stored` under layout `l` (its FP32 reciprocal for
/// compressed-tensors). Throws layout_error unless it is finite and > 0.
inline float decode_scale_of(layout l, float stored, const std::string& weight) {
  const float decode = l == layout::compressed_tensors ? 1.0f / stored : stored;
  if (!(std::isfinite(stored) && stored > 0 && std::isfinite(decode) && decode > 0))
    fail_layout(weight, "its tensor scale " + std::to_string(stored) + " is not finite and > 0 (nor is its decode scale)");
  return decode;
}

/// Adds weight `weight` (packed `p`) to `out` in layout `l` (compressed-tensors or modelopt).
/// Returns what the conversion changed (nothing, for these layouts: the report is for
/// symmetry with GGUF). Throws layout_error for what the layout cannot hold.
template <class Format>
layout_report add_engine_weight(safetensors_writer& out, layout l, const std::string& weight, const packed_tensor<Format>& p);

/// Checks that an engine layout decodes `scales` (blockcast block-scale bytes of Format) as
/// blockcast does; throws layout_error otherwise. The one case: compressed-tensors' MXFP4
/// decodes E8M0 0xFF as 2^128 (infinity), not NaN, so a NaN block cannot be stored there.
template <class Format>
void check_engine_scales(layout l, span<const std::uint8_t> scales, const std::string& weight) {
  if constexpr (!Format::has_tensor_scale) {
    if (l != layout::compressed_tensors) return;
    for (std::size_t i = 0; i < scales.size(); ++i)
      if (scales[i] == 0xFF)
        fail_layout(weight, "block " + std::to_string(i) + " has a NaN scale (NaN or Inf in the weights), which compressed-tensors decodes as infinity");
  } else {
    (void)l, (void)scales, (void)weight;
  }
}

}  // namespace blockcast::io

namespace blockcast::io {

/// A quantized weight a file holds in an engine layout.
struct engine_weight {
  layout where = layout::compressed_tensors;
  std::string format;                // preset name: "nvfp4" or "mxfp4"
  std::string name;                  // the weight's own name: "<module>.weight", gpt-oss "<name>"
  std::size_t rows = 0, cols = 0;    // as packed: rows = all but the last dimension
  std::vector<std::uint64_t> shape;  // the weight's shape
  std::vector<std::string> entries;  // codes, block scales, tensor scale (two-level formats)
};

namespace detail {
inline std::string strip(const std::string& s, const std::string& suffix) { return s.substr(0, s.size() - suffix.size()); }

// codes U8 [rows, cols/2] and scales [rows, cols/B] of the right dtype: the weight's cols
inline std::size_t engine_cols(const safetensors_file& f, const std::string& weight, const tensor_info& codes,
                               const tensor_info& scales, dtype scale_type, std::size_t block) {
  const std::string where = "weight " + in_quotes(weight) + ": ";
  if (codes.type != dtype::u8 || codes.shape.size() != 2) fail(f.path(), where + "its codes " + in_quotes(codes.name) + " must be U8 [rows, cols/2]");
  if (scales.type != scale_type || scales.shape.size() != 2 || scales.shape[0] != codes.shape[0] ||
      scales.shape[1] * block != codes.shape[1] * 2)
    fail(f.path(), where + "its block scales " + in_quotes(scales.name) + " must be " + name(scale_type) + " [" +
                       std::to_string(codes.shape[0]) + ", " + std::to_string(codes.shape[1] * 2 / block) + "] (one per " +
                       std::to_string(block) + " values)");
  if (codes.shape[1] > std::numeric_limits<std::uint32_t>::max() / 2) fail(f.path(), where + "shape overflows");
  return static_cast<std::size_t>(codes.shape[1] * 2);
}

inline void require_scalar_f32(const safetensors_file& f, const std::string& weight, const std::string& entry) {
  const auto& t = f.find(entry);
  if (t.type != dtype::f32 || t.elements() != 1)
    fail(f.path(), "weight " + in_quotes(weight) + ": its tensor scale " + in_quotes(entry) + " must be one F32 value");
}
}  // namespace detail

/// Every weight a file holds in an engine layout (compressed-tensors, ModelOpt, gpt-oss), found
/// from its tensor names and dtypes, each one checked (dtypes, shapes, a tensor scale where the
/// format needs one). A file that mixes layouts, or a tensor two weights claim, is an io_error
/// naming the file: layouts are read from what the file says, never guessed.
inline std::map<std::string, engine_weight> engine_weights(const safetensors_file& f) {
  std::map<std::string, engine_weight> out;
  std::map<std::string, std::string> owner;  // entry -> weight
  std::set<layout> seen;
  auto add = [&](engine_weight w) {
    for (const auto& e : w.entries) {
      const auto [it, fresh] = owner.emplace(e, w.name);
      if (!fresh) detail::fail(f.path(), "tensor " + in_quotes(e) + " belongs to two quantized weights, " + in_quotes(it->second) + " and " + in_quotes(w.name));
    }
    seen.insert(w.where);
    if (seen.size() > 1) detail::fail(f.path(), "mixes checkpoint layouts (weight " + in_quotes(w.name) + " is " + std::string(info(w.where).name) + ", others are not): refused as ambiguous");
    out.emplace(w.name, std::move(w));
  };
  for (const auto& t : f.tensors()) {
    if (ends_with(t.name, ".weight_packed")) {  // compressed-tensors
      const std::string m = detail::strip(t.name, ".weight_packed"), scale = m + ".weight_scale", global = m + ".weight_global_scale";
      if (!f.contains(scale)) detail::fail(f.path(), "tensor " + in_quotes(t.name) + " has no " + in_quotes(scale) + " (compressed-tensors)");
      const bool nv = f.find(scale).type == dtype::f8_e4m3;
      engine_weight w{layout::compressed_tensors, nv ? "nvfp4" : "mxfp4", m + ".weight", 0, 0, {}, {t.name, scale}};
      w.cols = detail::engine_cols(f, w.name, t, f.find(scale), nv ? dtype::f8_e4m3 : dtype::u8, nv ? 16 : 32);
      if (nv) {
        if (!f.contains(global)) detail::fail(f.path(), "weight " + in_quotes(w.name) + " (NVFP4, compressed-tensors) has no " + in_quotes(global));
        detail::require_scalar_f32(f, w.name, global);
        w.entries.push_back(global);
      } else if (f.contains(global)) {
        detail::fail(f.path(), "weight " + in_quotes(w.name) + " has E8M0 block scales (MXFP4) and a global scale: not a compressed-tensors layout blockcast knows");
      }
      w.rows = static_cast<std::size_t>(t.shape[0]);
      w.shape = {w.rows, w.cols};
      add(std::move(w));
    } else if (ends_with(t.name, ".weight_scale_2")) {  // ModelOpt
      const std::string m = detail::strip(t.name, ".weight_scale_2"), codes = m + ".weight", scale = m + ".weight_scale";
      if (!f.contains(codes) || !f.contains(scale))
        detail::fail(f.path(), "tensor " + in_quotes(t.name) + " (ModelOpt) needs " + in_quotes(codes) + " and " + in_quotes(scale));
      engine_weight w{layout::modelopt, "nvfp4", codes, 0, 0, {}, {codes, scale, t.name}};
      w.cols = detail::engine_cols(f, w.name, f.find(codes), f.find(scale), dtype::f8_e4m3, 16);
      detail::require_scalar_f32(f, w.name, t.name);
      w.rows = static_cast<std::size_t>(f.find(codes).shape[0]);
      w.shape = {w.rows, w.cols};
      add(std::move(w));
    } else if (ends_with(t.name, "_blocks")) {  // gpt-oss
      const std::string n = detail::strip(t.name, "_blocks"), scale = n + "_scales";
      if (!f.contains(scale)) continue;  // a tensor of the model that happens to end in "_blocks"
      const auto& s = f.find(scale);
      const std::string where = "weight " + in_quotes(n) + " (gpt-oss MXFP4): ";
      if (t.type != dtype::u8 || t.shape.size() < 3 || t.shape.back() != 16)
        detail::fail(f.path(), where + in_quotes(t.name) + " must be U8 [..., rows, blocks, 16]");
      if (s.type != dtype::u8 || s.shape != std::vector<std::uint64_t>(t.shape.begin(), t.shape.end() - 1))
        detail::fail(f.path(), where + in_quotes(scale) + " must be U8 of the blocks' shape without its last dimension");
      engine_weight w{layout::gpt_oss, "mxfp4", n, 0, 0, {}, {t.name, scale}};
      std::uint64_t rows = 1;
      for (std::size_t i = 0; i + 2 < t.shape.size(); ++i) {
        if (t.shape[i] != 0 && rows > std::numeric_limits<std::uint32_t>::max() / t.shape[i]) detail::fail(f.path(), where + "shape overflows");
        rows *= t.shape[i];
      }
      const std::uint64_t cols = t.shape[t.shape.size() - 2] * 32;
      if (rows > std::numeric_limits<std::uint32_t>::max() || cols > std::numeric_limits<std::uint32_t>::max()) detail::fail(f.path(), where + "shape overflows");
      w.rows = static_cast<std::size_t>(rows);
      w.cols = static_cast<std::size_t>(cols);
      w.shape.assign(t.shape.begin(), t.shape.end() - 2);
      w.shape.push_back(cols);
      add(std::move(w));
    }
  }
  return out;
}

/// A weight found by engine_weights as a packed view over the file's own bytes: no copy, the
/// codes and block scales are blockcast's bytes already (valid while `f` lives). The tensor
/// scale is the decode scale (compressed-tensors' global scale becomes its FP32 reciprocal).
/// Throws io_error if `Format` is not the weight's format, its tensor scale is not finite and
/// > 0, or an NVFP4 block scale has its sign bit set (UE4M3 has none).
template <class Format>
packed_view<Format> view_engine_weight(const safetensors_file& f, const engine_weight& w) {
  if (w.format != preset_name<Format>())
    detail::fail(f.path(), "weight " + in_quotes(w.name) + " is " + w.format + ", not " + std::string(preset_name<Format>()));
  const auto codes = f.bytes(f.find(w.entries[0]));
  const auto scales = f.bytes(f.find(w.entries[1]));
  if (codes.size() != code_bytes<Format>(w.rows, w.cols) || scales.size() != scale_bytes<Format>(w.rows, w.cols))
    detail::fail(f.path(), "weight " + in_quotes(w.name) + ": codes or scales of the wrong size");
  float decode = 1.0f;
  if constexpr (Format::has_tensor_scale) {
    try {
      decode = decode_scale_of(w.where, f.to_float(f.find(w.entries[2]))[0], w.name);
    } catch (const layout_error& e) {
      detail::fail(f.path(), e.what());
    }
    for (const std::uint8_t s : scales)
      if (s & 0x80) detail::fail(f.path(), "weight " + in_quotes(w.name) + ": a negative E4M3 block scale (UE4M3 has no sign)");
  }
  return packed_view<Format>(w.rows, w.cols, codes, scales, decode);
}

/// The same weight copied into a packed tensor of its own.
template <class Format>
packed_tensor<Format> read_engine_weight(const safetensors_file& f, const engine_weight& w) {
  const packed_view<Format> v = view_engine_weight<Format>(f, w);
  packed_tensor<Format> p(w.rows, w.cols);
  std::copy(v.codes().begin(), v.codes().end(), p.codes().begin());
  std::copy(v.scales().begin(), v.scales().end(), p.scales().begin());
  p.set_tensor_scale(v.tensor_scale());
  return p;
}

}  // namespace blockcast::io

namespace blockcast::io {

template <class Format>
layout_report add_engine_weight(safetensors_writer& out, layout l, const std::string& weight, const packed_tensor<Format>& p) {
  const auto e = engine_layout_entries<Format>(l, weight, p.rows(), p.cols());
  check_engine_scales<Format>(l, p.scales(), weight);
  out.add(e[0].name, e[0].type, e[0].shape, p.codes());
  out.add(e[1].name, e[1].type, e[1].shape, p.scales());
  if constexpr (Format::has_tensor_scale) {
    const float s = stored_tensor_scale(l, p.tensor_scale(), weight);
    out.add_f32(e[2].name, e[2].shape, span<const float>(&s, 1));
  }
  return {};
}

}  // namespace blockcast::io
