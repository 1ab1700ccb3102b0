// SPDX-License-Identifier: MIT
// Computing on packed weights: BF16 output, dot products and matrix-vector products.
#include <blockcast/blockcast.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <vector>

namespace bc = blockcast;

namespace {
std::vector<float> randn(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> v(n);
  for (auto& x : v) x = normal(rng);
  return v;
}
}  // namespace

TEST_CASE("FP32 -> BF16 rounds to nearest even and keeps NaN", "[compute]") {
  CHECK(bc::detail::to_bf16(1.0f) == 0x3f80);
  CHECK(bc::detail::to_bf16(bc::detail::bits_float(0x3f808000)) == 0x3f80);  // tie -> even
  CHECK(bc::detail::to_bf16(bc::detail::bits_float(0x3f818000)) == 0x3f82);  // tie -> even (up)
  CHECK(bc::detail::to_bf16(bc::detail::bits_float(0x3f808001)) == 0x3f81);
  CHECK(bc::detail::to_bf16(INFINITY) == 0x7f80);
  CHECK(bc::detail::to_bf16(bc::detail::bits_float(0x7f7fffff)) == 0x7f80);  // overflow to Inf
  CHECK((bc::detail::to_bf16(NAN) & 0x7fff) > 0x7f80);
  CHECK((bc::detail::to_bf16(bc::detail::bits_float(0xff800001)) & 0xffff) > 0xff80);  // signalling NaN stays NaN
}

TEMPLATE_TEST_CASE("dequantize_bf16 equals BF16 of dequantize", "[compute]", bc::mxfp4, bc::mxfp8_e5m2, bc::nvfp4) {
  const auto x = randn(5 * 77, 1);
  const auto p = bc::quantize<TestType>(x.data(), 5, 77);
  std::vector<float> f(x.size());
  std::vector<std::uint16_t> h(x.size());
  bc::dequantize(p, f.data());
  bc::dequantize_bf16(p, h.data());
  for (std::size_t i = 0; i < x.size(); ++i) CHECK(h[i] == bc::detail::to_bf16(f[i]));
}

TEST_CASE("dot rounds a block's first product on its own, whatever the compiler contracts", "[compute]") {
  // One E2M3 block (scale 2^-2, elements 7.5 at j = 0 and 6.5 at j = 16, zeros elsewhere): in
  // every vector width, j = 0 and j = 16 share lane 0, so the vector path computes
  // fma(6.5, x16, fp32(7.5 x0)) * 2^-2 (the scale is exact). Compilers that contract a * b + c
  // (GCC's default with FMA) once made it fma(7.5, x0, fp32(6.5 x16)) in some inlined copies,
  // so that gemv and dot disagreed (-O3 -march=native). The scalar path adds the products of
  // the dequantized values in order; both orders are accepted, the swapped one is not.
  using F = bc::mxfp6_e2m3;
  std::vector<float> w(32, 0.0f);
  w[0] = 1.875f, w[16] = 1.625f;
  const auto p = bc::quantize<F>(w.data(), 1, 32);
  std::vector<float> wq(32);
  bc::reference::dequantize<F>(p.view(), wq.data());
  REQUIRE(wq == w);  // exact on the grid: 7.5 and 6.5 times 2^-2
  const auto fp32 = [](float v) { return bc::detail::fp32_rounded(v); };
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> uniform(0.5f, 2.0f);
  int checked = 0;
  for (int attempt = 0; attempt < 200 && checked < 20; ++attempt) {
    std::vector<float> x(32, 0.0f);
    x[0] = uniform(rng), x[16] = uniform(rng);
    const float vector_order = std::fma(6.5f, x[16], fp32(7.5f * x[0])) * 0.25f;
    const float scalar_order = fp32(fp32(1.875f * x[0]) + fp32(1.625f * x[16]));
    const float swapped = std::fma(7.5f, x[0], fp32(6.5f * x[16])) * 0.25f;
    if (swapped == vector_order || swapped == scalar_order) continue;  // x does not tell them apart
    ++checked;
    float y = 0;
    bc::gemv(p, x.data(), &y);
    const float d = bc::dot(p.view(), 0, x.data());
    INFO("x0 = " << x[0] << ", x16 = " << x[16] << ": documented " << vector_order << " (vector) or " << scalar_order
                 << " (scalar), swapped " << swapped << "; dot " << d << ", gemv " << y);
    CHECK((d == vector_order || d == scalar_order));
    CHECK(y == d);
  }
  REQUIRE(checked == 20);
}

TEMPLATE_TEST_CASE("dot and gemv on packed rows are within the FP32 summation bound", "[compute]",
                   bc::mxfp8_e4m3, bc::mxfp6_e2m3, bc::mxfp4, bc::mxint8, bc::nvfp4) {
  for (std::size_t cols : {16, 32, 100, 1024, 4133}) {
    const std::size_t rows = 7;
    const auto w = randn(rows * cols, 2);
    const auto x = randn(cols, 3);
    const auto p = bc::quantize<TestType>(w.data(), rows, cols);
    std::vector<float> wq(rows * cols), y(rows);
    bc::reference::dequantize<TestType>(p.view(), wq.data());
    bc::cast_options opt;
    opt.threads = 3;
    bc::gemv(p, x.data(), y.data(), opt);
    // |computed - exact| <= gamma_n * sum |w_j x_j| for any summation order, gamma_n = n u / (1 - n u)
    const double u = std::ldexp(1.0, -24), gamma = cols * u / (1 - cols * u);
    for (std::size_t r = 0; r < rows; ++r) {
      double exact = 0, magnitude = 0;
      for (std::size_t j = 0; j < cols; ++j) {
        exact += double(wq[r * cols + j]) * x[j];
        magnitude += std::fabs(double(wq[r * cols + j]) * x[j]);
      }
      INFO("cols " << cols << " row " << r);
      CHECK(std::fabs(bc::dot(p.view(), r, x.data()) - exact) <= gamma * magnitude);
      CHECK(y[r] == bc::dot(p.view(), r, x.data()));
    }
  }
  const auto p = bc::quantize<TestType>(randn(64, 4).data(), 2, 32);
  CHECK_THROWS_AS(bc::dot(p.view(), 2, randn(32, 5).data()), bc::shape_error);
}
