// SPDX-License-Identifier: MIT
// SIMD kernels equal the scalar reference bit for bit: every preset and two user formats,
// every rounding mode and scale rule, lengths around block and vector sizes, partial last
// blocks, unaligned pointers, matrices, specials, and every thread count. This file is built
// once per instruction set (see CMakeLists.txt); xsimd::default_arch is the one under test.
#include <blockcast/blockcast.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>
#include <tuple>

namespace bc = blockcast;

namespace {

using arch = xsimd::default_arch;
using e3m4_16 = bc::block_format<bc::float_format<3, 4, bc::specials::none>, bc::e8m0, 16>;
using int4_32 = bc::block_format<bc::int_format<4>, bc::e8m0, 32>;
using formats = std::tuple<bc::mxfp8_e4m3, bc::mxfp8_e5m2, bc::mxfp6_e3m2, bc::mxfp6_e2m3, bc::mxfp4,
                           bc::mxint8, bc::nvfp4, e3m4_16, int4_32>;

/// Weight-like data with per-block scales from 1e-40 to 1e30, and specials sprinkled in.
std::vector<float> test_data(std::size_t n, unsigned seed, bool specials) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::uniform_int_distribution<int> binade(-140, 100);
  std::vector<float> x(n);
  float scale = 1;
  for (std::size_t i = 0; i < n; ++i) {
    if (i % 16 == 0) scale = std::ldexp(1.0f, binade(rng));
    x[i] = normal(rng) * scale;
    if (rng() % 3 == 0) {
      // exact ties and grid points: small integers and half-integers times a power of two
      x[i] = (static_cast<float>(rng() % 128) + 0.5f * static_cast<float>(rng() % 2)) *
             std::ldexp(1.0f, binade(rng) / 4) * ((rng() & 1) ? 1.0f : -1.0f);
    }
    if (!specials) continue;
    switch (rng() % 97) {
      case 0: x[i] = NAN; break;
      case 1: x[i] = (rng() & 1) ? INFINITY : -INFINITY; break;
      case 2: x[i] = -0.0f; break;
      case 3: x[i] = bc::detail::bits_float(rng() & 0x807fffffu); break;  // FP32 subnormal
      case 4: x[i] = bc::detail::bits_float(rng()); break;                // any bit pattern
      case 5: x[i] = std::numeric_limits<float>::max(); break;
      default: break;
    }
  }
  return x;
}

bool same_bits(const float* a, const float* b, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    if (bc::detail::float_bits(a[i]) != bc::detail::float_bits(b[i]) && !(std::isnan(a[i]) && std::isnan(b[i])))
      return false;
  return true;
}

template <class Format>
void check_equal(const float* in, std::size_t rows, std::size_t cols, const bc::cast_options& opt) {
  using casts = bc::simd::tensor_casts<Format, arch>;
  // reference
  bc::packed_tensor<Format> want(rows, cols);
  want.set_tensor_scale(bc::reference::quantize<Format>(in, rows, cols, want.mutable_view(), opt));
  std::vector<float> want_out(rows * cols), want_fake(rows * cols);
  bc::reference::dequantize<Format>(want.view(), want_out.data());
  bc::reference::fake_quantize<Format>(in, want_fake.data(), rows, cols, opt);
  // simd, into an output at an odd offset
  std::vector<std::uint8_t> codes(bc::code_bytes<Format>(rows, cols) + 1, 0xaa), scales(bc::scale_bytes<Format>(rows, cols) + 1, 0xaa);
  bc::mutable_packed_view<Format> got(rows, cols, bc::span<std::uint8_t>(codes.data() + 1, codes.size() - 1),
                                      bc::span<std::uint8_t>(scales.data() + 1, scales.size() - 1));
  const float tensor_scale = casts::quantize(in, rows, cols, got, opt);
  CHECK(bc::detail::float_bits(tensor_scale) == bc::detail::float_bits(want.tensor_scale()));
  CHECK(std::equal(want.codes().begin(), want.codes().end(), codes.begin() + 1));
  CHECK(std::equal(want.scales().begin(), want.scales().end(), scales.begin() + 1));
  CHECK(codes[0] == 0xaa);
  CHECK(scales[0] == 0xaa);
  std::vector<float> out(rows * cols + 1), fake(rows * cols + 1);
  bc::packed_view<Format> view(rows, cols, bc::span<const std::uint8_t>(codes.data() + 1, codes.size() - 1),
                               bc::span<const std::uint8_t>(scales.data() + 1, scales.size() - 1), tensor_scale);
  casts::dequantize(view, out.data() + 1, opt.threads);
  casts::fake_quantize(in, fake.data() + 1, rows, cols, opt);
  CHECK(same_bits(out.data() + 1, want_out.data(), rows * cols));
  CHECK(same_bits(fake.data() + 1, want_fake.data(), rows * cols));
}

std::vector<bc::cast_options> all_options() {
  std::vector<bc::cast_options> v;
  for (auto r : {bc::rounding::nearest_even, bc::rounding::nearest_away, bc::rounding::toward_zero,
                 bc::rounding::stochastic})
    for (auto s : {bc::scale_rule::ocp_floor, bc::scale_rule::ceil, bc::scale_rule::even, bc::scale_rule::rceil}) {
      bc::cast_options o;
      o.round = r;
      o.scale_rule = s;
      o.seed = 0x1234567887654321ull;
      v.push_back(o);
    }
  bc::cast_options full;
  full.int8_full_range = true;
  v.push_back(full);
  return v;
}

}  // namespace

TEST_CASE("the architecture under test", "[simd]") {
  WARN("xsimd::default_arch = " << arch::name() << ", " << (xsimd::batch<float, arch>::size) << " float lanes");
  CHECK(xsimd::batch<float, arch>::size >= 1);
}

TEMPLATE_LIST_TEST_CASE("SIMD equals the reference at every length class and alignment",
                        "[simd]", formats) {
  constexpr std::size_t B = TestType::block_size;
  constexpr std::size_t L = xsimd::batch<float, arch>::size;
  const auto data = test_data(40 * B + 64, 1, true);
  std::vector<std::size_t> lengths = {0, 1, 2, L - 1, L, L + 1, B - 1, B, B + 1, 2 * B, 3 * B - 1, 7 * B + 3, 32 * B};
  for (const auto& opt : all_options()) {
    for (std::size_t n : lengths) {
      for (std::size_t offset : {0, 1, 3}) {
        INFO("n " << n << " offset " << offset << " rounding " << int(opt.round) << " rule " << int(opt.scale_rule));
        check_equal<TestType>(data.data() + offset, 1, n, opt);
      }
    }
  }
}

TEMPLATE_LIST_TEST_CASE("SIMD equals the reference on matrices, without and with specials", "[simd]", formats) {
  for (bool specials : {false, true}) {
    for (auto shape : {std::pair<std::size_t, std::size_t>{7, 96}, {5, 37}, {3, 1000}, {64, 33}}) {
      const auto data = test_data(shape.first * shape.second, 2, specials);
      for (const auto& opt : all_options()) {
        INFO("shape " << shape.first << " x " << shape.second << " specials " << specials);
        check_equal<TestType>(data.data(), shape.first, shape.second, opt);
      }
    }
  }
}

TEMPLATE_LIST_TEST_CASE("SIMD equals the reference for every FP32 sign, exponent and top mantissa bits",
                        "[simd][exhaustive]", formats) {
  // Every 16-bit head of an FP32 value (sign, exponent, 7 mantissa bits: every grid point, tie
  // and saturation boundary of every element lies among them) with tails 0, 1, half, half+1
  // and all ones, i.e. at, beside and between the ties. Each block starts with an anchor that
  // fixes its scale, so the same values are seen as block maxima and as small elements.
  constexpr std::size_t B = TestType::block_size;
  const std::uint32_t tails[] = {0x0000, 0x0001, 0x7fff, 0x8000, 0x8001, 0xffff};
  const float anchors[] = {1.0f, 7.5f, 448.0f, 0x1p-130f, 0x1p100f};
  for (float anchor : anchors) {
    std::vector<float> x;
    for (std::uint32_t tail : tails)
      for (std::uint32_t head = 0; head < 0x10000; ++head) {
        if (x.size() % B == 0) x.push_back(anchor);
        const float v = bc::detail::bits_float(head << 16 | tail);
        x.push_back(std::isfinite(v) && std::fabs(v) <= anchor ? v : -anchor * 0.75f);
      }
    x.resize((x.size() + B - 1) / B * B, 0.0f);
    for (auto round : {bc::rounding::nearest_even, bc::rounding::toward_zero})
      for (auto rule : {bc::scale_rule::ocp_floor, bc::scale_rule::rceil}) {
        bc::cast_options opt;
        opt.round = round;
        opt.scale_rule = rule;
        INFO("anchor " << anchor << " rounding " << int(round) << " rule " << int(rule));
        check_equal<TestType>(x.data(), 1, x.size(), opt);      // whole groups of blocks
        check_equal<TestType>(x.data(), x.size() / B, B, opt);  // one block per row
      }
  }
}

TEMPLATE_LIST_TEST_CASE("results are identical for every thread count", "[simd][threads]", formats) {
  const std::size_t n = (std::size_t{1} << 18) + 77;  // big enough to be split
  const auto data = test_data(n, 3, true);
  for (auto round : {bc::rounding::nearest_even, bc::rounding::stochastic}) {
    for (auto shape : {std::pair<std::size_t, std::size_t>{1, n}, {n / 1024, 1024}}) {
      bc::cast_options opt;
      opt.round = round;
      opt.seed = 99;
      const auto one = bc::quantize<TestType>(data.data(), shape.first, shape.second, opt);
      std::vector<float> fake1(n), out1(n);
      bc::fake_quantize<TestType>(data.data(), fake1.data(), shape.first, shape.second, opt);
      bc::dequantize(one, out1.data());
      for (unsigned threads : {2u, 3u, 8u}) {
        opt.threads = threads;
        INFO("threads " << threads << " rows " << shape.first);
        const auto many = bc::quantize<TestType>(data.data(), shape.first, shape.second, opt);
        CHECK(std::equal(one.codes().begin(), one.codes().end(), many.codes().begin()));
        CHECK(std::equal(one.scales().begin(), one.scales().end(), many.scales().begin()));
        std::vector<float> fake(n), out(n);
        bc::fake_quantize<TestType>(data.data(), fake.data(), shape.first, shape.second, opt);
        bc::dequantize(many, out.data(), opt);
        CHECK(same_bits(fake.data(), fake1.data(), n));
        CHECK(same_bits(out.data(), out1.data(), n));
      }
    }
  }
}

TEMPLATE_LIST_TEST_CASE("SIMD decode equals the reference for every code", "[simd][exhaustive]", formats) {
  using E = typename TestType::element_type;
  using k = bc::simd::kernels<TestType, arch>;
  constexpr std::size_t L = k::lanes;
  for (unsigned c0 = 0; c0 < (1u << E::bits); c0 += L) {
    alignas(64) std::int32_t codes[L];
    alignas(64) float got[L];
    for (std::size_t i = 0; i < L; ++i) codes[i] = static_cast<std::int32_t>((c0 + i) % (1u << E::bits));
    k::decode(k::i32::load_aligned(codes)).store_aligned(got);
    for (std::size_t i = 0; i < L; ++i) {
      const float want = E::decode(static_cast<std::uint8_t>(codes[i]));
      INFO("code " << codes[i]);
      CHECK(same_bits(&got[i], &want, 1));
    }
  }
}

TEST_CASE("the architecture helpers equal their generic versions", "[simd]") {
  using i32 = xsimd::batch<std::int32_t, arch>;
  constexpr std::size_t L = i32::size;
  std::mt19937 rng(4);
  for (int trial = 0; trial < 200; ++trial) {
    alignas(64) std::int32_t lanes[L];
    std::uint8_t bytes[L], narrow_a[L], narrow_b[L];
    for (std::size_t i = 0; i < L; ++i) {
      lanes[i] = static_cast<std::int32_t>(rng() & 0x7fffffff);
      bytes[i] = static_cast<std::uint8_t>(rng());
    }
    const i32 v = i32::load_aligned(lanes);
    CHECK(bc::simd::arch::hmax<arch>(v) == bc::simd::arch::hmax<arch>(v, xsimd::generic{}));
    const i32 small = v & i32(0xff);
    bc::simd::arch::narrow_bytes<arch>(small, narrow_a);
    bc::simd::arch::narrow_bytes<arch>(small, narrow_b, xsimd::generic{});
    CHECK(std::memcmp(narrow_a, narrow_b, L) == 0);
    alignas(64) std::int32_t wa[L], wb[L];
    bc::simd::arch::widen_bytes<arch>(bytes).store_aligned(wa);
    bc::simd::arch::widen_bytes<arch>(bytes, xsimd::generic{}).store_aligned(wb);
    CHECK(std::memcmp(wa, wb, sizeof wa) == 0);
  }
}
