// SPDX-License-Identifier: MIT
// Reading checkpoint weights and measuring what quantization did to them: BF16/F16 -> float
// widening and the sums behind an SQNR. Plain loops over fixed groups of 16 lanes, written
// for the compiler to vectorize at whatever instruction set the including file (or each
// dispatch_<isa> translation unit) is compiled for. The widening is exact; the sums run in 16
// lanes indexed by position and are added in a fixed order, so they do not depend on alignment,
// chunking or threads (between instruction sets they may differ in the last bits, where the
// compiler fuses multiply-adds). Every function takes the architecture it is compiled for as
// a template argument, like the SIMD kernels: copies compiled with different instruction-set
// flags are different functions, never merged by the linker into one that the CPU may lack.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace blockcast {

/// Signal and noise of a quantized array: sum w^2 and sum (w - q)^2.
struct error_sums {
  double signal = 0, noise = 0;
};

namespace portable {

inline constexpr std::size_t lanes = 16;

/// n little-endian BF16 values (any alignment) to float: a BF16 is the top half of an FP32.
template <class Arch>
void widen_bf16(const std::uint8_t* src, std::size_t n, float* out) {
  std::size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    std::uint16_t h[lanes];
    std::memcpy(h, src + 2 * i, sizeof h);
    for (std::size_t k = 0; k < lanes; ++k) {  // stored lane by lane: one vector store, no stack copy
      const std::uint32_t bits = static_cast<std::uint32_t>(h[k]) << 16;
      std::memcpy(out + i + k, &bits, 4);
    }
  }
  if (i < n) {  // the last, partial group through a zero-padded one
    std::uint16_t h[lanes] = {};
    std::uint32_t bits[lanes];
    std::memcpy(h, src + 2 * i, 2 * (n - i));
    for (std::size_t k = 0; k < lanes; ++k) bits[k] = static_cast<std::uint32_t>(h[k]) << 16;
    std::memcpy(out + i, bits, 4 * (n - i));
  }
}

/// One IEEE binary16 to float, exactly, without branches (so that loops over it vectorize).
template <class Arch>
float f16_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16, magnitude = h & 0x7fffu;
  // normal numbers: rebias the exponent (127 - 15 = 112); Inf/NaN: exponent all ones again
  std::uint32_t bits = (magnitude << 13) + (112u << 23);
  bits = magnitude >= 0x7c00u ? bits + (112u << 23) : bits;
  // zero and subnormals: magnitude * 2^-24 is exact in float
  const float small = static_cast<float>(static_cast<std::int32_t>(magnitude)) * 5.9604644775390625e-8f;
  std::uint32_t small_bits;
  std::memcpy(&small_bits, &small, 4);
  bits = magnitude < 0x0400u ? small_bits : bits;
  bits |= sign;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

/// n little-endian IEEE binary16 values (any alignment) to float.
template <class Arch>
void widen_f16(const std::uint8_t* src, std::size_t n, float* out) {
  std::size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    std::uint16_t h[lanes];
    std::memcpy(h, src + 2 * i, sizeof h);
    for (std::size_t k = 0; k < lanes; ++k) out[i + k] = f16_to_float<Arch>(h[k]);
  }
  if (i < n) {
    std::uint16_t h[lanes] = {};
    float f[lanes];
    std::memcpy(h, src + 2 * i, 2 * (n - i));
    for (std::size_t k = 0; k < lanes; ++k) f[k] = f16_to_float<Arch>(h[k]);
    std::memcpy(out + i, f, 4 * (n - i));
  }
}

namespace detail {
template <class Arch, class T>
error_sums lane_sums(const float* w, const float* q, std::size_t n) {
  T s[lanes] = {}, e[lanes] = {};
  std::size_t i = 0;
  for (; i + lanes <= n; i += lanes)
    for (std::size_t k = 0; k < lanes; ++k) {
      const T a = static_cast<T>(w[i + k]), d = a - static_cast<T>(q[i + k]);
      s[k] += a * a;
      e[k] += d * d;
    }
  for (std::size_t k = 0; i < n; ++i, ++k) {
    const T a = static_cast<T>(w[i]), d = a - static_cast<T>(q[i]);
    s[k] += a * a;
    e[k] += d * d;
  }
  error_sums r;
  for (std::size_t k = 0; k < lanes; ++k) r.signal += static_cast<double>(s[k]), r.noise += static_cast<double>(e[k]);
  return r;
}
}  // namespace detail

/// sum w^2 and sum (w - q)^2 over n values: in float lanes over pieces of 4096 values, each
/// piece's lanes added in double, and a piece summed again in double when a float sum
/// overflowed (so finite inputs always give finite sums).
template <class Arch>
error_sums squared_error_sums(const float* w, const float* q, std::size_t n) {
  constexpr std::size_t piece = 4096;
  error_sums total;
  for (std::size_t b = 0; b < n; b += piece) {
    const std::size_t m = n - b < piece ? n - b : piece;
    error_sums part = detail::lane_sums<Arch, float>(w + b, q + b, m);
    if (!std::isfinite(part.signal) || !std::isfinite(part.noise)) part = detail::lane_sums<Arch, double>(w + b, q + b, m);
    total.signal += part.signal;
    total.noise += part.noise;
  }
  return total;
}

}  // namespace portable
}  // namespace blockcast
