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
#include <sstream>
#include <string>
#include <tuple>

namespace bc = blockcast;

namespace {

using arch = bc::simd::best_arch;
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

template <class E>
constexpr int mantissa_bits_or_zero() {
  if constexpr (E::is_float) return E::mantissa_bits;
  else return 0;
}

template <class Format>
std::string format_description() {
  if (const std::string_view preset = bc::preset_name<Format>(); !preset.empty()) return std::string(preset);
  using E = typename Format::element_type;
  constexpr int m = mantissa_bits_or_zero<E>();
  const std::string element = E::is_float ? "e" + std::to_string(E::bits - 1 - m) + "m" + std::to_string(m)
                                          : "int" + std::to_string(E::bits);
  return element + " blocks of " + std::to_string(Format::block_size);
}

const char* name_of(bc::rounding r) {
  switch (r) {
    case bc::rounding::nearest_even: return "nearest_even";
    case bc::rounding::nearest_away: return "nearest_away";
    case bc::rounding::toward_zero: return "toward_zero";
    case bc::rounding::stochastic: return "stochastic";
  }
  return "?";
}
const char* name_of(bc::scale_rule r) {
  switch (r) {
    case bc::scale_rule::ocp_floor: return "ocp_floor";
    case bc::scale_rule::ceil: return "ceil";
    case bc::scale_rule::even: return "even";
    case bc::scale_rule::rceil: return "rceil";
  }
  return "?";
}

std::string hex(std::uint32_t v) {
  std::ostringstream s;
  s << "0x" << std::hex << v;
  return s.str();
}

/// What a failing comparison prints: the case, the first differing item, wanted and got, and
/// the FP32 bits of the inputs it came from.
template <class Format>
struct case_description {
  const float* in;
  std::size_t rows, cols;
  const bc::cast_options& opt;

  std::string head(const char* what) const {
    return std::string(what) + " of " + format_description<Format>() + ", rounding " + name_of(opt.round) + ", scale rule " +
           name_of(opt.scale_rule) + (opt.int8_full_range ? ", int8 full range" : "") + ", " + std::to_string(rows) +
           " x " + std::to_string(cols) + ": ";
  }
  std::string inputs(std::size_t first, std::size_t count) const {
    std::string s = "input bits";
    for (std::size_t i = first; i < std::min(first + count, rows * cols); ++i) s += " " + hex(bc::detail::float_bits(in[i]));
    return s;
  }
  /// Code byte i: the values it holds.
  std::string code_byte(std::size_t i) const {
    const std::size_t row_bytes = bc::row_code_bytes<Format>(cols), r = i / row_bytes;
    const std::size_t first = (i % row_bytes) * 8 / Format::element_bits;
    return "row " + std::to_string(r) + ", values from " + std::to_string(first) + ": " +
           inputs(r * cols + first, (8 + Format::element_bits - 1) / Format::element_bits);
  }
  /// Scale byte i: its block.
  std::string scale_byte(std::size_t i) const {
    const std::size_t per_row = bc::blocks_per_row<Format>(cols), r = i / per_row, b = i % per_row;
    return "row " + std::to_string(r) + ", block " + std::to_string(b) + ": " +
           inputs(r * cols + b * Format::block_size, std::min<std::size_t>(Format::block_size, 8)) + " ...";
  }
};

template <class Format>
void expect_same_bytes(const char* what, const std::uint8_t* want, const std::uint8_t* got, std::size_t n,
                       const case_description<Format>& c, bool codes) {
  for (std::size_t i = 0; i < n; ++i)
    if (want[i] != got[i]) {
      FAIL_CHECK(c.head(what) << "first difference at byte " << i << ": wanted " << hex(want[i]) << ", got "
                              << hex(got[i]) << "; " << (codes ? c.code_byte(i) : c.scale_byte(i)));
      return;
    }
}
template <class Format>
void expect_same_floats(const char* what, const float* want, const float* got, const case_description<Format>& c) {
  for (std::size_t i = 0; i < c.rows * c.cols; ++i)
    if (!same_bits(want + i, got + i, 1)) {
      FAIL_CHECK(c.head(what) << "first difference at value " << i << ": wanted " << want[i] << " ("
                              << hex(bc::detail::float_bits(want[i])) << "), got " << got[i] << " ("
                              << hex(bc::detail::float_bits(got[i])) << "); " << c.inputs(i, 1));
      return;
    }
}

template <class Format>
void check_equal(const float* in, std::size_t rows, std::size_t cols, const bc::cast_options& opt) {
  using casts = bc::simd::tensor_casts<Format, arch>;
  const case_description<Format> c{in, rows, cols, opt};
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
  INFO(c.head("tensor scale") << "wanted " << want.tensor_scale() << ", got " << tensor_scale);
  CHECK(bc::detail::float_bits(tensor_scale) == bc::detail::float_bits(want.tensor_scale()));
  expect_same_bytes("quantize codes", want.codes().data(), codes.data() + 1, want.codes().size(), c, true);
  expect_same_bytes("quantize scales", want.scales().data(), scales.data() + 1, want.scales().size(), c, false);
  CHECK(codes[0] == 0xaa);  // nothing written before the output
  CHECK(scales[0] == 0xaa);
  std::vector<float> out(rows * cols + 1), fake(rows * cols + 1);
  bc::packed_view<Format> view(rows, cols, bc::span<const std::uint8_t>(codes.data() + 1, codes.size() - 1),
                               bc::span<const std::uint8_t>(scales.data() + 1, scales.size() - 1), tensor_scale);
  casts::dequantize(view, out.data() + 1, opt.threads);
  casts::fake_quantize(in, fake.data() + 1, rows, cols, opt);
  expect_same_floats("dequantize", want_out.data(), out.data() + 1, c);
  expect_same_floats("fake_quantize", want_fake.data(), fake.data() + 1, c);
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
  // 40 B + 5: three groups of up to 16 blocks and a partial block, so that the quantize
  // kernel's group parameters (made a group ahead, in two slots) go round their slots
  std::vector<std::size_t> lengths = {0, 1, 2, L - 1, L, L + 1, B - 1, B, B + 1, 2 * B, 3 * B - 1, 7 * B + 3, 32 * B, 40 * B + 5};
  for (const auto& opt : all_options()) {
    for (std::size_t n : lengths) {
      for (std::size_t offset : {0, 1, 3}) {
        INFO("length " << n << ", input offset " << offset << " floats");
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
        INFO((specials ? "with" : "without") << " specials");
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
        INFO("block anchor " << anchor);
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

TEMPLATE_LIST_TEST_CASE("quantize_lanes equals the reference value by value, each with its own scale", "[simd]", formats) {
  // error diffusion's column step: every value in a block of its own. Scales from block amaxes
  // over the test data's range, values up to 2^20 times beyond their scale's range (they
  // saturate), at every length class
  using k = bc::simd::kernels<TestType, arch>;
  constexpr std::size_t L = k::lanes;
  const auto data = test_data(4096, 11, false);
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> beyond(-30, 20);
  for (auto round : {bc::rounding::nearest_even, bc::rounding::nearest_away, bc::rounding::toward_zero})
    for (bool full_range : {false, true})
      for (std::size_t n : {std::size_t{1}, L - 1, L, L + 1, 3 * L + 5, std::size_t{1000}}) {
        bc::cast_options opt;
        opt.round = round;
        opt.int8_full_range = full_range;
        const auto ctx = bc::simd::kernels<TestType, arch>::make_context(data.data(), data.size(), opt);
        std::vector<float> values(n), factor(n), scale(n), got(n);
        std::vector<bc::reference::block_scale> scales(n);
        std::vector<std::uint8_t> codes(n);
        for (std::size_t i = 0; i < n; ++i) {
          float amax = std::fabs(data[rng() % data.size()]);
          auto bs = bc::reference::make_block_scale<TestType>(bc::detail::float_bits(amax), ctx);
          if (bs.nan || (!TestType::has_tensor_scale && bs.shared_exp > 126))
            bs = bc::reference::make_block_scale<TestType>(bc::detail::float_bits(1.0f), ctx), amax = 1.0f;
          scales[i] = bs;
          factor[i] = TestType::has_tensor_scale ? bs.inverse : bc::detail::exp2i(-bs.shared_exp);
          scale[i] = bs.value;
          const float v = data[rng() % data.size()];
          values[i] = rng() % 4 == 0 ? std::ldexp(v, beyond(rng)) : (std::fabs(v) <= amax ? v : amax * 0.5f);
          if (!std::isfinite(values[i])) values[i] = -0.0f;
        }
        k::quantize_lanes(values.data(), factor.data(), scale.data(), n, ctx, codes.data(), got.data());
        std::size_t equal = 0;
        for (std::size_t i = 0; i < n; ++i) {
          const std::uint8_t want = bc::reference::quantize_value<TestType>(values[i], scales[i], ctx, 0);
          const float want_value = bc::reference::dequantize_value<TestType>(want, scales[i], ctx.tensor_decode);
          if (codes[i] == want && same_bits(&got[i], &want_value, 1)) {
            ++equal;
            continue;
          }
          FAIL_CHECK(format_description<TestType>() << ", rounding " << name_of(round) << (full_range ? ", int8 full range" : "")
                                             << ", n " << n << ", value " << i << " (" << values[i] << ", bits "
                                             << hex(bc::detail::float_bits(values[i])) << ", scale code " << int{scales[i].code}
                                             << "): wanted code " << int{want} << " value " << want_value << ", got code "
                                             << int{codes[i]} << " value " << got[i]);
          break;
        }
        CHECK(equal == n);
      }
}

TEST_CASE("quantize_lanes refuses stochastic rounding", "[simd]") {
  bc::reference::block_context ctx;
  ctx.round = bc::rounding::stochastic;
  float v = 1, f = 1, s = 1, out = 0;
  std::uint8_t code = 0;
  using k = bc::simd::kernels<bc::mxfp4, arch>;
  CHECK_THROWS_AS(k::quantize_lanes(&v, &f, &s, 1, ctx, &code, &out), bc::invalid_argument);
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
