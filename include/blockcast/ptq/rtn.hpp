// SPDX-License-Identifier: MIT
// Round-to-nearest: every row through the stable quantize kernels, the baseline of PTQ.
#pragma once

#include "blockcast/ptq/quantized.hpp"

namespace blockcast::ptq {

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
  dequantize(q.packed, q.dequantized.data(), opt);
  return q;
}

}  // namespace blockcast::ptq
