// SPDX-License-Identifier: MIT
// Error diffusion (ED): weighted adjust-and-quantize over a layer's weights, derived in
// docs/error_diffusion.md. With the inputs modelled as H ~ D + U U^T, the greedy quantizer
// that GPTQ implements with the K x K inverse Hessian has a closed form carried as a
// rank-vector per row:
//
//   precompute (k = K-1 .. 0):  S_k = sum_{i>=k} U_i U_i^T / d_i,  g_k = (I + S_k)^{-1} U_k / d_k
//   per row, c = 0; for each block starting at s:
//       scale from the block's optimum  w_j + b_j . c,  b_j = (I + S_s)^{-1} U_j / d_j
//       for each column j of the block:
//           w~_j = w_j + g_j . c            (weighted adjust)
//           q_j  = round_to_grid(w~_j)      (quantize: nearest is the exact greedy choice)
//           c   += U_j (w_j - q_j)          (diffuse the error forward)
//   then, optionally, sweeps of coordinate descent on the same model (refine).
//
// (I + S_k)^{-1} is kept by Sherman-Morrison updates, O(rank^2) per column; the pass costs
// O(m K rank). No backpropagation, no inverse Hessian, no hyperparameter to tune: the rank and
// the GPTQ-style damping have defaults (ptq/defaults.hpp). This formalisation is the project's
// own reading of ED (Khodamoradi, Denolf, Dellinger, arXiv 2410.11203).
#pragma once

#include <Eigen/Dense>

#include <cmath>
#include <vector>

#include "blockcast/ptq/defaults.hpp"
#include "blockcast/ptq/input_stats.hpp"
#include "blockcast/ptq/metrics.hpp"
#include "blockcast/ptq/quantized.hpp"
#include "blockcast/ptq/rtn.hpp"

namespace blockcast::ptq {

/// The values each block's scale is chosen from (docs/error_diffusion.md, "Block scales").
enum class ed_scale_source {
  /// Each column's adjusted value w_j + g_j . c with the carry at the block's start: what the
  /// pass would quantize if the block's earlier columns were exact. The default, as the pass
  /// always chose; the two sources measured alike (docs/error_diffusion.md, "Block scales").
  adjusted,
  /// The block's optimum given the quantized prefix, w_j + b_j . c: GPTQ's updated weights.
  /// With exact H at full rank, ED is then GPTQ's quantizer exactly.
  block_optimum,
};

struct ed_options {
  std::size_t rank = 0;         ///< directions of H modelled; 0 = input_stats::default_model_rank()
  double damp = default_damp;   ///< residual-diagonal damping, a fraction of mean(diag H) (as GPTQ)
  cast_options cast;            ///< the format's rounding and scale rule; cast.threads splits rows
  /// Block-scale search: each block's scale is the amax scale or a neighbouring code,
  /// whichever gives the block's values the smallest error weighted by H's diagonal (the
  /// model's d + |U_k|^2). On by default: measured better on every model (README). What a
  /// diagonal model (an importance matrix) can do at all: with U = 0 nothing is carried, and
  /// without the search ED is RTN.
  bool scale_search = true;
  /// Refinement sweeps after the greedy pass: each revisits every code, with the whole
  /// row's error known, and moves it to the grid point that minimises the model's error
  /// (coordinate descent; block scales stay). A sweep never increases e^T (D + U U^T) e and
  /// costs about what the pass costs. One by default; further sweeps gain little (README).
  unsigned sweeps = 1;
  ed_scale_source scale_from = ed_scale_source::adjusted;  ///< the values block scales come from
};

/// The diagonal model of H from per-channel mean squares alone (an importance matrix, such as
/// llama.cpp's): U has no columns, d = mean_square + damp * mean(mean_square); a zero
/// diagonal (no information) weighs every channel equally.
inline ed_model diagonal_model(const Eigen::VectorXd& mean_square, double damp = default_damp) {
  if (!mean_square.allFinite() || (mean_square.array() < 0).any())
    blockcast::detail::fail<invalid_argument>("diagonal_model: mean squares must be finite and >= 0");
  ed_model m;
  m.U.resize(mean_square.size(), 0);
  m.d = mean_square.array() + damp * mean_square.mean();
  if (!(mean_square.mean() > 0)) m.d.setConstant(1.0);
  return m;
}

/// The gains that turn the carry c into adjustments (each K x rank, one row per column j).
struct diffusion_gains {
  Eigen::MatrixXd column;       ///< g_j = (I + S_j)^{-1} U_j / d_j: column j's optimum as it is quantized
  Eigen::MatrixXd block_start;  ///< b_j = (I + S_s)^{-1} U_j / d_j, s = the start of j's block: its optimum as the block begins
};

/// The diffusion gains of a model for blocks of `block_size` columns.
inline diffusion_gains diffusion_weights(const ed_model& model, std::size_t block_size) {
  const Eigen::Index channels = model.U.rows(), rank = model.U.cols(), block = static_cast<Eigen::Index>(block_size);
  diffusion_gains gains{Eigen::MatrixXd(channels, rank), Eigen::MatrixXd(channels, rank)};
  Eigen::MatrixXd inv = Eigen::MatrixXd::Identity(rank, rank);  // (I + S_col)^{-1}, S = 0 past the end
  for (Eigen::Index col = channels - 1; col >= 0; --col) {
    const Eigen::VectorXd u = model.U.row(col).transpose();
    const double d = model.d(col);
    // S += u u^T / d  =>  inv -= (inv u)(inv u)^T / (d + u^T inv u)   (Sherman-Morrison; inv is symmetric)
    const Eigen::VectorXd iu = inv * u;
    inv -= iu * iu.transpose() / (d + u.dot(iu));
    gains.column.row(col) = (inv * u / d).transpose();
    if (col % block == 0) {  // col starts a block: inv is (I + S_s)^{-1} for all of the block's columns
      const Eigen::Index len = std::min(block, channels - col);
      const Eigen::MatrixXd scaled = model.U.middleRows(col, len).array().colwise() / model.d.segment(col, len).array();
      gains.block_start.middleRows(col, len) = scaled * inv;
    }
  }
  return gains;
}

namespace detail {
/// Within each block of `block_size` columns: row s+i, column l holds u_{s+i} . g_{s+l} for
/// l > i (0 elsewhere), what column s+i's error adds per unit to column s+l's adjustment. The
/// pass takes a block's carry once at its start (one product for all its columns) and adds
/// the block's own errors through these, so the carry is a matrix product per block, not a
/// rank-1 update per column (docs/error_diffusion.md, "The pass by blocks").
/// (With upper_only false, all of u_{s+i} . g_{s+l}: the sweeps' U_j . U_l.)
template <class Matrix>
Matrix within_block_products(const Matrix& u, const Matrix& g, std::size_t block_size, bool upper_only = true) {
  const Eigen::Index channels = u.rows(), block = static_cast<Eigen::Index>(block_size);
  Matrix within = Matrix::Zero(channels, block);
  for (Eigen::Index s = 0; s < channels; s += block) {
    const Eigen::Index len = std::min(block, channels - s);
    const Matrix products = u.middleRows(s, len) * g.middleRows(s, len).transpose();  // (i, l): u_{s+i} . g_{s+l}
    if (upper_only) within.block(s, 0, len, len) = products.template triangularView<Eigen::StrictlyUpper>();
    else within.block(s, 0, len, len) = products;
  }
  return within;
}

/// A row-major FP64 matrix, the layout of the weights, so that converting them is not a
/// strided walk (modelled_error spent most of its time there; the sweep's time barely moved).
using error_matrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// W - Q in FP64 with NaN/Inf positions as 0: their blocks' errors are not carried or counted.
inline error_matrix finite_errors(const matrix_ref& w, const matrix_ref& q) {
  return (w - q).cast<double>().unaryExpr([](double v) { return std::isfinite(v) ? v : 0.0; });
}
}  // namespace detail

/// The model's error of quantizing W to Q: sum over rows of e^T (D + U U^T) e, e = w - q
/// (NaN/Inf weights excluded), the quantity ED's pass and sweeps minimise.
inline double modelled_error(const matrix_ref& w, const matrix_ref& q, const ed_model& model) {
  detail::require_same_shape(w, q, "modelled_error");
  if (model.U.rows() != w.cols() || model.d.size() != w.cols())
    blockcast::detail::fail<shape_error>("modelled_error: weights of shape " + detail::shape(w) + " but a model of K = " +
                                         std::to_string(model.U.rows()));
  const detail::error_matrix e = detail::finite_errors(w, q);
  return (e.array().square().rowwise() * model.d.transpose().array()).sum() + (e * model.U).squaredNorm();
}

namespace detail {

/// Coordinate-descent sweeps over a chunk of rows already quantized by the pass: for each
/// column j, each row's error e_j moves to the grid point nearest the model's optimum
///     e_j* = (e_j |U_j|^2 - U_j . t) / (d_j + |U_j|^2),  t = U^T e,
/// and the move is kept only if it lowers d_j e_j^2 + |t|^2 (docs/error_diffusion.md,
/// "Refinement"). Block scales stay. FP64 throughout, so the error never rises. The chunk's
/// weights and the pass's errors (w - q, 0 where not finite) come column-major from the pass.
/// `u_rows`: U stored row by row (K x rank), made once for all chunks, with the squares of its
/// rows `u_norm2`; `u_gram`: U_j . U_l within each block (within_block_products). U_j . t is
/// one product per block, corrected within the block when a code moves; t is updated only
/// then, which most codes do not. `error_buffer`: room for the errors in FP64 (rows x K).
template <class Format>
void refine_chunk(const Eigen::Ref<const Eigen::MatrixXf>& chunk_weights, const Eigen::Ref<const Eigen::MatrixXf>& chunk_errors,
                  std::size_t first_row, const ed_model& model, const error_matrix& u_rows, const error_matrix& u_gram,
                  const Eigen::VectorXd& u_norm2, unsigned sweeps, const reference::block_context& ctx, chunk_codes<Format>& out,
                  double* error_buffer) {
  constexpr std::size_t B = Format::block_size;
  const Eigen::Index rows = static_cast<Eigen::Index>(out.codes.size()), channels = chunk_weights.cols();
  const std::uint64_t k = static_cast<std::uint64_t>(channels);
  // column-major: a column's rows side by side, so that the per-column work is vector work
  Eigen::Map<Eigen::MatrixXd> error(error_buffer, rows, channels);
  error = chunk_errors.cast<double>();
  error_matrix t = error * model.U;  // rows x rank
  Eigen::MatrixXd ut(rows, static_cast<Eigen::Index>(B));  // U_j . t per row (column j of the block)
  Eigen::VectorXf targets(rows), values(rows);
  Eigen::VectorXd change(rows), new_error(rows), step(rows);
  std::vector<std::uint8_t> codes(static_cast<std::size_t>(rows));
  // rows whose block has a NaN scale, or whose weight is not finite, stay as they are
  const bool all_finite = chunk_weights.allFinite();
  auto skipped = [&](Eigen::Index i, std::size_t block, Eigen::Index col) {
    return out.scales_in_use[static_cast<std::size_t>(i)][block].nan || !std::isfinite(chunk_weights(i, col));
  };
  for (unsigned sweep = 0; sweep < sweeps; ++sweep) {
    for (std::size_t block_start = 0; block_start < k; block_start += B) {
      const Eigen::Index s = static_cast<Eigen::Index>(block_start), len = static_cast<Eigen::Index>(std::min<std::size_t>(B, k - block_start));
      const std::size_t block = block_start / B;
      const bool any_skipped = !all_finite || out.has_nan_scale(block);
      // U_j . t for all of the block's columns at once; a move in column j adds step * U_j . U_l
      // to the block's later columns l (u_gram), and step * U_j to t for the blocks after it
      ut.leftCols(len).noalias() = t * u_rows.middleRows(s, len).transpose();
      for (Eigen::Index j = 0; j < len; ++j) {
        const Eigen::Index col = s + j;
        const double d = model.d(col), a = u_norm2(col);
        const auto weights = chunk_weights.col(col).cast<double>();
        // every row's value at the model's optimum e_j*, quantized with its block's scale
        targets = (weights - (error.col(col) * a - ut.col(j)) / (d + a)).cast<float>();
        if (any_skipped)
          for (Eigen::Index i = 0; i < rows; ++i)
            if (skipped(i, block, col)) targets(i) = 0.0f;
        out.quantize_column(static_cast<std::size_t>(col), targets.data(), codes.data(), values.data(),
                            first_row * k + static_cast<std::uint64_t>(col), k, ctx);
        // the change of d_j e_j^2 + |t|^2 if the row's error moves by step
        new_error = weights - values.cast<double>();
        step = new_error - error.col(col);
        change = d * (new_error.array().square() - error.col(col).array().square()) +
                 step.array() * (2.0 * ut.col(j).array() + step.array() * a);
        for (Eigen::Index i = 0; i < rows; ++i) {
          if (!(change(i) < 0.0) || step(i) == 0.0 || (any_skipped && skipped(i, block, col))) continue;
          const std::size_t row = static_cast<std::size_t>(i);
          const double moved = step(i);
          out.codes[row][static_cast<std::size_t>(col)] = codes[row];
          error(i, col) = new_error(i);
          t.row(i) += moved * u_rows.row(col);
          if (j + 1 < len) ut.row(i).segment(j + 1, len - j - 1) += moved * u_gram.row(col).segment(j + 1, len - j - 1);
        }
      }
    }
  }
}

}  // namespace detail

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
  using fmat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using column_major = Eigen::MatrixXf;  // a block of the chunk: column j holds its rows' values
  const diffusion_gains gains = diffusion_weights(model, B);
  const fmat u = model.U.cast<float>();                      // K x rank
  const fmat g = gains.column.cast<float>();                 // K x rank
  const fmat g_block = gains.block_start.cast<float>();      // K x rank
  const fmat within = detail::within_block_products(u, g, B);  // K x B
  const reference::block_context ctx = detail::weight_context<Format>(w, opt.cast);
  // H's diagonal in the model, the scale search's weights
  const Eigen::VectorXf h_diagonal = (model.d + model.U.rowwise().squaredNorm()).cast<float>();
  // the sweeps' U, and U_j . U_l within each block
  const detail::error_matrix u_rows = opt.sweeps > 0 ? detail::error_matrix(model.U) : detail::error_matrix();
  const detail::error_matrix u_gram =
      opt.sweeps > 0 ? detail::within_block_products(u_rows, u_rows, B, false) : detail::error_matrix();
  const Eigen::VectorXd u_norm2 = model.U.rowwise().squaredNorm();

  quantized_matrix<Format> q = detail::empty_result<Format>(w, "ed", ctx);
  // a chunk's weights and the pass's errors (rows x K, column-major), and the sweeps' errors
  // in FP64: made once per thread, in huge pages (fresh 4 KiB pages cost the first call a
  // page fault each, at K = 4096 some 2,000 per thread)
  struct chunk_buffers {
    blockcast::detail::tensor_vector<float> weights, errors;
    blockcast::detail::tensor_vector<double> sweep_errors;
  };
  detail::for_row_chunks(m, opt.cast.threads, [] { return chunk_buffers{}; }, [&](chunk_buffers& buffers, std::size_t first_row, std::size_t end_row) {
    const Eigen::Index rows = static_cast<Eigen::Index>(end_row - first_row), row0 = static_cast<Eigen::Index>(first_row);
    fmat carry = fmat::Zero(rows, u.cols());  // c at the block's start, one rank-vector per row
    detail::chunk_codes<Format> out(end_row - first_row, k);
    column_major adjusted(rows, B), errors(rows, B), values(rows, B);
    fmat start(rows, B);
    Eigen::Matrix<std::uint8_t, Eigen::Dynamic, Eigen::Dynamic> codes(rows, B);  // the block's codes, column by column
    // the chunk's weights column-major, copied 16 rows at a time: 16 memory streams the
    // prefetcher follows, and each column's 16 values one cache line of the copy (copied
    // along single rows, every write missed the L2; 16 columns at a time, the 128 rows'
    // first reads missed together; each took a fifth of the pass). The sweeps' errors,
    // column-major.
    const Eigen::Index stored_errors = opt.sweeps > 0 ? w.cols() : 0;
    buffers.weights.resize(static_cast<std::size_t>(rows * w.cols()));
    buffers.errors.resize(static_cast<std::size_t>(rows * stored_errors));
    buffers.sweep_errors.resize(static_cast<std::size_t>(rows * stored_errors));
    Eigen::Map<column_major> chunk_weights(buffers.weights.data(), rows, w.cols());
    Eigen::Map<column_major> chunk_errors(buffers.errors.data(), rows, stored_errors);
    constexpr Eigen::Index copy_rows = 16;
    for (Eigen::Index i = 0; i < rows; i += copy_rows) {
      const Eigen::Index n = std::min(copy_rows, rows - i);
      chunk_weights.middleRows(i, n) = w.middleRows(row0 + i, n);
    }
    for (std::size_t block_start = 0; block_start < k; block_start += B) {
      const Eigen::Index s = static_cast<Eigen::Index>(block_start), len = static_cast<Eigen::Index>(std::min(B, k - block_start));
      // every column's adjusted value with the carry at the block's start: w_j + g_j . c
      const auto weights = chunk_weights.middleCols(s, len);
      adjusted.leftCols(len).noalias() = carry * g.middleRows(s, len).transpose();
      adjusted.leftCols(len) += weights;
      // the block's scale from those values or from its optimum
      if (opt.scale_from == ed_scale_source::adjusted) start.leftCols(len) = adjusted.leftCols(len);
      else start.leftCols(len) = weights + carry * g_block.middleRows(s, len).transpose();
      for (Eigen::Index i = 0; i < rows; ++i)
        out.start_block(static_cast<std::size_t>(i), block_start / B, start.row(i).data(), static_cast<std::size_t>(len), ctx,
                        opt.scale_search ? h_diagonal.data() + s : nullptr, (first_row + static_cast<std::size_t>(i)) * k + block_start);
      for (Eigen::Index j = 0; j < len; ++j) {
        const std::size_t col = block_start + static_cast<std::size_t>(j);
        out.quantize_column(col, adjusted.col(j).data(), codes.col(j).data(), values.col(j).data(), first_row * k + col, k, ctx);
        // NaN/Inf stay in their block: their errors are not carried
        errors.col(j) = (weights.col(j) - values.col(j)).unaryExpr([](float e) { return std::isfinite(e) ? e : 0.0f; });
        // the block's later columns take this column's error: + e_j (u_j . g_l), l > j
        if (j + 1 < len)
          adjusted.middleCols(j + 1, len - j - 1).noalias() += errors.col(j) * within.row(s + j).segment(j + 1, len - j - 1);
      }
      if (opt.sweeps > 0) chunk_errors.middleCols(s, len) = errors.leftCols(len);
      for (Eigen::Index i = 0; i < rows; ++i)
        for (Eigen::Index j = 0; j < len; ++j) out.codes[static_cast<std::size_t>(i)][block_start + static_cast<std::size_t>(j)] = codes(i, j);
      carry.noalias() += errors.leftCols(len) * u.middleRows(s, len);  // diffuse the block's errors forward
    }
    if (opt.sweeps > 0)
      detail::refine_chunk<Format>(chunk_weights, chunk_errors, first_row, model, u_rows, u_gram, u_norm2, opt.sweeps, ctx, out,
                                   buffers.sweep_errors.data());
    out.store(q.packed, first_row);
    detail::decode_rows(q, first_row, end_row);
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
