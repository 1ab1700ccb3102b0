// SPDX-License-Identifier: MIT
// The stable entry points: shapes, bad input, the preset table.
#include <blockcast/blockcast.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

namespace bc = blockcast;

TEST_CASE("empty tensors are fine", "[api]") {
  const auto p = bc::quantize<bc::mxfp4>(nullptr, 0);
  CHECK(p.size() == 0);
  CHECK(p.codes().size() == 0);
  CHECK(p.scales().size() == 0);
  bc::dequantize(p, nullptr);
  bc::fake_quantize<bc::nvfp4>(nullptr, nullptr, 0);
}

TEST_CASE("NaN and Inf make their block NaN and leave the other blocks alone", "[api]") {
  std::vector<float> x(96, 1.0f), y(96);
  x[40] = std::numeric_limits<float>::infinity();
  x[70] = std::numeric_limits<float>::quiet_NaN();
  const auto p = bc::quantize<bc::mxfp8_e4m3>(x.data(), x.size());
  CHECK(p.scales()[0] == 127 - 8);
  CHECK(p.scales()[1] == 0xff);
  CHECK(p.scales()[2] == 0xff);
  bc::dequantize(p, y.data());
  for (int i = 0; i < 32; ++i) CHECK(y[i] == 1.0f);
  for (int i = 32; i < 96; ++i) CHECK(std::isnan(y[i]));

  // NVFP4: the tensor scale comes from the finite values; the NaN block decodes to NaN.
  const auto q = bc::quantize<bc::nvfp4>(x.data(), x.size());
  CHECK(std::isfinite(q.tensor_scale()));
  bc::dequantize(q, y.data());
  for (int i = 0; i < 32; ++i) CHECK(y[i] == 1.0f);
  CHECK(std::isnan(y[40]));
  CHECK(std::isnan(y[33]));
  CHECK(y[50] == 1.0f);  // block 3 (48..63) is clean
}

TEST_CASE("bad shapes and sizes raise shape_error with what was wrong", "[api][errors]") {
  std::vector<float> x(64, 1.0f), y(64);
  std::vector<std::uint8_t> codes(32), scales(2);
  // a view whose buffers do not fit its shape
  CHECK_THROWS_AS((bc::mutable_packed_view<bc::mxfp4>(3, 32, codes, scales)), bc::shape_error);
  CHECK_NOTHROW((bc::mutable_packed_view<bc::mxfp4>(2, 32, codes, scales)));
  CHECK_THROWS_WITH((bc::mutable_packed_view<bc::mxfp4>(2, 33, codes, scales)),
                    Catch::Contains("2 x 33") && Catch::Contains("needs 34 code bytes"));
  // n that does not fit the view
  bc::mutable_packed_view<bc::mxfp4> view(2, 32, bc::span<std::uint8_t>(codes.data(), 32), scales);
  CHECK_THROWS_AS(bc::quantize_into<bc::mxfp4>(x.data(), 1, 64, view), bc::shape_error);
  CHECK_NOTHROW(bc::quantize_into<bc::mxfp4>(x.data(), 2, 32, view));
  // an output that is too small
  const auto p = bc::quantize<bc::mxfp4>(x.data(), 64);
  CHECK_THROWS_WITH(bc::dequantize(p, bc::span<float>(y.data(), 63)), Catch::Contains("63"));
  CHECK_NOTHROW(bc::dequantize(p, bc::span<float>(y.data(), 64)));
  // `{}` is the default options, not a capacity of 0
  std::vector<float> z(64, -1.0f);
  CHECK_NOTHROW(bc::dequantize(p, z.data(), {}));
  bc::dequantize(p, y.data());
  CHECK(z == y);
  // a shape whose size overflows
  CHECK_THROWS_AS(bc::quantize<bc::mxfp4>(x.data(), std::numeric_limits<std::size_t>::max(), 2),
                  bc::shape_error);
}

TEST_CASE("bad options raise invalid_argument", "[api][errors]") {
  std::vector<float> x(16, 1.0f), y(16);
  bc::cast_options opt;
  opt.threads = 0;
  CHECK_THROWS_AS(bc::fake_quantize<bc::mxfp4>(x.data(), y.data(), 16, opt), bc::invalid_argument);
  for (float bad : {-1.0f, std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()}) {
    bc::cast_options o;
    o.tensor_amax = bad;
    CHECK_THROWS_AS(bc::quantize<bc::nvfp4>(x.data(), 16, o), bc::invalid_argument);
  }
}

TEST_CASE("the preset table: names, sizes, dispatch, unknown names", "[api][errors]") {
  CHECK(bc::preset_formats().size() == 7);
  CHECK(bc::find_format("mxfp4").bits_per_value == 4.25);
  CHECK(bc::find_format("nvfp4").bits_per_value == 4.5);
  CHECK(bc::find_format("mxfp6_e2m3").bits_per_value == 6.25);
  CHECK(bc::find_format("mxfp8_e4m3").max_value == 448.0f);
  CHECK(bc::find_format("mxint8").block_size == 32);
  CHECK(bc::visit_format("mxfp6_e3m2", [](auto tag) {
          return std::is_same_v<typename decltype(tag)::type, bc::mxfp6_e3m2>;
        }));
  for (const auto& info : bc::preset_formats())
    CHECK(bc::visit_format(info.name, [](auto tag) { return decltype(tag)::type::block_size; }) ==
          info.block_size);
  CHECK_THROWS_AS(bc::find_format("mxfp5"), bc::unknown_format);
  CHECK_THROWS_WITH(bc::visit_format("fp4", [](auto) { return 0; }),
                    Catch::Contains("unknown format 'fp4'") && Catch::Contains("mxfp4"));
}

TEST_CASE("a user-defined block format (E3M4 in blocks of 16) quantizes", "[api]") {
  using e3m4 = bc::float_format<3, 4, bc::specials::none>;
  using mx_e3m4_16 = bc::block_format<e3m4, bc::e8m0, 16>;
  std::vector<float> x(40), y(40);
  for (int i = 0; i < 40; ++i) x[i] = std::sin(0.3f * i) * 10;
  const auto p = bc::quantize<mx_e3m4_16>(x.data(), x.size());
  CHECK(p.scales().size() == 3);
  CHECK(p.codes().size() == 40);
  bc::dequantize(p, y.data());
  for (int i = 0; i < 40; ++i) CHECK(std::fabs(y[i] - x[i]) <= std::fabs(x[i]) / 16 + 1e-6f);
}
