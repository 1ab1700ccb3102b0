// SPDX-License-Identifier: MIT
// Eigen types of the PTQ layer: weights are row-major m x K (rows = output channels, blocks
// along the contiguous input dimension K); inputs are N x K (one sample per row).
#pragma once

#include <Eigen/Dense>

#include <cmath>
#include <cstddef>
#include <string>

#include "blockcast/error.hpp"

namespace blockcast::ptq {

using matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
/// Any row-major float matrix expression with contiguous rows, without a copy.
using matrix_ref = Eigen::Ref<const matrix>;

namespace detail {
inline std::string shape(const matrix_ref& m) {
  return std::to_string(m.rows()) + " x " + std::to_string(m.cols());
}
/// Calibration inputs must be finite, and small enough that their squares are finite in FP32
/// (|x| <= 2^63): otherwise H, and with it every weight ED or GPTQ computes, is NaN or Inf.
/// Throws invalid_argument naming the first offending sample and channel (`first_sample`: the
/// number of x's first row in the caller's matrix, when x is a part of it).
inline void require_finite_inputs(const matrix_ref& x, const char* where, Eigen::Index first_sample = 0) {
  constexpr float limit = 9.223372e18f;  // 2^63: its square, 2^126, is finite in FP32
  for (Eigen::Index n = 0; n < x.rows(); ++n) {
    // a vectorized reduction per row (NaN propagates, and fails the test); the element only
    // when one is wrong
    if (x.row(n).cwiseAbs().maxCoeff<Eigen::PropagateNaN>() <= limit) continue;
    const float* row = x.row(n).data();
    for (Eigen::Index k = 0; k < x.cols(); ++k) {
      if (std::abs(row[k]) <= limit) continue;  // false for NaN
      const std::string what = std::isnan(row[k]) ? "NaN" : std::isinf(row[k]) ? "infinite" : "too large (" + std::to_string(row[k]) + ": its square overflows FP32)";
      blockcast::detail::fail<invalid_argument>(std::string(where) + ": calibration input [sample " + std::to_string(first_sample + n) +
                                                ", channel " + std::to_string(k) + "] is " + what);
    }
  }
}

inline void require_nonempty(const matrix_ref& m, const char* what, const char* where) {
  if (m.rows() == 0 || m.cols() == 0)
    blockcast::detail::fail<shape_error>(std::string(where) + ": " + what + " is empty (" + shape(m) + ")");
}
}  // namespace detail

}  // namespace blockcast::ptq
