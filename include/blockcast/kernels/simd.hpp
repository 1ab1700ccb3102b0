// SPDX-License-Identifier: MIT
// SIMD kernels (xsimd), bit for bit equal to blockcast::reference.
//
// How the exact rounding is vectorized. For an MX block with shared exponent se in
// [-127, 126] the quotient q = |x| * 2^-se is exact in FP32 (a power-of-two scaling of a
// normal result; where it falls below FP32's normal range it is far below half the element's
// smallest step and rounds to zero either way). q is then rounded onto the element grid with
// one hardware round-to-nearest-even addition of a "magic" constant whose ulp is the grid's
// step in q's binade,
//     C = 1.5 * 2^(binade - mbits + 23),   k = bits(q + C) - bits(C)   (steps, exact)
// and the magnitude code is ((binade - emin) << mbits) + k, as in element/grid.hpp. The other
// rounding modes correct k from the exact difference q - (q + C - C). Blocks this path does
// not cover (NaN/Inf, se = 127, blocks that straddle 2^32 elements under stochastic rounding)
// and partial blocks go through the reference, block by block.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "blockcast/kernels/simd_arch.hpp"  // first: it includes xsimd and the intrinsics

#include "blockcast/block/packed.hpp"
#include "blockcast/kernels/reference.hpp"

namespace blockcast::simd {

template <class Format, class Arch>
struct kernels {
  using element = typename Format::element_type;
  using scale = typename Format::scale_type;
  using f32 = xsimd::batch<float, Arch>;
  using i32 = xsimd::batch<std::int32_t, Arch>;
  using u32 = xsimd::batch<std::uint32_t, Arch>;
  static constexpr std::size_t lanes = f32::size;
  static constexpr std::size_t B = Format::block_size;
  static constexpr int bits = Format::element_bits;
  static constexpr std::size_t vectors_per_block = B / lanes;
  static constexpr std::size_t block_bytes = B * bits / 8;
  /// Whole blocks are vectorized when they are whole vectors and whole bytes of codes.
  static constexpr bool vectorized = B % lanes == 0 && B % 8 == 0;

  static constexpr detail::grid_spec grid = element::grid;
  static constexpr int emin = grid.emin;
  static constexpr int mbits = grid.mbits;

  // ---- element rounding -------------------------------------------------------------------

  /// Magnitude codes of q >= 0 (exact quotients, q < 2^(emax+1)) on the element grid,
  /// before saturation. `random` is used by rounding::stochastic only.
  static i32 round_steps(const f32& q, rounding mode, const u32& random) {
    const i32 qb = xsimd::bitwise_cast<i32>(q);
    const i32 binade = xsimd::max(qb >> 23, i32(emin + 127));  // biased exponent of the step's binade
    const i32 c_bits = (binade << 23) + i32(((23 - mbits) << 23) | 0x400000);
    const f32 c = xsimd::bitwise_cast<f32>(c_bits);
    const f32 sum = q + c;
    i32 k = xsimd::bitwise_cast<i32>(sum) - c_bits;  // steps, ties to even
    if (mode != rounding::nearest_even) {
      const f32 rounded = sum - c;  // exact
      if (mode == rounding::nearest_away) {
        const f32 half = xsimd::bitwise_cast<f32>((binade - (mbits + 1)) << 23);
        k = k + xsimd::select(xsimd::bool_cast(q - rounded == half), i32(1), i32(0));
      } else {
        const auto went_up = xsimd::bool_cast(rounded > q);
        k = k - xsimd::select(went_up, i32(1), i32(0));  // toward zero
        if (mode == rounding::stochastic) {
          const f32 step = xsimd::bitwise_cast<f32>((binade - mbits) << 23);
          const f32 truncated = xsimd::select(rounded > q, rounded - step, rounded);
          // F = floor(remainder / step * 2^32), exact: up iff random < F (as unsigned)
          const f32 y = (q - truncated) * xsimd::bitwise_cast<f32>((i32(286 + mbits) - binade) << 23);
          const auto big = y >= f32(2147483648.0f);
          const i32 low = xsimd::to_int(xsimd::select(big, y - f32(2147483648.0f), y));
          const i32 f = low | xsimd::select(xsimd::bool_cast(big), i32(std::numeric_limits<std::int32_t>::min()), i32(0));
          const i32 flip(std::numeric_limits<std::int32_t>::min());
          const auto up = (xsimd::bitwise_cast<i32>(random) ^ flip) < (f ^ flip);
          k = k + xsimd::select(up, i32(1), i32(0));
        }
      }
    }
    return (binade << mbits) + k - i32((emin + 127) << mbits);
  }

  /// Element codes from the saturated magnitudes and the sign (float: sign bit; int: two's
  /// complement).
  static i32 make_codes(i32 magnitude, const i32& negative_mask, bool full_range) {
    if constexpr (element::is_float) {
      magnitude = xsimd::min(magnitude, i32(element::max_magnitude));
      return magnitude | (negative_mask & i32(element::sign_mask));
    } else {
      const i32 limit = full_range ? i32(element::max_magnitude) - negative_mask  // -1: one more
                                   : i32(element::max_magnitude);
      magnitude = xsimd::min(magnitude, limit);
      return ((magnitude ^ negative_mask) - negative_mask) & i32(element::code_mask);
    }
  }

  /// The 32 random bits of elements first..first+lanes-1 (same hash as the reference).
  static u32 random_bits(std::uint32_t key, std::uint32_t first) {
    alignas(64) std::uint32_t iota[lanes];
    for (std::size_t i = 0; i < lanes; ++i) iota[i] = static_cast<std::uint32_t>(i);
    auto mix = [](u32 x) {
      x = x ^ (x >> 16);
      x = x * u32(0x7feb352du);
      x = x ^ (x >> 15);
      x = x * u32(0x846ca68bu);
      return x ^ (x >> 16);
    };
    const u32 k(key);
    return mix(mix(u32::load_aligned(iota) + u32(first) + k) ^ k);
  }

  // ---- decoding ---------------------------------------------------------------------------

  /// Values of element codes (one code per lane), exactly element::decode.
  static f32 decode(const i32& code) {
    if constexpr (element::is_float) {
      constexpr int m = element::mantissa_bits;
      const i32 magnitude = code & i32(element::magnitude_mask);
      const i32 exponent = magnitude >> m;
      const i32 normal_bits = (magnitude << (23 - m)) + i32((127 - element::bias) << 23);
      const f32 subnormal = xsimd::to_float(magnitude) * f32(detail::exp2i(element::emin - m));
      f32 value = xsimd::select(xsimd::bool_cast(exponent == i32(0)), subnormal,
                                xsimd::bitwise_cast<f32>(normal_bits));
      if constexpr (element::special_values == specials::ieee) {
        const auto all_ones = exponent == i32((1 << element::exponent_bits) - 1);
        const f32 special = xsimd::select(xsimd::bool_cast((magnitude & i32((1 << m) - 1)) == i32(0)),
                                          f32(std::numeric_limits<float>::infinity()),
                                          f32(std::numeric_limits<float>::quiet_NaN()));
        value = xsimd::select(xsimd::bool_cast(all_ones), special, value);
      } else if constexpr (element::special_values == specials::finite_nan) {
        value = xsimd::select(xsimd::bool_cast(magnitude == i32(element::magnitude_mask)),
                              f32(std::numeric_limits<float>::quiet_NaN()), value);
      }
      const i32 sign = (code >> (bits - 1)) << 31;
      return xsimd::bitwise_cast<f32>(xsimd::bitwise_cast<i32>(value) | sign);
    } else {
      const i32 k = (code << (32 - bits)) >> (32 - bits);  // sign-extend
      return xsimd::to_float(k) * f32(detail::exp2i(-element::fraction_bits));
    }
  }

  // ---- MX blocks (E8M0 scale) -------------------------------------------------------------

  /// Magnitude-bits max of a block (FP32 bits & 0x7fffffff; >= 0x7f800000 is NaN/Inf).
  static std::uint32_t block_amax_bits(const float* in) {
    i32 m(0);
    for (std::size_t v = 0; v < vectors_per_block; ++v)
      m = xsimd::max(m, xsimd::bitwise_cast<i32>(f32::load_unaligned(in + v * lanes)) & i32(0x7fffffff));
    return static_cast<std::uint32_t>(arch::hmax<Arch>(m));
  }

  /// Codes of one vector of values, given the per-block factor (MX: 2^-se, two-level: the
  /// inverse block scale) and whether the factor is a two-level one (TE's clamp and sign).
  static i32 vector_codes(const float* in, const f32& factor, const reference::block_context& ctx,
                          std::uint32_t key, std::uint32_t first) {
    const f32 x = f32::load_unaligned(in);
    i32 negative;
    f32 q;
    if constexpr (Format::has_tensor_scale) {
      const f32 limit(element::max_normal());
      const f32 v = xsimd::min(xsimd::max(x * factor, -limit), limit);  // std::clamp order
      negative = xsimd::select(xsimd::bool_cast(v < f32(0.0f)), i32(-1), i32(0));
      q = xsimd::abs(v);
    } else {
      negative = xsimd::bitwise_cast<i32>(x) >> 31;
      q = xsimd::bitwise_cast<f32>(xsimd::bitwise_cast<i32>(x) & i32(0x7fffffff)) * factor;
    }
    const u32 random = ctx.round == rounding::stochastic ? random_bits(key, first) : u32(0u);
    return make_codes(round_steps(q, ctx.round, random), negative, ctx.int8_full_range);
  }

  /// Per-block decision: the factor for the vector path, or false where the reference must
  /// quantize the block.
  static bool block_factor(std::uint32_t amax_bits, const reference::block_context& ctx,
                           std::uint64_t first_index, std::uint8_t& scale_code, float& factor) {
    if (amax_bits >= detail::fp32_inf_bits) return false;  // NaN/Inf block
    if (ctx.round == rounding::stochastic &&
        ((first_index >> 32) != ((first_index + B - 1) >> 32)))
      return false;  // the generator's key changes inside the block
    if constexpr (Format::has_tensor_scale) {
      constexpr float inv_elem_max = 1.0f / element::max_normal();
      const float amax = detail::bits_float(amax_bits);
      const float scaled = std::min(amax * (ctx.tensor_encode * inv_elem_max), scale::max_value());
      scale_code = scale::encode(scaled);
      factor = std::min(1.0f / (scale::decode(scale_code) * ctx.tensor_decode),
                        std::numeric_limits<float>::max());
      return true;
    } else {
      const int se = detail::shared_exponent<element>(amax_bits, ctx.scale_rule);
      if (se > 126) return false;  // 2^-se would be an FP32 subnormal
      scale_code = e8m0::from_exponent(se);
      factor = detail::bits_float(static_cast<std::uint32_t>(127 - se) << 23);
      return true;
    }
  }

  /// Quantizes `nblocks` whole blocks starting at tensor index first_index: codes packed into
  /// `codes` (block_bytes each), one scale byte per block.
  static void quantize_blocks(const float* in, std::size_t nblocks, std::uint8_t* codes,
                              std::uint8_t* scales, reference::block_context ctx,
                              std::uint64_t first_index) {
    alignas(64) std::uint8_t block_codes[B];
    for (std::size_t b = 0; b < nblocks; ++b) {
      const float* x = in + b * B;
      std::uint8_t* out = codes + b * block_bytes;
      const std::uint64_t first = first_index + b * B;
      __builtin_prefetch(x + 1024);  // ~4 KiB ahead: keeps DRAM streaming
      std::uint8_t scale_code = 0;
      float factor = 0;
      if (!block_factor(block_amax_bits(x), ctx, first, scale_code, factor)) {
        ctx.first_index = first;
        scales[b] = reference::quantize_block<Format>(x, B, block_codes, ctx);
      } else {
        scales[b] = scale_code;
        const f32 f(factor);
        const std::uint32_t key = detail::stochastic_key(ctx.seed, static_cast<std::uint32_t>(first >> 32));
        for (std::size_t v = 0; v < vectors_per_block; ++v) {
          const i32 c = vector_codes(x + v * lanes, f, ctx, key,
                                     static_cast<std::uint32_t>(first + v * lanes));
          arch::narrow_bytes<Arch>(c, bits == 8 ? out + v * lanes : block_codes + v * lanes);
        }
        if constexpr (bits == 8) continue;
      }
      if constexpr (bits == 8) {
        std::copy(block_codes, block_codes + B, out);
      } else {
        arch::pack_groups<bits>(block_codes, B / 8, out);
      }
    }
  }

  /// Decodes `nblocks` whole blocks.
  static void dequantize_blocks(const std::uint8_t* codes, const std::uint8_t* scales,
                                std::size_t nblocks, float tensor_decode, float* out) {
    alignas(64) std::uint8_t block_codes[B];
    for (std::size_t b = 0; b < nblocks; ++b) {
      const std::uint8_t* in = codes + b * block_bytes;
      float* y = out + b * B;
      if (scale::is_nan(scales[b])) {
        std::fill(y, y + B, std::numeric_limits<float>::quiet_NaN());
        continue;
      }
      const std::uint8_t* c = in;
      if constexpr (bits != 8) {
        arch::unpack_groups<bits>(in, B / 8, block_codes);
        c = block_codes;
      }
      const f32 block_scale(scale::decode(scales[b]));
      for (std::size_t v = 0; v < vectors_per_block; ++v) {
        f32 value = decode(arch::widen_bytes<Arch>(c + v * lanes)) * block_scale;
        if constexpr (Format::has_tensor_scale) value = value * f32(tensor_decode);
        value.store_unaligned(y + v * lanes);
      }
    }
  }

  /// Quantize + dequantize of whole blocks, without packing.
  static void fake_quantize_blocks(const float* in, std::size_t nblocks, float* out,
                                   reference::block_context ctx, std::uint64_t first_index) {
    alignas(64) std::uint8_t block_codes[B];
    for (std::size_t b = 0; b < nblocks; ++b) {
      const float* x = in + b * B;
      float* y = out + b * B;
      const std::uint64_t first = first_index + b * B;
      __builtin_prefetch(x + 1024);
      std::uint8_t scale_code = 0;
      float factor = 0;
      if (!block_factor(block_amax_bits(x), ctx, first, scale_code, factor)) {
        ctx.first_index = first;
        const std::uint8_t s = reference::quantize_block<Format>(x, B, block_codes, ctx);
        reference::dequantize_block<Format>(block_codes, B, s, ctx.tensor_decode, y);
        continue;
      }
      const f32 f(factor);
      const f32 block_scale(scale::decode(scale_code));
      const std::uint32_t key = detail::stochastic_key(ctx.seed, static_cast<std::uint32_t>(first >> 32));
      for (std::size_t v = 0; v < vectors_per_block; ++v) {
        const i32 c = vector_codes(x + v * lanes, f, ctx, key, static_cast<std::uint32_t>(first + v * lanes));
        f32 value = decode(c) * block_scale;
        if constexpr (Format::has_tensor_scale) value = value * f32(ctx.tensor_decode);
        value.store_unaligned(y + v * lanes);
      }
    }
  }

  // ---- whole tensors ----------------------------------------------------------------------

  /// Finite amax of n values (two-level formats), as reference::finite_amax.
  static float finite_amax(const float* in, std::size_t n) {
    i32 m(0);
    std::size_t i = 0;
    for (; i + lanes <= n; i += lanes) {
      const i32 a = xsimd::bitwise_cast<i32>(f32::load_unaligned(in + i)) & i32(0x7fffffff);
      m = xsimd::max(m, xsimd::select(a < i32(0x7f800000), a, i32(0)));
    }
    const float head = detail::bits_float(static_cast<std::uint32_t>(arch::hmax<Arch>(m)));
    return std::max(head, reference::finite_amax(in + i, n - i));
  }

  static reference::block_context make_context(const float* in, std::size_t n, const cast_options& opt) {
    cast_options o = opt;
    if constexpr (Format::has_tensor_scale)
      if (!o.tensor_amax) o.tensor_amax = finite_amax(in, n);
    return reference::make_context<Format>(in, n, o);
  }

  /// Rows r0..r1 of a rows x cols tensor: whole blocks vectorized, the partial last block of
  /// each row by the reference.
  static void quantize_rows(const float* in, std::size_t r0, std::size_t r1, std::size_t cols,
                            mutable_packed_view<Format> out, const reference::block_context& ctx) {
    const std::size_t whole = vectorized ? cols / B : 0;
    for (std::size_t r = r0; r < r1; ++r) {
      quantize_row_part(in, r, 0, whole, cols, out, ctx);
      quantize_tail(in, r, whole * B, cols, out, ctx);
    }
  }

  /// Blocks [b0, b1) of row r (whole blocks only).
  static void quantize_row_part(const float* in, std::size_t r, std::size_t b0, std::size_t b1,
                                std::size_t cols, mutable_packed_view<Format> out,
                                const reference::block_context& ctx) {
    if (b1 <= b0) return;
    quantize_blocks(in + r * cols + b0 * B, b1 - b0, out.row_codes(r) + b0 * block_bytes,
                    out.row_scales(r) + b0, ctx, r * cols + b0 * B);
  }

  /// Columns [start, cols) of row r by the reference (start is a block boundary).
  static void quantize_tail(const float* in, std::size_t r, std::size_t start, std::size_t cols,
                            mutable_packed_view<Format> out, reference::block_context ctx) {
    if (start >= cols) return;
    std::uint8_t codes[B];
    std::uint8_t* row = out.row_codes(r);
    // Repack from the tail's first byte: whole blocks end on byte boundaries.
    const std::size_t byte0 = start * bits / 8;
    std::vector<std::uint8_t> tail_codes(cols - start);
    for (std::size_t s = start, b = start / B; s < cols; s += B, ++b) {
      const std::size_t len = std::min(B, cols - s);
      ctx.first_index = r * cols + s;
      out.row_scales(r)[b] = reference::quantize_block<Format>(in + r * cols + s, len, codes, ctx);
      std::copy(codes, codes + len, tail_codes.begin() + (s - start));
    }
    detail::pack_codes(tail_codes.data(), tail_codes.size(), bits, row + byte0);
  }

  static void dequantize_rows(packed_view<Format> in, std::size_t r0, std::size_t r1, float* out) {
    const std::size_t cols = in.cols();
    const std::size_t whole = vectorized ? cols / B : 0;
    std::vector<std::uint8_t> tail_codes;
    for (std::size_t r = r0; r < r1; ++r) {
      dequantize_blocks(in.row_codes(r), in.row_scales(r), whole, in.tensor_scale(), out + r * cols);
      const std::size_t start = whole * B;
      if (start >= cols) continue;
      tail_codes.resize(cols - start);
      detail::unpack_codes(in.row_codes(r) + start * bits / 8, cols - start, bits, tail_codes.data());
      for (std::size_t s = start, b = whole; s < cols; s += B, ++b)
        reference::dequantize_block<Format>(tail_codes.data() + (s - start), std::min(B, cols - s),
                                            in.row_scales(r)[b], in.tensor_scale(), out + r * cols + s);
    }
  }

  static void fake_quantize_rows(const float* in, float* out, std::size_t r0, std::size_t r1,
                                 std::size_t cols, reference::block_context ctx) {
    const std::size_t whole = vectorized ? cols / B : 0;
    std::uint8_t codes[B];
    for (std::size_t r = r0; r < r1; ++r) {
      fake_quantize_blocks(in + r * cols, whole, out + r * cols, ctx, r * cols);
      for (std::size_t s = whole * B; s < cols; s += B) {
        const std::size_t len = std::min(B, cols - s);
        ctx.first_index = r * cols + s;
        const std::uint8_t sc = reference::quantize_block<Format>(in + r * cols + s, len, codes, ctx);
        reference::dequantize_block<Format>(codes, len, sc, ctx.tensor_decode, out + r * cols + s);
      }
    }
  }
};

}  // namespace blockcast::simd
