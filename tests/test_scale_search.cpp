// SPDX-License-Identifier: MIT
// Block-scale search and the diagonal (importance-matrix) model of error diffusion.
#include <blockcast/ptq.hpp>

#include <catch2/catch.hpp>

#include <random>

namespace bc = blockcast;
namespace ptq = blockcast::ptq;

namespace {

/// Heavy-tailed weights (some blocks with an outlier) and positive, uneven channel importances.
struct diagonal_case {
  ptq::matrix w;
  Eigen::VectorXd mean_square;
};

diagonal_case make_case(int m, int k, unsigned seed) {
  std::mt19937 rng(seed);
  std::student_t_distribution<float> t4(4.0f);
  std::lognormal_distribution<double> importance(0.0, 1.5);
  diagonal_case c{ptq::matrix(m, k), Eigen::VectorXd(k)};
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < k; ++j) c.w(i, j) = 0.05f * t4(rng);
  for (int j = 0; j < k; ++j) c.mean_square(j) = importance(rng);
  return c;
}

double weighted_error(const ptq::matrix& w, const ptq::matrix& q, const Eigen::VectorXd& weight) {
  return ((w - q).cast<double>().array().square().rowwise() * weight.transpose().array()).sum();
}

}  // namespace

TEMPLATE_TEST_CASE("the searched block scale never has a larger weighted error than the amax scale", "[ptq][scale-search]",
                   bc::mxfp8_e4m3, bc::mxfp8_e5m2, bc::mxfp6_e3m2, bc::mxfp6_e2m3, bc::mxfp4, bc::mxint8, bc::nvfp4) {
  const diagonal_case c = make_case(64, 256, 21);
  const Eigen::VectorXf weight = c.mean_square.cast<float>();
  const auto ctx = ptq::detail::weight_context<TestType>(c.w, {});
  constexpr std::size_t B = TestType::block_size;
  std::size_t lower = 0, blocks = 0;
  for (Eigen::Index i = 0; i < c.w.rows(); ++i)
    for (std::size_t s = 0; s < static_cast<std::size_t>(c.w.cols()); s += B, ++blocks) {
      const float* v = c.w.row(i).data() + s;
      const auto base = bc::reference::make_block_scale<TestType>(bc::reference::amax_bits(v, B), ctx);
      const auto found = ptq::detail::searched_block_scale<TestType>(v, weight.data() + s, B, ctx, 0);
      const double before = ptq::detail::weighted_block_error<TestType>(v, weight.data() + s, B, base, ctx, 0);
      const double after = ptq::detail::weighted_block_error<TestType>(v, weight.data() + s, B, found, ctx, 0);
      INFO(bc::preset_name<TestType>() << " row " << i << " block " << s / B << ": amax scale code " << int(base.code) << " error "
                          << before << ", searched code " << int(found.code) << " error " << after);
      REQUIRE(after <= before);
      REQUIRE(std::abs(int(found.code) - int(base.code)) <= 1);
      if (found.code != base.code) {
        REQUIRE(after < before);
        ++lower;
      }
    }
  INFO(bc::preset_name<TestType>() << ": " << lower << " of " << blocks << " blocks took a neighbouring scale");
  CHECK(lower > 0);  // the search does something on heavy-tailed weights
}

TEMPLATE_TEST_CASE("ED with a diagonal model: RTN without the search, lower weighted error with it", "[ptq][scale-search]",
                   bc::mxfp4, bc::nvfp4, bc::mxfp6_e2m3, bc::mxint8) {
  const diagonal_case c = make_case(48, 192, 22);
  const ptq::ed_model model = ptq::diagonal_model(c.mean_square);
  const auto rtn = ptq::rtn<TestType>(c.w);
  ptq::ed_options opt;
  opt.scale_search = false;
  const auto plain = ptq::error_diffusion<TestType>(c.w, model, opt);
  INFO(bc::preset_name<TestType>());
  // nothing to carry with U = 0: the same codes and scales as RTN
  CHECK(std::equal(plain.packed.codes().begin(), plain.packed.codes().end(), rtn.packed.codes().begin()));
  CHECK(std::equal(plain.packed.scales().begin(), plain.packed.scales().end(), rtn.packed.scales().begin()));
  opt.scale_search = true;
  const auto searched = ptq::error_diffusion<TestType>(c.w, model, opt);
  const double e_rtn = weighted_error(c.w, rtn.dequantized, model.d), e_searched = weighted_error(c.w, searched.dequantized, model.d);
  INFO("weighted error: RTN " << e_rtn << ", searched " << e_searched);
  CHECK(e_searched < e_rtn);
  ptq::matrix decoded(c.w.rows(), c.w.cols());
  bc::dequantize(searched.packed, decoded.data());
  CHECK(decoded == searched.dequantized);
}

TEST_CASE("diagonal_model refuses negative or non-finite mean squares", "[ptq][scale-search][errors]") {
  Eigen::VectorXd ms = Eigen::VectorXd::Ones(8);
  ms(3) = -1;
  CHECK_THROWS_AS(ptq::diagonal_model(ms), bc::invalid_argument);
  ms(3) = NAN;
  CHECK_THROWS_AS(ptq::diagonal_model(ms), bc::invalid_argument);
  CHECK(ptq::diagonal_model(Eigen::VectorXd::Zero(8)).d == Eigen::VectorXd::Ones(8));
}

TEMPLATE_TEST_CASE("GPTQ and full ED with the scale search: codes that decode to the result, scales that moved", "[ptq][scale-search]",
                   bc::mxfp4, bc::nvfp4) {
  const diagonal_case c = make_case(40, 128, 23);
  std::mt19937 rng(24);
  std::normal_distribution<float> normal;
  ptq::matrix x(512, 128);
  for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = normal(rng) * static_cast<float>(std::sqrt(c.mean_square(i % 128)));
  ptq::gptq_options g;
  ptq::ed_options e;
  e.scale_search = false;
  const auto gptq_plain = ptq::gptq<TestType>(c.w, x, g);
  const auto ed_plain = ptq::error_diffusion<TestType>(c.w, ptq::input_stats::from(x), e);
  g.scale_search = e.scale_search = true;
  const auto gptq_searched = ptq::gptq<TestType>(c.w, x, g);
  const auto ed_searched = ptq::error_diffusion<TestType>(c.w, ptq::input_stats::from(x), e);
  for (const auto* r : {&gptq_searched, &ed_searched}) {
    ptq::matrix decoded(c.w.rows(), c.w.cols());
    bc::dequantize(r->packed, decoded.data());
    INFO(bc::preset_name<TestType>() << " " << r->method);
    CHECK(decoded == r->dequantized);
  }
  auto moved = [](const auto& a, const auto& b) {
    return !std::equal(a.packed.scales().begin(), a.packed.scales().end(), b.packed.scales().begin());
  };
  INFO(bc::preset_name<TestType>());
  CHECK(moved(gptq_plain, gptq_searched));
  CHECK(moved(ed_plain, ed_searched));
}

TEMPLATE_TEST_CASE("RTN with the scale search: never a larger block error, and the search ED makes with equal weights", "[ptq][scale-search]",
                   bc::mxfp4, bc::nvfp4, bc::mxfp6_e2m3, bc::mxint8) {
  const diagonal_case c = make_case(48, 200, 25);  // K = 200: a partial last block
  ptq::rtn_options opt;
  opt.scale_search = true;
  const auto plain = ptq::rtn<TestType>(c.w);
  const auto searched = ptq::rtn<TestType>(c.w, opt);
  constexpr Eigen::Index B = TestType::block_size;
  std::size_t moved = 0;
  for (Eigen::Index i = 0; i < c.w.rows(); ++i)
    for (Eigen::Index s = 0; s < c.w.cols(); s += B) {
      const Eigen::Index len = std::min(B, c.w.cols() - s);
      const double before = (c.w.row(i).segment(s, len) - plain.dequantized.row(i).segment(s, len)).template cast<double>().squaredNorm();
      const double after = (c.w.row(i).segment(s, len) - searched.dequantized.row(i).segment(s, len)).template cast<double>().squaredNorm();
      INFO(bc::preset_name<TestType>() << " row " << i << " block " << s / B << ": squared error " << before << " with the amax scale, "
                          << after << " searched");
      REQUIRE(after <= before);
      moved += after < before;
    }
  INFO(bc::preset_name<TestType>() << ": " << moved << " blocks improved");
  CHECK(moved > 0);
  // ED with a diagonal of equal weights carries nothing: its search is RTN's
  ptq::ed_options ed_search;
  ed_search.scale_search = true;
  const auto ed = ptq::error_diffusion<TestType>(c.w, ptq::diagonal_model(Eigen::VectorXd::Ones(c.w.cols())), ed_search);
  CHECK(std::equal(ed.packed.codes().begin(), ed.packed.codes().end(), searched.packed.codes().begin()));
  CHECK(std::equal(ed.packed.scales().begin(), ed.packed.scales().end(), searched.packed.scales().begin()));
  ptq::matrix decoded(c.w.rows(), c.w.cols());
  bc::dequantize(searched.packed, decoded.data());
  CHECK(decoded == searched.dequantized);
  opt.cast.threads = 3;
  CHECK(ptq::rtn<TestType>(c.w, opt).dequantized == searched.dequantized);
}
