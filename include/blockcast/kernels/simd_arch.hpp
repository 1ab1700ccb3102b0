// SPDX-License-Identifier: MIT
// The few operations xsimd 8.1 lacks, per architecture: a horizontal max of int32 lanes,
// widening bytes to int32 lanes and narrowing int32 lanes to bytes. Every helper has a generic
// overload (through memory) that any architecture, NEON included, can use; the intrinsic
// versions are tested against it by the per-architecture test runs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

// GCC 12's avx512fintrin.h trips -Wuninitialized on its own _mm512_undefined_epi32 (GCC bug
// 105593, fixed in 13). Diagnostics follow source locations, so silencing them around the
// first inclusion of the intrinsic headers covers exactly those lines.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <immintrin.h>
#endif
#include <xsimd/xsimd.hpp>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

namespace blockcast::simd::arch {

template <class Arch>
using i32 = xsimd::batch<std::int32_t, Arch>;

// ---- generic fallbacks -------------------------------------------------------------------

template <class Arch>
std::int32_t hmax(const i32<Arch>& v, xsimd::generic) {
  alignas(64) std::int32_t lanes[i32<Arch>::size];
  v.store_aligned(lanes);
  std::int32_t m = lanes[0];
  for (std::size_t i = 1; i < i32<Arch>::size; ++i) m = lanes[i] > m ? lanes[i] : m;
  return m;
}

/// Lanes i of the result = bytes[i] (zero-extended).
template <class Arch>
i32<Arch> widen_bytes(const std::uint8_t* bytes, xsimd::generic) {
  alignas(64) std::int32_t lanes[i32<Arch>::size];
  for (std::size_t i = 0; i < i32<Arch>::size; ++i) lanes[i] = bytes[i];
  return i32<Arch>::load_aligned(lanes);
}

/// bytes[i] = low byte of lane i.
template <class Arch>
void narrow_bytes(const i32<Arch>& v, std::uint8_t* bytes, xsimd::generic) {
  alignas(64) std::int32_t lanes[i32<Arch>::size];
  v.store_aligned(lanes);
  for (std::size_t i = 0; i < i32<Arch>::size; ++i) bytes[i] = static_cast<std::uint8_t>(lanes[i]);
}

// ---- x86 ---------------------------------------------------------------------------------

#if XSIMD_WITH_SSE4_1
template <class Arch>
std::int32_t hmax(const i32<Arch>& v, xsimd::sse4_1) {
  __m128i m = v;
  m = _mm_max_epi32(m, _mm_shuffle_epi32(m, _MM_SHUFFLE(1, 0, 3, 2)));
  m = _mm_max_epi32(m, _mm_shuffle_epi32(m, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(m);
}
template <class Arch>
i32<Arch> widen_bytes(const std::uint8_t* bytes, xsimd::sse4_1) {
  std::int32_t word;
  std::memcpy(&word, bytes, 4);
  return _mm_cvtepu8_epi32(_mm_cvtsi32_si128(word));
}
template <class Arch>
void narrow_bytes(const i32<Arch>& v, std::uint8_t* bytes, xsimd::sse4_1) {
  // lanes hold 0..255: unsigned saturation is the identity
  const __m128i b = _mm_packus_epi16(_mm_packus_epi32(v, v), _mm_setzero_si128());
  const std::int32_t word = _mm_cvtsi128_si32(b);
  std::memcpy(bytes, &word, 4);
}
#endif

#if XSIMD_WITH_AVX2
template <class Arch>
std::int32_t hmax(const i32<Arch>& v, xsimd::avx2) {
  __m128i m = _mm_max_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  m = _mm_max_epi32(m, _mm_shuffle_epi32(m, _MM_SHUFFLE(1, 0, 3, 2)));
  m = _mm_max_epi32(m, _mm_shuffle_epi32(m, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(m);
}
template <class Arch>
i32<Arch> widen_bytes(const std::uint8_t* bytes, xsimd::avx2) {
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(bytes)));
}
template <class Arch>
void narrow_bytes(const i32<Arch>& v, std::uint8_t* bytes, xsimd::avx2) {
  const __m128i lo = _mm256_castsi256_si128(v), hi = _mm256_extracti128_si256(v, 1);
  const __m128i b = _mm_packus_epi16(_mm_packus_epi32(lo, hi), _mm_setzero_si128());
  _mm_storel_epi64(reinterpret_cast<__m128i*>(bytes), b);
}
#endif

#if XSIMD_WITH_AVX512F
template <class Arch>
std::int32_t hmax(const i32<Arch>& v, xsimd::avx512f) {
  return _mm512_reduce_max_epi32(v);
}
template <class Arch>
i32<Arch> widen_bytes(const std::uint8_t* bytes, xsimd::avx512f) {
  return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes)));
}
template <class Arch>
void narrow_bytes(const i32<Arch>& v, std::uint8_t* bytes, xsimd::avx512f) {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(bytes), _mm512_cvtepi32_epi8(v));
}
#endif

// ---- entry points: the best overload for Arch --------------------------------------------

template <class Arch>
std::int32_t hmax(const i32<Arch>& v) {
  return hmax<Arch>(v, Arch{});
}
template <class Arch>
i32<Arch> widen_bytes(const std::uint8_t* bytes) {
  return widen_bytes<Arch>(bytes, Arch{});
}
template <class Arch>
void narrow_bytes(const i32<Arch>& v, std::uint8_t* bytes) {
  narrow_bytes<Arch>(v, bytes, Arch{});
}

// ---- bit-stream packing of whole groups of 8 codes (one code per byte in, out) -----------

/// Packs 8*groups codes of `Bits` (< 8) each from bytes into the little-endian bit stream.
template <int Bits>
void pack_groups(const std::uint8_t* codes, std::size_t groups, std::uint8_t* out) {
  static_assert(Bits < 8, "8-bit codes need no packing");
#if defined(__BMI2__)
  constexpr std::uint64_t mask = 0x0101010101010101ull * ((1u << Bits) - 1u);
  for (std::size_t g = 0; g < groups; ++g) {
    std::uint64_t x;
    std::memcpy(&x, codes + 8 * g, 8);
    const std::uint64_t packed = _pext_u64(x, mask);  // 8 codes -> Bits bytes, in order
    std::memcpy(out + Bits * g, &packed, Bits);
  }
#else
  for (std::size_t g = 0; g < groups; ++g) {
    std::uint64_t packed = 0;
    for (int i = 0; i < 8; ++i) packed |= static_cast<std::uint64_t>(codes[8 * g + i]) << (Bits * i);
    std::memcpy(out + Bits * g, &packed, Bits);
  }
#endif
}

/// Unpacks 8*groups codes of `Bits` (< 8) each into one byte each.
template <int Bits>
void unpack_groups(const std::uint8_t* in, std::size_t groups, std::uint8_t* codes) {
  static_assert(Bits < 8, "8-bit codes need no unpacking");
  for (std::size_t g = 0; g < groups; ++g) {
    std::uint64_t x = 0;
    std::memcpy(&x, in + Bits * g, Bits);
#if defined(__BMI2__)
    const std::uint64_t spread = _pdep_u64(x, 0x0101010101010101ull * ((1u << Bits) - 1u));
#else
    std::uint64_t spread = 0;
    for (int i = 0; i < 8; ++i) spread |= ((x >> (Bits * i)) & ((1u << Bits) - 1u)) << (8 * i);
#endif
    std::memcpy(codes + 8 * g, &spread, 8);
  }
}

}  // namespace blockcast::simd::arch
