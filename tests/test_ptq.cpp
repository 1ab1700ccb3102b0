// SPDX-License-Identifier: MIT
// Error diffusion, GPTQ, RTN and the calibration statistics.
#include <blockcast/ptq.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <random>

namespace bc = blockcast;
namespace ptq = blockcast::ptq;

namespace {

struct layer {
  ptq::matrix w, calibration, evaluation;
};

/// Heavy-tailed weights; inputs = low-rank correlated part + noise, optionally ReLU'd.
layer make_layer(int m, int k, int rank, unsigned seed, bool relu = false) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::student_t_distribution<float> t5(5.0f);
  layer l;
  l.w.resize(m, k);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < k; ++j) l.w(i, j) = 0.02f * t5(rng);
  Eigen::MatrixXf basis(k, rank);
  for (int i = 0; i < k; ++i)
    for (int j = 0; j < rank; ++j) basis(i, j) = normal(rng);
  auto inputs = [&](int n) {
    Eigen::MatrixXf z(n, rank), e(n, k);
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < rank; ++j) z(i, j) = normal(rng);
      for (int j = 0; j < k; ++j) e(i, j) = normal(rng);
    }
    ptq::matrix x = 0.5f * z * basis.transpose() + 0.3f * e;
    if (relu) x = x.cwiseMax(0.0f);
    return x;
  };
  l.calibration = inputs(2048);
  l.evaluation = inputs(1024);
  return l;
}

}  // namespace

TEST_CASE("streaming statistics equal one-shot statistics; merged equal sequential", "[ptq]") {
  const layer l = make_layer(8, 300, 16, 1);
  const ptq::matrix& x = l.calibration;
  const auto one = ptq::input_stats::from(x);
  ptq::input_stats streamed(300), first(300), second(300);
  for (Eigen::Index s = 0; s < x.rows(); s += 500) streamed.add(x.middleRows(s, std::min<Eigen::Index>(500, x.rows() - s)));
  first.add(x.topRows(1000));
  second.add(x.bottomRows(x.rows() - 1000));
  first.merge(second);
  for (const auto* s : {&streamed, &first}) {
    CHECK(s->count() == one.count());
    // sums in a different order: equal to FP64 rounding of FP32 partial sums
    CHECK((s->mean() - one.mean()).norm() <= 1e-6 * one.mean().norm());
    CHECK((s->mean_square() - one.mean_square()).norm() <= 1e-6 * one.mean_square().norm());
    const auto a = s->model(16), b = one.model(16);
    // the same subspace and energy: U U^T agree to FP32 accumulation accuracy
    const Eigen::MatrixXd ha = a.U * a.U.transpose(), hb = b.U * b.U.transpose();
    CHECK((ha - hb).norm() <= 1e-4 * hb.norm());
  }
}

TEST_CASE("Hadamard test matrices: +-1 entries, full column rank, and X Omega as a product would give it", "[ptq]") {
  using ptq::test_matrix;
  // K a power of two, K just above one (its last row folds onto row 0), s = P, tiny K
  for (const auto& [k, s] : {std::pair<Eigen::Index, Eigen::Index>{2048, 128}, {1025, 128}, {600, 64}, {40, 32}, {3, 2}}) {
    INFO("K = " << k << ", s = " << s);
    const Eigen::Index p = static_cast<Eigen::Index>(test_matrix::hadamard_length(static_cast<std::size_t>(k)));
    REQUIRE(p <= k);
    REQUIRE(2 * p > k);
    const test_matrix om(static_cast<std::size_t>(k), static_cast<std::size_t>(s), 5, ptq::test_matrix_kind::hadamard);
    const Eigen::MatrixXf& d = om.dense();
    REQUIRE(d.rows() == k);
    REQUIRE(d.cols() == s);
    CHECK((d.array().abs() == 1.0f).all());
    // the first P rows: s distinct columns of a signed Hadamard matrix, so orthogonal
    const Eigen::MatrixXf gram = d.topRows(p).transpose() * d.topRows(p);
    CHECK(gram == Eigen::MatrixXf::Identity(s, s) * static_cast<float>(p));
    // a folded row is its row mod P up to its sign
    for (Eigen::Index i = p; i < k; ++i) CHECK(d.row(i).cwiseAbs() == d.row(i - p).cwiseAbs());
    if (k > p) CHECK((d.row(k - 1).cwiseProduct(d.row(k - 1 - p)).array() == d(k - 1, 0) * d(k - 1 - p, 0)).all());
    // unit rows give Omega's rows exactly; random rows a product's value to FP32 rounding,
    // and the same bits whether transformed together or one at a time (37: not a multiple of
    // the 16 samples transformed at once)
    ptq::matrix y(k, s), y1(1, s);
    om.apply(ptq::matrix::Identity(k, k), y);
    CHECK(y == d);
    std::mt19937 rng(static_cast<unsigned>(k));
    std::normal_distribution<float> normal;
    ptq::matrix x(37, k);
    for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = normal(rng);
    y.resize(37, s);
    om.apply(x, y);
    const Eigen::MatrixXd exact = x.cast<double>() * d.cast<double>();
    CHECK((y.cast<double>() - exact).cwiseAbs().maxCoeff() <= 1e-5 * x.cwiseAbs().maxCoeff() * std::sqrt(static_cast<double>(k)) * 8);
    for (Eigen::Index i = 0; i < x.rows(); ++i) {
      om.apply(x.row(i), y1);
      INFO("sample " << i);
      CHECK(y1 == y.row(i));
    }
  }
  CHECK(test_matrix::hadamard_length(1) == 1);
  CHECK(test_matrix::hadamard_length(1024) == 1024);
  CHECK(test_matrix::hadamard_length(1023) == 512);
  CHECK_FALSE(test_matrix::hadamard_fits(1023, 513));
  ptq::matrix wrong(3, 64);
  CHECK_THROWS_WITH(test_matrix(40, 16, 0, ptq::test_matrix_kind::hadamard).apply(ptq::matrix::Zero(3, 40), wrong),
                    Catch::Contains("samples of shape 3 x 40 into 3 x 64 for Omega of 40 x 16"));
  CHECK_THROWS_WITH(test_matrix(1023, 513, 0, ptq::test_matrix_kind::hadamard),
                    Catch::Contains("Hadamard test matrix of 513 columns for K = 1023 (at most 512"));
  // the default: Hadamard where it exists, Gaussian for a wider sketch
  CHECK(ptq::input_stats(1025).test_matrix_type() == ptq::test_matrix_kind::hadamard);
  CHECK(ptq::input_stats(1023, 600).test_matrix_type() == ptq::test_matrix_kind::gaussian);
}

TEST_CASE("the sketch finds the principal directions; exact when K <= sketch", "[ptq]") {
  const layer l = make_layer(4, 96, 8, 2);
  const auto s = ptq::input_stats::from(l.calibration);
  CHECK(s.exact());
  const Eigen::MatrixXd x = l.calibration.cast<double>();
  const Eigen::MatrixXd h = x.transpose() * x / static_cast<double>(x.rows());
  const auto m = s.model(96, 0.0);
  CHECK((m.U * m.U.transpose() - h).norm() <= 1e-4 * h.norm());
  // sketched (K > s): the top-8 subspace of a rank-8-plus-noise H is captured
  const layer big = make_layer(4, 600, 8, 3);
  const Eigen::MatrixXd xb = big.calibration.cast<double>();
  const Eigen::MatrixXd hb = xb.transpose() * xb / static_cast<double>(xb.rows());
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(hb);
  const Eigen::MatrixXd top = eig.eigenvectors().rightCols(8);
  for (const auto kind : {ptq::test_matrix_kind::hadamard, ptq::test_matrix_kind::gaussian}) {
    INFO("test matrix " << ptq::test_matrix_name(kind));
    ptq::input_stats sk(600, 64, 0, kind);
    sk.add(big.calibration);
    CHECK(!sk.exact());
    const auto mb = sk.model(8);
    const Eigen::MatrixXd q = mb.U.householderQr().householderQ() * Eigen::MatrixXd::Identity(600, 8);
    CHECK((top.transpose() * q).norm() / std::sqrt(8.0) > 0.99);  // principal angles near 0
  }
}

TEST_CASE("default statistics: exact H up to K = 1024, sketched above; the default rank spends K x rank <= 64 x 4096 "
          "and has 4 samples per direction", "[ptq]") {
  using stats = ptq::input_stats;
  // statistics of K channels that have seen n samples (all zero: only the count matters here)
  auto seen = [](std::size_t k, std::size_t n) {
    ptq::input_stats_state st = stats(k).state();
    st.count = n;
    return stats::from_state(st);
  };
  const std::size_t many = 1u << 20;
  for (const std::size_t k : {std::size_t{1}, std::size_t{64}, std::size_t{200}, stats::exact_channels}) {
    INFO("K = " << k);
    const stats s = seen(k, many);
    CHECK(s.exact());
    CHECK(s.sketch_size() == k);
    CHECK(s.default_model_rank() == std::min(k, stats::rank_budget / k));
  }
  CHECK(seen(512, many).default_model_rank() == 512);  // all directions up to K = 512
  CHECK(seen(1024, many).default_model_rank() == 256);
  CHECK(seen(256, 256).default_model_rank() == 64);    // N = K: 4 samples per direction
  CHECK(seen(256, 3).default_model_rank() == 1);
  const stats above = seen(stats::exact_channels + 1, many);
  CHECK_FALSE(above.exact());
  CHECK(above.sketch_size() == stats::default_sketch);
  CHECK(above.default_model_rank() == ptq::default_rank);
  CHECK(seen(4096, 128).default_model_rank() == 32);
  CHECK(stats(100, 32).sketch_size() == 32);  // an explicit sketch size is kept
  CHECK_FALSE(stats(100, 32).exact());

  // From an exact H a rank below K/2 is the Nystrom model of 2 x rank columns: the top-8
  // subspace of a rank-8-plus-noise H is captured, and the model is H's within its rank
  const layer l = make_layer(4, 600, 8, 3);
  const auto exact = stats::from(l.calibration);
  REQUIRE(exact.exact());
  const Eigen::MatrixXd x = l.calibration.cast<double>();
  const Eigen::MatrixXd h = x.transpose() * x / static_cast<double>(x.rows());
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(h);
  const Eigen::MatrixXd top = eig.eigenvectors().rightCols(8);
  const auto m = exact.model(8);
  REQUIRE(m.U.cols() == 8);
  const Eigen::MatrixXd q = m.U.householderQr().householderQ() * Eigen::MatrixXd::Identity(600, 8);
  const double alignment = (top.transpose() * q).norm() / std::sqrt(8.0);
  INFO("alignment of the top-8 subspaces " << alignment);
  CHECK(alignment > 0.99);
  // and its energy is at most the top eigenvalues' (a Nystrom approximation lies below H),
  // short of it by no more than twice the energy of H's other directions (Nystrom's bound)
  const double energy = m.U.squaredNorm(), top_energy = eig.eigenvalues().tail(8).sum();
  const double tail_energy = eig.eigenvalues().head(600 - 8).sum();
  INFO("energy " << energy << ", top-8 eigenvalues " << top_energy << ", the others " << tail_energy);
  CHECK(energy <= top_energy * (1 + 1e-9));
  CHECK(top_energy - energy <= 2 * tail_energy);
}

TEST_CASE("ED with zero carry returns representable weights unchanged", "[ptq]") {
  // every row is MXFP4 grid values times a power of two: RTN is exact, no error to diffuse
  std::mt19937 rng(4);
  ptq::matrix w(16, 96);
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 96; ++j) w(i, j) = bc::fp4_e2m1::decode(static_cast<std::uint8_t>(rng() % 16)) * 0.125f;
  for (int i = 0; i < 16; ++i) w(i, 0) = 6.0f * 0.125f;  // pins each block's scale
  for (int i = 0; i < 16; ++i) w(i, 32) = w(i, 64) = -6.0f * 0.125f;
  const layer l = make_layer(16, 96, 4, 5);
  const auto e = ptq::error_diffusion<bc::mxfp4>(w, ptq::input_stats::from(l.calibration));
  CHECK(e.method == "ed");
  CHECK(e.dequantized == w);
}

TEST_CASE("ED with r = 1 and a constant mean direction is mean-preserving diffusion", "[ptq]") {
  // Hand-computed: K = 2, U = [a, a]^T, d = [d, d]. g_1 = (1 + a^2/d)^-1 a/d,
  // g_0 = (1 + 2a^2/d)^-1 a/d. One row w = [w0, w1] in one block.
  const double a = 1.0, d = 0.5;
  ptq::ed_model model;
  model.U = Eigen::MatrixXd::Constant(2, 1, a);
  model.d = Eigen::VectorXd::Constant(2, d);
  const Eigen::MatrixXd g = ptq::diffusion_weights(model, bc::mxfp4::block_size).column;
  CHECK(g(1, 0) == Approx(a / d / (1 + a * a / d)));       // 2/3
  CHECK(g(0, 0) == Approx(a / d / (1 + 2 * a * a / d)));   // 2/5
  // MXFP4, block amax 3 -> scale 2^(1-2) = 0.5: grid step 0.25 around 1, 0.5 around 2.
  ptq::matrix w(1, 2);
  w << 3.0f, 1.1f;
  ptq::ed_options pass;  // the greedy pass alone: amax scales, no refinement
  pass.scale_search = false;
  pass.sweeps = 0;
  const auto e = ptq::error_diffusion<bc::mxfp4>(w, model, pass);
  // column 0: c = 0, q0 = 3 (on the grid), e0 = 0; column 1: q1 = round(1.1) = 1.0
  CHECK(e.dequantized(0, 0) == 3.0f);
  CHECK(e.dequantized(0, 1) == 1.0f);
  // A row whose first error is diffused. Scale 0.5: the grid is 0, .25, .5, .75, 1, 1.5, 2, 3.
  // w = [2.9, 1.3]: RTN gives [3, 1.5] (sum 4.5 for 4.2). ED: q0 = 3, e0 = -0.1, c = -0.1 a,
  // adjusted w1 = 1.3 + (2/3)(-0.1) = 1.2333 -> 1.0 (sum 4.0): the running error is carried.
  w << 2.9f, 1.3f;
  const auto f = ptq::error_diffusion<bc::mxfp4>(w, model, pass);
  const auto r = ptq::rtn<bc::mxfp4>(w);
  CHECK(r.dequantized(0, 0) == 3.0f);
  CHECK(r.dequantized(0, 1) == 1.5f);
  CHECK(f.dequantized(0, 0) == 3.0f);
  CHECK(f.dequantized(0, 1) == 1.0f);
  CHECK(std::fabs(f.dequantized.sum() - w.sum()) < std::fabs(r.dequantized.sum() - w.sum()));
}

TEST_CASE("ED beats RTN on the inputs its statistics came from and approaches GPTQ", "[ptq]") {
  for (bool relu : {false, true}) {
    const layer l = make_layer(64, 256, 16, 6, relu);
    const auto stats = ptq::input_stats::from(l.calibration);
    const double rtn = ptq::output_mse(l.w, ptq::rtn<bc::mxfp4>(l.w).dequantized, l.evaluation);
    REQUIRE(stats.exact());  // K = 256: the default rank is all 256 directions
    ptq::ed_options small;
    small.rank = 64;
    const double ed = ptq::output_mse(l.w, ptq::error_diffusion<bc::mxfp4>(l.w, stats).dequantized, l.evaluation);
    const double ed_small = ptq::output_mse(l.w, ptq::error_diffusion<bc::mxfp4>(l.w, stats, small).dequantized, l.evaluation);
    const double gptq = ptq::output_mse(l.w, ptq::gptq<bc::mxfp4>(l.w, l.calibration).dequantized, l.evaluation);
    INFO("relu " << relu << ": RTN " << rtn << " ED " << ed << " ED(r=64) " << ed_small << " GPTQ " << gptq);
    CHECK(ed < 0.9 * rtn);        // stated margin: at least 10% better than RTN here
    CHECK(ed_small < 0.9 * rtn);
    CHECK(gptq < rtn);
    CHECK(ed <= ed_small * 1.02);  // larger r is not worse (2% for the evaluation sample's noise)
    CHECK(ed <= gptq * 1.15);      // approaches GPTQ
  }
}

namespace {

/// Where ED at full rank and GPTQ first part in one row, and whether it is a rounding tie.
struct parting {
  bool at_scale = false;  // a block's scale differs (else an element's value)
  Eigen::Index col = 0;   // the column (the block's first column for a scale)
  bool tie = false;       // the exact optimum sits within 1e-4 of the boundary between the two choices
  double distance = 0;    // how far from the boundary, in units of the two choices' gap (or relative amax)
};

/// Both quantizers pick, column by column, the grid point nearest the optimum of the
/// remaining weights given the quantized prefix. Computes that optimum in FP64 from the exact
/// damped H where the two results first differ, and checks it lies on a rounding boundary.
template <class Format>
parting first_difference(const ptq::matrix& w, const Eigen::MatrixXd& h, Eigen::Index row,
                         const ptq::quantized_matrix<Format>& a, const ptq::quantized_matrix<Format>& b) {
  const Eigen::Index k = w.cols(), B = Format::block_size, blocks = (k + B - 1) / B;
  const auto ctx = ptq::detail::weight_context<Format>(w, {});
  // the optimum of columns col.. given the (common) quantized prefix
  auto optimum = [&](Eigen::Index col) {
    const Eigen::VectorXd prefix_error = (w.row(row).head(col) - a.dequantized.row(row).head(col)).template cast<double>().transpose();
    const Eigen::Index rest = k - col;
    const Eigen::VectorXd rest_error = -h.bottomRightCorner(rest, rest).llt().solve(h.bottomLeftCorner(rest, col) * prefix_error);
    return Eigen::VectorXd(w.row(row).tail(rest).template cast<double>().transpose() - rest_error);
  };
  parting p;
  for (Eigen::Index blk = 0; blk < blocks; ++blk) {
    const Eigen::Index s = blk * B, len = std::min(B, k - s);
    const auto sa = a.packed.scales()[static_cast<std::size_t>(row * blocks + blk)];
    const auto sb = b.packed.scales()[static_cast<std::size_t>(row * blocks + blk)];
    if (sa != sb) {
      // the block's amax on a scale boundary: nudged by 1e-4 either way, the two codes appear
      const double amax = optimum(s).head(len).cwiseAbs().maxCoeff();
      auto code = [&](double v) {
        return bc::reference::make_block_scale<Format>(bc::detail::float_bits(static_cast<float>(v)), ctx).code;
      };
      const auto lo = std::min(code(amax * (1 - 1e-4)), code(amax * (1 + 1e-4)));
      const auto hi = std::max(code(amax * (1 - 1e-4)), code(amax * (1 + 1e-4)));
      p = {true, s, std::min(sa, sb) >= lo && std::max(sa, sb) <= hi && lo != hi, amax};
      return p;
    }
    for (Eigen::Index col = s; col < s + len; ++col) {
      const float qa = a.dequantized(row, col), qb = b.dequantized(row, col);
      if (qa == qb) continue;
      const double target = optimum(col)(0), gap = std::abs(static_cast<double>(qa) - qb);
      const double distance = std::abs(target - 0.5 * (static_cast<double>(qa) + qb)) / gap;
      p = {false, col, distance <= 1e-4, distance};
      return p;
    }
  }
  p.col = -1;  // identical rows
  return p;
}

}  // namespace

TEMPLATE_TEST_CASE("ED with exact statistics at full rank reproduces GPTQ's codes but at rounding ties", "[ptq]", bc::mxfp4,
                   bc::nvfp4, bc::mxfp6_e2m3, bc::mxint8) {
  // K = 128 <= the sketch: exact H; rank K: the model is H itself with GPTQ's damping. With
  // block scales from the block's optimum given the quantized prefix (GPTQ's timing), both
  // round each column's optimum in order: the same greedy quantizer. GPTQ runs in FP32 from
  // its inverse factor, ED in FP32 from the carry: a row may part only where the exact
  // optimum is a tie, after which the two rows follow different (equally greedy) paths.
  const layer l = make_layer(64, 128, 128, 7);
  ptq::ed_options full;
  full.rank = 128;
  full.scale_from = ptq::ed_scale_source::block_optimum;
  full.scale_search = false;  // GPTQ's amax scales, and its greedy pass alone
  full.sweeps = 0;
  const auto ed = ptq::error_diffusion<TestType>(l.w, ptq::input_stats::from(l.calibration), full);
  const auto gptq = ptq::gptq<TestType>(l.w, l.calibration);
  const Eigen::MatrixXd x = l.calibration.cast<double>();
  Eigen::MatrixXd h = x.transpose() * x / static_cast<double>(x.rows());
  h.diagonal().array() += ptq::default_damp * h.diagonal().mean();
  std::size_t identical = 0, ties = 0;
  for (Eigen::Index row = 0; row < l.w.rows(); ++row) {
    const parting p = first_difference(l.w, h, row, ed, gptq);
    if (p.col < 0) {
      ++identical;
      continue;
    }
    INFO(bc::preset_name<TestType>() << " row " << row << ": ED and GPTQ part at " << (p.at_scale ? "the scale of the block at column " : "column ")
                                     << p.col << ", " << (p.at_scale ? "block amax " : "distance from the tie (in gaps) ") << p.distance);
    CHECK(p.tie);
    ties += p.tie;
  }
  WARN(bc::preset_name<TestType>() << ": ED (rank K) and GPTQ identical in " << identical << " of 64 rows; the others part at " << ties
                                   << " rounding ties");
  CHECK(identical >= 56);  // ties are rare: at most one row in eight
}

TEMPLATE_TEST_CASE("refinement sweeps never increase the modelled error, and lower it", "[ptq]", bc::mxfp4, bc::nvfp4,
                   bc::mxfp6_e2m3, bc::mxfp8_e4m3, bc::mxint8) {
  for (bool relu : {false, true}) {
    const layer l = make_layer(40, 200, 12, 12, relu);  // K = 200: a partial last block
    const ptq::ed_model model = ptq::input_stats::from(l.calibration).model(32);
    ptq::ed_options opt;
    opt.sweeps = 0;
    double previous = ptq::modelled_error(l.w, ptq::error_diffusion<TestType>(l.w, model, opt).dequantized, model);
    const double greedy = previous;
    for (unsigned sweeps = 1; sweeps <= 3; ++sweeps) {
      opt.sweeps = sweeps;
      const auto q = ptq::error_diffusion<TestType>(l.w, model, opt);
      const double e = ptq::modelled_error(l.w, q.dequantized, model);
      INFO(bc::preset_name<TestType>() << (relu ? " ReLU inputs" : " Gaussian inputs") << ": modelled error after " << sweeps - 1
                                       << " sweeps " << previous << ", after " << sweeps << " " << e);
      // FP64 accumulation: equal or lower to the last bits of the sum
      CHECK(e <= previous * (1 + 1e-12));
      previous = e;
      ptq::matrix decoded(l.w.rows(), l.w.cols());
      bc::dequantize(q.packed, decoded.data());
      CHECK(decoded == q.dequantized);
      ptq::ed_options threaded = opt;
      threaded.cast.threads = 3;
      CHECK(ptq::error_diffusion<TestType>(l.w, model, threaded).dequantized == q.dequantized);
    }
    INFO(bc::preset_name<TestType>() << (relu ? " ReLU inputs" : " Gaussian inputs") << ": greedy " << greedy << ", 3 sweeps " << previous);
    CHECK(previous < greedy);
  }
}

TEMPLATE_TEST_CASE("PTQ results are deterministic and thread-count independent", "[ptq][threads]", bc::mxfp4, bc::nvfp4, bc::mxint8) {
  const layer l = make_layer(300, 160, 8, 8);  // 300 rows: chunks of 128, 128 and 44
  const auto stats = ptq::input_stats::from(l.calibration);
  ptq::ed_options one, many;
  many.cast.threads = 3;
  const auto a = ptq::error_diffusion<TestType>(l.w, stats, one);
  const auto b = ptq::error_diffusion<TestType>(l.w, stats, many);
  const auto c = ptq::error_diffusion<TestType>(l.w, stats, one);
  CHECK(a.dequantized == b.dequantized);
  CHECK(a.dequantized == c.dequantized);
  CHECK(std::equal(a.packed.codes().begin(), a.packed.codes().end(), b.packed.codes().begin()));
  CHECK(std::equal(a.packed.scales().begin(), a.packed.scales().end(), b.packed.scales().begin()));
  CHECK(ptq::input_stats::from(l.calibration, 128, 0, 1).model().U == ptq::input_stats::from(l.calibration, 128, 0, 3).model().U);
  ptq::gptq_options g1, g3;
  g3.cast.threads = 3;
  CHECK(ptq::gptq<TestType>(l.w, l.calibration, g1).dequantized == ptq::gptq<TestType>(l.w, l.calibration, g3).dequantized);
  // the packed result decodes to the dequantized matrix
  ptq::matrix decoded(l.w.rows(), l.w.cols());
  bc::dequantize(a.packed, decoded.data());
  CHECK(decoded == a.dequantized);
  // each row as if it were alone (the same tensor scale): nothing carries over from chunk to
  // chunk in the buffers a thread reuses, and each chunk's rows are decoded in their place
  ptq::ed_options alone;
  if (TestType::has_tensor_scale) alone.cast.tensor_amax = l.w.cwiseAbs().maxCoeff();
  const ptq::ed_model model = stats.model();
  for (Eigen::Index row : {0, 127, 128, 255, 256, 299}) {
    INFO(bc::preset_name<TestType>() << ": row " << row << " of 300 quantized alone");
    const auto single = ptq::error_diffusion<TestType>(l.w.middleRows(row, 1), model, alone);
    CHECK(single.dequantized.row(0) == a.dequantized.row(row));
    CHECK(std::equal(single.packed.codes().begin(), single.packed.codes().end(), a.packed.view().row_codes(static_cast<std::size_t>(row))));
  }
}

TEST_CASE("without statistics ED is RTN and says so", "[ptq]") {
  const layer l = make_layer(8, 64, 4, 9);
  const auto e = ptq::error_diffusion<bc::mxfp8_e4m3>(l.w);
  CHECK(e.method == "rtn (no calibration statistics)");
  CHECK(e.dequantized == ptq::rtn<bc::mxfp8_e4m3>(l.w).dequantized);
}

TEST_CASE("shapes that do not match give clear errors", "[ptq][errors]") {
  const layer l = make_layer(8, 64, 4, 10);
  const auto stats = ptq::input_stats::from(l.calibration);
  const ptq::matrix wrong_k = ptq::matrix::Ones(8, 65);
  CHECK_THROWS_WITH(ptq::error_diffusion<bc::mxfp4>(wrong_k, stats), Catch::Contains("8 x 65") && Catch::Contains("K = 64"));
  CHECK_THROWS_AS(ptq::error_diffusion<bc::mxfp4>(ptq::matrix(0, 64), stats), bc::shape_error);
  CHECK_THROWS_AS(ptq::gptq<bc::mxfp4>(l.w, ptq::matrix(0, 64)), bc::shape_error);
  CHECK_THROWS_WITH(ptq::gptq<bc::mxfp4>(l.w, ptq::matrix::Ones(4, 63)), Catch::Contains("K differs"));
  CHECK_THROWS_AS(ptq::input_stats::from(ptq::matrix(0, 64)), bc::shape_error);
  ptq::input_stats empty(64);
  CHECK_THROWS_WITH(ptq::error_diffusion<bc::mxfp4>(l.w, empty), Catch::Contains("no samples"));
  CHECK_THROWS_AS(empty.add(ptq::matrix::Ones(3, 65)), bc::shape_error);
  CHECK_THROWS_AS(empty.merge(ptq::input_stats(65)), bc::shape_error);
  CHECK_THROWS_AS(ptq::output_mse(l.w, wrong_k, l.evaluation), bc::shape_error);
}

TEST_CASE("NaN and Inf weights follow the format's rules and do not poison other rows", "[ptq]") {
  layer l = make_layer(4, 96, 4, 11);
  l.w(1, 40) = NAN;
  l.w(2, 70) = INFINITY;
  const auto stats = ptq::input_stats::from(l.calibration);
  const auto clean = ptq::error_diffusion<bc::mxfp4>(make_layer(4, 96, 4, 11).w, stats);
  for (const auto& q : {ptq::error_diffusion<bc::mxfp4>(l.w, stats), ptq::gptq<bc::mxfp4>(l.w, l.calibration)}) {
    for (int j = 0; j < 96; ++j) {
      CHECK(std::isnan(q.dequantized(1, j)) == (j >= 32 && j < 64));  // only row 1's block 1
      CHECK(std::isnan(q.dequantized(2, j)) == (j >= 64));            // only row 2's block 2
      CHECK(std::isfinite(q.dequantized(0, j)));
      CHECK(std::isfinite(q.dequantized(3, j)));
    }
    CHECK(q.packed.scales()[1 * 3 + 1] == 0xff);
    CHECK(q.packed.scales()[2 * 3 + 2] == 0xff);
  }
  // rows without specials are exactly as without the bad rows
  const auto e = ptq::error_diffusion<bc::mxfp4>(l.w, stats);
  CHECK(e.dequantized.row(0) == clean.dequantized.row(0));
  CHECK(e.dequantized.row(3) == clean.dequantized.row(3));
}
