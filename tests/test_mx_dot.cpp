// SPDX-License-Identifier: MIT
// MX dot products, gemv and matmul on MXINT8 activations against a reference written here
// from the decoded values: every block's sum equals the exact sum of decoded products (in
// double, where it is exact), and every result equals the documented FP32 order applied to
// those sums. Built once per instruction set with test_simd.cpp (xsimd::default_arch).
#include <blockcast/blockcast.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <tuple>

namespace bc = blockcast;

namespace {

using weight_formats = std::tuple<bc::mxfp8_e4m3, bc::mxfp8_e5m2, bc::mxfp6_e3m2, bc::mxfp6_e2m3, bc::mxfp4,
                                  bc::mxint8, bc::nvfp4>;

/// What the weights and activations hold.
enum class data_kind { quantized_normal, quantized_wide_range, random_bytes, typical_scales, symmetric_codes, zeros, saturated, one_nan_scale,
                       extreme_scales };
const char* name_of(data_kind k) {
  switch (k) {
    case data_kind::quantized_normal: return "quantized normal values";
    case data_kind::quantized_wide_range: return "quantized normal values, 1 in 700 times 2^-14";
    case data_kind::random_bytes: return "random code and scale bytes (NaN/Inf included)";
    case data_kind::typical_scales: return "random codes, scales near 1";
    case data_kind::symmetric_codes: return "random codes but INT8's -128, scales near 1";
    case data_kind::zeros: return "zeros";
    case data_kind::saturated: return "largest codes and scales";
    case data_kind::one_nan_scale: return "scales near 1 but one NaN scale in rows 1 and 8";
    case data_kind::extreme_scales: return "scales 2^-127..2^-124 and 2^124..2^127, the largest positive codes in every third row";
  }
  return "?";
}

template <class Format>
bc::packed_tensor<Format> make(std::size_t rows, std::size_t cols, data_kind kind, std::mt19937& rng) {
  if (kind == data_kind::quantized_normal || kind == data_kind::quantized_wide_range) {
    // wide range: some groups of 16 blocks hold a value far below their block's largest, most
    // do not (E5M2's kernel sums its top digits alone unless a group has such a value)
    std::normal_distribution<float> normal;
    std::vector<float> v(rows * cols);
    for (std::size_t i = 0; i < v.size(); ++i)
      v[i] = normal(rng) * (kind == data_kind::quantized_wide_range && i % 700 == 7 ? std::ldexp(3.0f, -14) : 3.0f);
    return bc::quantize<Format>(v.data(), rows, cols);
  }
  bc::packed_tensor<Format> p(rows, cols);
  using element = typename Format::element_type;
  const auto view = p.mutable_view();
  auto scales = view.scales();
  std::vector<std::uint8_t> codes(cols);
  for (std::size_t r = 0; r < rows; ++r) {
    for (auto& c : codes) {
      const auto byte = static_cast<std::uint8_t>(rng() & ((1u << element::bits) - 1u));
      const auto sign = static_cast<std::uint8_t>(byte & (1u << (element::bits - 1)));
      const auto largest = element::is_float ? static_cast<std::uint8_t>(element::max_magnitude | sign)
                                            : static_cast<std::uint8_t>(sign ? 0x81 : 0x7f);  // +-127
      // extreme scales with the largest block sums, whose products leave FP32's range at
      // both ends, and with random codes in the other rows
      const bool largest_positive = kind == data_kind::extreme_scales && (rows == 1 || r % 3 == 0);
      c = kind == data_kind::zeros      ? 0
          : kind == data_kind::saturated ? largest
          : largest_positive             ? static_cast<std::uint8_t>(largest & ~sign)
                                         : byte;
      // -128 is INT8's optional code (kernels take another path for it)
      if (kind == data_kind::symmetric_codes && !element::is_float && c == 0x80) c = 0x81;
    }
    bc::detail::pack_codes(codes.data(), cols, element::bits, view.row_codes(r));
  }
  for (std::size_t i = 0; i < scales.size(); ++i) {
    const auto byte = static_cast<std::uint8_t>(rng());
    if (kind == data_kind::extreme_scales) {  // E8M0 2^-127..2^-124 and 2^124..2^127 (UE4M3: any byte)
      scales[i] = std::is_same_v<typename Format::scale_type, bc::e8m0> ? static_cast<std::uint8_t>(byte % 2 ? byte % 4 : 251 + byte % 4) : byte;
      continue;
    }
    scales[i] = kind == data_kind::random_bytes ? byte
                : kind == data_kind::saturated  ? std::uint8_t{0xfe}
                                                : static_cast<std::uint8_t>(120 + byte % 14);
  }
  // kernels test a whole row's scales for NaN once, and those of 4 rows at a time: rows with
  // and without one side by side, and groups of 4 rows with and without one (of 9 rows, taken
  // a quarter of the range apart: rows 1, 3, 5, 7 hold row 1's, rows 0, 2, 4, 6 none, row 8
  // alone its own)
  if (kind == data_kind::one_nan_scale) {
    const std::size_t blocks = scales.size() / rows;
    for (std::size_t r = 1; r < rows; r += 7) scales[r * blocks + (7 * r + 3) % blocks] = Format::scale_type::nan_code;
  }
  if constexpr (Format::has_tensor_scale) {
    if (kind == data_kind::saturated) {
      for (auto& s : scales) s = 0x7e;  // UE4M3 448
      p.set_tensor_scale(1e30f);
    } else {
      p.set_tensor_scale(std::ldexp(1.0f + static_cast<float>(rng() % 100) / 100.0f, static_cast<int>(rng() % 20) - 10));
    }
  }
  return p;
}

/// The dot product as documented, from decoded values only (no kernel code): S_b is the
/// double sum of decoded products scaled to an integer (exact: every product is a multiple
/// of 2^-(shift_w + 6) and every sum stays below 2^46).
template <class Format>
struct decoded_reference {
  using element = typename Format::element_type;
  static constexpr std::size_t B = Format::block_size;
  static constexpr int shift = bc::element_integers<element>::shift;

  static double block_sum(const std::uint8_t* w, const std::uint8_t* x, std::size_t n) {
    double s = 0;
    for (std::size_t j = 0; j < n; ++j)
      s += static_cast<double>(element::decode(w[j])) * static_cast<double>(bc::int8::decode(x[j]));
    return std::ldexp(s, shift + 6);
  }
  static float dot(const std::vector<std::uint8_t>& w, const std::uint8_t* w_scales, float tensor_scale,
                   const std::vector<std::uint8_t>& x, const std::uint8_t* x_scales, std::vector<double>* sums) {
    const std::size_t cols = w.size(), blocks = (cols + B - 1) / B;
    volatile float p[16] = {};
    for (std::size_t b = 0; b < blocks; ++b) {
      const std::size_t n = std::min(B, cols - b * B);
      const double s = block_sum(w.data() + b * B, x.data() + b * B, n);
      if (sums) sums->push_back(s);
      const volatile float d_w = Format::scale_type::decode(w_scales[b]) * std::ldexp(1.0f, -shift);
      const volatile float d_x = bc::e8m0::decode(x_scales[b * B / 32]) * std::ldexp(1.0f, -6);
      const volatile float scaled = static_cast<float>(s) * d_w;
      const volatile float term = scaled * d_x;
      p[b % 16] = p[b % 16] + term;
    }
    for (std::size_t half = 8; half >= 1; half /= 2)
      for (std::size_t i = 0; i < half; ++i) p[i] = p[i] + p[i + half];
    const volatile float total = p[0];
    return Format::has_tensor_scale ? total * tensor_scale : total;
  }
};

bool same(float a, float b) {
  return bc::detail::float_bits(a) == bc::detail::float_bits(b) || (std::isnan(a) && std::isnan(b));
}

std::string describe(std::string_view format, data_kind kind, std::size_t cols, std::size_t row, float want, float got) {
  std::ostringstream s;
  s << format << ", " << name_of(kind) << ", K = " << cols << ", row " << row << ": wanted " << want << " ("
    << std::hexfloat << want << "), got " << got << " (" << got << ")";
  return s.str();
}

}  // namespace

TEMPLATE_LIST_TEST_CASE("MX dot products equal the documented order on exact block sums", "[mx_dot]", weight_formats) {
  using F = TestType;
  const std::string_view name = bc::preset_name<F>();
  std::mt19937 rng(7);
  const std::size_t rows = 9;  // kernels may take 4 rows at a time: two such groups (rows 0, 2, 4, 6 and 1, 3, 5, 7) and one row
  for (std::size_t cols : {1, 15, 16, 17, 31, 32, 33, 100, 511, 512, 513, 1024, 1040, 4096, 4096 + 48}) {
    for (data_kind kind : {data_kind::quantized_normal, data_kind::quantized_wide_range, data_kind::random_bytes, data_kind::typical_scales,
                           data_kind::symmetric_codes, data_kind::zeros, data_kind::saturated,
                           data_kind::one_nan_scale, data_kind::extreme_scales}) {
      const auto w = make<F>(rows, cols, kind == data_kind::symmetric_codes ? data_kind::random_bytes : kind, rng);
      // random weights (Inf/NaN included) meet activations without -128 in symmetric_codes
      const auto x = make<bc::mxint8>(1, cols, kind == data_kind::saturated ? data_kind::saturated
                                                   : kind == data_kind::zeros || kind == data_kind::one_nan_scale
                                                       ? data_kind::typical_scales
                                                       : kind,
                                      rng);
      std::vector<float> y(rows);
      bc::gemv(w.view(), x.view(), y.data());
      const bc::mx_activations<F> prepared(x.view());
      std::vector<std::uint8_t> x_codes(cols), w_codes(cols);
      bc::detail::unpack_codes(x.view().row_codes(0), cols, 8, x_codes.data());
      for (std::size_t r = 0; r < rows; ++r) {
        bc::detail::unpack_codes(w.view().row_codes(r), cols, F::element_bits, w_codes.data());
        std::vector<double> sums;
        const float want = decoded_reference<F>::dot(w_codes, w.view().row_scales(r), w.view().tensor_scale(),
                                                     x_codes, x.view().row_scales(0), &sums);
        // the library's own block sums are the exact ones
        for (std::size_t b = 0; b < sums.size(); ++b) {
          const std::size_t n = std::min(F::block_size, cols - b * F::block_size);
          const double got = bc::reference::block_sum<typename F::element_type>(
              w_codes.data() + b * F::block_size, prepared.codes() + b * F::block_size, n);
          INFO(name << ", " << name_of(kind) << ", K = " << cols << ", row " << r << ", block " << b);
          REQUIRE((got == sums[b] || (std::isnan(got) && std::isnan(sums[b]))));
        }
        INFO(describe(name, kind, cols, r, want, y[r]));
        REQUIRE(same(want, y[r]));
        REQUIRE(same(want, bc::dot(w.view(), r, prepared)));
        REQUIRE(same(want, bc::reference::mx_dot(w.view(), r, prepared)));
      }
    }
  }
}

TEMPLATE_TEST_CASE("mx_activations: every prepared form is its definition", "[mx_dot]", bc::mxfp4, bc::nvfp4) {
  // the kernels read these forms (mx_activations is built in loops the compiler vectorizes);
  // here each is computed from the codes the plain way. Random bytes hold -128 (once in 256),
  // which groups 1, 4, 7... are kept free of.
  using F = TestType;
  constexpr std::size_t B = F::block_size;
  std::mt19937 rng(5);
  for (std::size_t cols : {1, 31, 33, 512, 513, 4096 + 48}) {
    auto x = make<bc::mxint8>(1, cols, data_kind::random_bytes, rng);
    std::vector<std::uint8_t> bytes(cols);
    bc::detail::unpack_codes(x.view().row_codes(0), cols, 8, bytes.data());
    for (std::size_t i = 0; i < cols; ++i)
      if (i / (16 * B) % 3 == 1 && bytes[i] == 0x80) bytes[i] = 0x81;
    bc::detail::pack_codes(bytes.data(), cols, 8, x.mutable_view().row_codes(0));
    const std::size_t blocks = (cols + B - 1) / B, groups = (blocks + 15) / 16;
    std::vector<std::int8_t> c(groups * 16 * B, 0);
    for (std::size_t i = 0; i < cols; ++i) c[i] = static_cast<std::int8_t>(bytes[i]);
    const bc::mx_activations<F> prepared(x.view());
    for (std::size_t g = 0; g < groups; ++g) {
      const auto a = prepared.group(16 * g);
      const std::int8_t* gc = c.data() + 16 * B * g;
      INFO(bc::preset_name<F>() << ", K = " << cols << ", group " << g);
      bool min_code = false;
      for (std::size_t i = 0; i < 16 * B; ++i) {
        INFO("code " << i << " of the group, " << int{gc[i]});
        REQUIRE(a.codes[i] == gc[i]);
        REQUIRE(a.wide[i] == gc[i]);
        const std::size_t chunk = i / 128 * 128, j = i % 128;  // even codes, then odd, per 128
        REQUIRE(a.split[i] == gc[chunk + (j < 64 ? 2 * j : 2 * (j - 64) + 1)]);
        min_code = min_code || gc[i] == -128;
      }
      REQUIRE(a.has_min_code == min_code);
      for (std::size_t i = 0; i < 16 * B / 4; ++i) {
        const int four = gc[4 * i] + gc[4 * i + 1] + gc[4 * i + 2] + gc[4 * i + 3];
        INFO("run of 4 codes " << i);
        REQUIRE(a.starts[i] == -128 * four);
        if (i % 2 == 0) REQUIRE(a.nibble_starts[i / 2] == -bc::simd::arch::nibble_offset * (four + gc[4 * i + 4] + gc[4 * i + 5] + gc[4 * i + 6] + gc[4 * i + 7]));
      }
      for (std::size_t b = 0; b < 16; ++b) {
        int sum = 0;
        for (std::size_t j = 0; j < B; ++j) sum += gc[b * B + j];
        const std::size_t block = 16 * g + b;
        const int e = block < blocks ? x.view().row_scales(0)[block * B / 32] : -1;  // past the row: d_x = 0
        const float d_x = e < 0 ? 0.0f : e == 0xff ? std::numeric_limits<float>::quiet_NaN() : std::ldexp(1.0f, e - 127 - 6);
        INFO("block " << b << " of the group");
        REQUIRE(a.sums[b] == sum);
        REQUIRE(same(a.scales[b], d_x));
      }
    }
  }
}

TEMPLATE_LIST_TEST_CASE("gemv and matmul on MXINT8 activations do not depend on threads", "[mx_dot][threads]",
                        weight_formats) {
  using F = TestType;
  std::mt19937 rng(11);
  const std::size_t rows = 300, cols = 1056, n = 3;
  const auto w = make<F>(rows, cols, data_kind::quantized_normal, rng);
  std::normal_distribution<float> normal;
  std::vector<float> X(n * cols);
  for (auto& v : X) v = normal(rng);
  std::vector<float> Y(n * rows);
  bc::matmul(w.view(), X.data(), n, Y.data());
  for (unsigned threads : {1u, 2u, 3u, 7u}) {
    bc::cast_options opt;
    opt.threads = threads;
    std::vector<float> Yt(n * rows);
    bc::matmul(w.view(), X.data(), n, Yt.data(), opt);
    for (std::size_t i = 0; i < n; ++i) {
      const auto xq = bc::quantize<bc::mxint8>(X.data() + i * cols, 1, cols);
      std::vector<float> y(rows);
      bc::gemv(w.view(), xq.view(), y.data(), opt);
      for (std::size_t r = 0; r < rows; ++r) {
        INFO(bc::preset_name<F>() << ", " << threads << " threads, activation row " << i << ", weight row " << r);
        REQUIRE(same(Y[i * rows + r], Yt[i * rows + r]));
        REQUIRE(same(Y[i * rows + r], y[r]));
      }
    }
  }
}

TEST_CASE("MX dot products refuse operands that do not fit", "[mx_dot]") {
  std::vector<float> v(64 * 4, 1.0f);
  const auto w = bc::quantize<bc::mxfp4>(v.data(), 4, 64);
  const auto x_short = bc::quantize<bc::mxint8>(v.data(), 1, 32);
  const auto x_two_rows = bc::quantize<bc::mxint8>(v.data(), 2, 64);
  std::vector<float> y(4);
  CHECK_THROWS_WITH(bc::gemv(w.view(), x_short.view(), y.data()),
                    Catch::Contains("activations of shape 1 x 32 for weights of shape 4 x 64"));
  CHECK_THROWS_AS(bc::gemv(w.view(), x_two_rows.view(), y.data()), bc::shape_error);
  const auto x = bc::quantize<bc::mxint8>(v.data(), 1, 64);
  const bc::mx_activations<bc::mxfp4> prepared(x.view());
  CHECK_THROWS_WITH(bc::dot(w.view(), 4, prepared), Catch::Contains("row 4 of weights of shape 4 x 64"));
}
