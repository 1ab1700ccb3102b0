// SPDX-License-Identifier: MIT
// The per-architecture half of the MX dot products (kernels/mx_dot.hpp): exact integer sums
// of 16 weight blocks against MXINT8 activations, scaled and added into 16 FP32 partial sums.
// AVX-512BW has kernels (VNNI's vpdpbusd/vpdpwssd where the CPU has them, the 16-bit
// multiply-adds otherwise); every other architecture, and every format without a kernel
// here, takes the driver's block-by-block path, which gives the same bits.
//
// How the element codes meet the int8 activations:
//   * E2M1 (MXFP4, NVFP4): the 4-bit code is looked up (vpshufb) as integer + 12, an unsigned
//     byte, multiplied with the signed activation bytes; 12 * sum(x) is subtracted per block.
//   * INT8, E2M3, E3M2: the code is widened or looked up (vpermi2w) to a signed 16-bit integer
//     and multiplied with the activations widened to 16 bits.
//   * E4M3: its integers reach 448 * 2^9, so they go as two 16-bit halves (low byte, the rest)
//     whose products are recombined as lo + 256 * hi, exact in int32.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "blockcast/block/block_format.hpp"
#include "blockcast/element/bits.hpp"
#include "blockcast/kernels/simd_arch.hpp"

namespace blockcast {
template <class Element>
struct element_integers;  // kernels/mx_dot.hpp
}

namespace blockcast::simd::arch {

/// group_dot<Format, Arch>: adds the terms of 16 blocks at a time into 16 FP32 partial sums
/// (lane i = partial sum p[i] of mx_dot.hpp); declared for every architecture, defined where
/// has_group_dot says so.
template <class Format, class Arch, class Enable = void>
class group_dot;

/// The integer-sum kernel for a format on AVX-512 (void: none).
template <class Format>
struct avx512_block_sums {
  using type = void;
};

template <class Format, class Arch>
constexpr bool has_group_dot() {
#if XSIMD_WITH_AVX512BW
  return std::is_base_of_v<xsimd::avx512bw, Arch> &&
         !std::is_void_v<typename avx512_block_sums<Format>::type>;
#else
  return false;
#endif
}

#if XSIMD_WITH_AVX512BW
namespace avx512 {

/// acc + per lane the sum of 4 products of unsigned bytes u and signed bytes s (no
/// saturation anywhere for the u <= 24 used here).
BLOCKCAST_INLINE __m512i dot_u8s8(__m512i acc, __m512i u, __m512i s) {
#if defined(__AVX512VNNI__)
  return _mm512_dpbusd_epi32(acc, u, s);
#else
  return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), _mm512_set1_epi16(1)));
#endif
}
/// acc + per lane the sum of 2 products of signed 16-bit words.
BLOCKCAST_INLINE __m512i dot_s16(__m512i acc, __m512i a, __m512i b) {
#if defined(__AVX512VNNI__)
  return _mm512_dpwssd_epi32(acc, a, b);
#else
  return _mm512_add_epi32(acc, _mm512_madd_epi16(a, b));
#endif
}

/// Lane b = the sum of block b's lanes, from 16 / G vectors holding G blocks each (16 / G
/// consecutive lanes per block, blocks in order): a transposed reduction, levels 1 -> 2 ->
/// 4 -> 8 -> 16 blocks per vector.
template <int G>
BLOCKCAST_INLINE __m512i block_totals(__m512i* v) {
  static_assert(G == 1 || G == 2 || G == 4, "1, 2 or 4 blocks per vector");
  if constexpr (G == 1) {
    for (int i = 0; i < 8; ++i)
      v[i] = _mm512_add_epi32(_mm512_shuffle_i32x4(v[2 * i], v[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                              _mm512_shuffle_i32x4(v[2 * i], v[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  }
  if constexpr (G <= 2) {
    for (int i = 0; i < 4; ++i)
      v[i] = _mm512_add_epi32(_mm512_shuffle_i32x4(v[2 * i], v[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                              _mm512_shuffle_i32x4(v[2 * i], v[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
  }
  // 4 blocks per vector, one per 128-bit quarter -> quarter k: blocks 8i+k and 8i+4+k
  __m512i e[2];
  for (int i = 0; i < 2; ++i)
    e[i] = _mm512_add_epi32(_mm512_unpacklo_epi64(v[2 * i], v[2 * i + 1]),
                            _mm512_unpackhi_epi64(v[2 * i], v[2 * i + 1]));
  // -> lane 4k+j: block k+4j
  const __m512 a = _mm512_castsi512_ps(e[0]), b = _mm512_castsi512_ps(e[1]);
  const __m512i f = _mm512_add_epi32(_mm512_castps_si512(_mm512_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0))),
                                     _mm512_castps_si512(_mm512_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1))));
  return _mm512_permutexvar_epi32(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), f);
}

/// A 16-bit-word table lookup over 64 entries (index bits 0-5 of each word).
struct word_table64 {
  template <class Integer>
  explicit word_table64(Integer value_of) {
    alignas(64) std::int16_t t[64];
    for (int c = 0; c < 64; ++c) t[c] = static_cast<std::int16_t>(value_of(c));
    lo = _mm512_load_si512(t);
    hi = _mm512_load_si512(t + 32);
  }
  BLOCKCAST_INLINE __m512i operator()(__m512i index) const { return _mm512_permutex2var_epi16(lo, index, hi); }
  __m512i lo, hi;
};

/// E2M1 codes: 64 per vector as unsigned bytes integer + 12; G blocks per vector.
template <class Ints, std::size_t B>
struct e2m1_sums {
  static constexpr int offset = 12;
  e2m1_sums() {
    alignas(16) std::uint8_t t[16];
    for (int c = 0; c < 16; ++c) t[c] = static_cast<std::uint8_t>(Ints::integer(static_cast<std::uint8_t>(c)) + offset);
    table_ = _mm512_broadcast_i32x4(_mm_load_si128(reinterpret_cast<const __m128i*>(t)));
  }
  /// Block sums of 16 blocks; never meets Inf or NaN.
  BLOCKCAST_INLINE bool operator()(const std::uint8_t* codes, const std::int8_t* x, const std::int16_t*,
                                   const std::int32_t* x_sums, __m512i& sums) const {
    constexpr int vectors = static_cast<int>(16 * B / 64);
    __m512i r[vectors];
    for (int i = 0; i < vectors; ++i) {
      // 32 bytes -> 64 codes in order: word i = byte i, then (w | w << 4) & 0x0f0f splits the
      // nibbles into the low and high byte
      const __m512i w = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + 32 * i)));
      const __m512i nibbles = _mm512_ternarylogic_epi32(w, _mm512_slli_epi16(w, 4), _mm512_set1_epi16(0x0f0f), 0xa8);
      r[i] = dot_u8s8(_mm512_setzero_si512(), _mm512_shuffle_epi8(table_, nibbles), _mm512_loadu_si512(x + 64 * i));
    }
    const __m512i totals = block_totals<static_cast<int>(64 / B)>(r);
    sums = _mm512_sub_epi32(totals, _mm512_mullo_epi32(_mm512_loadu_si512(x_sums), _mm512_set1_epi32(offset)));
    return true;
  }
  __m512i table_;
};

/// Codes that become one signed 16-bit integer each (INT8, E2M3, E3M2); blocks of 32.
template <class Element, class Ints>
struct word_sums {
  word_sums() : table_([](int c) { return Ints::integer(static_cast<std::uint8_t>(c)); }) {}
  BLOCKCAST_INLINE bool operator()(const std::uint8_t* codes, const std::int8_t*, const std::int16_t* x,
                                   const std::int32_t*, __m512i& sums) const {
    __m512i r[16];
    for (int i = 0; i < 16; ++i)
      r[i] = dot_s16(_mm512_setzero_si512(), words(codes, i), _mm512_loadu_si512(x + 32 * i));
    sums = block_totals<1>(r);
    return true;
  }

 private:
  BLOCKCAST_INLINE __m512i words(const std::uint8_t* codes, int block) const {
    if constexpr (Element::bits == 8) {
      return _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + 32 * block)));
    } else {
      static_assert(Element::bits == 6, "8- or 6-bit codes");
      using i32v = xsimd::batch<std::int32_t, xsimd::avx512bw>;
      i32v c[2];
      load_codes<6, xsimd::avx512bw>(codes + 24 * block, 2, c);
      const __m512i index = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi32_epi16(c[0])),
                                               _mm512_cvtepi32_epi16(c[1]), 1);
      return table_(index);
    }
  }
  word_table64 table_;
};

/// E4M3 codes: magnitudes up to 229376 as low byte and the rest, sign applied to both.
template <class Element, class Ints>
struct e4m3_sums {
  e4m3_sums()
      : lo0_([](int c) { return Ints::integer(static_cast<std::uint8_t>(c)) & 0xff; }),
        lo1_([](int c) { return Ints::integer(static_cast<std::uint8_t>(c + 64)) & 0xff; }),
        hi0_([](int c) { return Ints::integer(static_cast<std::uint8_t>(c)) >> 8; }),
        hi1_([](int c) { return Ints::integer(static_cast<std::uint8_t>(c + 64)) >> 8; }) {}
  /// false when a block holds a NaN code (S.1111.111).
  BLOCKCAST_INLINE bool operator()(const std::uint8_t* codes, const std::int8_t*, const std::int16_t* x,
                                   const std::int32_t*, __m512i& sums) const {
    __m512i r[16];
    __mmask32 nan = 0;
    for (int i = 0; i < 16; ++i) {
      const __m512i c = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + 32 * i)));
      const __m512i magnitude = _mm512_and_si512(c, _mm512_set1_epi16(0x7f));
      nan |= _mm512_cmpeq_epi16_mask(magnitude, _mm512_set1_epi16(0x7f));
      const __mmask32 upper = _mm512_test_epi16_mask(c, _mm512_set1_epi16(0x40));
      const __mmask32 negative = _mm512_test_epi16_mask(c, _mm512_set1_epi16(0x80));
      __m512i lo = _mm512_mask_blend_epi16(upper, lo0_(magnitude), lo1_(magnitude));
      __m512i hi = _mm512_mask_blend_epi16(upper, hi0_(magnitude), hi1_(magnitude));
      lo = _mm512_mask_sub_epi16(lo, negative, _mm512_setzero_si512(), lo);
      hi = _mm512_mask_sub_epi16(hi, negative, _mm512_setzero_si512(), hi);
      const __m512i xs = _mm512_loadu_si512(x + 32 * i);
      r[i] = _mm512_add_epi32(dot_s16(_mm512_setzero_si512(), lo, xs),
                              _mm512_slli_epi32(dot_s16(_mm512_setzero_si512(), hi, xs), 8));
    }
    if (nan) return false;
    sums = block_totals<1>(r);
    return true;
  }

 private:
  word_table64 lo0_, lo1_, hi0_, hi1_;
};

/// 16 block scales times 2^-shift as FP32 (exact), NaN codes to NaN.
BLOCKCAST_INLINE __m512 decode_scales(const std::uint8_t* codes, e8m0) {
  const __m512i e = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes)));
  __m512i bits = _mm512_slli_epi32(e, 23);
  bits = _mm512_mask_mov_epi32(bits, _mm512_cmpeq_epi32_mask(e, _mm512_setzero_si512()), _mm512_set1_epi32(0x00400000));
  bits = _mm512_mask_mov_epi32(bits, _mm512_cmpeq_epi32_mask(e, _mm512_set1_epi32(0xff)), _mm512_set1_epi32(0x7fc00000));
  return _mm512_castsi512_ps(bits);
}
BLOCKCAST_INLINE __m512 decode_scales(const std::uint8_t* codes, ue4m3) {
  const __m512i c = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes)));
  const __m512i magnitude = _mm512_and_si512(c, _mm512_set1_epi32(0x7f));
  // normal: exponent field e + 120, mantissa m at bit 20; subnormal (e = 0): m * 2^-9
  const __m512 normal = _mm512_castsi512_ps(_mm512_add_epi32(_mm512_slli_epi32(magnitude, 20), _mm512_set1_epi32(120 << 23)));
  const __m512 subnormal = _mm512_mul_ps(_mm512_cvtepi32_ps(magnitude), _mm512_set1_ps(1.0f / 512.0f));
  __m512 v = _mm512_mask_blend_ps(_mm512_cmplt_epi32_mask(magnitude, _mm512_set1_epi32(8)), normal, subnormal);
  v = _mm512_mask_mov_ps(v, _mm512_cmpeq_epi32_mask(magnitude, _mm512_set1_epi32(0x7f)),
                         _mm512_castsi512_ps(_mm512_set1_epi32(0x7fc00000)));
  return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(v), _mm512_slli_epi32(_mm512_and_si512(c, _mm512_set1_epi32(0x80)), 24)));
}

/// x unchanged, opaque to the optimiser (keeps a product out of a fused multiply-add).
BLOCKCAST_INLINE __m512 rounded(__m512 x) {
#if defined(__GNUC__)
  asm("" : "+v"(x));
#endif
  return x;
}

}  // namespace avx512

#define BLOCKCAST_AVX512_SUMS(alias, ...) \
  template <>                              \
  struct avx512_block_sums<alias> {        \
    using type = __VA_ARGS__;              \
  };
BLOCKCAST_AVX512_SUMS(mxfp4, avx512::e2m1_sums<element_integers<fp4_e2m1>, 32>)
BLOCKCAST_AVX512_SUMS(nvfp4, avx512::e2m1_sums<element_integers<fp4_e2m1>, 16>)
BLOCKCAST_AVX512_SUMS(mxint8, avx512::word_sums<int8, element_integers<int8>>)
BLOCKCAST_AVX512_SUMS(mxfp6_e2m3, avx512::word_sums<fp6_e2m3, element_integers<fp6_e2m3>>)
BLOCKCAST_AVX512_SUMS(mxfp6_e3m2, avx512::word_sums<fp6_e3m2, element_integers<fp6_e3m2>>)
BLOCKCAST_AVX512_SUMS(mxfp8_e4m3, avx512::e4m3_sums<fp8_e4m3, element_integers<fp8_e4m3>>)
#undef BLOCKCAST_AVX512_SUMS
template <class Format, class Arch>
class group_dot<Format, Arch, std::enable_if_t<has_group_dot<Format, Arch>()>> {
  using sums_kernel = typename avx512_block_sums<Format>::type;

 public:
  explicit group_dot(int shift) : acc_(_mm512_setzero_ps()), shift_(_mm512_set1_ps(blockcast::detail::exp2i(-shift))) {}

  /// Adds the terms of the 16 blocks at `codes`; false (nothing added) when one of them holds
  /// an Inf or NaN element, which the caller handles.
  BLOCKCAST_INLINE bool add(const std::uint8_t* codes, const std::uint8_t* scales, const std::int8_t* x,
                            const std::int16_t* x_wide, const std::int32_t* x_sums, const float* x_scales) {
    __m512i sums;
    if (!kernel_(codes, x, x_wide, x_sums, sums)) return false;
    const __m512 d_w = _mm512_mul_ps(avx512::decode_scales(scales, typename Format::scale_type{}), shift_);
    const __m512 partial = avx512::rounded(_mm512_mul_ps(_mm512_cvtepi32_ps(sums), d_w));
    acc_ = _mm512_add_ps(acc_, avx512::rounded(_mm512_mul_ps(partial, _mm512_loadu_ps(x_scales))));
    return true;
  }
  /// Adds 16 terms computed elsewhere.
  void add_terms(const float* terms) { acc_ = _mm512_add_ps(acc_, _mm512_loadu_ps(terms)); }
  void store(float* p) const { _mm512_storeu_ps(p, acc_); }

 private:
  sums_kernel kernel_;
  __m512 acc_, shift_;
};
#endif

}  // namespace blockcast::simd::arch
