// SPDX-License-Identifier: MIT
// Calibration statistics of a layer's inputs x (K channels): per-channel count, mean and mean
// square, and a streaming sketch of the uncentred second moment H = E[x x^T] that never
// forms the K x K matrix.
//
// The sketch is the single-pass Nystrom sketch of a PSD matrix (Tropp, Yurtsever, Udell,
// Cevher, "Fixed-rank approximation of a positive-semidefinite matrix from streaming data",
// NeurIPS 2017): with a fixed test matrix Omega (K x s, ptq/test_matrix.hpp: a randomised
// Hadamard transform by default) it accumulates
//     Z = sum_n x_n (x_n^T Omega)  =  N H Omega,
// which is linear in the data: batches add, and statistics from several threads merge by
// addition. Memory O(K s), cost O(K s) per sample. When K <= s the test matrix is the
// identity and Z is N H exactly. By default H is held exactly while K <= 1024 (8 MB of FP64;
// the pass can afford more than 64 directions there) and sketched with s = 128 (the
// oversampled 2 x default_rank) above: docs/error_diffusion.md, "The statistics".
// model() turns the statistics into the diagonal-plus-low-rank model ED uses:
//     H ~ D + U U^T,  U: K x rank top principal directions scaled by their singular values,
//     d_k = max(H_kk - |U_k|^2, 0) + damp * mean(diag H).
// docs/error_diffusion.md ("The statistics") derives both.
#pragma once

#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "blockcast/error.hpp"
#include "blockcast/kernels/parallel.hpp"
#include "blockcast/kernels/scalar_ops.hpp"
#include "blockcast/ptq/defaults.hpp"
#include "blockcast/ptq/matrix.hpp"
#include "blockcast/ptq/test_matrix.hpp"

namespace blockcast::ptq {

/// The diagonal-plus-low-rank model of H that error diffusion works from.
struct ed_model {
  Eigen::MatrixXd U;  // K x rank
  Eigen::VectorXd d;  // K, > 0
};

/// Everything input_stats holds, for storing and restoring it (io/input_stats_file.hpp).
struct input_stats_state {
  std::size_t channels = 0;  ///< K
  std::size_t sketch = 0;    ///< s (= K when exact)
  std::uint64_t seed = 0;    ///< the test matrix's seed
  test_matrix_kind omega = test_matrix_kind::gaussian;  ///< the test matrix's kind (sketched statistics only)
  std::size_t count = 0;     ///< N, the samples added
  Eigen::VectorXd sum, sum_sq;  ///< per channel: sum of x, sum of x^2
  Eigen::MatrixXd moments;      ///< N H Omega (K x s), or N H (K x K) when exact
};

class input_stats {
 public:
  /// The sketch size argument that asks for the default rule, sketch_for(K).
  static constexpr std::size_t auto_sketch = 0;
  /// The largest K whose H the default statistics hold exactly (K x K in FP64: 8 MB).
  static constexpr std::size_t exact_channels = 1024;
  /// The sketch size above exact_channels: the oversampled 2 x default_rank.
  static constexpr std::size_t default_sketch = 2 * default_rank;
  /// The default sketch size for K channels: K (exact H) up to exact_channels, else
  /// default_sketch. Memory then stays at most 8 MB of FP64 up to K = 8192, O(K) beyond.
  static constexpr std::size_t sketch_for(std::size_t channels) {
    return channels <= exact_channels ? channels : default_sketch;
  }

  /// The test matrix a sketch of s columns for K channels takes: Hadamard where it exists
  /// (s <= the largest power of two <= K), else Gaussian. Exact statistics (s >= K) use none.
  static constexpr test_matrix_kind default_test_matrix(std::size_t channels, std::size_t sketch) {
    return sketch < channels && test_matrix::hadamard_fits(channels, sketch) ? test_matrix_kind::hadamard
                                                                             : test_matrix_kind::gaussian;
  }

  /// Empty statistics for K input channels (sketch auto_sketch: sketch_for(K)), sketched with
  /// default_test_matrix. All statistics that are merged must share K, sketch size, seed and
  /// test matrix.
  explicit input_stats(std::size_t channels, std::size_t sketch = auto_sketch, std::uint64_t seed = 0)
      : input_stats(channels, sketch, seed, std::nullopt) {}
  /// The same with the test matrix's kind chosen (statistics stored with a Gaussian one).
  input_stats(std::size_t channels, std::size_t sketch, std::uint64_t seed, std::optional<test_matrix_kind> kind)
      : k_(channels),
        s_(std::min(sketch == auto_sketch ? sketch_for(channels) : sketch, channels)),
        seed_(seed),
        exact_(s_ == channels),
        kind_(kind ? *kind : default_test_matrix(k_, s_)) {
    if (channels == 0) blockcast::detail::fail<shape_error>("input_stats: K must be >= 1");
    sum_.setZero(static_cast<Eigen::Index>(k_));
    sum_sq_.setZero(static_cast<Eigen::Index>(k_));
    z_.setZero(static_cast<Eigen::Index>(k_), static_cast<Eigen::Index>(s_));
    if (!exact_) omega_.emplace(k_, s_, seed_, kind_);
  }

  /// Statistics of the rows of X (N samples x K channels), sketched in a fixed split of the
  /// samples (8 parts, added in order, whatever the thread count: the result does not depend
  /// on `threads`, which only run the parts in parallel).
  static input_stats from(const matrix_ref& x, std::size_t sketch = auto_sketch, std::uint64_t seed = 0,
                          unsigned threads = 1) {
    detail::require_nonempty(x, "the calibration input", "input_stats::from");
    const std::size_t n = static_cast<std::size_t>(x.rows()), parts = std::min<std::size_t>(8, n);
    input_stats total(static_cast<std::size_t>(x.cols()), sketch, seed);
    // The parts run `threads` at a time, each into sums of its own, which are then added in
    // part order: the bits of gathering each part alone and merging them in turn, with one
    // set of sums per thread instead of a copy of the statistics (and test matrix) per part.
    // Each part is checked where it is added, with the caller's sample numbers; of several bad
    // parts, the first one's error is rethrown.
    const std::size_t lanes = std::max<std::size_t>(1, std::min<std::size_t>(threads, parts));
    std::vector<batch_sums> sums(lanes);
    for (std::size_t first = 0; first < parts; first += lanes) {
      const std::size_t count = std::min(lanes, parts - first);
      blockcast::detail::parallel_for(count, threads, 1, [&](std::size_t l0, std::size_t l1) {
        for (std::size_t l = l0; l < l1; ++l) {
          const std::size_t p = first + l;
          const Eigen::Index b = static_cast<Eigen::Index>(n * p / parts), e = static_cast<Eigen::Index>(n * (p + 1) / parts);
          detail::require_finite_inputs(x.middleRows(b, e - b), "input_stats::from", b);
          total.gather(x.middleRows(b, e - b), sums[l]);
        }
      });
      for (std::size_t l = 0; l < count; ++l) total.add_sums(sums[l]);
    }
    return total;
  }

  /// Adds a batch of samples (N x K, N >= 1).
  void add(const matrix_ref& batch) {
    if (batch.rows() == 0) blockcast::detail::fail<shape_error>("input_stats::add: the batch has no samples (N = 0)");
    if (static_cast<std::size_t>(batch.cols()) != k_)
      blockcast::detail::fail<shape_error>("input_stats::add: batch of shape " + detail::shape(batch) +
                                           " for statistics of K = " + std::to_string(k_) + " channels");
    detail::require_finite_inputs(batch, "input_stats::add");
    accumulate(batch);
  }

  /// Adds statistics gathered elsewhere (another thread, another batch of files).
  void merge(const input_stats& other) {
    if (other.k_ != k_ || other.s_ != s_ || other.seed_ != seed_ || (!exact_ && other.kind_ != kind_))
      blockcast::detail::fail<shape_error>("input_stats::merge: statistics of K = " + std::to_string(other.k_) + " (" +
                                           other.describe_sketch() + ") into K = " + std::to_string(k_) + " (" +
                                           describe_sketch() + ")");
    count_ += other.count_;
    sum_ += other.sum_;
    sum_sq_ += other.sum_sq_;
    z_ += other.z_;
  }

  /// The state, to store.
  input_stats_state state() const { return {k_, s_, seed_, kind_, count_, sum_, sum_sq_, z_}; }
  /// Statistics restored from a stored state: `sketch` and `seed` as they were made with
  /// (the test matrix is regenerated from them); shapes and values are checked.
  static input_stats from_state(input_stats_state st) {
    const auto k = static_cast<Eigen::Index>(st.channels);
    if (st.channels == 0 || st.sketch == 0 || st.sketch > st.channels)
      blockcast::detail::fail<shape_error>("input_stats: a stored state of K = " + std::to_string(st.channels) +
                                           " channels and sketch size " + std::to_string(st.sketch) +
                                           " (needs 1 <= sketch <= K)");
    // exact statistics are stored with sketch = K; the constructor takes the same size
    if (st.omega == test_matrix_kind::hadamard && st.sketch < st.channels && !test_matrix::hadamard_fits(st.channels, st.sketch))
      blockcast::detail::fail<shape_error>("input_stats: a stored state of K = " + std::to_string(st.channels) +
                                           " sketched by a Hadamard test matrix of " + std::to_string(st.sketch) +
                                           " columns (at most " + std::to_string(test_matrix::hadamard_length(st.channels)) +
                                           " exist)");
    input_stats s(st.channels, st.sketch, st.seed, st.omega);
    const auto cols = static_cast<Eigen::Index>(s.s_);
    if (st.sum.size() != k || st.sum_sq.size() != k || st.moments.rows() != k || st.moments.cols() != cols)
      blockcast::detail::fail<shape_error>("input_stats: a stored state of K = " + std::to_string(st.channels) +
                                           " has sums of " + std::to_string(st.sum.size()) + " and " +
                                           std::to_string(st.sum_sq.size()) + " values and moments of " +
                                           std::to_string(st.moments.rows()) + " x " + std::to_string(st.moments.cols()) +
                                           " (wanted " + std::to_string(k) + " and " + std::to_string(k) + " x " +
                                           std::to_string(cols) + ")");
    if (!st.sum.allFinite() || !st.sum_sq.allFinite() || !st.moments.allFinite() || (st.sum_sq.array() < 0).any())
      blockcast::detail::fail<invalid_argument>("input_stats: a stored state holds Inf, NaN or a negative sum of squares");
    s.count_ = st.count;
    s.sum_ = std::move(st.sum);
    s.sum_sq_ = std::move(st.sum_sq);
    s.z_ = std::move(st.moments);
    return s;
  }

  std::size_t channels() const { return k_; }
  std::size_t count() const { return count_; }
  std::size_t sketch_size() const { return s_; }
  /// Whether H is held exactly (K <= sketch size).
  bool exact() const { return exact_; }
  /// The sketch's test matrix kind (meaningless when exact).
  test_matrix_kind test_matrix_type() const { return kind_; }
  Eigen::VectorXd mean() const { return sum_ / static_cast<double>(std::max<std::size_t>(count_, 1)); }
  Eigen::VectorXd mean_square() const { return sum_sq_ / static_cast<double>(std::max<std::size_t>(count_, 1)); }

  /// What model(0)'s pass may spend per weight row on exact statistics, K x rank: what
  /// default_rank costs at K = 4096, so that no layer costs more per weight than that one.
  static constexpr std::size_t rank_budget = default_rank * 4096;
  /// Calibration samples model(0) asks for per modelled direction. With fewer, H's smaller
  /// directions are mostly the sample's noise, and a pass that follows them overfits the
  /// calibration sample as GPTQ's inverse Hessian does at N close to K.
  static constexpr std::size_t samples_per_direction = 4;

  /// The rank model(0) takes: min(K, rank_budget / K) on exact statistics (all K directions up
  /// to K = 512, 256 at K = 1024), min(default_rank, K) on sketched ones; in both cases at
  /// most N / samples_per_direction (and at least 1).
  std::size_t default_model_rank() const {
    const std::size_t affordable = exact_ ? std::min(k_, rank_budget / k_) : std::min(default_rank, k_);
    return std::max<std::size_t>(1, std::min(affordable, count_ / samples_per_direction));
  }

  /// The ED model of `rank` directions (0: default_model_rank(); at most K and the sketch
  /// size). From an exact H, a rank of K/2 or more takes H's eigendecomposition (O(K^3)); a
  /// smaller one the Nystrom approximation from H Omega with 2 x rank columns, as sketched
  /// statistics would give (O(K^2 rank)).
  ed_model model(std::size_t rank = 0, double damp = default_damp) const {
    if (count_ == 0) blockcast::detail::fail<shape_error>("input_stats::model: no samples were added");
    rank = std::min(rank == 0 ? default_model_rank() : rank, s_);
    const auto channels = static_cast<Eigen::Index>(k_), directions = static_cast<Eigen::Index>(rank);
    const Eigen::VectorXd diag = mean_square();
    ed_model m;
    m.U.setZero(channels, directions);
    // all-zero inputs (dead channels only): nothing to model, any positive d is exact
    if (!(diag.mean() > 0)) {
      m.d.setOnes(channels);
      return m;
    }
    const double n = static_cast<double>(count_);
    Eigen::MatrixXd basis;   // K x s orthonormal
    Eigen::VectorXd lambda;  // s eigenvalues of H's approximation, descending
    const bool eigensolver = exact_ && 2 * rank >= k_;
    if (eigensolver) {
      const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(z_ / n);
      if (eig.info() != Eigen::Success)
        blockcast::detail::fail<invalid_argument>("input_stats::model: the eigensolver of H (K = " + std::to_string(k_) +
                                                  ") did not converge");
      basis = eig.eigenvectors().rowwise().reverse();
      lambda = eig.eigenvalues().reverse();
    } else {
      // Nystrom: H ~ Y (Omega^T Y)^+ Y^T with Y = H Omega, stabilised by a small shift nu.
      // Y is accumulated from FP32 products (add), so its rounding is FP32's: the shift is
      // sized to FP32's epsilon, or Omega^T Y of a near-singular H is indefinite by rounding.
      // From an exact H, Omega is Gaussian with 2 x rank columns (the Hadamard kind would
      // save nothing here, and this keeps the models of exact statistics as they were)
      const Eigen::MatrixXd om =
          (exact_ ? test_matrix(k_, 2 * rank, seed_, test_matrix_kind::gaussian).dense() : omega_->dense()).cast<double>();
      const Eigen::MatrixXd y0 = exact_ ? Eigen::MatrixXd(z_ * om / n) : Eigen::MatrixXd(z_ / n);
      const double nu = std::sqrt(static_cast<double>(k_)) * 1.2e-7 * y0.norm();
      const Eigen::MatrixXd y = y0 + nu * om;
      Eigen::MatrixXd core = om.transpose() * y;
      core = 0.5 * (core + core.transpose());
      const Eigen::LLT<Eigen::MatrixXd> llt(core);
      // Omega^T (H + nu I) Omega is positive definite for nu > 0 and Omega of full rank; a
      // failure means the statistics are corrupt, and the model would be NaN
      if (llt.info() != Eigen::Success)
        blockcast::detail::fail<invalid_argument>("input_stats::model: the sketch's core matrix Omega^T H Omega (K = " +
                                                  std::to_string(k_) + ", sketch " + std::to_string(om.cols()) +
                                                  ") is not positive definite; the statistics are corrupt");
      // F = Y L^{-T}  (H_nys = F F^T); its left singular vectors from the small Gram matrix
      const Eigen::MatrixXd f = llt.matrixL().solve(y.transpose()).transpose();
      const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(f.transpose() * f);
      const Eigen::VectorXd sigma2 = eig.eigenvalues().reverse();
      const Eigen::MatrixXd v = eig.eigenvectors().rowwise().reverse();
      lambda = (sigma2.array() - nu).max(0.0);
      basis = f * v;
      for (Eigen::Index dir = 0; dir < basis.cols(); ++dir) basis.col(dir) /= std::sqrt(std::max(sigma2(dir), 1e-300));
    }
    for (Eigen::Index dir = 0; dir < directions; ++dir) m.U.col(dir) = basis.col(dir) * std::sqrt(std::max(lambda(dir), 0.0));
    m.d = (diag - m.U.rowwise().squaredNorm()).cwiseMax(0.0).array() + damp * diag.mean();
    if (!m.U.allFinite() || !m.d.allFinite())
      blockcast::detail::fail<invalid_argument>("input_stats::model: the model of H (K = " + std::to_string(k_) +
                                                ") is not finite; the statistics are corrupt");
    return m;
  }

 private:
  /// What one batch adds: its sample count, per-channel sums and squares, and its share of
  /// Z (X^T X Omega, or X^T X when exact) in FP32.
  struct batch_sums {
    std::size_t count = 0;
    Eigen::VectorXd sum, sum_sq;
    Eigen::MatrixXf moments;
  };

  /// The sums of a batch, from zero. The batch is read as it is stored, row by row: the sums
  /// in FP64 a row at a time, the products by Eigen on the row-major matrix (a column-major
  /// copy, and column sums over row-major storage, took 30-45% of the time as strided scalar
  /// loops). Moments that overflow FP32 are an error naming the batch's largest |x|.
  void gather(const matrix_ref& batch, batch_sums& out) const {
    out.count = static_cast<std::size_t>(batch.rows());
    out.sum.setZero(static_cast<Eigen::Index>(k_));
    out.sum_sq.setZero(static_cast<Eigen::Index>(k_));
    for (Eigen::Index i = 0; i < batch.rows(); ++i) {
      out.sum += batch.row(i).transpose().cast<double>();
      out.sum_sq += batch.row(i).transpose().cast<double>().cwiseAbs2();
    }
    if (exact_) {
      out.moments.noalias() = batch.transpose() * batch;
    } else {
      matrix y(batch.rows(), static_cast<Eigen::Index>(s_));  // N x s
      omega_->apply(batch, y);
      out.moments.noalias() = batch.transpose() * y;
    }
    if (!out.moments.allFinite() || !out.sum_sq.allFinite())
      blockcast::detail::fail<invalid_argument>("input_stats::add: the second moments of the calibration inputs overflow "
                                                "(largest |x| = " + std::to_string(batch.cwiseAbs().maxCoeff()) + "); scale them down");
  }

  /// Adds a batch's sums (gather) to the statistics.
  void add_sums(const batch_sums& b) {
    count_ += b.count;
    sum_ += b.sum;
    sum_sq_ += b.sum_sq;
    z_ += b.moments.cast<double>();
  }

  /// add() without its checks.
  void accumulate(const matrix_ref& batch) {
    batch_sums b;
    gather(batch, b);
    add_sums(b);
  }

  std::string describe_sketch() const {
    if (exact_) return "exact";
    return "sketch " + std::to_string(s_) + ", " + test_matrix_name(kind_) + ", seed " + std::to_string(seed_);
  }

  std::size_t k_;
  std::size_t s_;
  std::uint64_t seed_;
  bool exact_;
  test_matrix_kind kind_;
  std::size_t count_ = 0;
  Eigen::VectorXd sum_, sum_sq_;
  Eigen::MatrixXd z_;      // N H Omega (K x s), or N H (K x K) when exact
  std::optional<test_matrix> omega_;  // K x s (none when exact)
};

}  // namespace blockcast::ptq
