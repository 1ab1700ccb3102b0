// SPDX-License-Identifier: MIT
// Whole-tensor casts on one architecture: SIMD kernels over rows and blocks, split across
// threads. Bit-identical to blockcast::reference for every thread count.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "blockcast/kernels/parallel.hpp"
#include "blockcast/kernels/dot.hpp"
#include "blockcast/kernels/simd.hpp"

namespace blockcast::simd {

// Below this many values per thread a worker costs more than it saves.
inline constexpr std::size_t min_values_per_thread = std::size_t{1} << 16;

template <class Format, class Arch>
struct tensor_casts {
  using k = kernels<Format, Arch>;
  static constexpr std::size_t B = Format::block_size;

  static float quantize(const float* in, std::size_t rows, std::size_t cols,
                        mutable_packed_view<Format> out, const cast_options& opt) {
    const reference::block_context ctx = k::make_context(in, rows * cols, opt);
    if (rows >= opt.threads || rows * cols < min_values_per_thread * opt.threads) {
      detail::parallel_for(rows, opt.threads, min_values_per_thread / (cols + 1) + 1,
                           [&](std::size_t r0, std::size_t r1) { k::quantize_rows(in, r0, r1, cols, out, ctx); });
    } else {
      // few long rows: split each row's whole blocks, the calling thread does the tails
      const std::size_t whole = k::vectorized ? cols / B : 0;
      for (std::size_t r = 0; r < rows; ++r) {
        detail::parallel_for(whole, opt.threads, min_values_per_thread / B, [&](std::size_t b0, std::size_t b1) {
          k::quantize_row_part(in, r, b0, b1, cols, out, ctx);
        });
        k::quantize_tail(in, r, whole * B, cols, out, ctx);
      }
    }
    return ctx.tensor_decode;
  }

  static void dequantize(packed_view<Format> in, float* out, unsigned threads) {
    const std::size_t rows = in.rows(), cols = in.cols();
    if (rows >= threads || rows * cols < min_values_per_thread * threads) {
      detail::parallel_for(rows, threads, min_values_per_thread / (cols + 1) + 1,
                           [&](std::size_t r0, std::size_t r1) { k::dequantize_rows(in, r0, r1, out); });
      return;
    }
    for (std::size_t r = 0; r < rows; ++r) {
      // each worker decodes a range of whole blocks of the row, as a one-row view of them
      const std::size_t whole = k::vectorized ? cols / B : 0;
      detail::parallel_for(whole, threads, min_values_per_thread / B, [&](std::size_t b0, std::size_t b1) {
        k::dequantize_blocks(in.row_codes(r) + b0 * k::block_bytes, in.row_scales(r) + b0, b1 - b0,
                             in.tensor_scale(), out + r * cols + b0 * B);
      });
      if (whole * B < cols) {
        // the tail: the reference on a one-row view starting at the tail's first block
        const std::size_t start = whole * B;
        const std::size_t tail = cols - start;
        packed_view<Format> tail_view(1, tail,
                                      span<const std::uint8_t>(in.row_codes(r) + start * k::bits / 8, row_code_bytes<Format>(tail)),
                                      span<const std::uint8_t>(in.row_scales(r) + whole, blocks_per_row<Format>(tail)),
                                      in.tensor_scale());
        reference::dequantize<Format>(tail_view, out + r * cols + start);
      }
    }
  }

  /// Rows r0..r1 decoded to BF16 (round to nearest even) into out (the whole tensor's),
  /// through one row of floats.
  static void dequantize_bf16_rows(packed_view<Format> in, std::size_t r0, std::size_t r1, std::uint16_t* out) {
    const std::size_t cols = in.cols();
    std::vector<float> row(cols);
    for (std::size_t r = r0; r < r1; ++r) {
      const packed_view<Format> one(1, cols, span<const std::uint8_t>(in.row_codes(r), in.row_bytes()),
                                    span<const std::uint8_t>(in.row_scales(r), blocks_per_row<Format>(cols)),
                                    in.tensor_scale());
      k::dequantize_rows(one, 0, 1, row.data());
      for (std::size_t j = 0; j < cols; ++j) out[r * cols + j] = detail::to_bf16(row[j]);
    }
  }

  static void fake_quantize(const float* in, float* out, std::size_t rows, std::size_t cols,
                            const cast_options& opt) {
    const reference::block_context ctx = k::make_context(in, rows * cols, opt);
    if (rows >= opt.threads || rows * cols < min_values_per_thread * opt.threads) {
      detail::parallel_for(rows, opt.threads, min_values_per_thread / (cols + 1) + 1,
                           [&](std::size_t r0, std::size_t r1) { k::fake_quantize_rows(in, out, r0, r1, cols, ctx); });
      return;
    }
    for (std::size_t r = 0; r < rows; ++r) {
      const std::size_t whole = k::vectorized ? cols / B : 0;
      detail::parallel_for(whole, opt.threads, min_values_per_thread / B, [&](std::size_t b0, std::size_t b1) {
        k::fake_quantize_blocks(in + r * cols + b0 * B, b1 - b0, out + r * cols + b0 * B, ctx,
                                r * cols + b0 * B);
      });
      k::fake_quantize_tail(in, out, r, whole * B, cols, ctx);
    }
  }
};

}  // namespace blockcast::simd
