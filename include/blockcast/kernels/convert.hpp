// SPDX-License-Identifier: MIT
// Reading checkpoint weights and measuring what quantization did to them: BF16/F16 -> float
// widening and the sums behind an SQNR, compiled for whatever instruction set the including
// file (or each dispatch_<isa> translation unit) is built for: the widening as plain loops for
// the compiler to vectorize, the sums as xsimd batches. The widening is exact; the sums run in
// 16 float lanes indexed by position and are added in a fixed order, so they do not depend on
// alignment, chunking or threads (between instruction sets they may differ in the last bits:
// the order within a lane follows the vector width, and the multiply-adds are fused where the
// ISA has FMA). Every function takes the architecture it is compiled for as a template
// argument, like the SIMD kernels: copies compiled with different instruction-set flags are
// different functions, never merged by the linker into one that the CPU may lack.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>

#include <xsimd/xsimd.hpp>

namespace blockcast {

/// Signal and noise of a quantized array: sum w^2 and sum (w - q)^2.
struct error_sums {
  double signal = 0, noise = 0;
};

/// How a checkpoint stores its float values (little-endian).
enum class stored_float { f32, f16, bf16 };

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
/// The largest finite magnitude among n values holding IEEE bits (S: int16_t or int32_t, of
/// the format's width), as bits: magnitudes order like their bit patterns, so nothing is
/// widened, and with the sign bit cleared they are non-negative signed integers, whose
/// compare and max every ISA has. `inf` is the format's first non-finite magnitude; Inf and
/// NaN are skipped; 0 when none is finite.
template <class Arch, class S>
S max_finite_bits(const std::uint8_t* src, std::size_t n, S inf) {
  using batch = xsimd::batch<S, Arch>;
  constexpr std::size_t width = batch::size;
  constexpr S magnitude_bits = std::numeric_limits<S>::max();
  batch m(S{0});
  std::size_t i = 0;
  for (; i + width <= n; i += width) {
    // an unaligned vector load (a copy to an aligned array first stalls store forwarding)
    const batch magnitude = batch::load_unaligned(reinterpret_cast<const S*>(src + sizeof(S) * i)) & batch(magnitude_bits);
    // all ones where magnitude < inf (the sign of the difference), so Inf and NaN become 0:
    // arithmetic every ISA has for 16-bit lanes, where xsimd's compare-and-select is scalar on AVX2
    const batch finite = (magnitude - batch(inf)) >> (8 * static_cast<int>(sizeof(S)) - 1);
    m = xsimd::max(m, magnitude & finite);
  }
  alignas(64) S lane[width];
  m.store_aligned(lane);
  S r = 0;
  for (std::size_t k = 0; k < width; ++k) r = lane[k] > r ? lane[k] : r;
  for (; i < n; ++i) {
    S v;
    std::memcpy(&v, src + sizeof(S) * i, sizeof v);
    v = static_cast<S>(v & magnitude_bits);
    r = v < inf && v > r ? v : r;
  }
  return r;
}
}  // namespace detail

/// The largest finite |value| of n stored floats (any alignment); 0 when none is finite. NVFP4's
/// tensor amax in one pass over a checkpoint's bytes.
template <class Arch>
float max_finite_magnitude(const std::uint8_t* src, std::size_t n, stored_float type) {
  float f;
  if (type == stored_float::f32) {
    const std::int32_t bits = detail::max_finite_bits<Arch, std::int32_t>(src, n, 0x7f800000);
    std::memcpy(&f, &bits, 4);
    return f;
  }
  const std::int16_t bits = detail::max_finite_bits<Arch, std::int16_t>(
      src, n, type == stored_float::bf16 ? std::int16_t{0x7f80} : std::int16_t{0x7c00});
  std::uint8_t b[2];
  std::memcpy(b, &bits, 2);
  if (type == stored_float::bf16) widen_bf16<Arch>(b, 1, &f);
  else widen_f16<Arch>(b, 1, &f);
  return f;
}

namespace detail {
/// The 16 lanes' sums in double, in lane order.
template <class T>
error_sums add_lanes(const T* s, const T* e) {
  error_sums r;
  for (std::size_t k = 0; k < lanes; ++k) r.signal += static_cast<double>(s[k]), r.noise += static_cast<double>(e[k]);
  return r;
}
/// In double: the fallback for a piece whose float sums overflowed.
inline error_sums double_lane_sums(const float* w, const float* q, std::size_t n) {
  double s[lanes] = {}, e[lanes] = {};
  for (std::size_t i = 0; i < n; ++i) {
    const double a = w[i], d = a - static_cast<double>(q[i]);
    s[i % lanes] += a * a;
    e[i % lanes] += d * d;
  }
  return add_lanes(s, e);
}
/// In float, 16 lanes, lane k holding the values at k mod 16: summed in four vectors of Arch's
/// per step (four multiply-adds in flight: one chain of dependent multiply-adds waits 4 cycles
/// for each), folded into the 16 lanes in a fixed order. Written with xsimd batches, not as a
/// loop for the compiler: GCC 12 vectorized that loop across its iterations with a transpose
/// and ran it at 1.2 G values/s instead of 14.
template <class Arch>
error_sums float_lane_sums(const float* w, const float* q, std::size_t n) {
  using batch = xsimd::batch<float, Arch>;
  constexpr std::size_t width = batch::size, parts = 4, per16 = lanes / width;  // vectors per 16 lanes
  static_assert(lanes % width == 0 && parts % per16 == 0, "16 lanes in whole vectors");
  batch s[parts], e[parts];
  for (std::size_t p = 0; p < parts; ++p) s[p] = e[p] = batch(0.0f);
  std::size_t i = 0;
  for (; i + parts * width <= n; i += parts * width)
    for (std::size_t p = 0; p < parts; ++p) {
      const batch a = batch::load_unaligned(w + i + p * width), d = a - batch::load_unaligned(q + i + p * width);
      s[p] = xsimd::fma(a, a, s[p]);
      e[p] = xsimd::fma(d, d, e[p]);
    }
  for (std::size_t p = per16; p < parts; ++p) s[p % per16] += s[p], e[p % per16] += e[p];
  for (; i + width <= n; i += width) {  // whole vectors left: into their lanes
    const std::size_t p = i / width % per16;
    const batch a = batch::load_unaligned(w + i), d = a - batch::load_unaligned(q + i);
    s[p] = xsimd::fma(a, a, s[p]);
    e[p] = xsimd::fma(d, d, e[p]);
  }
  alignas(64) float sl[lanes], el[lanes];
  for (std::size_t p = 0; p < per16; ++p) s[p].store_aligned(sl + p * width), e[p].store_aligned(el + p * width);
  for (std::size_t k = i % lanes; i < n; ++i, ++k) {  // the last values, lane by lane
    const float a = w[i], d = a - q[i];
    sl[k] += a * a;
    el[k] += d * d;
  }
  return add_lanes(sl, el);
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
    error_sums part = detail::float_lane_sums<Arch>(w + b, q + b, m);
    if (!std::isfinite(part.signal) || !std::isfinite(part.noise)) part = detail::double_lane_sums(w + b, q + b, m);
    total.signal += part.signal;
    total.noise += part.noise;
  }
  return total;
}

}  // namespace portable
}  // namespace blockcast
