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
  const auto sk = ptq::input_stats::from(big.calibration, 64);
  CHECK(!sk.exact());
  const Eigen::MatrixXd xb = big.calibration.cast<double>();
  const Eigen::MatrixXd hb = xb.transpose() * xb / static_cast<double>(xb.rows());
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(hb);
  const Eigen::MatrixXd top = eig.eigenvectors().rightCols(8);
  const auto mb = sk.model(8);
  const Eigen::MatrixXd q = mb.U.householderQr().householderQ() * Eigen::MatrixXd::Identity(600, 8);
  CHECK((top.transpose() * q).norm() / std::sqrt(8.0) > 0.99);  // principal angles near 0
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
  const Eigen::MatrixXd g = ptq::diffusion_weights(model);
  CHECK(g(1, 0) == Approx(a / d / (1 + a * a / d)));       // 2/3
  CHECK(g(0, 0) == Approx(a / d / (1 + 2 * a * a / d)));   // 2/5
  // MXFP4, block amax 3 -> scale 2^(1-2) = 0.5: grid step 0.25 around 1, 0.5 around 2.
  ptq::matrix w(1, 2);
  w << 3.0f, 1.1f;
  const auto e = ptq::error_diffusion<bc::mxfp4>(w, model);
  // column 0: c = 0, q0 = 3 (on the grid), e0 = 0; column 1: q1 = round(1.1) = 1.0
  CHECK(e.dequantized(0, 0) == 3.0f);
  CHECK(e.dequantized(0, 1) == 1.0f);
  // A row whose first error is diffused. Scale 0.5: the grid is 0, .25, .5, .75, 1, 1.5, 2, 3.
  // w = [2.9, 1.3]: RTN gives [3, 1.5] (sum 4.5 for 4.2). ED: q0 = 3, e0 = -0.1, c = -0.1 a,
  // adjusted w1 = 1.3 + (2/3)(-0.1) = 1.2333 -> 1.0 (sum 4.0): the running error is carried.
  w << 2.9f, 1.3f;
  const auto f = ptq::error_diffusion<bc::mxfp4>(w, model);
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
    ptq::ed_options big;
    big.rank = 128;  // = the sketch size; K = 256
    const double ed = ptq::output_mse(l.w, ptq::error_diffusion<bc::mxfp4>(l.w, stats).dequantized, l.evaluation);
    const double ed_big = ptq::output_mse(l.w, ptq::error_diffusion<bc::mxfp4>(l.w, stats, big).dequantized, l.evaluation);
    const double gptq = ptq::output_mse(l.w, ptq::gptq<bc::mxfp4>(l.w, l.calibration).dequantized, l.evaluation);
    INFO("relu " << relu << ": RTN " << rtn << " ED " << ed << " ED(r=128) " << ed_big << " GPTQ " << gptq);
    CHECK(ed < 0.9 * rtn);     // stated margin: at least 10% better than RTN here
    CHECK(gptq < rtn);
    CHECK(ed_big <= ed * 1.02);  // larger r is not worse (2% for the sketch's noise)
    CHECK(ed_big <= gptq * 1.15);  // approaches GPTQ
  }
}

TEST_CASE("ED at full rank of a small layer matches GPTQ", "[ptq]") {
  const layer l = make_layer(32, 64, 64, 7);  // K = 64 <= sketch: exact statistics
  ptq::ed_options full;
  full.rank = 64;
  full.damp = 0.01;
  const auto e = ptq::error_diffusion<bc::mxfp4>(l.w, ptq::input_stats::from(l.calibration), full);
  const auto g = ptq::gptq<bc::mxfp4>(l.w, l.calibration);
  const double ed = ptq::output_mse(l.w, e.dequantized, l.evaluation);
  const double gp = ptq::output_mse(l.w, g.dequantized, l.evaluation);
  const double same = (e.dequantized.array() == g.dequantized.array()).cast<double>().mean();
  INFO("ED " << ed << " GPTQ " << gp << " identical decisions " << same);
  // The same greedy quantizer for the same damped H. GPTQ runs in FP32 (as its reference
  // implementation), ED's precomputation in FP64: near-ties resolve differently, and one
  // flipped greedy decision changes the rest of its row. Measured: 98% identical decisions,
  // MSE 2% apart; asserted with margin.
  CHECK(same >= 0.95);
  CHECK(std::fabs(ed - gp) <= 0.05 * gp);
}

TEMPLATE_TEST_CASE("PTQ results are deterministic and thread-count independent", "[ptq][threads]", bc::mxfp4, bc::nvfp4, bc::mxint8) {
  const layer l = make_layer(100, 160, 8, 8);  // 100 rows: not a multiple of the row chunk
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
