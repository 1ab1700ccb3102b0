// SPDX-License-Identifier: MIT
// Error diffusion (ED): weighted adjust-and-quantize over a layer's weights (derived in
// docs/error_diffusion.md). With the inputs modelled as H ~ D + U U^T, the greedy quantizer that GPTQ
// implements with the K x K inverse Hessian has a closed form carried as an r-vector per row:
//
//   precompute (k = K-1 .. 0):  S_k = sum_{i>=k} U_i U_i^T / d_i,  g_k = (I + S_k)^{-1} U_k / d_k
//   per row, c = 0; per block: scale from w_j + g_j . c over the block; then for each j:
//       w~_j = w_j + g_j . c            (weighted adjust)
//       q_j  = round_to_grid(w~_j)      (quantize: nearest is the exact greedy choice)
//       c   += U_j (w_j - q_j)          (diffuse the error forward)
//
// (I + S_k)^{-1} is kept by Sherman-Morrison updates, O(r^2) per column; the pass costs
// O(m K r). No backpropagation, no Hessian, no hyperparameter to tune: r = min(64, K) and the
// GPTQ-style damping are defaults. This formalisation is the project's own reading of ED
// (Khodamoradi, Denolf, Dellinger, arXiv 2410.11203); see docs/error_diffusion.md.
#pragma once

#include <Eigen/Dense>

#include <cmath>
#include <vector>

#include "blockcast/ptq/input_stats.hpp"
#include "blockcast/ptq/quantized.hpp"
#include "blockcast/ptq/rtn.hpp"

namespace blockcast::ptq {

struct ed_options {
  std::size_t rank = 0;  ///< r; 0 = min(64, K). An option for the curious, not a knob to tune.
  double damp = 0.01;    ///< residual-diagonal damping, a fraction of mean(diag H) (as GPTQ)
  cast_options cast;     ///< the format's rounding and scale rule; cast.threads splits rows
  /// Block-scale search: each block's scale is the amax scale or a neighbouring code,
  /// whichever gives the block's adjusted values the smallest error weighted by H's diagonal
  /// (the model's d + |U_k|^2). What a diagonal model (an importance matrix) can do at all:
  /// with U = 0 nothing is carried, and without the search ED is RTN.
  bool scale_search = false;
};

/// The diagonal model of H from per-channel mean squares alone (an importance matrix, such as
/// llama.cpp's): U has no columns, d = mean_square + damp * mean(mean_square); a zero
/// diagonal (no information) weighs every channel equally.
inline ed_model diagonal_model(const Eigen::VectorXd& mean_square, double damp = 0.01) {
  if (!mean_square.allFinite() || (mean_square.array() < 0).any())
    blockcast::detail::fail<invalid_argument>("diagonal_model: mean squares must be finite and >= 0");
  ed_model m;
  m.U.resize(mean_square.size(), 0);
  m.d = mean_square.array() + damp * mean_square.mean();
  if (!(mean_square.mean() > 0)) m.d.setConstant(1.0);
  return m;
}

/// The diffusion weights g (K x r) of a model: g_k = (I + S_k)^{-1} U_k / d_k.
inline Eigen::MatrixXd diffusion_weights(const ed_model& model) {
  const Eigen::Index k = model.U.rows(), r = model.U.cols();
  Eigen::MatrixXd g(k, r);
  Eigen::MatrixXd inv = Eigen::MatrixXd::Identity(r, r);  // (I + S)^{-1}, S = 0
  for (Eigen::Index i = k - 1; i >= 0; --i) {
    const Eigen::VectorXd u = model.U.row(i).transpose();
    const double d = model.d(i);
    // S += u u^T / d  =>  inv -= (inv u)(inv u)^T / (d + u^T inv u)   (inv is symmetric)
    const Eigen::VectorXd iu = inv * u;
    inv -= iu * iu.transpose() / (d + u.dot(iu));
    g.row(i) = (inv * u / d).transpose();
  }
  return g;
}

/// ED with an explicit model (U, d): the pass itself.
template <class Format>
quantized_matrix<Format> error_diffusion(const matrix_ref& w, const ed_model& model, const ed_options& opt = {}) {
  detail::require_nonempty(w, "the weight matrix", "error_diffusion");
  const std::size_t m = static_cast<std::size_t>(w.rows()), k = static_cast<std::size_t>(w.cols());
  if (static_cast<std::size_t>(model.U.rows()) != k || static_cast<std::size_t>(model.d.size()) != k)
    blockcast::detail::fail<shape_error>("error_diffusion: weights of shape " + detail::shape(w) +
                                         " (K = " + std::to_string(k) + ") but statistics for K = " +
                                         std::to_string(model.U.rows()));
  if (!(model.d.array() > 0).all())
    blockcast::detail::fail<invalid_argument>("error_diffusion: the residual diagonal d must be > 0");
  constexpr std::size_t B = Format::block_size;
  const std::size_t r = static_cast<std::size_t>(model.U.cols());
  using fmat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const fmat u = model.U.cast<float>();                  // K x r
  const fmat g = diffusion_weights(model).cast<float>();  // K x r
  const reference::block_context ctx = detail::weight_context<Format>(w, opt.cast);
  // H's diagonal in the model, the scale search's weights
  const Eigen::VectorXf h_diagonal = (model.d + model.U.rowwise().squaredNorm()).cast<float>();

  quantized_matrix<Format> q = detail::empty_result<Format>(w, "ed", ctx);
  detail::for_row_chunks(m, opt.cast.threads, [&](std::size_t r0, std::size_t r1) {
    const Eigen::Index rows = static_cast<Eigen::Index>(r1 - r0);
    fmat carry = fmat::Zero(rows, static_cast<Eigen::Index>(r));  // c, one r-vector per row
    detail::chunk_codes<Format> out(r1 - r0, k);
    for (std::size_t s = 0; s < k; s += B) {
      const std::size_t len = std::min(B, k - s);
      // the block's scale from the adjusted values with the carry at the block's start
      const fmat adjusted = w.block(static_cast<Eigen::Index>(r0), static_cast<Eigen::Index>(s), rows,
                                    static_cast<Eigen::Index>(len)) +
                            carry * g.middleRows(static_cast<Eigen::Index>(s), static_cast<Eigen::Index>(len)).transpose();
      for (Eigen::Index i = 0; i < rows; ++i)
        out.start_block(static_cast<std::size_t>(i), s / B, adjusted.row(i).data(), len, ctx,
                        opt.scale_search ? h_diagonal.data() + s : nullptr, (r0 + static_cast<std::size_t>(i)) * k + s);
      for (std::size_t j = s; j < s + len; ++j) {
        const Eigen::Index jj = static_cast<Eigen::Index>(j);
        const Eigen::VectorXf adjust = carry * g.row(jj).transpose();  // g_j . c per row
        Eigen::VectorXf error(rows);
        for (Eigen::Index i = 0; i < rows; ++i) {
          const std::size_t row = r0 + static_cast<std::size_t>(i);
          const float wj = w(static_cast<Eigen::Index>(row), jj);
          const float qj = out.quantize(static_cast<std::size_t>(i), j, wj + adjust(i), row * k + j, ctx);
          q.dequantized(static_cast<Eigen::Index>(row), jj) = qj;
          const float e = wj - qj;
          error(i) = std::isfinite(e) ? e : 0.0f;  // NaN/Inf stay in their block
        }
        carry.noalias() += error * u.row(jj);  // diffuse the error forward
      }
    }
    out.store(q.packed, r0);
  });
  return q;
}

/// Calibrated ED: the model from the statistics of this layer's inputs.
template <class Format>
quantized_matrix<Format> error_diffusion(const matrix_ref& w, const input_stats& stats, const ed_options& opt = {}) {
  if (static_cast<std::size_t>(w.cols()) != stats.channels())
    blockcast::detail::fail<shape_error>("error_diffusion: weights of shape " + detail::shape(w) +
                                         " but statistics for K = " + std::to_string(stats.channels()));
  if (stats.count() == 0) blockcast::detail::fail<shape_error>("error_diffusion: the statistics hold no samples");
  return error_diffusion<Format>(w, stats.model(opt.rank, opt.damp), opt);
}

/// Without calibration statistics ED has nothing to diffuse with: this is RTN, and the
/// result's method says so.
template <class Format>
quantized_matrix<Format> error_diffusion(const matrix_ref& w, const ed_options& opt = {}) {
  auto q = rtn<Format>(w, opt.cast);
  q.method = "rtn (no calibration statistics)";
  return q;
}

}  // namespace blockcast::ptq
