// SPDX-License-Identifier: MIT
// blockcast's packed MXFP4 and NVFP4 rows <-> ggml's block types, as llama.cpp decodes them
// (ggml-common.h, ggml-quants.c; docs/layouts.md):
//
//   MXFP4 (type 39), 32 values in 17 bytes: { e; qs[16] }, e the E8M0 byte and
//     qs[j] = c[j] | c[j + 16] << 4 ("split" nibble order). ggml decodes code 8 (-0) as +0
//     and refuses e = 0xFF (NaN).
//   NVFP4 (type 40), 64 values in 36 bytes: { d[4]; qs[32] }, one UE4M3 byte per sub-block of
//     16 and, per sub-block s, qs[8s + j] = c[16s + j] | c[16s + j + 8] << 4. ggml decodes its
//     scale as half the UE4M3 value against doubled E2M1 values (the product is the same),
//     0x7F (NaN) as 0, and has no tensor scale: llama.cpp keeps that in an F32 tensor (see
//     ggml_scale_tensor_name).
//
// What ggml cannot hold is never changed silently: -0 codes become +0 (the value ggml decodes
// for them) and are counted in the report; a NaN block scale is a layout_error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "blockcast/block/format_table.hpp"
#include "blockcast/block/layout.hpp"
#include "blockcast/io/layout.hpp"

namespace blockcast::io {

/// The ggml block type of a preset: 39 (MXFP4), 40 (NVFP4), or 0 when ggml has none.
template <class Format>
constexpr std::uint32_t ggml_type_of() {
  if constexpr (std::is_same_v<Format, mxfp4>) return 39;
  else if constexpr (std::is_same_v<Format, nvfp4>) return 40;
  else return 0;
}

/// Values per ggml block (what a row's length must be a multiple of) and bytes per block.
template <class Format>
constexpr std::size_t ggml_block_values() { return std::is_same_v<Format, nvfp4> ? 64 : 32; }
template <class Format>
constexpr std::size_t ggml_block_bytes() { return std::is_same_v<Format, nvfp4> ? 36 : 17; }
template <class Format>
constexpr std::size_t ggml_row_bytes(std::size_t cols) { return cols / ggml_block_values<Format>() * ggml_block_bytes<Format>(); }

/// llama.cpp's general.file_type (llama_ftype, llama.h) for a file whose weights are mostly
/// this format: LLAMA_FTYPE_MOSTLY_MXFP4_MOE (38), LLAMA_FTYPE_MOSTLY_NVFP4 (39); and for
/// dequantized files, LLAMA_FTYPE_ALL_F32 (0) and LLAMA_FTYPE_MOSTLY_BF16 (32).
template <class Format>
constexpr std::uint32_t llama_file_type_of() { return std::is_same_v<Format, nvfp4> ? 39 : 38; }
inline constexpr std::uint32_t llama_file_type_f32 = 0, llama_file_type_bf16 = 32;
/// general.quantization_version as llama.cpp's quantizer writes it (GGML_QNT_VERSION).
inline constexpr std::uint32_t ggml_quantization_version = 2;

/// llama.cpp's name for the F32 second-level scale of NVFP4 weight "<x>.weight": "<x>.scale"
/// (empty when the name does not end in ".weight": llama.cpp has no place for its scale).
inline std::string ggml_scale_tensor_name(const std::string& weight) {
  const std::string suffix = ".weight";
  if (weight.size() <= suffix.size() || !ends_with(weight, suffix)) return {};
  return weight.substr(0, weight.size() - suffix.size()) + ".scale";
}

namespace detail {
constexpr std::uint8_t e8m0_nan = 0xFF, ue4m3_nan = 0x7F, e2m1_negative_zero = 8;

// code 8 (-0) -> 0, counted
inline std::uint8_t ggml_code(std::uint8_t c, std::uint64_t& negative_zeros) {
  if (c == e2m1_negative_zero) {
    ++negative_zeros;
    return 0;
  }
  return c;
}
}  // namespace detail

/// Encodes `rows` rows of packed codes (blockcast layout, row_code_bytes each) and their block
/// scales into ggml rows (ggml_row_bytes each) at `out`. `cols` must be a multiple of
/// ggml_block_values. Throws layout_error naming `tensor` for a NaN block scale.
template <class Format>
void to_ggml_rows(const std::uint8_t* codes, const std::uint8_t* scales, std::size_t rows, std::size_t cols, std::uint8_t* out,
                  layout_report& report, const std::string& tensor) {
  static_assert(ggml_type_of<Format>() != 0, "ggml has block types for MXFP4 and NVFP4 only");
  constexpr std::size_t bv = ggml_block_values<Format>(), sub = Format::block_size;
  constexpr std::size_t half = std::is_same_v<Format, nvfp4> ? 8 : 16;
  if (cols % bv != 0) fail_layout(tensor, "ggml needs rows of whole " + std::to_string(bv) + "-value blocks, the row has " + std::to_string(cols));
  const std::size_t code_row = row_code_bytes<Format>(cols), scale_row = blocks_per_row<Format>(cols);
  for (std::size_t r = 0; r < rows; ++r) {
    const std::uint8_t* c = codes + r * code_row;
    const std::uint8_t* s = scales + r * scale_row;
    auto code = [&](std::size_t i) { return detail::ggml_code((c[i / 2] >> (4 * (i % 2))) & 0xF, report.negative_zeros); };
    for (std::size_t b = 0; b < cols / bv; ++b, out += ggml_block_bytes<Format>()) {
      const std::size_t first = b * bv;  // the block's first value in the row
      for (std::size_t k = 0; k < bv / sub; ++k) {
        const std::uint8_t scale = s[first / sub + k];
        if (scale == (std::is_same_v<Format, nvfp4> ? detail::ue4m3_nan : detail::e8m0_nan))
          fail_layout(tensor, "row " + std::to_string(r) + ", block " + std::to_string(first / sub + k) +
                                  " has a NaN scale (NaN or Inf in the weights): ggml cannot store it");
        out[k] = scale;
      }
      std::uint8_t* qs = out + bv / sub;
      for (std::size_t k = 0; k < bv / (2 * half); ++k)  // groups of 2 * half values: j low, j + half high
        for (std::size_t j = 0; j < half; ++j) {
          const std::size_t lo = first + 2 * half * k + j;
          qs[half * k + j] = static_cast<std::uint8_t>(code(lo) | code(lo + half) << 4);
        }
    }
  }
}

/// Decodes `rows` ggml rows at `in` into blockcast codes and scales, as ggml decodes them:
/// -0 codes become +0, an NVFP4 scale 0x7F becomes 0, the unused sign bit of an NVFP4 scale
/// is dropped. Throws layout_error naming `tensor` for what ggml would refuse or decode to a
/// value blockcast's format cannot hold (an E8M0 0xFF, an NVFP4 scale byte 0xFF).
template <class Format>
void from_ggml_rows(const std::uint8_t* in, std::size_t rows, std::size_t cols, std::uint8_t* codes, std::uint8_t* scales,
                    const std::string& tensor) {
  static_assert(ggml_type_of<Format>() != 0, "ggml has block types for MXFP4 and NVFP4 only");
  constexpr std::size_t bv = ggml_block_values<Format>(), sub = Format::block_size;
  constexpr bool nv = std::is_same_v<Format, nvfp4>;
  constexpr std::size_t half = nv ? 8 : 16;
  if (cols % bv != 0) fail_layout(tensor, "a ggml row of " + std::to_string(cols) + " values is not whole blocks");
  const std::size_t code_row = row_code_bytes<Format>(cols), scale_row = blocks_per_row<Format>(cols);
  std::uint64_t ignored = 0;
  for (std::size_t r = 0; r < rows; ++r) {
    std::uint8_t* c = codes + r * code_row;
    std::uint8_t* s = scales + r * scale_row;
    for (std::size_t b = 0; b < cols / bv; ++b, in += ggml_block_bytes<Format>()) {
      const std::size_t first = b * bv;
      for (std::size_t k = 0; k < bv / sub; ++k) {
        std::uint8_t scale = in[k];
        if constexpr (nv) {
          if (scale == 0xFF) fail_layout(tensor, "row " + std::to_string(r) + ": NVFP4 scale byte 0xFF, which ggml decodes as a scale of 480, beyond UE4M3's largest (448)");
          scale &= 0x7F;                          // ggml ignores the sign bit
          if (scale == detail::ue4m3_nan) scale = 0;  // and decodes NaN as 0
        } else if (scale == detail::e8m0_nan) {
          fail_layout(tensor, "row " + std::to_string(r) + ": MXFP4 scale byte 0xFF (NaN), which ggml refuses");
        }
        s[first / sub + k] = scale;
      }
      const std::uint8_t* qs = in + bv / sub;
      auto put = [&](std::size_t i, std::uint8_t v) {
        v = detail::ggml_code(v, ignored);
        std::uint8_t& byte = c[i / 2];
        byte = static_cast<std::uint8_t>(i % 2 ? (byte & 0x0F) | v << 4 : (byte & 0xF0) | v);
      };
      for (std::size_t k = 0; k < bv / (2 * half); ++k)
        for (std::size_t j = 0; j < half; ++j) {
          const std::uint8_t q = qs[half * k + j];
          put(first + 2 * half * k + j, q & 0xF);
          put(first + 2 * half * k + j + half, q >> 4);
        }
    }
  }
}

}  // namespace blockcast::io
