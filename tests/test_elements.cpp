// SPDX-License-Identifier: MIT
// Every code of every element and scale format: the golden code tables, decode-encode round
// trips, values unique and ordered, and the limits of docs/formats.md.
#include <blockcast/blockcast.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <tuple>

#include "conformance.hpp"

namespace bc = blockcast;

namespace {

template <class Element>
struct element_case;
template <>
struct element_case<bc::fp8_e4m3> { static constexpr const char* file = "codes_fp8_e4m3.txt"; };
template <>
struct element_case<bc::fp8_e5m2> { static constexpr const char* file = "codes_fp8_e5m2.txt"; };
template <>
struct element_case<bc::fp6_e3m2> { static constexpr const char* file = "codes_fp6_e3m2.txt"; };
template <>
struct element_case<bc::fp6_e2m3> { static constexpr const char* file = "codes_fp6_e2m3.txt"; };
template <>
struct element_case<bc::fp4_e2m1> { static constexpr const char* file = "codes_fp4_e2m1.txt"; };
template <>
struct element_case<bc::int8> { static constexpr const char* file = "codes_int8.txt"; };

using element_formats =
    std::tuple<bc::fp8_e4m3, bc::fp8_e5m2, bc::fp6_e3m2, bc::fp6_e2m3, bc::fp4_e2m1, bc::int8>;

std::string classify(float v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return "inf";
  if (v == 0.0f) return "zero";
  return "normal";  // refined per format below
}

template <class Element>
std::uint8_t encode(float v) {
  if constexpr (Element::is_float) return Element::encode(v);
  else return Element::encode(v, bc::rounding::nearest_even, 0, /*full_range=*/true);
}

}  // namespace

TEMPLATE_LIST_TEST_CASE("element code tables match the golden files", "[exhaustive][golden]",
                        element_formats) {
  using E = TestType;
  const auto lines = conformance::read_tokens(conformance::data_path(element_case<E>::file));
  std::size_t rows = 0;
  for (const auto& t : lines) {
    if (t.size() != 3) continue;  // header keys
    const std::uint8_t code = static_cast<std::uint8_t>(conformance::hex(t[0]));
    const float v = E::decode(code);
    INFO("code " << int(code));
    CHECK(conformance::same_float(bc::detail::float_bits(v), conformance::hex(t[1])));
    std::string cls = classify(v);
    if constexpr (E::is_float)
      if (cls == "normal" && std::fabs(v) < E::min_normal()) cls = "subnormal";
    CHECK(cls == t[2]);
    ++rows;
  }
  CHECK(rows == (1u << E::bits));
}

TEMPLATE_LIST_TEST_CASE("every code decodes and encodes back", "[exhaustive]", element_formats) {
  using E = TestType;
  for (unsigned c = 0; c < (1u << E::bits); ++c) {
    const auto code = static_cast<std::uint8_t>(c);
    const float v = E::decode(code);
    INFO("code " << c << " value " << v);
    if (std::isnan(v)) {
      CHECK(std::isnan(E::decode(encode<E>(v))));
    } else {
      CHECK(encode<E>(v) == code);
    }
  }
}

TEMPLATE_LIST_TEST_CASE("finite values are unique and ordered like their magnitudes",
                        "[exhaustive]", element_formats) {
  using E = TestType;
  std::map<float, int> seen;  // value -> count (+0 and -0 compare equal: one entry)
  float previous = -1.0f;
  for (unsigned m = 0; m <= E::max_magnitude; ++m) {
    // positive codes: magnitude order is value order
    const float v = E::decode(static_cast<std::uint8_t>(m));
    INFO("magnitude " << m);
    REQUIRE(std::isfinite(v));
    CHECK(v > previous);
    previous = v;
    const float neg = E::decode(E::make_code(true, m));
    if (m > 0) CHECK(neg == -v);
    ++seen[v];
    if (m > 0) ++seen[neg];
  }
  for (const auto& [value, count] : seen) CHECK(count == 1);
}

TEST_CASE("element limits are those of docs/formats.md", "[exhaustive]") {
  // max normal, min normal, min subnormal
  CHECK(bc::fp8_e4m3::max_normal() == 448.0f);
  CHECK(bc::fp8_e4m3::min_normal() == std::ldexp(1.0f, -6));
  CHECK(bc::fp8_e4m3::min_subnormal() == std::ldexp(1.0f, -9));
  CHECK(bc::fp8_e4m3::emax == 8);
  CHECK(bc::fp8_e4m3::bias == 7);
  CHECK(std::isnan(bc::fp8_e4m3::decode(0x7f)));  // S.1111.111
  CHECK(std::isnan(bc::fp8_e4m3::decode(0xff)));
  CHECK(bc::fp8_e4m3::decode(0x7e) == 448.0f);     // S.1111.110, not NaN: no Inf in E4M3
  CHECK(!bc::fp8_e4m3::has_inf);

  CHECK(bc::fp8_e5m2::max_normal() == 57344.0f);
  CHECK(bc::fp8_e5m2::min_normal() == std::ldexp(1.0f, -14));
  CHECK(bc::fp8_e5m2::min_subnormal() == std::ldexp(1.0f, -16));
  CHECK(bc::fp8_e5m2::emax == 15);
  CHECK(bc::fp8_e5m2::decode(0x7c) == INFINITY);  // S.11111.00
  CHECK(bc::fp8_e5m2::decode(0xfc) == -INFINITY);
  for (std::uint8_t c : {0x7d, 0x7e, 0x7f, 0xfd, 0xfe, 0xff}) CHECK(std::isnan(bc::fp8_e5m2::decode(c)));

  CHECK(bc::fp6_e3m2::max_normal() == 28.0f);
  CHECK(bc::fp6_e3m2::min_normal() == 0.25f);
  CHECK(bc::fp6_e3m2::min_subnormal() == 0.0625f);
  CHECK(bc::fp6_e3m2::emax == 4);
  CHECK(bc::fp6_e3m2::bias == 3);

  CHECK(bc::fp6_e2m3::max_normal() == 7.5f);
  CHECK(bc::fp6_e2m3::min_normal() == 1.0f);
  CHECK(bc::fp6_e2m3::min_subnormal() == 0.125f);
  CHECK(bc::fp6_e2m3::emax == 2);

  CHECK(bc::fp4_e2m1::max_normal() == 6.0f);
  CHECK(bc::fp4_e2m1::min_subnormal() == 0.5f);
  const float e2m1[] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
  for (int c = 0; c < 8; ++c) {
    CHECK(bc::fp4_e2m1::decode(static_cast<std::uint8_t>(c)) == e2m1[c]);
    CHECK(bc::fp4_e2m1::decode(static_cast<std::uint8_t>(c | 8)) == -e2m1[c]);
  }
  CHECK(std::signbit(bc::fp4_e2m1::decode(0x8)));  // -0

  CHECK(bc::int8::max_normal() == 127.0f / 64.0f);
  CHECK(bc::int8::min_subnormal() == 1.0f / 64.0f);
  CHECK(bc::int8::decode(0x80) == -2.0f);  // only reachable with the full range
  CHECK(bc::int8::decode(0x81) == -127.0f / 64.0f);
}

TEST_CASE("single-value encode saturates, rounds and keeps specials", "[exhaustive]") {
  CHECK(bc::fp8_e4m3::encode(1e9f) == 0x7e);
  CHECK(bc::fp8_e4m3::encode(-1e9f) == 0xfe);
  CHECK(bc::fp8_e4m3::encode(INFINITY) == 0x7e);  // no Inf in E4M3: saturates
  CHECK(bc::fp8_e4m3::encode(NAN) == 0x7f);
  CHECK(bc::fp8_e5m2::encode(INFINITY) == 0x7c);
  CHECK(bc::fp8_e5m2::encode(-INFINITY) == 0xfc);
  CHECK(bc::fp8_e5m2::encode(1e9f) == 0x7b);  // finite values saturate
  CHECK(bc::fp4_e2m1::encode(5.0f) == 0x6);   // tie between 4 and 6: to even (4)
  CHECK(bc::fp4_e2m1::encode(5.0f, bc::rounding::nearest_away) == 0x7);
  CHECK(bc::fp4_e2m1::encode(5.9f, bc::rounding::toward_zero) == 0x6);
  CHECK(bc::fp4_e2m1::encode(0.25f) == 0x0);  // tie between 0 and 0.5: to even (0)
  CHECK(bc::fp4_e2m1::encode(-0.0f) == 0x8);
  CHECK(bc::int8::encode(-0.0f) == 0x00);     // two's complement has one zero
  CHECK(bc::int8::encode(-2.0f) == 0x81);     // symmetric by default
  CHECK(bc::int8::encode(-2.0f, bc::rounding::nearest_even, 0, true) == 0x80);
  CHECK(bc::int8::encode(2.0f, bc::rounding::nearest_even, 0, true) == 0x7f);
}

TEST_CASE("E8M0 codes match the golden table", "[exhaustive][golden]") {
  const auto lines = conformance::read_tokens(conformance::data_path("codes_e8m0.txt"));
  std::size_t rows = 0;
  for (const auto& t : lines) {
    if (t.size() != 2 || t[0] == "format" || t[0] == "bits") continue;
    const auto code = static_cast<std::uint8_t>(conformance::hex(t[0]));
    INFO("code " << int(code));
    CHECK(conformance::same_float(bc::detail::float_bits(bc::e8m0::decode(code)),
                                  conformance::hex(t[1])));
    if (code != 0xff) CHECK(bc::e8m0::from_exponent(bc::e8m0::exponent(code)) == code);
    // the bit-built decode equals the constexpr power-of-two construction
    CHECK(conformance::same_float(bc::detail::float_bits(bc::e8m0::decode(code)),
                                  bc::detail::float_bits(bc::e8m0::decode_exact(code))));
    ++rows;
  }
  CHECK(rows == 256);
  CHECK(bc::detail::float_bits(bc::e8m0::decode(0x00)) == 0x00400000u);  // 2^-127, subnormal
  CHECK(bc::e8m0::decode(0xfe) == std::ldexp(1.0f, 127));
  CHECK(std::isnan(bc::e8m0::decode(0xff)));
  CHECK(bc::e8m0::from_exponent(-500) == 0x00);
  CHECK(bc::e8m0::from_exponent(500) == 0xfe);
}

TEST_CASE("UE4M3 scale codes: every non-negative E4M3 code", "[exhaustive]") {
  float previous = -1.0f;
  for (unsigned c = 0; c < 0x7f; ++c) {
    const float v = bc::ue4m3::decode(static_cast<std::uint8_t>(c));
    INFO("code " << c);
    CHECK(v > previous);
    CHECK(bc::ue4m3::encode(v) == c);
    previous = v;
  }
  CHECK(bc::ue4m3::max_value() == 448.0f);
  CHECK(std::isnan(bc::ue4m3::decode(0x7f)));
  CHECK(bc::ue4m3::is_nan(bc::ue4m3::nan_code));
}

TEST_CASE("a user-defined E3M4 element works like the presets", "[exhaustive]") {
  using e3m4 = bc::float_format<3, 4, bc::specials::none>;
  STATIC_REQUIRE(e3m4::bias == 3);
  STATIC_REQUIRE(e3m4::emax == 4);
  CHECK(e3m4::max_normal() == 31.0f);  // 1.9375 * 2^4
  for (unsigned c = 0; c < 256; ++c)
    CHECK(e3m4::encode(e3m4::decode(static_cast<std::uint8_t>(c))) == c);
}
