// SPDX-License-Identifier: MIT
// Error metrics of a quantized layer: weight MSE, layer-output MSE and SQNR on inputs X.
#pragma once

#include <cmath>
#include <limits>

#include "blockcast/ptq/matrix.hpp"

namespace blockcast::ptq {

namespace detail {
inline void require_same_shape(const matrix_ref& a, const matrix_ref& b, const char* where) {
  if (a.rows() != b.rows() || a.cols() != b.cols())
    blockcast::detail::fail<shape_error>(std::string(where) + ": shapes " + shape(a) + " and " + shape(b) + " differ");
}
}  // namespace detail

/// 10 log10(signal / noise): +inf for no noise, NaN when either is not finite (a NaN weight
/// or output has no SQNR; it is never reported as a number).
inline double sqnr_db(double signal, double noise) {
  if (!std::isfinite(signal) || !std::isfinite(noise)) return std::numeric_limits<double>::quiet_NaN();
  return noise > 0 ? 10.0 * std::log10(signal / noise) : std::numeric_limits<double>::infinity();
}

/// Mean of (W - Q)^2 over all weights.
inline double weight_mse(const matrix_ref& w, const matrix_ref& q) {
  detail::require_same_shape(w, q, "weight_mse");
  return (w - q).cast<double>().squaredNorm() / static_cast<double>(w.size());
}

/// Mean over samples and outputs of ((W - Q) x)^2 for the rows x of X (N x K).
inline double output_mse(const matrix_ref& w, const matrix_ref& q, const matrix_ref& x) {
  detail::require_same_shape(w, q, "output_mse");
  if (x.cols() != w.cols())
    blockcast::detail::fail<shape_error>("output_mse: weights " + detail::shape(w) + ", inputs " + detail::shape(x));
  const Eigen::MatrixXf e = (w - q) * x.transpose();
  return e.cast<double>().squaredNorm() / static_cast<double>(e.size());
}

/// Layer-output signal-to-quantization-noise ratio, dB: 10 log10(|W X^T|^2 / |(W-Q) X^T|^2).
inline double output_sqnr_db(const matrix_ref& w, const matrix_ref& q, const matrix_ref& x) {
  const double noise = output_mse(w, q, x);
  const Eigen::MatrixXf y = w * x.transpose();
  const double signal = y.cast<double>().squaredNorm() / static_cast<double>(y.size());
  return sqnr_db(signal, noise);
}

/// Weight signal-to-quantization-noise ratio, dB.
inline double weight_sqnr_db(const matrix_ref& w, const matrix_ref& q) {
  const double noise = weight_mse(w, q);
  const double signal = w.cast<double>().squaredNorm() / static_cast<double>(w.size());
  return sqnr_db(signal, noise);
}

}  // namespace blockcast::ptq
