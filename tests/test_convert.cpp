// SPDX-License-Identifier: MIT
// Widening BF16/F16 checkpoint values to float and the SQNR sums (kernels/convert.hpp), at the
// instruction set this file is compiled for: every code exactly, at every length class and
// byte alignment, against references written independently of the kernels.
#include <blockcast/blockcast.hpp>

#include <catch2/catch.hpp>

#include "convert_checks.hpp"

namespace bc = blockcast;

TEST_CASE("widen_bf16 and widen_f16 are exact for every code, length and alignment", "[convert]") {
  blockcast_test::check_widening(
      [](const std::uint8_t* s, std::size_t n, float* o) { bc::widen_bf16(s, n, o); },
      [](const std::uint8_t* s, std::size_t n, float* o) { bc::widen_f16(s, n, o); });
}

TEST_CASE("squared_error_sums: exact lanes, alignment-free, overflow-free", "[convert]") {
  blockcast_test::check_error_sums([](const float* w, const float* q, std::size_t n) { return bc::squared_error_sums(w, q, n); });
}

TEST_CASE("max_finite_magnitude: every 16-bit code, every length and alignment, F32 specials", "[convert]") {
  blockcast_test::check_max_finite(
      [](const std::uint8_t* s, std::size_t n, bc::stored_float t) { return bc::max_finite_magnitude(s, n, t); });
}
