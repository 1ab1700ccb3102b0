// SPDX-License-Identifier: MIT
// The test matrix Omega (K x s) of input_stats' sketch Z = X^T (X Omega): a function of K, s,
// a seed and its kind alone, so that any program can regenerate it and statistics gathered
// apart merge (docs/calibration_stats.md, "The test matrix", defines both kinds bit for bit).
//
//  * hadamard, the sketch's default: a subsampled randomised Hadamard transform,
//        Omega[i, j] = sign_i * (-1)^popcount((i mod P) & column_j),
//    P the largest power of two <= K, seeded random signs, and s distinct seeded columns in
//    [0, P). X Omega is then a fast Walsh-Hadamard transform of each sample (O(K log K)
//    additions instead of K s multiply-adds): one of the sketch's two K x s products per
//    sample becomes a transform 4.5x cheaper at K = 4096 (X^T (X Omega) remains). Omega's first P
//    rows are s distinct, hence orthogonal, Hadamard columns, so it has full column rank,
//    which the Nystrom approximation needs; s <= P is therefore required.
//  * gaussian: seeded N(0, 1) entries (Box-Muller). The sketch's test matrix until version 2
//    of the statistics file, the only one for a sketch larger than P, and the one the model
//    of exact statistics draws (input_stats::model).
#pragma once

#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "blockcast/error.hpp"
#include "blockcast/kernels/scalar_ops.hpp"
#include "blockcast/ptq/matrix.hpp"

namespace blockcast::ptq {

enum class test_matrix_kind { gaussian, hadamard };

/// The kinds' names, as statistics files store them (docs/calibration_stats.md).
inline const char* test_matrix_name(test_matrix_kind kind) {
  return kind == test_matrix_kind::hadamard ? "hadamard" : "gaussian";
}
/// The kind of a name test_matrix_name gives; none for any other name.
inline std::optional<test_matrix_kind> test_matrix_from_name(const std::string& name) {
  for (const auto kind : {test_matrix_kind::gaussian, test_matrix_kind::hadamard})
    if (name == test_matrix_name(kind)) return kind;
  return std::nullopt;
}

class test_matrix {
 public:
  /// The largest power of two <= K: the Hadamard transform's length.
  static constexpr std::size_t hadamard_length(std::size_t channels) {
    std::size_t p = 1;
    while (p <= channels / 2) p *= 2;
    return p;
  }
  /// Whether a Hadamard test matrix of s columns exists for K channels (s distinct columns).
  static constexpr bool hadamard_fits(std::size_t channels, std::size_t sketch) {
    return channels >= 1 && sketch <= hadamard_length(channels);
  }

  test_matrix(std::size_t channels, std::size_t sketch, std::uint64_t seed, test_matrix_kind kind)
      : kind_(kind), p_(hadamard_length(channels)) {
    if (kind == test_matrix_kind::hadamard && !hadamard_fits(channels, sketch))
      blockcast::detail::fail<shape_error>("test_matrix: a Hadamard test matrix of " + std::to_string(sketch) +
                                           " columns for K = " + std::to_string(channels) + " (at most " +
                                           std::to_string(p_) + ", the largest power of two <= K)");
    const auto k = static_cast<Eigen::Index>(channels), s = static_cast<Eigen::Index>(sketch);
    dense_.resize(k, s);
    if (kind == test_matrix_kind::gaussian) {
      for (Eigen::Index i = 0; i < k; ++i)
        for (Eigen::Index j = 0; j < s; ++j) {
          const std::uint64_t index = 2 * static_cast<std::uint64_t>(i * s + j);
          const double u1 = (blockcast::detail::stochastic_bits(seed, index) + 1.0) / 4294967297.0;
          const double u2 = blockcast::detail::stochastic_bits(seed, index + 1) / 4294967296.0;
          dense_(i, j) = static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
        }
      return;
    }
    // signs from indices [0, K), columns from [K, K + s): a partial Fisher-Yates shuffle of [0, P)
    signs_.resize(channels);
    for (std::size_t i = 0; i < channels; ++i) signs_[i] = (blockcast::detail::stochastic_bits(seed, i) & 1u) ? -1.0f : 1.0f;
    std::vector<std::uint64_t> order(p_);
    std::iota(order.begin(), order.end(), std::uint64_t{0});
    columns_.resize(sketch);
    for (std::size_t j = 0; j < sketch; ++j) {
      const std::uint64_t draw = blockcast::detail::stochastic_bits(seed, channels + j);
      const std::size_t pick = j + static_cast<std::size_t>((draw * (p_ - j)) >> 32);
      std::swap(order[j], order[pick]);
      columns_[j] = order[j];
    }
    for (Eigen::Index i = 0; i < k; ++i)
      for (Eigen::Index j = 0; j < s; ++j) {
        const bool odd = odd_parity((static_cast<std::uint64_t>(i) % p_) & columns_[static_cast<std::size_t>(j)]);
        dense_(i, j) = odd ? -signs_[static_cast<std::size_t>(i)] : signs_[static_cast<std::size_t>(i)];
      }
  }

  test_matrix_kind kind() const { return kind_; }
  /// Omega itself, K x s.
  const Eigen::MatrixXf& dense() const { return dense_; }

  /// Y = X Omega (N x s) in FP32. Hadamard: each sample's signed values, folded onto P
  /// (x_i + x_{i+P}), transformed by butterflies of stride 1, 2, 4, ..., P/2, and s of the
  /// results picked. Every sum is one FP32 addition in a fixed order, so the bits do not
  /// depend on the machine. Gaussian: a matrix product.
  /// `y` must be N x s.
  void apply(const matrix_ref& x, Eigen::Ref<matrix> y) const {
    if (x.cols() != dense_.rows() || y.rows() != x.rows() || y.cols() != dense_.cols())
      blockcast::detail::fail<shape_error>("test_matrix::apply: samples of shape " + detail::shape(x) + " into " +
                                           detail::shape(y) + " for Omega of " +
                                           std::to_string(dense_.rows()) + " x " + std::to_string(dense_.cols()));
    if (kind_ == test_matrix_kind::gaussian) {
      y.noalias() = x * dense_;
      return;
    }
    const std::size_t channels = signs_.size(), sketch = columns_.size();
    // `lanes` samples at a time, interleaved (value i of lane l at i * lanes + l), so that
    // every butterfly is vector work, whatever its stride; P x lanes floats stay in L2
    std::vector<float> v(p_ * lanes);
    for (Eigen::Index first = 0; first < x.rows(); first += lanes) {
      const Eigen::Index count = std::min<Eigen::Index>(lanes, x.rows() - first);
      std::fill(v.begin(), v.end(), 0.0f);
      // a tile of `lanes` values of each sample at a time: 1 KB of v, not all of it per sample
      for (std::size_t tile = 0; tile < channels; tile += lanes) {
        const std::size_t end = std::min(tile + lanes, channels);
        for (Eigen::Index l = 0; l < count; ++l) {
          const float* row = x.row(first + l).data();
          float* lane = &v[static_cast<std::size_t>(l)];
          const std::size_t split = std::clamp(p_, tile, end);  // values from P on fold onto the first P
          for (std::size_t i = tile; i < split; ++i) lane[i * lanes] = signs_[i] * row[i];
          for (std::size_t i = split; i < end; ++i) lane[(i - p_) * lanes] += signs_[i] * row[i];
        }
      }
      // The strides below `span` stay within runs of `span` values (32 KB, in L1): each run
      // takes all of them in turn, then the larger strides go over the whole transform. The
      // same butterflies on the same values as stride after stride over all of it, so the
      // same bits, with a third of the passes over L2 at P = 4096.
      const std::size_t span = std::min(p_, l1_values);
      for (std::size_t run = 0; run < p_; run += span) butterflies(v.data(), run, run + span, 1, span);
      butterflies(v.data(), 0, p_, span, p_);
      for (Eigen::Index l = 0; l < count; ++l)
        for (std::size_t j = 0; j < sketch; ++j)
          y(first + l, static_cast<Eigen::Index>(j)) = v[columns_[j] * lanes + static_cast<std::size_t>(l)];
    }
  }

 private:
  static constexpr std::size_t lanes = 16;

  /// Transform values per lane (512 x 16 floats: 32 KB) whose butterflies run in L1.
  static constexpr std::size_t l1_values = 512;

  /// The butterflies of strides [first_stride, end_stride) within values [begin, end) of v.
  static void butterflies(float* v, std::size_t begin, std::size_t end, std::size_t first_stride, std::size_t end_stride) {
    for (std::size_t h = first_stride; h < end_stride; h *= 2)
      for (std::size_t start = begin; start < end; start += 2 * h)
        for (std::size_t i = start; i < start + h; ++i) butterfly(&v[i * lanes], &v[(i + h) * lanes]);
  }

  /// (a, b) -> (a + b, a - b), lane by lane.
  static void butterfly(float* __restrict a, float* __restrict b) {
    for (std::size_t l = 0; l < lanes; ++l) {
      const float u = a[l], w = b[l];
      a[l] = u + w;
      b[l] = u - w;
    }
  }

  /// Whether x has an odd number of bits set: (-1)^popcount(x) = -1.
  static constexpr bool odd_parity(std::uint64_t x) {
    for (unsigned shift = 32; shift > 0; shift /= 2) x ^= x >> shift;
    return (x & 1) != 0;
  }

  test_matrix_kind kind_;
  std::size_t p_;
  std::vector<float> signs_;             // K (Hadamard)
  std::vector<std::uint64_t> columns_;  // s (Hadamard)
  Eigen::MatrixXf dense_;               // K x s
};

}  // namespace blockcast::ptq
