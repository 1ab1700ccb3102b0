// SPDX-License-Identifier: MIT
// What every PTQ method returns, and the per-row machinery they share: exact block scales
// and element codes from kernels/reference.hpp, rows in fixed chunks across threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "blockcast/api.hpp"
#include "blockcast/kernels/parallel.hpp"
#include "blockcast/kernels/reference.hpp"
#include "blockcast/ptq/matrix.hpp"

namespace blockcast::ptq {

/// A quantized weight matrix.
template <class Format>
struct quantized_matrix {
  matrix dequantized;             // m x K, on the format's grid
  packed_tensor<Format> packed;   // row after row; blocks restart at each row
  std::string method;             // "rtn", "ed", "gptq", or "rtn (no calibration statistics)"
};

namespace detail {

// Rows are processed in chunks of this many, whatever the thread count: every result is a
// function of its chunk alone, so it is identical for every number of threads.
inline constexpr std::size_t row_chunk = 32;

template <class F>
void for_row_chunks(std::size_t rows, unsigned threads, F&& f) {
  const std::size_t chunks = (rows + row_chunk - 1) / row_chunk;
  blockcast::detail::parallel_for(chunks, threads, 1, [&](std::size_t c0, std::size_t c1) {
    for (std::size_t c = c0; c < c1; ++c) f(c * row_chunk, std::min(rows, (c + 1) * row_chunk));
  });
}

/// The finite amax of a matrix (rows may be strided).
inline float finite_amax(const matrix_ref& w) {
  float amax = 0.0f;
  for (Eigen::Index i = 0; i < w.rows(); ++i)
    amax = std::max(amax, reference::finite_amax(w.row(i).data(), static_cast<std::size_t>(w.cols())));
  return amax;
}

/// The tensor-level context (options; NVFP4 tensor scale from the weights' finite amax
/// unless opt.tensor_amax is given).
template <class Format>
reference::block_context weight_context(const matrix_ref& w, cast_options opt) {
  blockcast::detail::check_options(opt);
  if (Format::has_tensor_scale && !opt.tensor_amax) opt.tensor_amax = finite_amax(w);
  return reference::make_context<Format>(nullptr, 0, opt);
}

/// Writes one row's codes (one per byte) and scale bytes into the packed tensor.
template <class Format>
void store_row(packed_tensor<Format>& p, std::size_t r, const std::vector<std::uint8_t>& codes,
               const std::vector<std::uint8_t>& scales) {
  auto view = p.mutable_view();
  blockcast::detail::pack_codes(codes.data(), codes.size(), Format::element_bits, view.row_codes(r));
  std::copy(scales.begin(), scales.end(), view.row_scales(r));
}

}  // namespace detail
}  // namespace blockcast::ptq
