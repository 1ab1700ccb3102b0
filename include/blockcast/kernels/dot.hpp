// SPDX-License-Identifier: MIT
// Computing on packed weights without materialising them: dot products of packed rows with
// FP32 vectors (per block, lane-wise products of the decoded values and x summed by
// multiply-adds, then added to one FP32 accumulator per lane), and the BF16 conversion of
// dequantized values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "blockcast/kernels/scalar_ops.hpp"
#include "blockcast/kernels/simd.hpp"

namespace blockcast {

namespace detail {
/// FP32 -> BF16, round to nearest even; NaN stays a (quiet) NaN with its sign.
inline std::uint16_t to_bf16(float x) {
  const std::uint32_t u = float_bits(x);
  if ((u & fp32_abs_mask) > fp32_inf_bits) return static_cast<std::uint16_t>((u >> 16) | 0x0040u);
  return static_cast<std::uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
}  // namespace detail

namespace simd {

template <class Format, class Arch>
struct dot_kernels {
  using k = kernels<Format, Arch>;
  using f32 = typename k::f32;
  using i32 = typename k::i32;
  static constexpr std::size_t B = Format::block_size;

  /// 4-bit blocks of two vectors are decoded by nibble: the even codes into one vector, the
  /// odd ones into the other, against x split the same way (split_activations).
  static constexpr bool by_nibble = k::vectorized && k::bits == 4 && B == 2 * k::lanes;

  /// x in the order the kernel reads it: per block, for by_nibble, the even-indexed values
  /// and then the odd-indexed ones.
  static std::vector<float> split_activations(const float* x, std::size_t cols) {
    std::vector<float> split(x, x + cols);
    if constexpr (by_nibble) {
      for (std::size_t b = 0; b + B <= cols; b += B)
        for (std::size_t i = 0; i < B / 2; ++i) {
          split[b + i] = x[b + 2 * i];
          split[b + B / 2 + i] = x[b + 2 * i + 1];
        }
    }
    return split;
  }

  /// The dot products of rows r0..r1 into y[0..r1-r0).
  static void rows(packed_view<Format> w, std::size_t r0, std::size_t r1, const float* x, float* y) {
    const std::vector<float> split = split_activations(x, w.cols());
    for (std::size_t r = r0; r < r1; ++r) y[r - r0] = row_dot(w, r, split.data(), x);
  }

  /// sum_j dequantize(row r)_j * x[j] in FP32, in this order: per block, the lane-wise
  /// products of the element values with x summed by multiply-adds, then multiplied by the
  /// block's scale (two-level formats: s_b * S_dec) and added to one accumulator per lane by a
  /// fused multiply-add (a NaN scale makes it NaN); the lanes reduced at the end, then the
  /// partial last block added. x_split: x as split_activations gives it.
  static float row_dot(packed_view<Format> w, std::size_t r, const float* x_split, const float* x) {
    const std::size_t cols = w.cols();
    const std::size_t whole = k::vectorized ? cols / B : 0;
    const typename k::scaled_decoder decode;
    const std::uint8_t* codes = w.row_codes(r);
    const std::uint8_t* scales = w.row_scales(r);
    // the rest first: its calls would otherwise keep the accumulator in memory in the loop
    const float tail = rest_dot(w, r, whole, x);
    f32 acc(0.0f);
    for (std::size_t b = 0; b < whole; ++b) {
      i32 c[k::vectors_per_block];
      if constexpr (by_nibble) arch::split_nibbles<Arch>(codes + b * k::block_bytes, c[0], c[1]);
      else arch::load_codes<k::bits, Arch>(codes + b * k::block_bytes, k::vectors_per_block, c);
      // the first products as a multiply-add onto +0: the same value as the product, but no
      // plain product is left for the compiler to contract into the next multiply-add as its
      // unrounded addend (GCC with FMA, -O3 -march=native, did so in some inlined copies, so
      // that gemv and dot disagreed); an opaque rounding here cost MXFP4 6%
      f32 block = xsimd::fma(decode(c[0]), f32::load_unaligned(x_split + b * B), f32(0.0f));
      for (std::size_t v = 1; v < k::vectors_per_block; ++v)
        block = xsimd::fma(decode(c[v]), f32::load_unaligned(x_split + b * B + v * k::lanes), block);
      const float scale = Format::has_tensor_scale ? scale_type::decode(scales[b]) * w.tensor_scale()
                                                   : scale_type::decode(scales[b]);
      acc = xsimd::fma(block, f32(scale), acc);
    }
    return xsimd::hadd(acc) + tail;
  }

 private:
  using scale_type = typename Format::scale_type;

  /// The products of the blocks from `whole` on (partial, or all where the format has no
  /// vector kernel), decoded by the reference.
  static float rest_dot(packed_view<Format> w, std::size_t r, std::size_t whole, const float* x) {
    const std::size_t cols = w.cols();
    const std::uint8_t* codes = w.row_codes(r);
    const std::uint8_t* scales = w.row_scales(r);
    float tail = 0.0f;
    if (whole * B < cols) {  // the partial (or unvectorized) rest, through the reference
      const std::size_t start = whole * B, n = cols - start;
      std::vector<std::uint8_t> rest_codes(n);
      std::vector<float> values(n);
      detail::unpack_codes(codes + start * k::bits / 8, n, k::bits, rest_codes.data());
      for (std::size_t s = 0, b = whole; s < n; s += B, ++b)
        reference::dequantize_block<Format>(rest_codes.data() + s, std::min(B, n - s), scales[b],
                                            w.tensor_scale(), values.data() + s);
      for (std::size_t j = 0; j < n; ++j) tail += detail::fp32_rounded(values[j] * x[start + j]);
    }
    return tail;
  }
};

}  // namespace simd
}  // namespace blockcast
