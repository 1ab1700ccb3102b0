// SPDX-License-Identifier: MIT
// The per-architecture half of the MX dot products (kernels/mx_dot.hpp): exact integer sums
// of 16 weight blocks against MXINT8 activations, scaled and added into 16 FP32 partial sums.
// AVX-512BW has kernels (VNNI's vpdpbusd/vpdpwssd where the CPU has them, the 16-bit
// multiply-adds otherwise), and so has AVX2; every other architecture, and every format
// without a kernel here, takes the driver's block-by-block path, which gives the same bits.
//
// How the element codes meet the int8 activations:
//   * E2M1 (MXFP4, NVFP4): the 4-bit code is looked up (vpermb, vpshufb) as integer + 16, an
//     unsigned byte, multiplied with the signed activation bytes; the sums start at
//     -16 * sum(x) (AVX-512; AVX2 subtracts 12 * sum(x) per block). AVX-512 takes four rows
//     at a time.
//   * INT8, E2M3, E3M2: the code is widened or looked up (vpermi2w) to a signed 16-bit integer
//     and multiplied with the activations widened to 16 bits; with VNNI, INT8 codes go as
//     bytes, the sign bit flipped (integer + 128), the sums started at -128 * sum(x).
//   * E4M3: its integers reach 448 * 2^9, so they go as two 16-bit halves (low byte, the rest)
//     whose products are recombined as lo + 256 * hi, exact in int32.
//   * With VBMI and VNNI, 6- and 8-bit codes are looked up as bytes (vpermb, vpermt2b):
//     E2M3 and E3M2 as the signed integer's base-256 digits (whole code, sign included; the
//     top digit + 128, its sums started at -128 * sum(x)); E4M3 and E5M2 as base-256 digits
//     of |integer| against the activations carrying the weight's sign.
//   * On AVX2, E2M3 and E3M2 codes are looked up (vpshufb) as base-128 digits of |integer|,
//     against the activations carrying the weight's sign (vpmaddubsw keeps a pair in 16 bits);
//     E4M3 and E5M2 codes as 16-bit products M * x multiplied-and-added (vpmaddwd) by the
//     powers 2^s (E5M2: in two ranges of s, recombined in double).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "blockcast/block/block_format.hpp"
#include "blockcast/element/bits.hpp"
#include "blockcast/kernels/simd_arch.hpp"

namespace blockcast {
template <class Element>
struct element_integers;  // kernels/mx_dot.hpp
}

namespace blockcast::simd::arch {

/// The E2M1 kernels look codes up as integer + nibble_offset (an unsigned byte);
/// group_activations::nibble_starts takes the offset's products back out.
inline constexpr int nibble_offset = 16;

/// The MXINT8 activations of one group of 16 weight blocks, in the forms the kernels read
/// (kernels/mx_dot.hpp's mx_activations prepares them once per call).
struct group_activations {
  const std::int8_t* codes;    // in order
  const std::int16_t* wide;    // in order, widened to 16 bits
  const std::int8_t* split;    // per 128 codes: the 64 even-indexed ones, then the 64 odd ones
  const std::int32_t* sums;    // per weight block: the sum of its codes
  const std::int32_t* nibble_starts;  // per run of 8 codes: -nibble_offset * their sum
  const std::int32_t* starts;  // per run of 4 codes: -128 * their sum (signed_digit_sums)
  const float* scales;         // per weight block: d_x
  bool has_min_code;           // some code is -128 (whose negation is no signed byte)
};

/// group_dot<Format, Arch>: adds the terms of 16 blocks at a time into 16 FP32 partial sums
/// (lane i = partial sum p[i] of mx_dot.hpp); declared for every architecture, defined where
/// has_group_dot says so.
template <class Format, class Arch, class Enable = void>
class group_dot;

/// The integer-sum kernel for a format on AVX-512 (void: none).
template <class Format, class Arch>
struct avx512_block_sums {
  using type = void;
};

/// Whether group_dot asks for a kernel's codes ahead of time (Kernel::software_prefetch;
/// yes unless it says otherwise).
template <class Kernel, class = void>
struct prefetch_of : std::true_type {};
template <class Kernel>
struct prefetch_of<Kernel, std::void_t<decltype(Kernel::software_prefetch)>>
    : std::bool_constant<Kernel::software_prefetch> {};
template <class Kernel>
constexpr bool software_prefetch() {
  return prefetch_of<Kernel>::value;
}

/// How many rows a kernel sums at once (Kernel::rows_at_once; 1 unless it says otherwise).
template <class Kernel, class = void>
struct rows_at_once_of : std::integral_constant<int, 1> {};
template <class Kernel>
struct rows_at_once_of<Kernel, std::void_t<decltype(Kernel::rows_at_once)>>
    : std::integral_constant<int, Kernel::rows_at_once> {};

/// Whether Arch runs group_dot's AVX-512 kernels for Format.
template <class Format, class Arch>
constexpr bool has_avx512_group_dot() {
#if XSIMD_WITH_AVX512BW
  return std::is_base_of_v<xsimd::avx512bw, Arch> &&
         !std::is_void_v<typename avx512_block_sums<Format, Arch>::type>;
#else
  return false;
#endif
}
/// The integer-sum kernel for a format on AVX2 (void: none): E2M1 in blocks of 16 or 32
/// (MXFP4, NVFP4), and every other preset element in blocks of 32.
template <class Format, class Arch, class Enable = void>
struct avx2_block_sums {
  using type = void;
};

/// Whether Arch runs group_dot's AVX2 kernels for Format: on AVX2, and on AVX-512 where the
/// format has no AVX-512 kernel (E5M2 without VBMI).
template <class Format, class Arch>
constexpr bool has_avx2_group_dot() {
#if XSIMD_WITH_AVX2
  return (std::is_base_of_v<xsimd::avx2, Arch> || (std::is_base_of_v<xsimd::avx512bw, Arch> && !has_avx512_group_dot<Format, Arch>())) &&
         !std::is_void_v<typename avx2_block_sums<Format, Arch>::type>;
#else
  return false;
#endif
}
template <class Format, class Arch>
constexpr bool has_group_dot() {
  return has_avx512_group_dot<Format, Arch>() || has_avx2_group_dot<Format, Arch>();
}

#if XSIMD_WITH_AVX512BW
namespace avx512 {

/// acc + per lane the sum of 4 products of unsigned bytes u and signed bytes s: VNNI's
/// vpdpbusd on avx512vbmi, two multiply-adds otherwise (every caller keeps each pair of
/// products within 16 bits, so the saturating vpmaddubsw is exact).
template <class Arch>
BLOCKCAST_INLINE __m512i dot_u8s8(__m512i acc, __m512i u, __m512i s) {
#if defined(__AVX512VNNI__)
  if constexpr (is_vbmi<Arch>()) return _mm512_dpbusd_epi32(acc, u, s);
#endif
  return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), _mm512_set1_epi16(1)));
}
/// acc + per lane the sum of 2 products of signed 16-bit words.
template <class Arch>
BLOCKCAST_INLINE __m512i dot_s16(__m512i acc, __m512i a, __m512i b) {
#if defined(__AVX512VNNI__)
  if constexpr (is_vbmi<Arch>()) return _mm512_dpwssd_epi32(acc, a, b);
#endif
  return _mm512_add_epi32(acc, _mm512_madd_epi16(a, b));
}

template <int Imm>
BLOCKCAST_INLINE __m512i shuffle_epi32(__m512i a, __m512i b) {  // vshufps on integer lanes
  return _mm512_castps_si512(_mm512_shuffle_ps(_mm512_castsi512_ps(a), _mm512_castsi512_ps(b), Imm));
}

/// Lane b = the sum of block b's lanes, from 16 / G vectors holding G blocks each (16 / G
/// consecutive lanes per block, blocks in order): a transposed reduction that halves the
/// lanes per block at each level. The levels within 128-bit lanes come first (vpunpck*qdq,
/// vshufps), since on Zen 5 they issue on all four vector pipes; only the last levels cross
/// 128-bit lanes, on the two pipes the lookups and dot products also need (G = 2: 2 such
/// shuffles per group where there were 9; 128 rows in the L2, one core, Zen 5, 60
/// alternating pairs in one process: MXINT8 1.06x, E3M2 1.03x, E4M3 1.03x, E5M2 0.98x).
template <int G>
BLOCKCAST_INLINE __m512i block_totals(__m512i* v) {
  static_assert(G == 1 || G == 2, "1 or 2 blocks per vector");
  constexpr int n = 16 / G;
  // per 128-bit lane: 4 lanes of a block -> 2 (two vectors into one), then 2 -> 1
  for (int i = 0; i < n / 2; ++i)
    v[i] = _mm512_add_epi32(_mm512_unpacklo_epi64(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_epi64(v[2 * i], v[2 * i + 1]));
  for (int i = 0; i < n / 4; ++i)
    v[i] = _mm512_add_epi32(shuffle_epi32<_MM_SHUFFLE(2, 0, 2, 0)>(v[2 * i], v[2 * i + 1]),
                            shuffle_epi32<_MM_SHUFFLE(3, 1, 3, 1)>(v[2 * i], v[2 * i + 1]));
  if constexpr (G == 1) {
    // 4 vectors of 4 blocks, a block's partial sums in the 4 128-bit lanes -> 2 -> 1, in order
    for (int m = 2; m >= 1; m /= 2)
      for (int i = 0; i < m; ++i)
        v[i] = _mm512_add_epi32(_mm512_shuffle_i32x4(v[2 * i], v[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                                _mm512_shuffle_i32x4(v[2 * i], v[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
    return v[0];
  } else {
    // v[0] holds blocks 0, 2, 4, 6 in 128-bit lanes 0 and 1, blocks 1, 3, 5, 7 in lanes 2 and
    // 3 (v[1]: 8 more); the two halves of block b picked from both into lane b
    const __m512i first = _mm512_setr_epi32(0, 8, 1, 9, 2, 10, 3, 11, 16, 24, 17, 25, 18, 26, 19, 27);
    const __m512i second = _mm512_setr_epi32(4, 12, 5, 13, 6, 14, 7, 15, 20, 28, 21, 29, 22, 30, 23, 31);
    return _mm512_add_epi32(_mm512_permutex2var_epi32(v[0], first, v[1]), _mm512_permutex2var_epi32(v[0], second, v[1]));
  }
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

/// E2M1 codes: 128 per 64 bytes. The low nibbles of the 64 bytes are the even codes, the
/// high nibbles the odd ones, so one AND and one shift split them into two vectors without
/// moving a byte; the activations come split the same way (mx_activations::split_codes).
/// Each code is looked up (vpshufb; vpermb with VBMI, which needs no mask) as integer + 16, an
/// unsigned byte; the activations come with -16 times their sums (nibble_starts) to correct it.
template <class Ints, std::size_t B, class Arch>
struct e2m1_sums {
  static constexpr int offset = nibble_offset;
  /// Software prefetch ahead of the codes when one row is read at a time (group_dot::prefetch;
  /// rows_sums's rows are always prefetched): MXFP4's kernel keeps up with the hardware
  /// prefetcher, and its prefetch instructions cost more than they bring (16384 x 4096 on Zen
  /// 4: 28 -> 32 GB/s without); NVFP4's groups are half as many bytes per scale decode and
  /// still gain from it.
  static constexpr bool software_prefetch = B != 32;
  static_assert(Ints::max_magnitude() <= offset && 16 * Ints::max_magnitude() * 128 <= 32767,
                "integer + offset is an unsigned byte, and 16 products fit 16 bits (quad_totals)");
  e2m1_sums() {
    alignas(16) std::uint8_t t[16];
    for (int c = 0; c < 16; ++c) t[c] = static_cast<std::uint8_t>(Ints::integer(static_cast<std::uint8_t>(c)) + offset);
    table_ = _mm512_broadcast_i32x4(_mm_load_si128(reinterpret_cast<const __m128i*>(t)));
  }
  /// The 64 bytes' even codes (low nibbles) and odd codes (high nibbles), looked up.
  BLOCKCAST_INLINE void lookup(__m512i bytes, __m512i& even, __m512i& odd) const {
#if defined(__AVX512VBMI__)
    if constexpr (is_vbmi<Arch>()) {
      // vpermb reads index bits 0-5 of each byte; the table repeats every 16 entries, so
      // bits 4-5 (a high nibble, or after the 16-bit shift the next byte's low bits) do not
      // matter and no mask is needed
      even = _mm512_permutexvar_epi8(bytes, table_);
      odd = _mm512_permutexvar_epi8(_mm512_srli_epi16(bytes, 4), table_);
      return;
    }
#endif
    const __m512i low = _mm512_set1_epi8(0x0f);
    even = _mm512_shuffle_epi8(table_, _mm512_and_si512(bytes, low));
    odd = _mm512_shuffle_epi8(table_, _mm512_and_si512(_mm512_srli_epi16(bytes, 4), low));
  }
  /// Rows summed at once by rows_sums. One row's kernel is bound by its loads, not its
  /// arithmetic: per 128 codes one vector of codes and two of activations, at one 64-byte load
  /// per cycle on Zen 4. Four rows share the activation loads: MXFP4 rows in the L2 went from
  /// 15.6 to 13.5 core cycles per 512 codes.
  static constexpr int rows_at_once = 4;
  /// Block sums of 16 blocks; never meets Inf or NaN.
  BLOCKCAST_INLINE bool operator()(const std::uint8_t* codes, const group_activations& x, __m512& sums) const {
    rows_sums<1>(&codes, x, &sums);
    return true;
  }
  /// The block sums of 16 blocks in each of R rows (row k's codes at codes[k]).
  template <int R>
  BLOCKCAST_INLINE void rows_sums(const std::uint8_t* const* codes, const group_activations& x, __m512* sums) const {
    constexpr int chunks = static_cast<int>(16 * B / 128);
    __m512i r[R][chunks];
    for (int i = 0; i < chunks; ++i) {
      const __m512i even_x = _mm512_loadu_si512(x.split + 128 * i), odd_x = _mm512_loadu_si512(x.split + 128 * i + 64);
      // lane l holds codes 8l .. 8l+7 of the 128; starting it at -offset * their sum leaves the
      // exact sum of integer * x, so no correction is left for the block totals (prepared
      // with the activations: 2-4% faster than two instructions per 128 codes here)
      const __m512i start = _mm512_loadu_si512(x.nibble_starts + 16 * i);
      for (int k = 0; k < R; ++k) {
        __m512i even, odd;
        lookup(_mm512_loadu_si512(codes[k] + 64 * i), even, odd);
        r[k][i] = dot_u8s8<Arch>(dot_u8s8<Arch>(start, even, even_x), odd, odd_x);
      }
    }
    // 128 codes per vector: blocks of 32 are 4 lanes (one 128-bit quarter) each, blocks of 16
    // two lanes each
    for (int k = 0; k < R; ++k) sums[k] = _mm512_cvtepi32_ps(B == 32 ? quad_totals(r[k]) : pair_totals(r[k]));
  }

 private:
  /// Lane b = the sum of lanes 4(b % 4) .. +3 of r[b / 4]. A lane holds 8 products, a pair of
  /// lanes 16, and both fit 16 bits, so packing (vpackssdw, exact) and adding pairs (vpmaddwd)
  /// twice leaves the blocks' totals.
  static BLOCKCAST_INLINE __m512i quad_totals(const __m512i* r) {
    const __m512i ones = _mm512_set1_epi16(1);
    // quarter q: blocks q, 4+q (two lanes each), then 8+q, 12+q
    const __m512i a = _mm512_madd_epi16(_mm512_packs_epi32(r[0], r[1]), ones);
    const __m512i b = _mm512_madd_epi16(_mm512_packs_epi32(r[2], r[3]), ones);
    // quarter q: blocks q, 4+q, 8+q, 12+q
    const __m512i f = _mm512_madd_epi16(_mm512_packs_epi32(a, b), ones);
    return _mm512_permutexvar_epi32(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), f);
  }
  /// Lane b = lanes 2b + 2b+1 of r[0] (b < 8) or of r[1]: packed to 16 bits (exact, as in
  /// quad_totals) and the pairs added by vpmaddwd.
  static BLOCKCAST_INLINE __m512i pair_totals(const __m512i* r) {
    // quarter k: lane 0 block 2k, 1 block 2k+1, 2 block 8+2k, 3 block 9+2k
    const __m512i f = _mm512_madd_epi16(_mm512_packs_epi32(r[0], r[1]), _mm512_set1_epi16(1));
    return _mm512_permutexvar_epi32(_mm512_setr_epi32(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15), f);
  }
  __m512i table_;
};

/// Codes that become one signed 16-bit integer each (INT8, E2M3, E3M2); blocks of 32.
template <class Element, class Ints, class Arch>
struct word_sums {
  word_sums() : table_([](int c) { return Ints::integer(static_cast<std::uint8_t>(c)); }) {}
  BLOCKCAST_INLINE bool operator()(const std::uint8_t* codes, const group_activations& x, __m512& sums) const {
    __m512i r[16];
    for (int i = 0; i < 16; ++i)
      r[i] = dot_s16<Arch>(_mm512_setzero_si512(), words(codes, i), _mm512_loadu_si512(x.wide + 32 * i));
    sums = _mm512_cvtepi32_ps(block_totals<1>(r));
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
template <class Element, class Ints, class Arch>
struct e4m3_sums {
  e4m3_sums()
      : lo0_([](int c) { return Ints::integer(static_cast<std::uint8_t>(c)) & 0xff; }),
        lo1_([](int c) { return Ints::integer(static_cast<std::uint8_t>(c + 64)) & 0xff; }),
        hi0_([](int c) { return Ints::integer(static_cast<std::uint8_t>(c)) >> 8; }),
        hi1_([](int c) { return Ints::integer(static_cast<std::uint8_t>(c + 64)) >> 8; }) {}
  /// false when a block holds a NaN code (S.1111.111).
  BLOCKCAST_INLINE bool operator()(const std::uint8_t* codes, const group_activations& x, __m512& sums) const {
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
      const __m512i xs = _mm512_loadu_si512(x.wide + 32 * i);
      r[i] = _mm512_add_epi32(dot_s16<Arch>(_mm512_setzero_si512(), lo, xs),
                              _mm512_slli_epi32(dot_s16<Arch>(_mm512_setzero_si512(), hi, xs), 8));
    }
    if (nan) return false;
    sums = _mm512_cvtepi32_ps(block_totals<1>(r));
    return true;
  }

 private:
  word_table64 lo0_, lo1_, hi0_, hi1_;
};

#if defined(__AVX512VBMI__) && defined(__AVX512VNNI__)
// ---- VBMI: codes as bytes, looked up in 64- and 128-entry byte tables -------------------

/// Codes i * 64 .. i * 64 + 63 of a group of 16 blocks of 32 (`group`: its first code byte),
/// one per byte, in order. Only the group's bytes are read, by plain loads: Zen 4's hardware
/// prefetcher does not follow masked loads, and a masked 48-byte load made the 6-bit kernels
/// three times slower beyond the L2.
template <int Bits>
BLOCKCAST_INLINE __m512i code_bytes(const std::uint8_t* group, int i) {
  if constexpr (Bits == 8) {
    return _mm512_loadu_si512(group + 64 * i);
  } else {
    static_assert(Bits == 6, "8- or 6-bit codes");
    // 48 bytes hold the 64 codes: the 64 bytes from there (the last chunk: the 64 ending
    // there, the group ends with it), then 3 bytes (4 codes) per 32-bit word, then each
    // code's 6 bits picked by vpmultishiftqb
    const bool last = i == 7;
    const __m512i raw = _mm512_loadu_si512(group + 48 * i - (last ? 16 : 0));
    alignas(64) static constexpr std::uint8_t spread[2][64] = {
        {0,  1,  2,  2,  3,  4,  5,  5,  6,  7,  8,  8,  9,  10, 11, 11, 12, 13, 14, 14, 15, 16,
         17, 17, 18, 19, 20, 20, 21, 22, 23, 23, 24, 25, 26, 26, 27, 28, 29, 29, 30, 31, 32, 32,
         33, 34, 35, 35, 36, 37, 38, 38, 39, 40, 41, 41, 42, 43, 44, 44, 45, 46, 47, 47},
        {16, 17, 18, 18, 19, 20, 21, 21, 22, 23, 24, 24, 25, 26, 27, 27, 28, 29, 30, 30, 31, 32,
         33, 33, 34, 35, 36, 36, 37, 38, 39, 39, 40, 41, 42, 42, 43, 44, 45, 45, 46, 47, 48, 48,
         49, 50, 51, 51, 52, 53, 54, 54, 55, 56, 57, 57, 58, 59, 60, 60, 61, 62, 63, 63}};
    const __m512i words = _mm512_permutexvar_epi8(_mm512_load_si512(spread[last ? 1 : 0]), raw);
    const __m512i shifts = _mm512_set1_epi64(0x322c2620120c0600ll);  // 0, 6, 12, 18, 32, 38, 44, 50
    return _mm512_and_si512(_mm512_multishift_epi64_epi8(shifts, words), _mm512_set1_epi8(0x3f));
  }
}

/// A byte table over the codes of an element format (6 bits: all 64 codes; 8 bits: the 128
/// magnitudes, the sign bit ignored).
template <int Bits>
struct byte_table {
  byte_table() : lo(_mm512_setzero_si512()), hi(_mm512_setzero_si512()) {}
  template <class Byte>
  explicit byte_table(Byte byte_of) {
    alignas(64) std::uint8_t t[128];
    for (int c = 0; c < 128; ++c) t[c] = static_cast<std::uint8_t>(byte_of(c));
    lo = _mm512_load_si512(t);
    hi = _mm512_load_si512(t + 64);
  }
  /// From the 128 bytes at t.
  explicit byte_table(const std::uint8_t* t) : lo(_mm512_loadu_si512(t)), hi(_mm512_loadu_si512(t + 64)) {}
  BLOCKCAST_INLINE __m512i operator()(__m512i codes) const {
    if constexpr (Bits == 8) return _mm512_permutex2var_epi8(lo, codes, hi);
    else return _mm512_permutexvar_epi8(codes, lo);
  }
  __m512i lo, hi;
};

/// 6-bit codes (E2M3: +-60, E3M2: +-448): the signed integer in two's complement base-256
/// digits, looked up from the whole code, sign included (64 entries, vpermb). E2M3's one
/// digit is the integer; E3M2's v = 256 * top + low, low in 0..255 (an unsigned byte as it
/// is). The top digit goes as top + 128, an unsigned byte, and its dot product starts at -128
/// times the sum of the lane's 4 activation codes (group_activations::starts), so that the
/// activations go in unchanged: no sign to apply, nothing to subtract afterwards, and -128
/// activations need no other path. No Inf or NaN. Per 64 codes, E3M2 takes 8 vector
/// instructions (3 of them unpack the codes) where |integer|'s digits against signed
/// activations (digit_sums) took 11.
template <class Element, class Ints, class Arch>
struct signed_digit_sums {
  static_assert(Element::bits == 6 && !Element::has_nan && !Element::has_inf, "6-bit codes without specials");
  static constexpr int digits = Ints::max_magnitude() < 128 ? 1 : 2;
  static_assert(Ints::max_magnitude() < 128 * 256, "the top digit + 128 must be an unsigned byte");
  signed_digit_sums()
      : top_([](int c) {
          const std::int64_t v = Ints::integer(static_cast<std::uint8_t>(c));
          return static_cast<int>((digits == 1 ? v : (v - (v & 0xff)) / 256) + 128);
        }),
        low_([](int c) { return static_cast<int>(Ints::integer(static_cast<std::uint8_t>(c)) & 0xff); }) {}
  BLOCKCAST_INLINE bool operator()(const std::uint8_t* codes, const group_activations& x, __m512& sums) const {
    __m512i r[8];
    for (int i = 0; i < 8; ++i) {
      const __m512i c = code_bytes<Element::bits>(codes, i);
      const __m512i xs = _mm512_loadu_si512(x.codes + 64 * i);
      r[i] = _mm512_dpbusd_epi32(_mm512_loadu_si512(x.starts + 16 * i), top_(c), xs);
      if constexpr (digits == 2) r[i] = _mm512_dpbusd_epi32(_mm512_slli_epi32(r[i], 8), low_(c), xs);
    }
    sums = _mm512_cvtepi32_ps(block_totals<2>(r));
    return true;
  }

 private:
  byte_table<Element::bits> top_, low_;
};

/// INT8 codes as bytes: the code with its sign bit flipped is the integer + 128, an unsigned
/// byte, and each lane's vpdpbusd starts at -128 times the sum of its 4 activation codes
/// (group_activations::starts), which takes the 128s back out: per 64 codes one XOR and one
/// dot product, and the block totals of 8 vectors instead of 16 (word_sums: two widenings and
/// two vpdpwssd, and 16 vectors).
template <class Arch>
struct int8_byte_sums {
  BLOCKCAST_INLINE bool operator()(const std::uint8_t* codes, const group_activations& x, __m512& sums) const {
    __m512i r[8];
    for (int i = 0; i < 8; ++i) {
      const __m512i biased = _mm512_xor_si512(_mm512_loadu_si512(codes + 64 * i), _mm512_set1_epi8(static_cast<char>(0x80)));
      r[i] = _mm512_dpbusd_epi32(_mm512_loadu_si512(x.starts + 16 * i), biased, _mm512_loadu_si512(x.codes + 64 * i));
    }
    sums = _mm512_cvtepi32_ps(block_totals<2>(r));
    return true;
  }
};

/// 8-bit codes with larger integers (E4M3: 448 * 2^9, E5M2: 57344 * 2^16): |integer|
/// in base-256 digits, unsigned bytes, against the activations with the weight's sign
/// applied (one masked negation per 64 codes). The digits of a part are combined by Horner's
/// rule in the int32 lanes (acc = acc * 256 + digit . x'), exact while a part's block sum
/// stays below 2^31 (E4M3: one part; E5M2: two parts of two digits, recombined in
/// int64). -(-128) does not fit a signed byte, so a group whose activations hold -128 (only
/// the optional full range has it) returns false and takes the driver's block-by-block
/// path, as Inf and NaN do; both come out the same bits.
/// Needs VNNI: a pair of digit products (255 * 128 each) does not fit vpmaddubsw's 16 bits.
///
/// The low bits of |integer| are zero unless a value lies many binades below the format's
/// largest, which the shared scale makes rare in a group: |integer| >> reduced_shift in two
/// digits (E4M3: >> 2, E5M2: >> 16) is tried first, and a group with a code that has a
/// nonzero bit there is summed again in full. Of random normal weights in MXFP8 E4M3, 10% of
/// the groups of 512 codes have one (a value below 2^-4, 12 binades under the block's top).
template <class Element, class Ints, class Arch>
struct digit_sums {
  static constexpr std::int64_t max_integer = Ints::max_magnitude();
  static constexpr int digits = [] {
    int d = 1;
    for (std::int64_t m = max_integer; m >= 256; m >>= 8) ++d;
    return d;
  }();
  static constexpr std::int64_t block_products = 32 * 128;  // 32 codes, |x| <= 128
  static constexpr int digits_per_part = max_integer * block_products < (std::int64_t{1} << 31) ? digits : 2;
  static constexpr int parts = (digits + digits_per_part - 1) / digits_per_part;
  static_assert(parts <= 2 && (parts == 1 || (std::int64_t{1} << 16) * block_products < (std::int64_t{1} << 31)),
                "one part, or two parts of two digits that fit int32");
  static constexpr int low_bits = 8 * digits_per_part * (parts - 1);  // below the top part
  static constexpr std::uint8_t sign_bit = static_cast<std::uint8_t>(1u << (Element::bits - 1));
  /// The top digit of an Inf or NaN code, and in the reduced tables also of a code with a
  /// nonzero bit below reduced_shift: above every finite top digit, so that the maximum finds
  /// them (one instruction per 64 codes).
  static constexpr std::uint8_t flag_digit = 0xff;
  static_assert((max_integer >> (8 * (digits - 1))) < flag_digit, "the top digit must have a spare value");
  /// The reduced form: the fewest bits dropped that leave two digits with a spare top value.
  static constexpr bool has_reduced = digits > 2;
  static constexpr int reduced_shift = [] {
    int k = 0;
    while (((max_integer >> k) >> 8) >= flag_digit) ++k;
    return k;
  }();
  static_assert(!has_reduced || (max_integer >> reduced_shift) * block_products < (std::int64_t{1} << 31),
                "the reduced block sums fit int32");

  digit_sums() {
    for (int d = 0; d < digits; ++d) tables_[d] = byte_table<Element::bits>(digit_bytes[d].data());
    if constexpr (has_reduced)
      for (int d = 0; d < 2; ++d) reduced_[d] = byte_table<Element::bits>(reduced_bytes[d].data());
  }
  /// false when a block holds an Inf or NaN code, or an activation is -128.
  BLOCKCAST_INLINE bool operator()(const std::uint8_t* codes, const group_activations& x, __m512& sums) const {
    if (x.has_min_code) return false;
    if constexpr (has_reduced) {
      if (reduced_sums(codes, x, sums)) return true;
    }
    __m512i top_max = _mm512_setzero_si512();
    __m512i totals[parts];
    all_part_totals(codes, x, top_max, totals, std::make_integer_sequence<int, parts>{});
    if (flagged(top_max)) return false;
    if constexpr (parts == 1) {
      sums = _mm512_cvtepi32_ps(totals[0]);
    } else {
      // S = part 0 + part 1 * 2^low_bits, exact in int64, rounded once to FP32
      const __m512i lo = _mm512_add_epi64(_mm512_cvtepi32_epi64(_mm512_castsi512_si256(totals[0])),
                                          _mm512_slli_epi64(_mm512_cvtepi32_epi64(_mm512_castsi512_si256(totals[1])), low_bits));
      const __m512i hi = _mm512_add_epi64(_mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(totals[0], 1)),
                                          _mm512_slli_epi64(_mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(totals[1], 1)), low_bits));
      sums = _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtepi64_ps(lo)), _mm512_cvtepi64_ps(hi), 1);
    }
    return true;
  }

 private:
  /// Digit d of code c's |integer|; the top digit is flag_digit for Inf and NaN.
  static constexpr int digit(int c, int d) {
    const auto code = static_cast<std::uint8_t>(c);
    const std::int64_t v = Ints::integer(code), magnitude = v < 0 ? -v : v;
    if (d == digits - 1 && Ints::special(code)) return flag_digit;
    return static_cast<int>((magnitude >> (8 * d)) & 0xff);
  }
  /// Digit d (0 or 1) of |integer| >> reduced_shift; the top one is flag_digit for Inf, NaN
  /// and a code with a nonzero bit below reduced_shift.
  static constexpr int reduced_digit(int c, int d) {
    const auto code = static_cast<std::uint8_t>(c);
    const std::int64_t v = Ints::integer(code), magnitude = v < 0 ? -v : v;
    const bool flag = Ints::special(code) || (magnitude & ((std::int64_t{1} << reduced_shift) - 1)) != 0;
    if (d == 1 && flag) return flag_digit;
    return static_cast<int>(((magnitude >> reduced_shift) >> (8 * d)) & 0xff);
  }
  /// The tables' bytes, computed at compile time: built from the functions above at run time,
  /// they took 160 ns per call (E4M3), longer than a row of 4096.
  template <int Count, class Digit>
  static constexpr std::array<std::array<std::uint8_t, 128>, Count> table_bytes(Digit digit_of) {
    std::array<std::array<std::uint8_t, 128>, Count> t{};
    for (int d = 0; d < Count; ++d)
      for (int c = 0; c < 128; ++c) t[d][c] = static_cast<std::uint8_t>(digit_of(c, d));
    return t;
  }
  static constexpr auto digit_bytes = table_bytes<digits>(digit);
  static constexpr auto reduced_bytes = table_bytes<2>(reduced_digit);
  static BLOCKCAST_INLINE bool flagged(__m512i top_max) {
    return _mm512_cmpeq_epi8_mask(top_max, _mm512_set1_epi8(static_cast<char>(flag_digit))) != 0;
  }
  /// The codes' activations with each weight's sign applied.
  BLOCKCAST_INLINE static __m512i signed_activations(__m512i c, const group_activations& x, int i) {
    const __mmask64 negative = _mm512_test_epi8_mask(c, _mm512_set1_epi8(static_cast<char>(sign_bit)));
    const __m512i xs = _mm512_loadu_si512(x.codes + 64 * i);
    return _mm512_mask_sub_epi8(xs, negative, _mm512_setzero_si512(), xs);
  }
  /// The sums from the reduced form (S = its sum * 2^reduced_shift, exact); false when a code
  /// has a nonzero bit below reduced_shift, Inf or NaN. Per 64 codes 8 vector instructions
  /// (the sign, 2 lookups and dot products, a shift, the maximum) where E4M3's three digits
  /// take 11 and E5M2's four 13.
  BLOCKCAST_INLINE bool reduced_sums(const std::uint8_t* codes, const group_activations& x, __m512& sums) const {
    __m512i r[8];
    __m512i top_max = _mm512_setzero_si512();
    for (int i = 0; i < 8; ++i) {
      const __m512i c = code_bytes<Element::bits>(codes, i);
      r[i] = horner<0, 1, true>(reduced_, c, signed_activations(c, x, i), top_max);
    }
    if (flagged(top_max)) return false;
    // exact: the reduced sum rounded to FP32, then scaled by a power of two
    sums = _mm512_mul_ps(_mm512_cvtepi32_ps(block_totals<2>(r)),
                         _mm512_set1_ps(static_cast<float>(std::int64_t{1} << reduced_shift)));
    return true;
  }
  /// Lane b of totals[P]: block b's sum over the digits of part P. Every part in one pass
  /// over the codes, so that a chunk's codes are loaded and its activations signed once for
  /// all parts (E5M2: 2-4% faster at 16384 x 4096 than a pass per part).
  template <int... P>
  BLOCKCAST_INLINE void all_part_totals(const std::uint8_t* codes, const group_activations& x, __m512i& top_max,
                                        __m512i* totals, std::integer_sequence<int, P...>) const {
    __m512i r[parts][8];
    for (int i = 0; i < 8; ++i) {
      const __m512i c = code_bytes<Element::bits>(codes, i);
      const __m512i signed_x = signed_activations(c, x, i);
      ((r[P][i] = part_digits<P>(c, signed_x, top_max)), ...);
    }
    ((totals[P] = block_totals<2>(r[P])), ...);
  }
  /// Part P of 64 codes against their signed activations.
  template <int P>
  BLOCKCAST_INLINE __m512i part_digits(__m512i c, __m512i signed_x, __m512i& top_max) const {
    constexpr int bottom = P * digits_per_part, top = std::min(digits, bottom + digits_per_part) - 1;
    return horner<bottom, top, top == digits - 1>(tables_, c, signed_x, top_max);
  }
  /// Digits Bottom..Top of 64 codes (looked up in tables[d]) against their signed
  /// activations, combined by Horner's rule; TopMax: the top digits' maximum into top_max.
  /// The bounds are known at compile time, so that the digit loop unrolls and the tables stay
  /// in registers (left to a runtime loop, GCC spilled them).
  template <int Bottom, int Top, bool TopMax>
  static BLOCKCAST_INLINE __m512i horner(const byte_table<Element::bits>* tables, __m512i c, __m512i signed_x,
                                         __m512i& top_max) {
    const __m512i top_digit = tables[Top](c);
    if constexpr (TopMax) top_max = _mm512_max_epu8(top_max, top_digit);
    __m512i acc = _mm512_dpbusd_epi32(_mm512_setzero_si512(), top_digit, signed_x);
    for (int d = Top - 1; d >= Bottom; --d) acc = _mm512_dpbusd_epi32(_mm512_slli_epi32(acc, 8), tables[d](c), signed_x);
    return acc;
  }
  byte_table<Element::bits> tables_[digits];
  byte_table<Element::bits> reduced_[2];  // has_reduced: |integer| >> reduced_shift, flagging a nonzero low bit
};
#endif

/// 16 UE4M3 block scales as FP32 (exact), NaN codes to NaN, each times 2^(8 - shift) (the
/// caller's power of two, folded in). Through FP16: the magnitude's 4 exponent and 3 mantissa
/// bits at FP16's bits 7-13 are the same number over 2^8 (exponent bias 15 against 7; FP16
/// subnormals are E4M3's), and the sign bit goes to bit 15. vcvtph2ps converts exactly and
/// does not consult DAZ; most of the work is on 16-bit lanes, half the width of FP32's.
BLOCKCAST_INLINE __m512 decode_scales(const std::uint8_t* codes, ue4m3, __m512 times) {
  const __m256i c = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes)));
  // c + (c & 0x80) carries the sign bit into bit 8, so that << 7 puts it at bit 15 and the
  // magnitude at bits 7-13
  const __m256i half = _mm256_slli_epi16(_mm256_add_epi16(c, _mm256_and_si256(c, _mm256_set1_epi16(0x80))), 7);
  const __mmask16 nan = _mm256_cmpeq_epi16_mask(_mm256_or_si256(c, _mm256_set1_epi16(0x80)), _mm256_set1_epi16(0xff));
  return _mm512_mask_mov_ps(_mm512_mul_ps(_mm512_cvtph_ps(half), times), nan, _mm512_castsi512_ps(_mm512_set1_epi32(0x7fc00000)));
}

/// decode_scales for codes below 0x7F (no NaN, no sign bit): the magnitude alone moves to
/// FP16's bits 7-13.
BLOCKCAST_INLINE __m512 decode_plain_scales(const std::uint8_t* codes, ue4m3, __m512 times) {
  const __m256i c = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes)));
  return _mm512_mul_ps(_mm512_cvtph_ps(_mm256_slli_epi16(c, 7)), times);
}

/// x unchanged, opaque to the optimiser (keeps a product out of a fused multiply-add).
BLOCKCAST_INLINE __m512 rounded(__m512 x) {
#if defined(__GNUC__)
  asm("" : "+v"(x));
#endif
  return x;
}

}  // namespace avx512

// The kernel of each preset: avx512vbmi's where it has its own, avx512bw's otherwise.
template <class E>
using ints = element_integers<E>;
template <class Arch>
struct avx512_block_sums<mxfp4, Arch> {
  using type = avx512::e2m1_sums<ints<fp4_e2m1>, 32, Arch>;
};
template <class Arch>
struct avx512_block_sums<nvfp4, Arch> {
  using type = avx512::e2m1_sums<ints<fp4_e2m1>, 16, Arch>;
};
#if defined(__AVX512VBMI__) && defined(__AVX512VNNI__)
template <class Arch, class Vbmi, class Bw>
using vbmi_or_bw = std::conditional_t<is_vbmi<Arch>(), Vbmi, Bw>;
template <class Arch>
struct avx512_block_sums<mxint8, Arch> {
  using type = vbmi_or_bw<Arch, avx512::int8_byte_sums<Arch>, avx512::word_sums<int8, ints<int8>, Arch>>;
};
template <class Arch>
struct avx512_block_sums<mxfp6_e2m3, Arch> {
  using type = vbmi_or_bw<Arch, avx512::signed_digit_sums<fp6_e2m3, ints<fp6_e2m3>, Arch>,
                          avx512::word_sums<fp6_e2m3, ints<fp6_e2m3>, Arch>>;
};
template <class Arch>
struct avx512_block_sums<mxfp6_e3m2, Arch> {
  using type = vbmi_or_bw<Arch, avx512::signed_digit_sums<fp6_e3m2, ints<fp6_e3m2>, Arch>,
                          avx512::word_sums<fp6_e3m2, ints<fp6_e3m2>, Arch>>;
};
template <class Arch>
struct avx512_block_sums<mxfp8_e4m3, Arch> {
  using type = vbmi_or_bw<Arch, avx512::digit_sums<fp8_e4m3, ints<fp8_e4m3>, Arch>,
                          avx512::e4m3_sums<fp8_e4m3, ints<fp8_e4m3>, Arch>>;
};
template <class Arch>
struct avx512_block_sums<mxfp8_e5m2, Arch> {
  using type = vbmi_or_bw<Arch, avx512::digit_sums<fp8_e5m2, ints<fp8_e5m2>, Arch>, void>;
};
#else
template <class Arch>
struct avx512_block_sums<mxint8, Arch> {
  using type = avx512::word_sums<int8, ints<int8>, Arch>;
};
template <class Arch>
struct avx512_block_sums<mxfp6_e2m3, Arch> {
  using type = avx512::word_sums<fp6_e2m3, ints<fp6_e2m3>, Arch>;
};
template <class Arch>
struct avx512_block_sums<mxfp6_e3m2, Arch> {
  using type = avx512::word_sums<fp6_e3m2, ints<fp6_e3m2>, Arch>;
};
template <class Arch>
struct avx512_block_sums<mxfp8_e4m3, Arch> {
  using type = avx512::e4m3_sums<fp8_e4m3, ints<fp8_e4m3>, Arch>;
};
#endif
template <class Format, class Arch>
class group_dot<Format, Arch, std::enable_if_t<has_avx512_group_dot<Format, Arch>()>> {
  using sums_kernel = typename avx512_block_sums<Format, Arch>::type;

 public:
  /// The 16 partial sums p[0..16) (mx_dot.hpp), one per lane.
  using partials = __m512;

  explicit group_dot(int shift)
      : scale_shift_(_mm512_set1_ps(blockcast::detail::exp2i(8 - shift))),
        exponent_bias_(_mm512_set1_ps(static_cast<float>(127 + shift))) {}

  /// p after `groups` groups of 16 blocks from p = +0: group g's codes at codes +
  /// g * group_bytes, its scales at scales + 16 g, its activations x.group(16 g).
  /// special(g, terms) fills the 16 terms of a group with an Inf or NaN element.
  template <class Activations, class Special>
  BLOCKCAST_INLINE partials accumulate(const std::uint8_t* codes, std::size_t group_bytes, const std::uint8_t* scales,
                                       std::size_t groups, const Activations& x, Special&& special) const {
    // a NaN scale (E8M0 0xFF; UE4M3 0x7F, or a sign bit) is rare: one look at the row's
    // scales spares the per-group test
    if (any_special_scale(scales, 16 * groups)) return add_groups<true>(codes, group_bytes, scales, groups, x, special);
    return add_groups<false>(codes, group_bytes, scales, groups, x, special);
  }
  /// How many rows accumulate_rows takes (1: none, rows go one at a time through accumulate).
  static constexpr int rows_at_once = rows_at_once_of<sums_kernel>::value;
  /// accumulate for rows_at_once rows of whole groups at once (row k's codes and scales at
  /// codes[k] and scales[k]), each row's p into out[k]: the same bits as one row at a time.
  /// Only for kernels whose codes have no Inf or NaN.
  template <class Activations>
  BLOCKCAST_INLINE void accumulate_rows(const std::uint8_t* const* codes, std::size_t group_bytes,
                                        const std::uint8_t* const* scales, std::size_t groups, const Activations& x,
                                        partials* out) const {
    bool nan = false;
    for (int k = 0; k < rows_at_once; ++k) nan = nan || any_special_scale(scales[k], 16 * groups);
    if (nan) add_groups_rows<true>(codes, group_bytes, scales, groups, x, out);
    else add_groups_rows<false>(codes, group_bytes, scales, groups, x, out);
  }
  static void store(partials p, float* out) { _mm512_storeu_ps(out, p); }
  /// The documented tree: p[i] + p[i+8], then + 4, + 2, + 1.
  static BLOCKCAST_INLINE float tree_sum(partials p) {
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(p), _mm512_extractf32x8_ps(p, 1));
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    return _mm_cvtss_f32(_mm_add_ss(q, _mm_movehdup_ps(q)));
  }

 private:
  template <bool SpecialScales, class Activations, class Special>
  BLOCKCAST_INLINE partials add_groups(const std::uint8_t* codes, std::size_t group_bytes, const std::uint8_t* scales,
                                       std::size_t groups, const Activations& x, Special& special) const {
    __m512 acc = _mm512_setzero_ps();
    for (std::size_t g = 0; g < groups; ++g) {
      if constexpr (software_prefetch<sums_kernel>()) prefetch<4096>(codes + g * group_bytes, group_bytes);
      add_group<SpecialScales>(acc, codes + g * group_bytes, scales + 16 * g, x.group(16 * g), g, special);
    }
    return acc;
  }
  template <bool SpecialScales, class Activations>
  BLOCKCAST_INLINE void add_groups_rows(const std::uint8_t* const* codes, std::size_t group_bytes,
                                        const std::uint8_t* const* scales, std::size_t groups, const Activations& x,
                                        partials* out) const {
    constexpr int R = rows_at_once;
    __m512 acc[R];
    for (int k = 0; k < R; ++k) acc[k] = _mm512_setzero_ps();
    for (std::size_t g = 0; g < groups; ++g) {
      const std::uint8_t* group_codes[R];
      for (int k = 0; k < R; ++k) {
        group_codes[k] = codes[k] + g * group_bytes;
        // the hardware prefetcher alone falls behind the four streams (mx_dot_kernels::rows
        // passes rows far apart, each stream running on into the rows after it): each asks
        // for its bytes 2 KiB ahead (MXFP4 on Zen 4: 26-31 GB/s without; 2 and 3 KiB alike,
        // 1 and 4 KiB slower, and into the L2 instead of the L1 much slower)
        prefetch<2048>(group_codes[k], group_bytes);
      }
      const group_activations xg = x.group(16 * g);
      __m512 sums[R];
      kernel_.template rows_sums<R>(group_codes, xg, sums);
      const __m512 x_scales = _mm512_loadu_ps(xg.scales);
      for (int k = 0; k < R; ++k) add_terms<SpecialScales>(acc[k], sums[k], scales[k] + 16 * g, x_scales);
    }
    for (int k = 0; k < R; ++k) out[k] = acc[k];
  }
  /// Whether any of n scales needs times_weight_scales<true>: an E8M0 NaN (0xFF), or a
  /// UE4M3 code that is NaN (0x7F) or has its sign bit set (>= 0x7F, unsigned).
  static BLOCKCAST_INLINE bool any_special_scale(const std::uint8_t* scales, std::size_t n) {
    constexpr std::uint8_t first = std::is_same_v<typename Format::scale_type, e8m0> ? 0xff : 0x7f;
    __mmask64 special = 0;
    std::size_t i = 0;
    for (; i + 64 <= n; i += 64)
      special |= _mm512_cmpge_epu8_mask(_mm512_loadu_si512(scales + i), _mm512_set1_epi8(static_cast<char>(first)));
    for (; i < n; ++i) special |= scales[i] >= first;
    return special != 0;
  }
  template <bool SpecialScales, class Special>
  BLOCKCAST_INLINE void add_group(__m512& acc, const std::uint8_t* codes, const std::uint8_t* scales,
                                  const group_activations& xg, std::size_t g, Special& special) const {
    __m512 sums;  // fp32(S_b)
    if (kernel_(codes, xg, sums)) {
      add_terms<SpecialScales>(acc, sums, scales, _mm512_loadu_ps(xg.scales));
    } else {
      alignas(64) float terms[16];
      special(g, terms);
      acc = _mm512_add_ps(acc, _mm512_load_ps(terms));
    }
  }

  /// acc + the 16 terms of a group: fp32(S_b) times d_w, rounded, times d_x, rounded (the
  /// documented order; each product kept out of a fused multiply-add).
  template <bool SpecialScales>
  BLOCKCAST_INLINE void add_terms(__m512& acc, __m512 sums, const std::uint8_t* scales, __m512 x_scales) const {
    const __m512 partial = avx512::rounded(times_weight_scales<SpecialScales>(sums, scales));
    acc = _mm512_add_ps(acc, avx512::rounded(_mm512_mul_ps(partial, x_scales)));
  }

  /// Asks for the codes `distance` bytes ahead, a line at a time: with it the hardware
  /// prefetcher is not the only source of memory parallelism, which the longer kernels (6-
  /// and 8-bit lookups) and several rows at once need beyond the L2. Non-temporal: the codes
  /// are read once, and kept out of the L2 they leave room for the scales and the next
  /// rows (NVFP4 at 16384 x 4096 on Zen 4: 7-11% faster than into all levels; MXFP4, E4M3 1-2%).
  template <std::size_t distance>
  static BLOCKCAST_INLINE void prefetch(const std::uint8_t* codes, std::size_t bytes) {
    const std::uintptr_t ahead = reinterpret_cast<std::uintptr_t>(codes) + distance;  // may lie past the end
    for (std::size_t i = 0; i < bytes; i += 64) _mm_prefetch(reinterpret_cast<const char*>(ahead + i), _MM_HINT_NTA);
  }

  /// sums * d_w, rounded once. E8M0: d_w = 2^(e - 127 - shift), so one vscalefps (exact
  /// scaling, one rounding, NaN for e = 0xFF through a NaN exponent, set only when SpecialScales
  /// says the row has one); UE4M3: the decoded scale times 2^-shift (exact), then the product
  /// (NaN and signed codes decoded only where SpecialScales says the row has them).
  template <bool SpecialScales>
  BLOCKCAST_INLINE __m512 times_weight_scales(__m512 sums, const std::uint8_t* scales) const {
    if constexpr (std::is_same_v<typename Format::scale_type, e8m0>) {
      const __m512i e = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(scales)));
      __m512 exponent = _mm512_sub_ps(_mm512_cvtepi32_ps(e), exponent_bias_);
      if constexpr (SpecialScales)
        exponent = _mm512_mask_mov_ps(exponent, _mm512_cmpeq_epi32_mask(e, _mm512_set1_epi32(0xff)),
                                      _mm512_castsi512_ps(_mm512_set1_epi32(0x7fc00000)));
      return _mm512_scalef_ps(sums, exponent);
    } else if constexpr (SpecialScales) {
      return _mm512_mul_ps(sums, avx512::decode_scales(scales, typename Format::scale_type{}, scale_shift_));
    } else {
      return _mm512_mul_ps(sums, avx512::decode_plain_scales(scales, typename Format::scale_type{}, scale_shift_));
    }
  }

  sums_kernel kernel_;
  __m512 scale_shift_;     // UE4M3 scales: 2^(8 - shift), see decode_scales
  __m512 exponent_bias_;   // E8M0 scales: 127 + shift
};
#endif

#if XSIMD_WITH_AVX2
namespace avx2 {

/// x unchanged, opaque to the optimiser (keeps a product out of a fused multiply-add).
BLOCKCAST_INLINE __m256 rounded(__m256 x) {
#if defined(__GNUC__)
  asm("" : "+x"(x));
#endif
  return x;
}

/// E2M1 codes: the AVX-512 kernel's nibble split on 32-byte halves, the products by
/// vpmaddubsw (integer + 12 <= 24 times |x| <= 128: each pair, and the sum of the even and
/// odd pairs, stays within 16 bits) and vpmaddwd.
template <class Ints, std::size_t B>
struct e2m1_sums {
  static constexpr int offset = 12;
  e2m1_sums() {
    alignas(16) std::uint8_t t[16];
    for (int c = 0; c < 16; ++c) t[c] = static_cast<std::uint8_t>(Ints::integer(static_cast<std::uint8_t>(c)) + offset);
    table_ = _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(t)));
  }
  /// The 16 block sums fp32(S_b) as two vectors of 8 (E2M1 has no Inf or NaN: always true).
  BLOCKCAST_INLINE bool operator()(const std::uint8_t* codes, const group_activations& x, __m256* sums) const {
    constexpr int halves = static_cast<int>(16 * B / 64);  // 32 bytes = 64 codes each
    const __m256i low = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
    __m256i r[halves], out[2];
    for (int k = 0; k < halves; ++k) {
      // half k of chunk k / 2: its even codes are split[128 (k / 2) + 32 (k % 2) + i], its odd
      // ones 64 further
      const std::int8_t* xs = x.split + 128 * (k / 2) + 32 * (k % 2);
      const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + 32 * k));
      const __m256i even = _mm256_shuffle_epi8(table_, _mm256_and_si256(bytes, low));
      const __m256i odd = _mm256_shuffle_epi8(table_, _mm256_and_si256(_mm256_srli_epi16(bytes, 4), low));
      const __m256i pairs =
          _mm256_add_epi16(_mm256_maddubs_epi16(even, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xs))),
                           _mm256_maddubs_epi16(odd, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xs + 64))));
      r[k] = _mm256_madd_epi16(pairs, ones);  // lane l: codes 64 k + 8 l .. + 7
    }
    if constexpr (B == 32) {
      // r[k]: lanes 0-3 block 2k, 4-7 block 2k+1; two rounds of hadd, then the order
      const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
      for (int h = 0; h < 2; ++h) {
        const __m256i a = _mm256_hadd_epi32(r[4 * h], r[4 * h + 1]), b = _mm256_hadd_epi32(r[4 * h + 2], r[4 * h + 3]);
        out[h] = _mm256_permutevar8x32_epi32(_mm256_hadd_epi32(a, b), order);
      }
    } else {
      // r[k]: blocks 4k..4k+3, two lanes each
      const __m256i order = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
      for (int h = 0; h < 2; ++h) out[h] = _mm256_permutevar8x32_epi32(_mm256_hadd_epi32(r[2 * h], r[2 * h + 1]), order);
    }
    for (int h = 0; h < 2; ++h)  // minus offset * sum(x) per block
      sums[h] = _mm256_cvtepi32_ps(_mm256_sub_epi32(
          out[h], _mm256_mullo_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.sums + 8 * h)), _mm256_set1_epi32(offset))));
    return true;
  }

 private:
  __m256i table_;
};

/// The 16 block sums of a group from r[b], block b's products summed into 8 int32 lanes: two
/// rounds of hadd leave, in each 128-bit half, blocks 0-3 (a) and 4-7 (b) summed over that
/// half's lanes; adding the halves finishes them.
BLOCKCAST_INLINE void block_totals(const __m256i (&r)[16], __m256i* out) {
  for (int h = 0; h < 2; ++h) {
    __m256i q[4];
    for (int i = 0; i < 4; ++i) q[i] = _mm256_hadd_epi32(r[8 * h + 2 * i], r[8 * h + 2 * i + 1]);
    const __m256i a = _mm256_hadd_epi32(q[0], q[1]), b = _mm256_hadd_epi32(q[2], q[3]);
    out[h] = _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20), _mm256_permute2x128_si256(a, b, 0x31));
  }
}
/// The same, rounded to FP32 (fp32(S_b)).
BLOCKCAST_INLINE void block_totals(const __m256i (&r)[16], __m256* sums) {
  __m256i out[2];
  block_totals(r, out);
  for (int h = 0; h < 2; ++h) sums[h] = _mm256_cvtepi32_ps(out[h]);
}

/// INT8 codes in blocks of 32: widened to 16 bits and multiplied with the activations widened
/// (vpmaddwd: every product and pair of products is exact in int32).
struct int8_sums {
  BLOCKCAST_INLINE bool operator()(const std::uint8_t* codes, const group_activations& x, __m256* sums) const {
    __m256i r[16];
    for (int b = 0; b < 16; ++b) {  // r[b]: block b's 32 products, in 8 lanes
      __m256i acc = _mm256_setzero_si256();
      for (int h = 0; h < 2; ++h) {
        const __m256i w = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + 32 * b + 16 * h)));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(w, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.wide + 32 * b + 16 * h))));
      }
      r[b] = acc;
    }
    block_totals(r, sums);
    return true;
  }
};

/// 6-bit float codes (MXFP6 E2M3, E3M2) in blocks of 32. A block's 24 bytes are spread to one
/// code per byte (vpshufb puts 3 bytes in each 32-bit word, shifts move the 4 fields to its 4
/// bytes); |integer| is looked up in base-128 digits (32 magnitudes: two vpshufb and a blend
/// per digit) and multiplied with the activations carrying the weight's sign (vpsignb) by
/// vpmaddubsw (digit <= 127 times |x| <= 128: each pair fits 16 bits); vpmaddwd by 128^d
/// recombines the digits exactly in int32. E2M3's integers (<= 60) are one digit, E3M2's
/// (<= 448) two. -(-128) is no signed byte, so a group whose activations hold -128 returns
/// false and takes the driver's block-by-block path (the same bits).
template <class Element, class Ints>
struct fp6_sums {
  static_assert(Element::bits == 6 && !Element::has_nan && !Element::has_inf, "6-bit codes without specials");
  static constexpr std::int64_t max_integer = Ints::max_magnitude();
  static constexpr int digits = max_integer < 128 ? 1 : 2;
  static_assert(max_integer < 128 * 128, "two base-128 digits");

  fp6_sums() {
    for (int d = 0; d < digits; ++d)
      for (int h = 0; h < 2; ++h) {
        alignas(16) std::uint8_t t[16];
        for (int i = 0; i < 16; ++i)
          t[i] = static_cast<std::uint8_t>((Ints::integer(static_cast<std::uint8_t>(16 * h + i)) >> (7 * d)) & 127);
        tables_[d][h] = _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(t)));
      }
  }
  BLOCKCAST_INLINE bool operator()(const std::uint8_t* codes, const group_activations& x, __m256* sums) const {
    if (x.has_min_code) return false;
    // the low lane reads bytes 0-15 of the block, the high lane bytes 8-23 (never past them)
    const __m256i spread = _mm256_setr_epi8(0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1,     //
                                            4, 5, 6, -1, 7, 8, 9, -1, 10, 11, 12, -1, 13, 14, 15, -1);
    const __m256i field = _mm256_set1_epi32(0x3f), low = _mm256_set1_epi8(0x0f);
    __m256i r[16];
    for (int b = 0; b < 16; ++b) {
      const std::uint8_t* p = codes + 24 * b;
      const __m256i raw = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))),
                                                  _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 8)), 1);
      const __m256i v = _mm256_shuffle_epi8(raw, spread);  // 4 codes (24 bits) per word
      const __m256i c = _mm256_or_si256(
          _mm256_or_si256(_mm256_and_si256(v, field), _mm256_and_si256(_mm256_slli_epi32(v, 2), _mm256_slli_epi32(field, 8))),
          _mm256_or_si256(_mm256_and_si256(_mm256_slli_epi32(v, 4), _mm256_slli_epi32(field, 16)),
                          _mm256_and_si256(_mm256_slli_epi32(v, 6), _mm256_slli_epi32(field, 24))));
      // bit 7 of each byte of c << 2: the sign bit (nonzero unless the code is +0); of c << 3:
      // magnitude bit 4, which picks the table half
      const __m256i xs = _mm256_sign_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.codes + 32 * b)),
                                          _mm256_slli_epi16(c, 2));
      const __m256i index = _mm256_and_si256(c, low), half = _mm256_slli_epi16(c, 3);
      __m256i acc = _mm256_setzero_si256();
      for (int d = 0; d < digits; ++d) {
        const __m256i digit =
            _mm256_blendv_epi8(_mm256_shuffle_epi8(tables_[d][0], index), _mm256_shuffle_epi8(tables_[d][1], index), half);
        const __m256i weight = _mm256_set1_epi16(static_cast<std::int16_t>(1 << (7 * d)));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(digit, xs), weight));
      }
      r[b] = acc;
    }
    block_totals(r, sums);
    return true;
  }

 private:
  __m256i tables_[digits][2];
};

/// For 32 8-bit float codes c (Mbits mantissa bits) and their activations x: the exponent
/// fields e (bytes), and the 16-bit products M * x with M the significand (m where e = 0, else
/// 2^Mbits + m) and x carrying the weight's sign (vpsignb zeroes x where c = 0, whose M is 0),
/// in unpack order: p[0] from the low 8 bytes of each 128-bit lane, p[1] from the high 8.
template <int Mbits>
BLOCKCAST_INLINE __m256i significand_products(__m256i c, const std::int8_t* x, __m256i* p) {
  const __m256i zero = _mm256_setzero_si256();
  const __m256i e = _mm256_and_si256(_mm256_srli_epi16(c, Mbits), _mm256_set1_epi8((1 << (7 - Mbits)) - 1));
  const __m256i m = _mm256_or_si256(_mm256_and_si256(c, _mm256_set1_epi8((1 << Mbits) - 1)),
                                    _mm256_and_si256(_mm256_cmpgt_epi8(e, zero), _mm256_set1_epi8(1 << Mbits)));
  const __m256i xs = _mm256_sign_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x)), c);
  const __m256i xs_high = _mm256_cmpgt_epi8(zero, xs);  // sign extension
  p[0] = _mm256_mullo_epi16(_mm256_unpacklo_epi8(m, zero), _mm256_unpacklo_epi8(xs, xs_high));
  p[1] = _mm256_mullo_epi16(_mm256_unpackhi_epi8(m, zero), _mm256_unpackhi_epi8(xs, xs_high));
  return e;
}
/// The int32 sums of pairs of products p times the 16-bit powers whose low and high bytes are
/// lo and hi (unpacked in the products' order).
BLOCKCAST_INLINE __m256i times_powers(const __m256i* p, __m256i lo, __m256i hi) {
  return _mm256_add_epi32(_mm256_madd_epi16(p[0], _mm256_unpacklo_epi8(lo, hi)),
                          _mm256_madd_epi16(p[1], _mm256_unpackhi_epi8(lo, hi)));
}

/// E4M3 codes in blocks of 32: |integer| = M * 2^s with M = m (exponent field e = 0) or 8 + m,
/// and s = max(e - 1, 0) <= 14. M (<= 15) times the activation carrying the weight's sign is a
/// 16-bit product (vpmullw, |P| <= 1905), and vpmaddwd by 2^s (a 16-bit power looked up by
/// vpshufb) adds pairs of them exactly in int32 (a block's sum stays below 2^30). NaN codes,
/// and activations holding -128 (-(-128) is no signed byte), send the group to the driver's
/// block-by-block path (the same bits).
template <class Ints>
struct e4m3_sums {
  e4m3_sums() {
    alignas(16) std::uint8_t lo[16], hi[16];
    for (int e = 0; e < 16; ++e) {
      const int power = 1 << (e == 0 ? 0 : e - 1);
      lo[e] = static_cast<std::uint8_t>(power & 0xff);
      hi[e] = static_cast<std::uint8_t>(power >> 8);
    }
    power_lo_ = _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(lo)));
    power_hi_ = _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(hi)));
  }
  BLOCKCAST_INLINE bool operator()(const std::uint8_t* codes, const group_activations& x, __m256* sums) const {
    if (x.has_min_code) return false;
    const __m256i nan = _mm256_set1_epi8(0x7f);
    __m256i r[16], special = _mm256_setzero_si256();
    for (int b = 0; b < 16; ++b) {
      const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + 32 * b));
      special = _mm256_or_si256(special, _mm256_cmpeq_epi8(_mm256_and_si256(c, nan), nan));
      __m256i p[2];
      const __m256i e = significand_products<3>(c, x.codes + 32 * b, p);
      r[b] = times_powers(p, _mm256_shuffle_epi8(power_lo_, e), _mm256_shuffle_epi8(power_hi_, e));
    }
    if (_mm256_movemask_epi8(special)) return false;
    block_totals(r, sums);
    return true;
  }

 private:
  __m256i power_lo_, power_hi_;
};

/// E5M2 codes in blocks of 32: as E4M3, with M = m or 4 + m (<= 7) and s = max(e - 1, 0) <= 29,
/// too large a power for 16 bits: the products go twice through vpmaddwd, by 2^s where s < 15
/// (sums A) and by 2^(s - 15) where s >= 15 (sums B), each exact in int32 (below 2^29 per
/// block). S_b = A + 2^15 B is exact in double (below 2^45) and rounded once to FP32. Inf and
/// NaN codes, and activations holding -128, send the group to the driver's path.
template <class Ints>
struct e5m2_sums {
  e5m2_sums() {
    alignas(16) std::uint8_t t[4][16];  // 2^s for e = i and for e = 16 + i: low and high bytes
    for (int i = 0; i < 16; ++i) {
      const int low_power = 1 << (i == 0 ? 0 : i - 1), high_power = 1 << (i < 15 ? i : 0);
      t[0][i] = static_cast<std::uint8_t>(low_power & 0xff);
      t[1][i] = static_cast<std::uint8_t>(low_power >> 8);
      t[2][i] = static_cast<std::uint8_t>(high_power & 0xff);
      t[3][i] = static_cast<std::uint8_t>(high_power >> 8);
    }
    for (int k = 0; k < 4; ++k) powers_[k] = _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(t[k])));
  }
  BLOCKCAST_INLINE bool operator()(const std::uint8_t* codes, const group_activations& x, __m256* sums) const {
    if (x.has_min_code) return false;
    const __m256i special_exponent = _mm256_set1_epi8(0x7c);
    __m256i a[16], b[16], special = _mm256_setzero_si256();
    for (int k = 0; k < 16; ++k) {
      const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + 32 * k));
      special = _mm256_or_si256(special, _mm256_cmpeq_epi8(_mm256_and_si256(c, special_exponent), special_exponent));
      __m256i p[2];
      const __m256i e = significand_products<2>(c, x.codes + 32 * k, p);
      const __m256i index = _mm256_and_si256(e, _mm256_set1_epi8(15)), high = _mm256_cmpgt_epi8(e, _mm256_set1_epi8(15));
      __m256i power[4];  // low lo, low hi, high lo, high hi bytes; each zero in the other range
      for (int t = 0; t < 4; ++t) {
        const __m256i looked_up = _mm256_shuffle_epi8(powers_[t], index);
        power[t] = t < 2 ? _mm256_andnot_si256(high, looked_up) : _mm256_and_si256(high, looked_up);
      }
      a[k] = times_powers(p, power[0], power[1]);
      b[k] = times_powers(p, power[2], power[3]);
    }
    if (_mm256_movemask_epi8(special)) return false;
    __m256i low[2], high[2];
    block_totals(a, low);
    block_totals(b, high);
    const __m256d two15 = _mm256_set1_pd(32768.0);
    for (int h = 0; h < 2; ++h) {
      __m128 half[2];
      for (int q = 0; q < 2; ++q) {
        const __m128i lo = q == 0 ? _mm256_castsi256_si128(low[h]) : _mm256_extracti128_si256(low[h], 1);
        const __m128i hi = q == 0 ? _mm256_castsi256_si128(high[h]) : _mm256_extracti128_si256(high[h], 1);
        half[q] = _mm256_cvtpd_ps(_mm256_add_pd(_mm256_cvtepi32_pd(lo), _mm256_mul_pd(_mm256_cvtepi32_pd(hi), two15)));
      }
      sums[h] = _mm256_insertf128_ps(_mm256_castps128_ps256(half[0]), half[1], 1);
    }
    return true;
  }

 private:
  __m256i powers_[4];
};

}  // namespace avx2

template <class Format, class Arch>
struct avx2_block_sums<Format, Arch,
                       std::enable_if_t<std::is_same_v<typename Format::element_type, fp4_e2m1> &&
                                        (Format::block_size == 32 || Format::block_size == 16)>> {
  using type = avx2::e2m1_sums<element_integers<fp4_e2m1>, Format::block_size>;
};
template <class Format, class Arch>
struct avx2_block_sums<Format, Arch, std::enable_if_t<std::is_same_v<typename Format::element_type, int8> && Format::block_size == 32>> {
  using type = avx2::int8_sums;
};
template <class Format, class Arch>
struct avx2_block_sums<Format, Arch,
                       std::enable_if_t<(std::is_same_v<typename Format::element_type, fp6_e2m3> ||
                                         std::is_same_v<typename Format::element_type, fp6_e3m2>) &&
                                        Format::block_size == 32>> {
  using type = avx2::fp6_sums<typename Format::element_type, element_integers<typename Format::element_type>>;
};
template <class Format, class Arch>
struct avx2_block_sums<Format, Arch, std::enable_if_t<std::is_same_v<typename Format::element_type, fp8_e4m3> && Format::block_size == 32>> {
  using type = avx2::e4m3_sums<element_integers<fp8_e4m3>>;
};
template <class Format, class Arch>
struct avx2_block_sums<Format, Arch, std::enable_if_t<std::is_same_v<typename Format::element_type, fp8_e5m2> && Format::block_size == 32>> {
  using type = avx2::e5m2_sums<element_integers<fp8_e5m2>>;
};

/// On AVX2: the 16 partial sums as two 8-lane vectors, each group's block sums from the
/// format's kernel (avx2_block_sums), scaled as on AVX-512.
template <class Format, class Arch>
class group_dot<Format, Arch, std::enable_if_t<has_avx2_group_dot<Format, Arch>()>> {
  using sums_kernel = typename avx2_block_sums<Format, Arch>::type;

 public:
  /// p[0..8) and p[8..16).
  struct partials {
    __m256 lo, hi;
  };

  explicit group_dot(int shift) : shift_(_mm256_set1_ps(blockcast::detail::exp2i(-shift))) {}

  /// One row at a time (accumulate).
  static constexpr int rows_at_once = 1;

  template <class Activations, class Special>
  BLOCKCAST_INLINE partials accumulate(const std::uint8_t* codes, std::size_t group_bytes, const std::uint8_t* scales,
                                       std::size_t groups, const Activations& x, Special&& special) const {
    partials acc{_mm256_setzero_ps(), _mm256_setzero_ps()};
    for (std::size_t g = 0; g < groups; ++g) {
      const group_activations xg = x.group(16 * g);
      __m256 sums[2];  // fp32(S_b)
      if (!kernel_(codes + g * group_bytes, xg, sums)) {
        alignas(32) float terms[16];
        special(g, terms);
        acc.lo = _mm256_add_ps(acc.lo, _mm256_load_ps(terms));
        acc.hi = _mm256_add_ps(acc.hi, _mm256_load_ps(terms + 8));
        continue;
      }
      for (int h = 0; h < 2; ++h) {
        const __m256 partial = avx2::rounded(_mm256_mul_ps(sums[h], weight_scales(scales + 16 * g + 8 * h)));
        const __m256 term = avx2::rounded(_mm256_mul_ps(partial, _mm256_loadu_ps(xg.scales + 8 * h)));
        (h == 0 ? acc.lo : acc.hi) = _mm256_add_ps(h == 0 ? acc.lo : acc.hi, term);
      }
    }
    return acc;
  }
  static void store(partials p, float* out) {
    _mm256_storeu_ps(out, p.lo);
    _mm256_storeu_ps(out + 8, p.hi);
  }
  /// The documented tree: p[i] + p[i+8], then + 4, + 2, + 1.
  static BLOCKCAST_INLINE float tree_sum(partials p) {
    const __m256 h = _mm256_add_ps(p.lo, p.hi);
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    return _mm_cvtss_f32(_mm_add_ss(q, _mm_movehdup_ps(q)));
  }

 private:
  /// d_w of 8 blocks: the decoded scale times 2^-shift, exact; NaN codes to NaN.
  BLOCKCAST_INLINE __m256 weight_scales(const std::uint8_t* scales) const {
    const __m256i c = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(scales)));
    const __m256i nan = _mm256_set1_epi32(0x7fc00000);
    __m256 v;
    if constexpr (std::is_same_v<typename Format::scale_type, e8m0>) {
      __m256i bits = _mm256_slli_epi32(c, 23);
      bits = _mm256_blendv_epi8(bits, _mm256_set1_epi32(0x00400000), _mm256_cmpeq_epi32(c, _mm256_setzero_si256()));
      bits = _mm256_blendv_epi8(bits, nan, _mm256_cmpeq_epi32(c, _mm256_set1_epi32(0xff)));
      v = _mm256_castsi256_ps(bits);
    } else {
      const __m256i magnitude = _mm256_and_si256(c, _mm256_set1_epi32(0x7f));
      const __m256 normal = _mm256_castsi256_ps(_mm256_add_epi32(_mm256_slli_epi32(magnitude, 20), _mm256_set1_epi32(120 << 23)));
      const __m256 subnormal = _mm256_mul_ps(_mm256_cvtepi32_ps(magnitude), _mm256_set1_ps(1.0f / 512.0f));
      v = _mm256_blendv_ps(normal, subnormal, _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(8), magnitude)));
      v = _mm256_blendv_ps(v, _mm256_castsi256_ps(nan), _mm256_castsi256_ps(_mm256_cmpeq_epi32(magnitude, _mm256_set1_epi32(0x7f))));
      v = _mm256_or_ps(v, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_and_si256(c, _mm256_set1_epi32(0x80)), 24)));
    }
    return _mm256_mul_ps(v, shift_);
  }

  sums_kernel kernel_;
  __m256 shift_;
};
#endif

}  // namespace blockcast::simd::arch
