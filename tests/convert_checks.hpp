// SPDX-License-Identifier: MIT
// Checks of the widening and SQNR-sum functions, shared by the per-ISA suites (header-only
// path) and the runtime-dispatch suite: the functions under test are passed in.
#pragma once

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace blockcast_test {

inline std::uint32_t bits_of(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// IEEE binary16 to float from the definition (not from the kernels' bit tricks).
inline float f16_reference(std::uint16_t h) {
  const bool negative = (h & 0x8000u) != 0;
  const int exponent = (h >> 10) & 0x1f, fraction = h & 0x3ff;
  float v;
  if (exponent == 0x1f) {
    if (fraction == 0) return negative ? -std::numeric_limits<float>::infinity() : std::numeric_limits<float>::infinity();
    const std::uint32_t nan = (negative ? 0x80000000u : 0u) | 0x7f800000u | (static_cast<std::uint32_t>(fraction) << 13);
    std::memcpy(&v, &nan, 4);
    return v;
  }
  v = exponent == 0 ? std::ldexp(static_cast<float>(fraction), -24) : std::ldexp(1.0f + static_cast<float>(fraction) / 1024.0f, exponent - 15);
  return negative ? -v : v;
}
inline float bf16_reference(std::uint16_t h) {
  const std::uint32_t u = static_cast<std::uint32_t>(h) << 16;
  float v;
  std::memcpy(&v, &u, 4);
  return v;
}

// Every one of the 65536 codes, then every length 0..70 at byte offsets 0..3 of the source
// (and 0..3 floats of the destination), each output compared by its bits.
template <class Widen, class Reference>
void check_widen(const char* name, Widen widen, Reference reference) {
  std::vector<std::uint8_t> all(2 * 65536);
  for (std::uint32_t c = 0; c < 65536; ++c) all[2 * c] = static_cast<std::uint8_t>(c), all[2 * c + 1] = static_cast<std::uint8_t>(c >> 8);
  std::vector<float> out(65536);
  widen(all.data(), 65536, out.data());
  for (std::uint32_t c = 0; c < 65536; ++c)
    if (bits_of(out[c]) != bits_of(reference(static_cast<std::uint16_t>(c)))) {
      FAIL(name << ": code 0x" << std::hex << c << " gave bits 0x" << bits_of(out[c]) << ", wanted 0x"
                << bits_of(reference(static_cast<std::uint16_t>(c))));
    }
  std::mt19937 rng(5);
  std::vector<std::uint8_t> src(2 * 80 + 4);
  for (auto& b : src) b = static_cast<std::uint8_t>(rng());
  for (std::size_t offset = 0; offset < 4; ++offset)
    for (std::size_t dst_offset = 0; dst_offset < 4; ++dst_offset)
      for (std::size_t n = 0; n <= 70; ++n) {
        std::vector<float> got(n + 5, -7.0f);
        widen(src.data() + offset, n, got.data() + dst_offset);
        for (std::size_t i = 0; i < n; ++i) {
          std::uint16_t h;
          std::memcpy(&h, src.data() + offset + 2 * i, 2);
          if (bits_of(got[dst_offset + i]) != bits_of(reference(h)))
            FAIL(name << ": length " << n << ", source offset " << offset << ", value " << i << " (code 0x" << std::hex << h
                      << ") gave bits 0x" << bits_of(got[dst_offset + i]));
        }
        for (std::size_t i = 0; i < dst_offset; ++i) REQUIRE(got[i] == -7.0f);  // nothing written outside
        for (std::size_t i = dst_offset + n; i < got.size(); ++i) REQUIRE(got[i] == -7.0f);
      }
}

template <class WidenBf16, class WidenF16>
void check_widening(WidenBf16 bf16, WidenF16 f16) {
  check_widen("widen_bf16", bf16, bf16_reference);
  check_widen("widen_f16", f16, f16_reference);
}

// The largest finite magnitude from stored bits, against widening every value and comparing
// floats: all 65536 BF16 and F16 codes (each alone among zeros, so every code is the maximum
// once), random codes at every length 0..100 and byte offset 0..3, and F32 values with Inf,
// NaN, subnormals and negatives.
template <class MaxFinite>
void check_max_finite(MaxFinite max_finite) {
  using bc_type = blockcast::stored_float;
  const auto reference = [](const std::uint8_t* src, std::size_t n, bc_type type) {
    float m = 0.0f;
    for (std::size_t i = 0; i < n; ++i) {
      float v;
      if (type == bc_type::f32) {
        std::memcpy(&v, src + 4 * i, 4);
      } else {
        std::uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        v = type == bc_type::bf16 ? bf16_reference(h) : f16_reference(h);
      }
      if (std::isfinite(v) && std::fabs(v) > m) m = std::fabs(v);
    }
    return m;
  };
  for (bc_type type : {bc_type::bf16, bc_type::f16}) {
    const char* name = type == bc_type::bf16 ? "BF16" : "F16";
    std::vector<std::uint8_t> one(4 * 67, 0);  // room for 67 F32 values too, so no read can leave it
    for (std::uint32_t c = 0; c < 65536; ++c) {
      const std::size_t at = c % 67;  // the code at every position of a vector and its tail
      one[2 * at] = static_cast<std::uint8_t>(c), one[2 * at + 1] = static_cast<std::uint8_t>(c >> 8);
      const float got = max_finite(one.data(), 67, type), want = reference(one.data(), 67, type);
      if (bits_of(got) != bits_of(want))
        FAIL(name << ": code 0x" << std::hex << c << " at index " << std::dec << at << " gave " << got << ", wanted " << want);
      one[2 * at] = one[2 * at + 1] = 0;
    }
  }
  std::mt19937 rng(9);
  std::vector<std::uint8_t> src(4 * 100 + 4);
  for (auto& b : src) b = static_cast<std::uint8_t>(rng());
  // F32: a few specials among ordinary values
  const float specials[] = {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::max(),
                            -std::numeric_limits<float>::denorm_min(), 0.0f};
  for (std::size_t i = 0; i < 100; i += 7) std::memcpy(src.data() + 1 + 4 * i, &specials[(i / 7) % 6], 4);
  for (bc_type type : {bc_type::bf16, bc_type::f16, bc_type::f32})
    for (std::size_t offset = 0; offset < 4; ++offset)
      for (std::size_t n = 0; n <= 100; ++n) {
        const float got = max_finite(src.data() + offset, n, type), want = reference(src.data() + offset, n, type);
        if (bits_of(got) != bits_of(want))
          FAIL("type " << static_cast<int>(type) << ", length " << n << ", byte offset " << offset << ": gave " << got
                       << ", wanted " << want);
      }
  SUCCEED("all stored floats");
}

// The sums against double-precision sums (float lanes: relative error well under 1e-5 for
// these lengths), the same bits at every alignment, finite for huge finite values, NaN in,
// NaN out.
template <class Sums>
void check_error_sums(Sums sums) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal;
  std::vector<float> w(12000 + 8), q(w.size());
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = normal(rng), q[i] = w[i] + 0.01f * normal(rng);
  for (std::size_t n : {0, 1, 15, 16, 17, 100, 4095, 4096, 4097, 11008, 12000}) {
    double s = 0, e = 0;
    for (std::size_t i = 0; i < n; ++i) s += double(w[i]) * w[i], e += (double(w[i]) - q[i]) * (double(w[i]) - q[i]);
    const auto got = sums(w.data(), q.data(), n);
    INFO("length " << n);
    CHECK(std::abs(got.signal - s) <= 1e-5 * s);
    CHECK(std::abs(got.noise - e) <= 1e-5 * e);
    for (std::size_t shift = 1; shift < 8; ++shift) {  // the same values at other alignments
      std::vector<float> w2(n + shift), q2(n + shift);
      std::copy(w.begin(), w.begin() + static_cast<std::ptrdiff_t>(n), w2.begin() + static_cast<std::ptrdiff_t>(shift));
      std::copy(q.begin(), q.begin() + static_cast<std::ptrdiff_t>(n), q2.begin() + static_cast<std::ptrdiff_t>(shift));
      const auto again = sums(w2.data() + shift, q2.data() + shift, n);
      INFO("shifted by " << shift << " floats");
      CHECK(again.signal == got.signal);
      CHECK(again.noise == got.noise);
    }
  }
  std::vector<float> big(100, 3e30f), zero(100, 0.0f);  // (3e30)^2 overflows float, not double
  const auto huge = sums(big.data(), zero.data(), big.size());
  CHECK(huge.signal == Approx(100 * 9e60));
  CHECK(huge.noise == Approx(100 * 9e60));
  big[3] = std::numeric_limits<float>::quiet_NaN();
  CHECK(std::isnan(sums(big.data(), zero.data(), big.size()).signal));
}

}  // namespace blockcast_test
