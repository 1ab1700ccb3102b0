// SPDX-License-Identifier: MIT
// The few operations xsimd 8.1 lacks, per architecture: a horizontal max of int32 lanes,
// widening bytes to int32 lanes and narrowing int32 lanes to bytes. Every helper has a generic
// overload (through memory) that any architecture, NEON included, can use; the intrinsic
// versions are tested against it by the per-architecture test runs.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "blockcast/config.hpp"

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

namespace blockcast::simd {

/// AVX-512BW with VBMI and VNNI (Ice Lake, Zen 4 and later): xsimd 8.1 does not know these
/// extensions, so blockcast names them as an architecture of its own, derived from
/// avx512bw (every xsimd operation is avx512bw's). Its kernels are the ones that use
/// vpermb/vpermt2b/vpmultishiftqb and vpdpbusd; the type keeps them apart from avx512bw's,
/// so that files compiled with and without these extensions never mix their kernels.
struct avx512vbmi : xsimd::avx512bw {
#if XSIMD_WITH_AVX512BW && defined(__AVX512VBMI__) && defined(__AVX512VNNI__)
  static constexpr bool supported() noexcept { return true; }
#else
  static constexpr bool supported() noexcept { return false; }
#endif
  static constexpr bool available() noexcept { return true; }
  static constexpr char const* name() noexcept { return "avx512vbmi"; }
};

/// The best architecture this translation unit is compiled for: the one the entry points use.
using best_arch = std::conditional_t<avx512vbmi::supported(), avx512vbmi, xsimd::default_arch>;

}  // namespace blockcast::simd

#if XSIMD_WITH_AVX512BW
namespace xsimd::types {
template <class T>
struct get_bool_simd_register<T, blockcast::simd::avx512vbmi> {
  using type = simd_avx512_bool_register<T>;
};
XSIMD_DECLARE_SIMD_REGISTER_ALIAS(blockcast::simd::avx512vbmi, avx512bw);
}  // namespace xsimd::types
#endif

namespace blockcast::simd::arch {

template <class Arch>
using i32 = xsimd::batch<std::int32_t, Arch>;

/// Whether Arch has the VBMI/VNNI kernels.
template <class Arch>
constexpr bool is_vbmi() {
  return std::is_base_of_v<avx512vbmi, Arch>;
}

// ---- generic fallbacks -------------------------------------------------------------------

template <class Arch>
BLOCKCAST_INLINE std::int32_t hmax(const i32<Arch>& v, xsimd::generic) {
  alignas(64) std::int32_t lanes[i32<Arch>::size];
  v.store_aligned(lanes);
  std::int32_t m = lanes[0];
  for (std::size_t i = 1; i < i32<Arch>::size; ++i) m = lanes[i] > m ? lanes[i] : m;
  return m;
}

/// Lanes i of the result = bytes[i] (zero-extended).
template <class Arch>
BLOCKCAST_INLINE i32<Arch> widen_bytes(const std::uint8_t* bytes, xsimd::generic) {
  alignas(64) std::int32_t lanes[i32<Arch>::size];
  for (std::size_t i = 0; i < i32<Arch>::size; ++i) lanes[i] = bytes[i];
  return i32<Arch>::load_aligned(lanes);
}

/// bytes[i] = low byte of lane i.
template <class Arch>
BLOCKCAST_INLINE void narrow_bytes(const i32<Arch>& v, std::uint8_t* bytes, xsimd::generic) {
  alignas(64) std::int32_t lanes[i32<Arch>::size];
  v.store_aligned(lanes);
  for (std::size_t i = 0; i < i32<Arch>::size; ++i) bytes[i] = static_cast<std::uint8_t>(lanes[i]);
}

// ---- x86 ---------------------------------------------------------------------------------

#if XSIMD_WITH_SSE4_1
template <class Arch>
BLOCKCAST_INLINE std::int32_t hmax(const i32<Arch>& v, xsimd::sse4_1) {
  __m128i m = v;
  m = _mm_max_epi32(m, _mm_shuffle_epi32(m, _MM_SHUFFLE(1, 0, 3, 2)));
  m = _mm_max_epi32(m, _mm_shuffle_epi32(m, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(m);
}
template <class Arch>
BLOCKCAST_INLINE i32<Arch> widen_bytes(const std::uint8_t* bytes, xsimd::sse4_1) {
  std::int32_t word;
  std::memcpy(&word, bytes, 4);
  return _mm_cvtepu8_epi32(_mm_cvtsi32_si128(word));
}
template <class Arch>
BLOCKCAST_INLINE void narrow_bytes(const i32<Arch>& v, std::uint8_t* bytes, xsimd::sse4_1) {
  // lanes hold 0..255: unsigned saturation is the identity
  const __m128i b = _mm_packus_epi16(_mm_packus_epi32(v, v), _mm_setzero_si128());
  const std::int32_t word = _mm_cvtsi128_si32(b);
  std::memcpy(bytes, &word, 4);
}
#endif

#if XSIMD_WITH_AVX2
template <class Arch>
BLOCKCAST_INLINE std::int32_t hmax(const i32<Arch>& v, xsimd::avx2) {
  __m128i m = _mm_max_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  m = _mm_max_epi32(m, _mm_shuffle_epi32(m, _MM_SHUFFLE(1, 0, 3, 2)));
  m = _mm_max_epi32(m, _mm_shuffle_epi32(m, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(m);
}
template <class Arch>
BLOCKCAST_INLINE i32<Arch> widen_bytes(const std::uint8_t* bytes, xsimd::avx2) {
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(bytes)));
}
template <class Arch>
BLOCKCAST_INLINE void narrow_bytes(const i32<Arch>& v, std::uint8_t* bytes, xsimd::avx2) {
  const __m128i lo = _mm256_castsi256_si128(v), hi = _mm256_extracti128_si256(v, 1);
  const __m128i b = _mm_packus_epi16(_mm_packus_epi32(lo, hi), _mm_setzero_si128());
  _mm_storel_epi64(reinterpret_cast<__m128i*>(bytes), b);
}
#endif

#if XSIMD_WITH_AVX512F
template <class Arch>
BLOCKCAST_INLINE std::int32_t hmax(const i32<Arch>& v, xsimd::avx512f) {
  return _mm512_reduce_max_epi32(v);
}
template <class Arch>
BLOCKCAST_INLINE i32<Arch> widen_bytes(const std::uint8_t* bytes, xsimd::avx512f) {
  return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes)));
}
template <class Arch>
BLOCKCAST_INLINE void narrow_bytes(const i32<Arch>& v, std::uint8_t* bytes, xsimd::avx512f) {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(bytes), _mm512_cvtepi32_epi8(v));
}
#endif

// ---- per-group reductions ----------------------------------------------------------------

/// Lane b of the result = max over the lanes of m[b], for b < lanes (a transposed reduction).
template <class Arch>
BLOCKCAST_INLINE i32<Arch> block_maxes(const i32<Arch>* m, xsimd::generic) {
  alignas(64) std::int32_t lanes[i32<Arch>::size];
  for (std::size_t b = 0; b < i32<Arch>::size; ++b) lanes[b] = hmax<Arch>(m[b], Arch{});
  return i32<Arch>::load_aligned(lanes);
}

/// Bit b = lane b of a comparison result.
template <class Arch>
BLOCKCAST_INLINE std::uint32_t movemask(const xsimd::batch_bool<std::int32_t, Arch>& c, xsimd::generic) {
  alignas(64) std::int32_t lanes[i32<Arch>::size];
  xsimd::select(c, i32<Arch>(1), i32<Arch>(0)).store_aligned(lanes);
  std::uint32_t bits = 0;
  for (std::size_t b = 0; b < i32<Arch>::size; ++b) bits |= static_cast<std::uint32_t>(lanes[b]) << b;
  return bits;
}

#if XSIMD_WITH_SSE2
template <class Arch>
BLOCKCAST_INLINE std::uint32_t movemask(const xsimd::batch_bool<std::int32_t, Arch>& c, xsimd::sse2) {
  return static_cast<std::uint32_t>(_mm_movemask_ps(_mm_castsi128_ps(c)));
}
#endif
#if XSIMD_WITH_AVX2
template <class Arch>
BLOCKCAST_INLINE std::uint32_t movemask(const xsimd::batch_bool<std::int32_t, Arch>& c, xsimd::avx2) {
  return static_cast<std::uint32_t>(_mm256_movemask_ps(_mm256_castsi256_ps(c)));
}
#endif
#if XSIMD_WITH_AVX512F
template <class Arch>
BLOCKCAST_INLINE std::uint32_t movemask(const xsimd::batch_bool<std::int32_t, Arch>& c, xsimd::avx512f) {
  return static_cast<std::uint32_t>(static_cast<__mmask16>(c));
}
template <class Arch>
BLOCKCAST_INLINE i32<Arch> block_maxes(const i32<Arch>* m, xsimd::avx512f) {
  __m512i c[8], d[4], e[2];
  for (int i = 0; i < 8; ++i) {  // 16 -> 8: 128-bit quarters; each half holds one block's 8
    const __m512i a = m[2 * i], b = m[2 * i + 1];
    c[i] = _mm512_max_epi32(_mm512_shuffle_i32x4(a, b, _MM_SHUFFLE(1, 0, 1, 0)),
                            _mm512_shuffle_i32x4(a, b, _MM_SHUFFLE(3, 2, 3, 2)));
  }
  for (int i = 0; i < 4; ++i)  // 8 -> 4: quarter k holds block 4i+k's 4
    d[i] = _mm512_max_epi32(_mm512_shuffle_i32x4(c[2 * i], c[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                            _mm512_shuffle_i32x4(c[2 * i], c[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
  for (int i = 0; i < 2; ++i)  // 4 -> 2: quarter k holds blocks 8i+k and 8i+4+k, 2 each
    e[i] = _mm512_max_epi32(_mm512_unpacklo_epi64(d[2 * i], d[2 * i + 1]),
                            _mm512_unpackhi_epi64(d[2 * i], d[2 * i + 1]));
  // 2 -> 1: lane 4k+j holds block k+4j
  const __m512 a = _mm512_castsi512_ps(e[0]), b = _mm512_castsi512_ps(e[1]);
  const __m512i f = _mm512_max_epi32(_mm512_castps_si512(_mm512_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0))),
                                     _mm512_castps_si512(_mm512_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1))));
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  return _mm512_permutexvar_epi32(order, f);
}
#endif

// ---- element helpers -----------------------------------------------------------------------

/// FP32 magnitude bits of max(|a|, |b|) compared as integers (NaN/Inf bits stay above every
/// finite magnitude). (AVX-512's vrangeps would do it in one instruction, but it drops a QNaN
/// operand and returns the other value, and a NaN must reach the block's amax.)
template <class Arch>
BLOCKCAST_INLINE i32<Arch> abs_max_bits(const xsimd::batch<float, Arch>& a, const xsimd::batch<float, Arch>& b, xsimd::generic) {
  const i32<Arch> m(0x7fffffff);
  return xsimd::max(xsimd::bitwise_cast<i32<Arch>>(a) & m, xsimd::bitwise_cast<i32<Arch>>(b) & m);
}

/// code | sign_bit where the sign bit of `x` is set.
template <class Arch>
BLOCKCAST_INLINE i32<Arch> or_sign(const i32<Arch>& code, const i32<Arch>& x, std::int32_t sign_bit, xsimd::generic) {
  return code | ((x >> 31) & i32<Arch>(sign_bit));
}

/// -v where the sign bit of `x` is set, v elsewhere (two's complement codes).
template <class Arch>
BLOCKCAST_INLINE i32<Arch> negate_where_sign(const i32<Arch>& v, const i32<Arch>& x, xsimd::generic) {
  const i32<Arch> negative = x >> 31;
  return (v ^ negative) - negative;
}

#if XSIMD_WITH_AVX512DQ
template <class Arch>
BLOCKCAST_INLINE i32<Arch> negate_where_sign(const i32<Arch>& v, const i32<Arch>& x, xsimd::avx512dq) {
  return _mm512_mask_sub_epi32(v, _mm512_movepi32_mask(x), _mm512_setzero_si512(), v);
}
template <class Arch>
BLOCKCAST_INLINE i32<Arch> or_sign(const i32<Arch>& code, const i32<Arch>& x, std::int32_t sign_bit, xsimd::avx512dq) {
  return _mm512_mask_or_epi32(code, _mm512_movepi32_mask(x), code, _mm512_set1_epi32(sign_bit));
}
#endif

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

// ---- 4-bit codes split by nibble ---------------------------------------------------------

/// From `lanes` bytes of 4-bit codes: the low nibbles (the even codes) and the high nibbles
/// (the odd codes), one per lane, without reordering a byte.
template <class Arch>
BLOCKCAST_INLINE void split_nibbles(const std::uint8_t* bytes, i32<Arch>& even, i32<Arch>& odd, xsimd::generic) {
  const i32<Arch> b = widen_bytes<Arch>(bytes, Arch{});
  even = b & i32<Arch>(0x0f);
  odd = (b >> 4) & i32<Arch>(0x0f);
}

// ---- codes of whole vectors: packing and unpacking in registers --------------------------

/// Stores the codes of `count` vectors (count * lanes codes, a multiple of 8), each < 2^Bits,
/// as the little-endian bit stream of layout.hpp.
template <int Bits, class Arch>
BLOCKCAST_INLINE void store_codes(const i32<Arch>* v, std::size_t count, std::uint8_t* out, xsimd::generic) {
  constexpr std::size_t L = i32<Arch>::size;
  alignas(64) std::uint8_t bytes[8 * 64];
  for (std::size_t i = 0; i < count; ++i) narrow_bytes<Arch>(v[i], bytes + i * L, Arch{});
  if constexpr (Bits == 8) {
    std::memcpy(out, bytes, count * L);
  } else {
    pack_groups<Bits>(bytes, count * L / 8, out);
  }
}

/// Loads count * lanes codes of Bits each into count vectors.
template <int Bits, class Arch>
BLOCKCAST_INLINE void load_codes(const std::uint8_t* in, std::size_t count, i32<Arch>* v, xsimd::generic) {
  constexpr std::size_t L = i32<Arch>::size;
  alignas(64) std::uint8_t bytes[8 * 64];
  const std::uint8_t* b = in;
  if constexpr (Bits != 8) {
    unpack_groups<Bits>(in, count * L / 8, bytes);
    b = bytes;
  }
  for (std::size_t i = 0; i < count; ++i) v[i] = widen_bytes<Arch>(b + i * L, Arch{});
}

#if XSIMD_WITH_AVX2
template <int Bits, class Arch>
BLOCKCAST_INLINE void store_codes(const i32<Arch>* v, std::size_t count, std::uint8_t* out, xsimd::avx2) {
  if constexpr (Bits == 4) {
    if (count % 2 == 0) {
      // 2 vectors = 16 codes -> 16 bytes in order -> nibble pairs -> 8 bytes
      for (std::size_t i = 0; i < count; i += 2) {
        const __m256i words = _mm256_permute4x64_epi64(_mm256_packus_epi32(v[i], v[i + 1]), 0xd8);
        const __m128i bytes = _mm_packus_epi16(_mm256_castsi256_si128(words), _mm256_extracti128_si256(words, 1));
        const __m128i pairs = _mm_and_si128(_mm_or_si128(bytes, _mm_srli_epi16(bytes, 4)), _mm_set1_epi16(0xff));
        _mm_storel_epi64(reinterpret_cast<__m128i*>(out + 4 * i), _mm_packus_epi16(pairs, pairs));
      }
      return;
    }
  }
  store_codes<Bits, Arch>(v, count, out, xsimd::generic{});
}
template <int Bits, class Arch>
BLOCKCAST_INLINE void load_codes(const std::uint8_t* in, std::size_t count, i32<Arch>* v, xsimd::avx2) {
  if constexpr (Bits == 4) {
    if (count % 2 == 0) {
      for (std::size_t i = 0; i < count; i += 2) {
        // 8 bytes -> 16 codes: split nibbles into bytes in order, widen 8 at a time
        const __m128i w = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(in + 4 * i)));
        const __m128i bytes = _mm_or_si128(_mm_and_si128(w, _mm_set1_epi16(0x0f)),
                                           _mm_and_si128(_mm_slli_epi16(w, 4), _mm_set1_epi16(0x0f00)));
        v[i] = _mm256_cvtepu8_epi32(bytes);
        v[i + 1] = _mm256_cvtepu8_epi32(_mm_srli_si128(bytes, 8));
      }
      return;
    }
  }
  load_codes<Bits, Arch>(in, count, v, xsimd::generic{});
}
#endif

#if XSIMD_WITH_AVX512BW && defined(__AVX512VL__)
template <int Bits, class Arch>
BLOCKCAST_INLINE void store_codes(const i32<Arch>* v, std::size_t count, std::uint8_t* out, xsimd::avx512bw) {
  for (std::size_t i = 0; i < count; ++i) {
    if constexpr (Bits == 8) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 16 * i), _mm512_cvtepi32_epi8(v[i]));
    } else if constexpr (Bits == 4) {
      if (i + 1 < count) {
        // two vectors: pack to 16-bit pairs, (lo | hi << 16) -> lo | hi << 4, one narrowing,
        // then undo packus's 128-bit interleave
        const __m512i words = _mm512_packus_epi32(v[i], v[i + 1]);
        const __m512i pairs = _mm512_or_si512(words, _mm512_srli_epi32(words, 12));
        const __m128i order = _mm_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 8 * i),
                         _mm_shuffle_epi8(_mm512_cvtepi32_epi8(pairs), order));
        ++i;
        continue;
      }
      // 16-bit words c[2i] | c[2i+1] << 8 -> c[2i] | c[2i+1] << 4 in the low byte
      const __m128i bytes = _mm512_cvtepi32_epi8(v[i]);
      const __m128i pairs = _mm_or_si128(bytes, _mm_srli_epi16(bytes, 4));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(out + 8 * i), _mm_cvtepi16_epi8(pairs));
    } else if constexpr (Bits == 6) {
      // in each 32-bit word gather 4 codes into 24 bits, then drop every fourth byte
      const __m128i bytes = _mm512_cvtepi32_epi8(v[i]);
      const __m128i m = _mm_set1_epi32(0x3f);
      __m128i w = _mm_and_si128(bytes, m);
      w = _mm_or_si128(w, _mm_and_si128(_mm_srli_epi32(bytes, 2), _mm_slli_epi32(m, 6)));
      w = _mm_or_si128(w, _mm_and_si128(_mm_srli_epi32(bytes, 4), _mm_slli_epi32(m, 12)));
      w = _mm_or_si128(w, _mm_and_si128(_mm_srli_epi32(bytes, 6), _mm_slli_epi32(m, 18)));
      const __m128i squeeze = _mm_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1);
      _mm_mask_storeu_epi8(out + 12 * i, 0x0fff, _mm_shuffle_epi8(w, squeeze));
    } else {
      store_codes<Bits, Arch>(v + i, 1, out + 2 * Bits * i, xsimd::generic{});
    }
  }
}
template <int Bits, class Arch>
BLOCKCAST_INLINE void load_codes(const std::uint8_t* in, std::size_t count, i32<Arch>* v, xsimd::avx512bw) {
  for (std::size_t i = 0; i < count; ++i) {
    if constexpr (Bits == 8) {
      v[i] = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + 16 * i)));
    } else if constexpr (Bits == 4) {
      const __m128i w = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(in + 8 * i)));
      const __m128i bytes = _mm_or_si128(_mm_and_si128(w, _mm_set1_epi16(0x0f)),
                                         _mm_and_si128(_mm_slli_epi16(w, 4), _mm_set1_epi16(0x0f00)));
      v[i] = _mm512_cvtepu8_epi32(bytes);
    } else if constexpr (Bits == 6) {
      // 12 bytes -> 4 words of 3 bytes -> 4 codes per word, one per byte
      const __m128i raw = _mm_maskz_loadu_epi8(0x0fff, in + 12 * i);
      const __m128i expand = _mm_setr_epi8(0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1);
      const __m128i w = _mm_shuffle_epi8(raw, expand);
      const __m128i m = _mm_set1_epi32(0x3f);
      __m128i bytes = _mm_and_si128(w, m);
      bytes = _mm_or_si128(bytes, _mm_slli_epi32(_mm_and_si128(w, _mm_slli_epi32(m, 6)), 2));
      bytes = _mm_or_si128(bytes, _mm_slli_epi32(_mm_and_si128(w, _mm_slli_epi32(m, 12)), 4));
      bytes = _mm_or_si128(bytes, _mm_slli_epi32(_mm_and_si128(w, _mm_slli_epi32(m, 18)), 6));
      v[i] = _mm512_cvtepu8_epi32(bytes);
    } else {
      load_codes<Bits, Arch>(in + 2 * Bits * i, 1, v + i, xsimd::generic{});
    }
  }
}
#endif

// ---- FP4 E2M1 blocks with one rounding, one table lookup and one byte gather -------------
//
// The generic kernel spends about 13 vector operations per 16 values on scaling, rounding,
// saturation and sign, and 3 more on narrowing. For E2M1 under round-to-nearest-even, AVX-512
// VBMI does all of it in 9, and one more permute gathers a block's 16 bytes:
//   1. s = q + C in one fused multiply-add, C = sign(q) * max(2^E(q), 1) * 2^22 (x1.5 in even
//      lanes): C's ulp is the grid step of q's binade, so the addition rounds q onto the grid
//      (ties to even) and the low bits of s hold the step count k <= 4.
//   2. Every bit the code depends on is a bit of s: k (bits 0-2), the even-lane marker (22),
//      the binade (23-24, with E <= 2 because |q| < 8) and the sign (31). s ^ s>>19 ^ s>>25
//      brings them to one 7-bit index: bits 0-2, 3, 4-5 and 6, XORed with exponent bits that
//      are the same for every E <= 2.
//   3. A 128-entry byte table (vpermt2b) maps the index to the saturated, signed code, in the
//      low nibble for even lanes and the high nibble for odd ones; vpsadbw adds each pair into
//      a byte and one more vpermt2b gathers 16 bytes from two vectors.
/// Whether Arch has e2m1_rne_packer.
template <class Arch>
constexpr bool has_e2m1_packer() {
  return is_vbmi<Arch>();
}

#if XSIMD_WITH_AVX512BW && defined(__AVX512VBMI__) && defined(__AVX512DQ__)
struct e2m1_rne_packer {
  /// table[index(s)] for every s the rounding can produce.
  static constexpr std::array<std::uint8_t, 128> make_table() {
    std::array<std::uint8_t, 128> t{};
    for (std::uint32_t odd = 0; odd < 2; ++odd)
      for (std::uint32_t sign = 0; sign < 2; ++sign)
        for (std::uint32_t e = 0; e <= 2; ++e)
          for (std::uint32_t k = 0; k <= 4; ++k) {
            const std::uint32_t s = sign << 31 | (e + 127 + 22) << 23 | (odd ? 0u : 0x400000u) | k;
            const std::uint32_t magnitude = std::min<std::uint32_t>(2 * e + k, 7);
            const std::uint32_t code = sign << 3 | magnitude;
            t[index(s)] = static_cast<std::uint8_t>(odd ? code << 4 : code);
          }
    return t;
  }
  static constexpr std::uint32_t index(std::uint32_t s) { return (s ^ s >> 19 ^ s >> 25) & 0x7f; }

  e2m1_rne_packer() {
    static constexpr std::array<std::uint8_t, 128> table = make_table();
    lo_ = _mm512_loadu_si512(table.data());
    hi_ = _mm512_loadu_si512(table.data() + 64);
    c_factor_ = _mm512_castsi512_ps(_mm512_set1_epi64(0x4a800000'4ac00000));  // 2^22 : 1.5 * 2^22
    // byte 0 of each 64-bit sum, first from a, then from b
    gather_ = _mm512_set_epi64(0, 0, 0, 0, 0, 0, 0x78706860'58504840, 0x38302820'18100800);
  }

  /// Stores the 16 code bytes of q[0..32) (|q| < 8, sign included; NaN and Inf lanes give
  /// unspecified codes).
  BLOCKCAST_INLINE void store(__m512 q0, __m512 q1, std::uint8_t* out) const {
    const __m128i packed = _mm512_castsi512_si128(_mm512_permutex2var_epi8(pairs(q0), gather_, pairs(q1)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), packed);
  }

 private:
  /// Per 64-bit lane: code(q[2i]) | code(q[2i+1]) << 4 in the low byte, zero above.
  BLOCKCAST_INLINE __m512i pairs(__m512 q) const {
    const __m512 sign_and_binade = _mm512_and_ps(q, _mm512_castsi512_ps(_mm512_set1_epi32(static_cast<int>(0xff800000u))));
    const __m512 power = _mm512_range_ps(sign_and_binade, _mm512_set1_ps(1.0f), 0x03);  // +-max(|.|, 1), sign of the first
    const __m512i s = _mm512_castps_si512(_mm512_fmadd_ps(power, c_factor_, q));
    const __m512i index = _mm512_ternarylogic_epi32(s, _mm512_srli_epi32(s, 19), _mm512_srli_epi32(s, 25), 0x96);
    const __m512i codes = _mm512_maskz_permutex2var_epi8(0x1111111111111111ull, lo_, index, hi_);
    return _mm512_sad_epu8(codes, _mm512_setzero_si512());
  }

  __m512i lo_, hi_, gather_;
  __m512 c_factor_;
};
#else
/// Stands in where VBMI is not compiled in (never called: has_e2m1_packer is false).
struct e2m1_rne_packer {
  template <class F32>
  void store(F32, F32, std::uint8_t*) const {}
};
#endif

// ---- table lookup: values of small codes by register permutes -----------------------------

template <class Arch>
using f32 = xsimd::batch<float, Arch>;

/// Entries a lookup() table can have on Arch (0: no lookup; decode arithmetically).
template <class Arch>
constexpr std::size_t lookup_size(xsimd::generic) { return 0; }
#if XSIMD_WITH_AVX2
template <class Arch>
constexpr std::size_t lookup_size(xsimd::avx2) { return 8; }
template <class Arch>
BLOCKCAST_INLINE f32<Arch> lookup(const i32<Arch>& index, const f32<Arch>* table, xsimd::avx2) {
  return _mm256_permutevar8x32_ps(table[0], index);
}
#endif
#if XSIMD_WITH_AVX512F
template <class Arch>
constexpr std::size_t lookup_size(xsimd::avx512f) { return 32; }
template <class Arch>
BLOCKCAST_INLINE f32<Arch> lookup(const i32<Arch>& index, const f32<Arch>* table, xsimd::avx512f) {
  return _mm512_permutex2var_ps(table[0], index, table[1]);
}
#endif

// ---- entry points: the best overload for Arch --------------------------------------------

template <class Arch>
BLOCKCAST_INLINE std::int32_t hmax(const i32<Arch>& v) {
  return hmax<Arch>(v, Arch{});
}
template <class Arch>
BLOCKCAST_INLINE i32<Arch> widen_bytes(const std::uint8_t* bytes) {
  return widen_bytes<Arch>(bytes, Arch{});
}
template <class Arch>
BLOCKCAST_INLINE void narrow_bytes(const i32<Arch>& v, std::uint8_t* bytes) {
  narrow_bytes<Arch>(v, bytes, Arch{});
}
template <int Bits, class Arch>
BLOCKCAST_INLINE void store_codes(const i32<Arch>* v, std::size_t count, std::uint8_t* out) {
  store_codes<Bits, Arch>(v, count, out, Arch{});
}
template <class Arch>
BLOCKCAST_INLINE i32<Arch> abs_max_bits(const xsimd::batch<float, Arch>& a, const xsimd::batch<float, Arch>& b) {
  return abs_max_bits<Arch>(a, b, Arch{});
}
template <class Arch>
BLOCKCAST_INLINE void split_nibbles(const std::uint8_t* bytes, i32<Arch>& even, i32<Arch>& odd) {
  split_nibbles<Arch>(bytes, even, odd, Arch{});
}
template <class Arch>
BLOCKCAST_INLINE i32<Arch> or_sign(const i32<Arch>& code, const i32<Arch>& x, std::int32_t sign_bit) {
  return or_sign<Arch>(code, x, sign_bit, Arch{});
}
template <class Arch>
BLOCKCAST_INLINE i32<Arch> negate_where_sign(const i32<Arch>& v, const i32<Arch>& x) {
  return negate_where_sign<Arch>(v, x, Arch{});
}
template <class Arch>
BLOCKCAST_INLINE i32<Arch> block_maxes(const i32<Arch>* m) {
  return block_maxes<Arch>(m, Arch{});
}
template <class Arch>
BLOCKCAST_INLINE std::uint32_t movemask(const xsimd::batch_bool<std::int32_t, Arch>& c) {
  return movemask<Arch>(c, Arch{});
}
template <int Bits, class Arch>
BLOCKCAST_INLINE void load_codes(const std::uint8_t* in, std::size_t count, i32<Arch>* v) {
  load_codes<Bits, Arch>(in, count, v, Arch{});
}
template <class Arch>
constexpr std::size_t lookup_size() {
  return lookup_size<Arch>(Arch{});
}
/// table[index] for index < lookup_size<Arch>(); table holds lookup_size / lanes vectors.
template <class Arch>
BLOCKCAST_INLINE f32<Arch> lookup(const i32<Arch>& index, const f32<Arch>* table) {
  return lookup<Arch>(index, table, Arch{});
}

}  // namespace blockcast::simd::arch
