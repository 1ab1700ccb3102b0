// SPDX-License-Identifier: MIT
// Computing on packed weights without materialising them: dot products of packed rows with
// FP32 vectors (decode + multiply-add per block, one FP32 accumulator per lane), and the
// BF16 conversion of dequantized values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

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

  /// sum_j dequantize(row r)_j * x[j], FP32, accumulated lane-wise then reduced.
  static float row_dot(packed_view<Format> w, std::size_t r, const float* x) {
    const std::size_t cols = w.cols();
    const std::size_t whole = k::vectorized ? cols / B : 0;
    const typename k::scaled_decoder decoder;
    const std::uint8_t* codes = w.row_codes(r);
    const std::uint8_t* scales = w.row_scales(r);
    f32 acc(0.0f);
    float tail = 0.0f;
    for (std::size_t b = 0; b < whole; ++b) {
      if (scale_type::is_nan(scales[b])) {
        tail = std::numeric_limits<float>::quiet_NaN();
        continue;
      }
      const auto decode = decoder.scaled(scale_type::decode(scales[b]), w.tensor_scale(), Format::has_tensor_scale);
      i32 c[k::vectors_per_block];
      arch::load_codes<k::bits, Arch>(codes + b * k::block_bytes, k::vectors_per_block, c);
      for (std::size_t v = 0; v < k::vectors_per_block; ++v)
        acc = xsimd::fma(decode(c[v]), f32::load_unaligned(x + b * B + v * k::lanes), acc);
    }
    if (whole * B < cols) {  // the partial (or unvectorized) rest, through the reference
      const std::size_t start = whole * B, n = cols - start;
      std::vector<std::uint8_t> rest_codes(n);
      std::vector<float> values(n);
      detail::unpack_codes(codes + start * k::bits / 8, n, k::bits, rest_codes.data());
      for (std::size_t s = 0, b = whole; s < n; s += B, ++b)
        reference::dequantize_block<Format>(rest_codes.data() + s, std::min(B, n - s), scales[b],
                                            w.tensor_scale(), values.data() + s);
      for (std::size_t j = 0; j < n; ++j) tail += values[j] * x[start + j];
    }
    return xsimd::hadd(acc) + tail;
  }

 private:
  using scale_type = typename Format::scale_type;
};

}  // namespace simd
}  // namespace blockcast
