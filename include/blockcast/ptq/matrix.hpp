// SPDX-License-Identifier: MIT
// Eigen types of the PTQ layer: weights are row-major m x K (rows = output channels, blocks
// along the contiguous input dimension K); inputs are N x K (one sample per row).
#pragma once

#include <Eigen/Dense>

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
inline void require_nonempty(const matrix_ref& m, const char* what, const char* where) {
  if (m.rows() == 0 || m.cols() == 0)
    blockcast::detail::fail<shape_error>(std::string(where) + ": " + what + " is empty (" + shape(m) + ")");
}
}  // namespace detail

}  // namespace blockcast::ptq
