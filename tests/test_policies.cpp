// SPDX-License-Identifier: MIT
// Rounding modes and scale rules, checked against independent double-precision models.
#include <blockcast/blockcast.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <random>

namespace bc = blockcast;

namespace {

// Edge-heavy amax values: powers of two, one ulp either side, FP32 subnormals, random.
std::vector<float> amax_samples() {
  std::vector<float> v;
  for (int e = -149; e <= 127; ++e) {
    const float p = std::ldexp(1.0f, e);
    v.push_back(p);
    v.push_back(std::nextafter(p, 0.0f));
    v.push_back(std::nextafter(p, INFINITY));
    v.push_back(p * 1.5f);
    v.push_back(p * 1.75f);
    v.push_back(p * 1.984375f);
  }
  std::mt19937 rng(3);
  for (int i = 0; i < 4000; ++i) {
    const std::uint32_t bits = rng() & 0x7f7fffffu;  // finite, positive
    if (bits) v.push_back(bc::detail::bits_float(bits));
  }
  v.erase(std::remove_if(v.begin(), v.end(), [](float x) { return !(x > 0) || !std::isfinite(x); }), v.end());
  return v;
}

int clamp127(int e) { return std::max(-127, std::min(127, e)); }

// Independent model of each rule in double arithmetic.
template <class Element>
int model_exponent(double amax, bc::scale_rule rule) {
  int e2;
  const double f = std::frexp(amax, &e2);  // amax = f * 2^e2, f in [0.5, 1)
  const int floor_log2 = e2 - 1;
  const int m = Element::grid.mbits;
  switch (rule) {
    case bc::scale_rule::ocp_floor:
      return clamp127(floor_log2 - Element::emax);
    case bc::scale_rule::ceil:
      return clamp127((f == 0.5 ? floor_log2 : floor_log2 + 1) - Element::emax);
    case bc::scale_rule::even: {
      const double sig = 2 * f;  // [1, 2)
      const double rounded = std::floor(sig * std::ldexp(1.0, m) + 0.5) / std::ldexp(1.0, m);
      return clamp127((rounded >= 2.0 ? floor_log2 + 1 : floor_log2) - Element::emax);
    }
    case bc::scale_rule::rceil: {
      int e = floor_log2 - Element::emax;
      while (amax > static_cast<double>(Element::max_normal()) * std::ldexp(1.0, e)) ++e;
      return clamp127(e);
    }
  }
  return 0;
}

using elements = std::tuple<bc::fp8_e4m3, bc::fp8_e5m2, bc::fp6_e3m2, bc::fp6_e2m3, bc::fp4_e2m1, bc::int8>;

}  // namespace

TEMPLATE_LIST_TEST_CASE("scale rules equal their double-precision models", "[policy]", elements) {
  using E = TestType;
  for (auto rule : {bc::scale_rule::ocp_floor, bc::scale_rule::ceil, bc::scale_rule::even,
                    bc::scale_rule::rceil}) {
    std::size_t wrong = 0;
    for (float amax : amax_samples()) {
      const int got = bc::detail::shared_exponent<E>(bc::detail::float_bits(amax), rule);
      if (got != model_exponent<E>(amax, rule)) ++wrong;
    }
    INFO("rule " << int(rule));
    CHECK(wrong == 0);
  }
  CHECK(bc::detail::shared_exponent<E>(0, bc::scale_rule::ceil) == -127);  // all-zero block
}

TEMPLATE_LIST_TEST_CASE("ceil and rceil never saturate; ocp_floor may", "[policy]", elements) {
  using E = TestType;
  std::size_t saturating_floor = 0;
  for (float amax : amax_samples()) {
    const std::uint32_t bits = bc::detail::float_bits(amax);
    for (auto rule : {bc::scale_rule::ceil, bc::scale_rule::rceil}) {
      const int se = bc::detail::shared_exponent<E>(bits, rule);
      INFO("amax " << amax << " rule " << int(rule));
      // (except where E8M0's largest exponent clamps: MXINT8 at amax near FLT_MAX)
      if (se < bc::e8m0::max_exponent) CHECK(std::ldexp(double(amax), -se) <= E::max_normal());
    }
    const int floor_se = bc::detail::shared_exponent<E>(bits, bc::scale_rule::ocp_floor);
    if (std::ldexp(double(amax), -floor_se) > E::max_normal()) ++saturating_floor;
  }
  CHECK(saturating_floor > 0);
}

TEST_CASE("toward_zero never increases a magnitude; nearest modes stay within half a step",
          "[policy]") {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> x(4096), t(4096), ne(4096);
  for (auto& v : x) v = normal(rng);
  bc::cast_options tz;
  tz.round = bc::rounding::toward_zero;
  bc::fake_quantize<bc::mxfp6_e2m3>(x.data(), t.data(), x.size(), tz);
  bc::fake_quantize<bc::mxfp6_e2m3>(x.data(), ne.data(), x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    CHECK(std::fabs(t[i]) <= std::fabs(x[i]));
    CHECK(std::fabs(ne[i] - x[i]) <= std::fabs(t[i] - x[i]));
  }
}

TEST_CASE("stochastic rounding: same seed same bits, unbiased in expectation", "[policy]") {
  const std::size_t n = 1 << 16;
  // Values strictly between grid points, several binades and both signs.
  std::vector<float> x(n);
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-6.0f, 6.0f);
  for (auto& v : x) v = u(rng);
  for (std::size_t b = 0; b < n; b += 32) x[b] = 6.0f;  // pin every block's scale to 2^0

  bc::cast_options opt;
  opt.round = bc::rounding::stochastic;
  opt.seed = 1234;
  std::vector<float> a(n), b(n), c(n);
  bc::fake_quantize<bc::mxfp4>(x.data(), a.data(), n, opt);
  bc::fake_quantize<bc::mxfp4>(x.data(), b.data(), n, opt);
  CHECK(a == b);
  opt.seed = 1235;
  bc::fake_quantize<bc::mxfp4>(x.data(), c.data(), n, opt);
  CHECK(a != c);

  // Each output is lo or hi (the grid neighbours); E[out] = x. The mean error over n draws
  // has standard deviation sqrt(sum var_i) / n with var_i = (hi - x)(x - lo); allow 5 sigma.
  double error_sum = 0, var_sum = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const float lo = bc::fp4_e2m1::decode(bc::fp4_e2m1::encode(x[i], bc::rounding::toward_zero));
    const float away = x[i] >= 0 ? 1.0f : -1.0f;
    float hi = lo;
    for (std::uint8_t c2 = 0; c2 < 16; ++c2) {  // next grid value away from zero
      const float g = bc::fp4_e2m1::decode(c2);
      if (g * away > lo * away && (hi == lo || g * away < hi * away)) hi = g;
    }
    CHECK((a[i] == lo || a[i] == hi));
    error_sum += double(a[i]) - x[i];
    var_sum += std::fabs((double(hi) - x[i]) * (double(x[i]) - lo));
  }
  const double sigma = std::sqrt(var_sum) / n;
  CHECK(std::fabs(error_sum / n) < 5 * sigma);
  // Nearest-even on the same data is biased by far more than that bound would allow
  // for the stochastic mean to be a coincidence: the test can fail.
  CHECK(sigma > 0);

  // Grid values are never moved by stochastic rounding.
  std::vector<float> grid(32), out(32);
  for (int i = 0; i < 32; ++i) grid[i] = bc::fp4_e2m1::decode(static_cast<std::uint8_t>(i % 16));
  bc::fake_quantize<bc::mxfp4>(grid.data(), out.data(), 32, opt);
  CHECK(out == grid);
}

TEST_CASE("stochastic bits depend only on seed and element index", "[policy]") {
  const std::size_t rows = 4, cols = 96;
  std::vector<float> x(rows * cols);
  std::mt19937 rng(9);
  std::normal_distribution<float> normal;
  for (auto& v : x) v = normal(rng);
  bc::cast_options opt;
  opt.round = bc::rounding::stochastic;
  opt.seed = 77;
  const auto whole = bc::quantize<bc::mxfp8_e5m2>(x.data(), rows, cols, opt);
  const auto flat = bc::quantize<bc::mxfp8_e5m2>(x.data(), rows * cols, opt);
  // Same element indices (cols is a multiple of 32, so the same blocks): same codes.
  CHECK(std::equal(whole.codes().begin(), whole.codes().end(), flat.codes().begin()));
  CHECK(bc::detail::stochastic_bits(std::uint64_t{77}, std::uint64_t{5}) !=
        bc::detail::stochastic_bits(std::uint64_t{77}, std::uint64_t{5} + (std::uint64_t{1} << 32)));
}
