// SPDX-License-Identifier: MIT
// Round-to-nearest: every row through the stable quantize kernels, the baseline of PTQ; with
// the block-scale search, each block's scale is the one of the codes around the amax scale
// that gives the block the smallest error.
#pragma once

#include "blockcast/ptq/quantized.hpp"

namespace blockcast::ptq {

struct rtn_options {
  cast_options cast;  ///< the format's rounding and scale rule; cast.threads splits rows
  /// Block-scale search: each block takes the amax scale or a code either side of it,
  /// whichever gives the smallest squared error (ties keep the amax scale).
  bool scale_search = false;
};

template <class Format>
quantized_matrix<Format> rtn(const matrix_ref& w, const cast_options& opt = {}) {
  detail::require_nonempty(w, "the weight matrix", "rtn");
  const std::size_t m = static_cast<std::size_t>(w.rows()), k = static_cast<std::size_t>(w.cols());
  quantized_matrix<Format> q;
  q.method = "rtn";
  if (w.outerStride() == w.cols()) {
    q.packed = quantize<Format>(w.data(), m, k, opt);
  } else {
    const matrix contiguous = w;
    q.packed = quantize<Format>(contiguous.data(), m, k, opt);
  }
  q.dequantized.resize(w.rows(), w.cols());
  blockcast::detail::advise_huge_pages(q.dequantized.data(), static_cast<std::size_t>(q.dequantized.size()) * sizeof(float));
  dequantize(q.packed, q.dequantized.data(), opt);
  return q;
}

template <class Format>
quantized_matrix<Format> rtn(const matrix_ref& w, const rtn_options& opt) {
  if (!opt.scale_search) return rtn<Format>(w, opt.cast);
  detail::require_nonempty(w, "the weight matrix", "rtn");
  const std::size_t m = static_cast<std::size_t>(w.rows()), k = static_cast<std::size_t>(w.cols());
  constexpr std::size_t B = Format::block_size;
  const reference::block_context ctx = detail::weight_context<Format>(w, opt.cast);
  const std::vector<float> ones(B, 1.0f);
  quantized_matrix<Format> q = detail::empty_result<Format>(w, "rtn", ctx);
  detail::for_row_chunks(m, opt.cast.threads, [&](std::size_t first_row, std::size_t end_row) {
    detail::chunk_codes<Format> out(end_row - first_row, k);
    for (std::size_t i = 0; i < end_row - first_row; ++i) {
      const std::size_t row = first_row + i;
      const float* values = w.row(static_cast<Eigen::Index>(row)).data();
      for (std::size_t block_start = 0; block_start < k; block_start += B) {
        const std::size_t len = std::min(B, k - block_start);
        out.start_block(i, block_start / B, values + block_start, len, ctx, ones.data(), row * k + block_start);
        for (std::size_t col = block_start; col < block_start + len; ++col)
          q.dequantized(static_cast<Eigen::Index>(row), static_cast<Eigen::Index>(col)) =
              out.quantize(i, col, values[col], row * k + col, ctx);
      }
    }
    out.store(q.packed, first_row);
  });
  return q;
}

}  // namespace blockcast::ptq
