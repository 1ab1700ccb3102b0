// SPDX-License-Identifier: MIT
// Scalar reference kernels, written to read like the specifications:
//   OCP Microscaling Formats (MX) v1.0, section 6.3 (conversion), for E8M0-scaled formats;
//   NVFP4 two-level scaling in TransformerEngine's arithmetic order, for UE4M3-scaled formats.
// The SIMD kernels (kernels/simd.hpp) must equal these bit for bit.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "blockcast/block/packed.hpp"
#include "blockcast/element/bits.hpp"
#include "blockcast/element/grid.hpp"
#include "blockcast/kernels/scalar_ops.hpp"
#include "blockcast/policy.hpp"

namespace blockcast::reference {

/// What a block needs besides its values.
struct block_context {
  rounding round = rounding::nearest_even;
  blockcast::scale_rule scale_rule = scale_rule::ocp_floor;
  bool int8_full_range = false;
  std::uint64_t seed = 0;
  std::uint64_t first_index = 0;  // tensor index of the block's first value (stochastic bits)
  float tensor_encode = 1.0f;     // two-level formats: S_enc
  float tensor_decode = 1.0f;     // two-level formats: S_dec
};

/// The scale of one block: what quantize_value needs to encode any value of the block.
struct block_scale {
  std::uint8_t code = 0;    // the stored scale byte
  bool nan = false;         // NaN scale: the whole block decodes to NaN
  int shared_exp = 0;       // MX: the shared exponent
  float inverse = 1.0f;     // two-level: min(1 / (s_b * S_dec), FLT_MAX)
  float value = 1.0f;       // decoded scale (MX: 2^shared_exp; two-level: s_b)
};

/// The scale of a block whose largest magnitude has FP32 bits `amax_bits` (NaN/Inf: >=
/// 0x7f800000): steps 1-2 of OCP MX 6.3, or the NVFP4 block scale.
template <class Format>
block_scale make_block_scale(std::uint32_t amax_bits, const block_context& ctx) {
  using element = typename Format::element_type;
  using scale = typename Format::scale_type;
  block_scale bs;
  if (amax_bits >= detail::fp32_inf_bits) {  // NaN or Inf: the whole block is NaN
    bs.code = scale::nan_code;
    bs.nan = true;
    return bs;
  }
  if constexpr (!Format::has_tensor_scale) {
    // shared_exp = floor(log2 amax) - emax_elem (or another rule), clamped to [-127, 127]
    bs.shared_exp = detail::shared_exponent<element>(amax_bits, ctx.scale_rule);
    bs.code = e8m0::from_exponent(bs.shared_exp);
    bs.value = e8m0::decode(bs.code);
  } else {
    // NVFP4: s_b = e4m3_rne(amax_b * (S_enc * fp32(1 / elem_max))), clamped to the scale's max
    constexpr float inv_elem_max = 1.0f / element::max_normal();
    const float amax = detail::bits_float(amax_bits);
    const float scaled = std::min(amax * (ctx.tensor_encode * inv_elem_max), scale::max_value());
    bs.code = scale::encode(scaled);
    bs.value = scale::decode(bs.code);
    bs.inverse = std::min(1.0f / (bs.value * ctx.tensor_decode), std::numeric_limits<float>::max());
  }
  return bs;
}

/// The block scale whose stored byte is `code` (not a NaN code): what make_block_scale gives
/// when it picks that code, for choosing among neighbouring scales (ptq's scale search).
template <class Format>
block_scale block_scale_of_code(std::uint8_t code, const block_context& ctx) {
  using scale = typename Format::scale_type;
  block_scale bs;
  bs.code = code;
  bs.value = scale::decode(code);
  if constexpr (!Format::has_tensor_scale) bs.shared_exp = e8m0::exponent(code);
  else bs.inverse = std::min(1.0f / (bs.value * ctx.tensor_decode), std::numeric_limits<float>::max());
  return bs;
}

/// The element code of value v of a block with scale bs (step 3 of OCP MX 6.3, or NVFP4's
/// q_i); `index` is v's tensor index (stochastic rounding). Meaningless for a NaN scale.
template <class Format>
std::uint8_t quantize_value(float v, const block_scale& bs, const block_context& ctx, std::uint64_t index) {
  using element = typename Format::element_type;
  int scale_exp = bs.shared_exp;
  if constexpr (Format::has_tensor_scale) {
    // q_i = elem_rne(clamp(x_i * inv, -elem_max, elem_max)); TransformerEngine takes the sign
    // from x < 0: -0 encodes as +0, while a negative value that rounds to zero keeps its sign
    v = std::clamp(v * bs.inverse, -element::max_normal(), element::max_normal());
    if (v == 0.0f) v = 0.0f;
    scale_exp = 0;
  }
  // P_i = round(v_i / 2^shared_exp) on the element grid, saturating; exact (no division)
  const std::uint32_t u = detail::float_bits(v);
  const bool negative = (u >> 31) != 0;
  const std::uint32_t random =
      ctx.round == rounding::stochastic ? detail::stochastic_bits(ctx.seed, index) : 0u;
  const std::uint32_t magnitude =
      detail::round_to_grid(u & detail::fp32_abs_mask, scale_exp,
                            element::grid_for(negative, ctx.int8_full_range), ctx.round, random);
  return element::make_code(negative, magnitude, ctx.int8_full_range);
}

/// The value of element code c in a block with scale bs (step 4).
template <class Format>
float dequantize_value(std::uint8_t c, const block_scale& bs, float tensor_decode) {
  if (bs.nan) return std::numeric_limits<float>::quiet_NaN();
  const float value = Format::element_type::decode(c) * bs.value;
  return Format::has_tensor_scale ? value * tensor_decode : value;
}

/// FP32 magnitude bits of the largest |v_i| (their integer order is the value order; above
/// the bits of +Inf is NaN).
inline std::uint32_t amax_bits(const float* in, std::size_t len) {
  std::uint32_t a = 0;
  for (std::size_t i = 0; i < len; ++i) a = std::max(a, detail::float_bits(in[i]) & detail::fp32_abs_mask);
  return a;
}

/// Quantizes one block of len <= B values to one code per byte (codes[0..len)) and returns
/// the scale code. A partial block behaves as if padded with zeros. NaN-scale blocks store
/// codes 0.
template <class Format>
std::uint8_t quantize_block(const float* in, std::size_t len, std::uint8_t* codes,
                            const block_context& ctx) {
  const block_scale bs = make_block_scale<Format>(amax_bits(in, len), ctx);
  for (std::size_t i = 0; i < len; ++i)
    codes[i] = bs.nan ? std::uint8_t{0} : quantize_value<Format>(in[i], bs, ctx, ctx.first_index + i);
  return bs.code;
}

/// Decodes one block: 2^shared_exp * P_i (MX), fp32(fp32(P_i * s_b) * S_dec) (two-level);
/// a NaN scale decodes the whole block to NaN.
template <class Format>
void dequantize_block(const std::uint8_t* codes, std::size_t len, std::uint8_t scale_code,
                      float tensor_decode, float* out) {
  using element = typename Format::element_type;
  using scale = typename Format::scale_type;
  if (scale::is_nan(scale_code)) {
    std::fill(out, out + len, std::numeric_limits<float>::quiet_NaN());
    return;
  }
  // E8M0 values are exact powers of two, so the product is exact (FP32 subnormal results
  // included, as long as denormals are not flushed).
  const float block_scale = scale::decode(scale_code);
  for (std::size_t i = 0; i < len; ++i) {
    const float value = element::decode(codes[i]) * block_scale;
    out[i] = Format::has_tensor_scale ? value * tensor_decode : value;
  }
}

/// Tensor amax of the finite values (two-level formats), or the caller's.
inline float finite_amax(const float* in, std::size_t n) {
  std::uint32_t amax_bits = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint32_t a = detail::float_bits(in[i]) & detail::fp32_abs_mask;
    if (a < detail::fp32_inf_bits) amax_bits = std::max(amax_bits, a);
  }
  return detail::bits_float(amax_bits);
}

/// The per-tensor part of the context: options, and for two-level formats the tensor scales
/// from opt.tensor_amax or from the finite values of in[0..n).
template <class Format>
block_context make_context(const float* in, std::size_t n, const cast_options& opt) {
  block_context ctx;
  ctx.round = opt.round;
  ctx.scale_rule = opt.scale_rule;
  ctx.int8_full_range = opt.int8_full_range;
  ctx.seed = opt.seed;
  if constexpr (Format::has_tensor_scale) {
    const auto scales = detail::two_level_tensor_scales<Format>(
        opt.tensor_amax ? *opt.tensor_amax : finite_amax(in, n));
    ctx.tensor_encode = scales.encode;
    ctx.tensor_decode = scales.decode;
  }
  return ctx;
}

/// Quantizes rows x cols values (row-major, contiguous) into `out` (same shape) and returns
/// the FP32 tensor scale S_dec (1 for MX formats).
template <class Format>
float quantize(const float* in, std::size_t rows, std::size_t cols,
               mutable_packed_view<Format> out, const cast_options& opt = {}) {
  constexpr std::size_t B = Format::block_size;
  block_context ctx = make_context<Format>(in, rows * cols, opt);
  std::vector<std::uint8_t> codes(cols);
  for (std::size_t r = 0; r < rows; ++r) {
    std::uint8_t* scales = out.row_scales(r);
    for (std::size_t start = 0, b = 0; start < cols; start += B, ++b) {
      ctx.first_index = r * cols + start;
      scales[b] = quantize_block<Format>(in + r * cols + start, std::min(B, cols - start),
                                         codes.data() + start, ctx);
    }
    detail::pack_codes(codes.data(), cols, Format::element_bits, out.row_codes(r));
  }
  return ctx.tensor_decode;
}

/// Decodes a packed tensor into out[0..rows*cols).
template <class Format>
void dequantize(packed_view<Format> in, float* out) {
  constexpr std::size_t B = Format::block_size;
  const std::size_t cols = in.cols();
  std::vector<std::uint8_t> codes(cols);
  for (std::size_t r = 0; r < in.rows(); ++r) {
    detail::unpack_codes(in.row_codes(r), cols, Format::element_bits, codes.data());
    const std::uint8_t* scales = in.row_scales(r);
    for (std::size_t start = 0, b = 0; start < cols; start += B, ++b)
      dequantize_block<Format>(codes.data() + start, std::min(B, cols - start), scales[b],
                               in.tensor_scale(), out + r * cols + start);
  }
}

/// Quantize then dequantize: rows x cols values onto the format's grid.
template <class Format>
void fake_quantize(const float* in, float* out, std::size_t rows, std::size_t cols,
                   const cast_options& opt = {}) {
  constexpr std::size_t B = Format::block_size;
  block_context ctx = make_context<Format>(in, rows * cols, opt);
  std::uint8_t codes[B];
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t start = 0; start < cols; start += B) {
      const std::size_t len = std::min(B, cols - start);
      ctx.first_index = r * cols + start;
      const std::size_t at = r * cols + start;
      const std::uint8_t scale = quantize_block<Format>(in + at, len, codes, ctx);
      dequantize_block<Format>(codes, len, scale, ctx.tensor_decode, out + at);
    }
  }
}

}  // namespace blockcast::reference
