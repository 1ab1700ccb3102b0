// SPDX-License-Identifier: MIT
// Runtime dispatch: this file is compiled for baseline x86-64; through blockcast::dispatch the
// entry points must run the best ISA the CPU has, and agree with the reference bit for bit.
#include <blockcast/blockcast.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>

#include "convert_checks.hpp"

namespace bc = blockcast;

TEST_CASE("dispatch picks the best instruction set the CPU has", "[dispatch]") {
  const std::string name = bc::runtime::selected_arch_name();
  WARN("dispatched to " << name << " (this file is compiled for " << xsimd::default_arch::name() << ")");
  const auto a = xsimd::available_architectures();
  __builtin_cpu_init();
  const bool vbmi = __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512vnni") &&
                    __builtin_cpu_supports("avx512vl");
  if (a.avx512bw && vbmi) CHECK(name == "avx512vbmi");
  else if (a.avx512bw) CHECK(name == "avx512bw");
  else if (a.avx2) CHECK(name == "avx2");
  else if (a.sse4_2) CHECK(name == "sse4.2");
  STATIC_REQUIRE(bc::detail::dispatched<bc::mxfp4>());
  STATIC_REQUIRE(!bc::detail::dispatched<bc::block_format<bc::fp4_e2m1, bc::e8m0, 64>>());
}

TEMPLATE_TEST_CASE("dispatched casts equal the reference", "[dispatch]", bc::mxfp8_e4m3, bc::mxfp8_e5m2,
                   bc::mxfp6_e3m2, bc::mxfp6_e2m3, bc::mxfp4, bc::mxint8, bc::nvfp4) {
  const std::size_t rows = 9, cols = 333;
  std::vector<float> x(rows * cols);
  std::mt19937 rng(8);
  std::normal_distribution<float> normal;
  for (auto& v : x) v = normal(rng) * std::ldexp(1.0f, static_cast<int>(rng() % 20) - 10);
  x[5] = NAN;
  for (auto round : {bc::rounding::nearest_even, bc::rounding::stochastic}) {
    bc::cast_options opt;
    opt.round = round;
    opt.seed = 3;
    const auto p = bc::quantize<TestType>(x.data(), rows, cols, opt);
    bc::packed_tensor<TestType> want(rows, cols);
    want.set_tensor_scale(bc::reference::quantize<TestType>(x.data(), rows, cols, want.mutable_view(), opt));
    CHECK(std::equal(p.codes().begin(), p.codes().end(), want.codes().begin()));
    CHECK(std::equal(p.scales().begin(), p.scales().end(), want.scales().begin()));
    std::vector<float> a(x.size()), b(x.size()), c(x.size());
    bc::dequantize(p, a.data());
    bc::reference::dequantize<TestType>(want.view(), b.data());
    bc::fake_quantize<TestType>(x.data(), c.data(), rows, cols, opt);
    for (std::size_t i = 0; i < x.size(); ++i) {
      INFO(i);
      CHECK((std::memcmp(&a[i], &b[i], 4) == 0 || (std::isnan(a[i]) && std::isnan(b[i]))));
      CHECK((std::memcmp(&c[i], &b[i], 4) == 0 || (std::isnan(c[i]) && std::isnan(b[i]))));
    }
  }
}

TEMPLATE_TEST_CASE("dispatched BF16 decoding, dot products, gemv and matmul equal the kernels' definitions",
                   "[dispatch]", bc::mxfp8_e4m3, bc::mxfp8_e5m2, bc::mxfp6_e3m2, bc::mxfp6_e2m3, bc::mxfp4, bc::mxint8,
                   bc::nvfp4) {
  // this file is compiled for baseline x86-64: the reference and the dispatched kernels meet
  const std::size_t rows = 7, cols = 1100;
  std::vector<float> x(rows * cols), a(cols);
  std::mt19937 rng(9);
  std::normal_distribution<float> normal;
  for (auto& v : x) v = normal(rng);
  for (auto& v : a) v = normal(rng);
  const auto w = bc::quantize<TestType>(x.data(), rows, cols);
  std::vector<float> decoded(rows * cols);
  bc::reference::dequantize<TestType>(w.view(), decoded.data());
  std::vector<std::uint16_t> bf16(rows * cols);
  bc::dequantize_bf16(w.view(), bf16.data());
  for (std::size_t i = 0; i < decoded.size(); ++i) {
    INFO("value " << i);
    REQUIRE(bf16[i] == bc::detail::to_bf16(decoded[i]));
  }
  const auto xq = bc::quantize<bc::mxint8>(a.data(), 1, cols);
  const bc::mx_activations<TestType> prepared(xq.view());
  std::vector<float> y(rows), Y(rows), y_float(rows);
  bc::gemv(w.view(), xq.view(), y.data());
  bc::matmul(w.view(), a.data(), 1, Y.data());
  bc::gemv(w.view(), a.data(), y_float.data());
  for (std::size_t r = 0; r < rows; ++r) {
    INFO("row " << r);
    const float want = bc::reference::mx_dot(w.view(), r, prepared);
    CHECK(std::memcmp(&want, &y[r], 4) == 0);
    CHECK(std::memcmp(&want, &Y[r], 4) == 0);
    double exact = 0;
    for (std::size_t j = 0; j < cols; ++j) exact += static_cast<double>(decoded[r * cols + j]) * a[j];
    CHECK(std::abs(y_float[r] - exact) <= 1e-5 * (1 + std::abs(exact)));
  }
}

TEST_CASE("dispatched widening, SQNR sums and finite amax equal the definitions", "[dispatch]") {
  blockcast_test::check_widening(bc::runtime::widen_bf16, bc::runtime::widen_f16);
  blockcast_test::check_error_sums(bc::runtime::squared_error_sums);
  blockcast_test::check_max_finite(bc::runtime::max_finite_magnitude);
}
