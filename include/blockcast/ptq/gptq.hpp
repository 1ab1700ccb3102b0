// SPDX-License-Identifier: MIT
// GPTQ (Frantar, Ashkboos, Hoefler, Alistarh, "GPTQ: Accurate Post-Training Quantization for
// Generative Pre-trained Transformers", ICLR 2023) for block-scaled formats: the baseline ED is
// measured against. Damped H = X^T X / N + damp * mean(diag) I, the upper Cholesky factor of
// H^{-1}, columns in order, lazy batched updates. Each block's scale is chosen when the
// block's first column is reached, from the weights as updated so far.
#pragma once

#include <Eigen/Dense>

#include <cmath>
#include <vector>

#include "blockcast/ptq/defaults.hpp"
#include "blockcast/ptq/quantized.hpp"

namespace blockcast::ptq {

struct gptq_options {
  double damp = default_damp;        ///< fraction of mean(diag H) added to the diagonal
  std::size_t block_columns = 128;   ///< lazy-update batch (rounded up to whole blocks)
  cast_options cast;                 ///< the format's rounding and scale rule; threads split rows
  /// Block-scale search: each block's scale is the amax scale of the updated weights or a
  /// neighbouring code, whichever gives the smallest error weighted as GPTQ weighs column j's
  /// (1 / [H^-1]_jj of the columns not yet fixed: the inverse factor's diagonal squared).
  bool scale_search = false;
};

/// The upper Cholesky factor of the damped inverse of H = X^T X / N (K x K; accumulated
/// batch by batch where the inputs are too many to hold): H += damp * mean(diag H) I, then
/// chol(H^-1) as GPTQ's reference implementation does.
inline Eigen::MatrixXf gptq_factor_from_hessian(Eigen::MatrixXf h, double damp) {
  const Eigen::Index k = h.rows();
  if (h.cols() != k)
    blockcast::detail::fail<shape_error>("gptq: the Hessian must be square, got " + std::to_string(k) + " x " +
                                         std::to_string(h.cols()));
  if (!h.allFinite()) blockcast::detail::fail<invalid_argument>("gptq: the Hessian holds Inf or NaN");
  const float mean_diag = h.diagonal().mean();
  h.diagonal().array() += static_cast<float>(damp) * (mean_diag > 0 ? mean_diag : 1.0f);
  const Eigen::LLT<Eigen::MatrixXf> llt(h);
  if (llt.info() != Eigen::Success)
    blockcast::detail::fail<invalid_argument>("gptq: the damped Hessian is not positive definite");
  const Eigen::MatrixXf h_inv = llt.solve(Eigen::MatrixXf::Identity(k, k));
  const Eigen::LLT<Eigen::MatrixXf> inv_llt(h_inv);
  return inv_llt.matrixU();
}

/// The upper Cholesky factor of the damped inverse Hessian of calibration inputs X (N x K):
/// H = X^T X / N by symmetric rank updates over a fixed split of the samples (4 parts,
/// whatever the thread count, so the result does not depend on it; `threads` run the parts),
/// then gptq_factor_from_hessian.
inline Eigen::MatrixXf gptq_inverse_factor(const matrix_ref& x, double damp, unsigned threads = 1) {
  detail::require_finite_inputs(x, "gptq");
  const Eigen::Index k = x.cols();
  const std::size_t n = static_cast<std::size_t>(x.rows()), parts = std::min<std::size_t>(4, n);
  std::vector<Eigen::MatrixXf> partial(parts, Eigen::MatrixXf::Zero(k, k));
  blockcast::detail::parallel_for(parts, threads, 1, [&](std::size_t p0, std::size_t p1) {
    for (std::size_t p = p0; p < p1; ++p) {
      const Eigen::Index b = static_cast<Eigen::Index>(n * p / parts), e = static_cast<Eigen::Index>(n * (p + 1) / parts);
      const Eigen::MatrixXf xt = x.middleRows(b, e - b).transpose();
      partial[p].selfadjointView<Eigen::Lower>().rankUpdate(xt);
    }
  });
  Eigen::MatrixXf h = partial[0];
  for (std::size_t p = 1; p < parts; ++p) h += partial[p];
  h = h.selfadjointView<Eigen::Lower>();
  h /= static_cast<float>(n);
  if (!h.allFinite())
    blockcast::detail::fail<invalid_argument>("gptq: the Hessian of the calibration inputs overflows FP32 (largest |x| = " +
                                              std::to_string(x.cwiseAbs().maxCoeff()) + "); scale them down");
  return gptq_factor_from_hessian(std::move(h), damp);
}

/// GPTQ of W (m x K) given the upper Cholesky factor of the damped inverse Hessian
/// (gptq_inverse_factor): one factor serves every format a layer is quantized to.
template <class Format>
quantized_matrix<Format> gptq_with_factor(const matrix_ref& w, const Eigen::MatrixXf& hinv, const gptq_options& opt = {}) {
  detail::require_nonempty(w, "the weight matrix", "gptq");
  if (hinv.rows() != w.cols() || hinv.cols() != w.cols())
    blockcast::detail::fail<shape_error>("gptq: weights of shape " + detail::shape(w) + " but an inverse-Hessian factor of " +
                                         std::to_string(hinv.rows()) + " x " + std::to_string(hinv.cols()));
  const std::size_t m = static_cast<std::size_t>(w.rows()), k = static_cast<std::size_t>(w.cols());
  constexpr std::size_t B = Format::block_size;
  const std::size_t batch = std::max<std::size_t>(1, (opt.block_columns + B - 1) / B) * B;
  const reference::block_context ctx = detail::weight_context<Format>(w, opt.cast);
  const Eigen::VectorXf column_weight = hinv.diagonal().array().square().inverse();  // the scale search's weights

  quantized_matrix<Format> q = detail::empty_result<Format>(w, "gptq", ctx);
  detail::for_row_chunks(m, opt.cast.threads, [&](std::size_t first_row, std::size_t end_row) {
    const Eigen::Index rows = static_cast<Eigen::Index>(end_row - first_row), row0 = static_cast<Eigen::Index>(first_row);
    Eigen::MatrixXf work = w.middleRows(row0, rows);  // updated weights
    detail::chunk_codes<Format> out(end_row - first_row, k);
    for (std::size_t batch_start = 0; batch_start < k; batch_start += batch) {
      const Eigen::Index b0 = static_cast<Eigen::Index>(batch_start), b1 = static_cast<Eigen::Index>(std::min(k, batch_start + batch));
      Eigen::MatrixXf err(rows, b1 - b0);  // scaled errors (w - q) / [H^-1]_jj of the batch
      for (Eigen::Index col = b0; col < b1; ++col) {
        const std::size_t column = static_cast<std::size_t>(col);
        if (column % B == 0) {  // the block's scale from the updated weights
          const std::size_t len = std::min(B, k - column);
          for (Eigen::Index i = 0; i < rows; ++i) {
            const Eigen::VectorXf block = work.row(i).segment(col, static_cast<Eigen::Index>(len)).transpose();
            out.start_block(static_cast<std::size_t>(i), column / B, block.data(), len, ctx,
                            opt.scale_search ? column_weight.data() + column : nullptr, (first_row + static_cast<std::size_t>(i)) * k + column);
          }
        }
        const float d = hinv(col, col);
        for (Eigen::Index i = 0; i < rows; ++i) {
          const std::size_t row = first_row + static_cast<std::size_t>(i);
          const float wj = work(i, col);
          const float qj = out.quantize(static_cast<std::size_t>(i), column, wj, row * k + column, ctx);
          q.dequantized(row0 + i, col) = qj;
          const float e = (wj - qj) / d;
          err(i, col - b0) = std::isfinite(e) ? e : 0.0f;  // NaN/Inf stay in their block
        }
        // update the rest of this batch now
        const Eigen::Index rest = b1 - col - 1;
        if (rest > 0) work.middleCols(col + 1, rest).noalias() -= err.col(col - b0) * hinv.row(col).segment(col + 1, rest);
      }
      // lazy update of the columns after the batch
      const Eigen::Index after = static_cast<Eigen::Index>(k) - b1;
      if (after > 0) work.rightCols(after).noalias() -= err * hinv.block(b0, b1, b1 - b0, after);
    }
    out.store(q.packed, first_row);
  });
  return q;
}

/// GPTQ of W (m x K) with calibration inputs X (N x K).
template <class Format>
quantized_matrix<Format> gptq(const matrix_ref& w, const matrix_ref& x, const gptq_options& opt = {}) {
  detail::require_nonempty(w, "the weight matrix", "gptq");
  detail::require_nonempty(x, "the calibration input", "gptq");
  if (x.cols() != w.cols())
    blockcast::detail::fail<shape_error>("gptq: weights of shape " + detail::shape(w) +
                                         " but calibration inputs of shape " + detail::shape(x) + " (K differs)");
  return gptq_with_factor<Format>(w, gptq_inverse_factor(x, opt.damp, opt.cast.threads), opt);
}

}  // namespace blockcast::ptq
