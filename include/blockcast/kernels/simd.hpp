// SPDX-License-Identifier: MIT
// SIMD kernels (xsimd), bit for bit equal to blockcast::reference.
//
// How the exact rounding is vectorized. For an MX block with shared exponent se in
// [-127, 126] the quotient q = |x| * 2^-se is exact in FP32 (a power-of-two scaling of a
// normal result; where it falls below FP32's normal range it is far below half the element's
// smallest step and rounds to zero either way). q is then rounded onto the element grid with
// one hardware round-to-nearest-even addition of a "magic" constant whose ulp is the grid's
// step in q's binade,
//     C = 1.5 * 2^(binade - mbits + 23),   k = bits(q + C) - bits(C)   (steps, exact)
// and the magnitude code is ((binade - emin) << mbits) + k, as in element/grid.hpp. The other
// rounding modes correct k from the exact difference q - (q + C - C). Blocks this path does
// not cover (NaN/Inf, se = 127, blocks that straddle 2^32 elements under stochastic rounding)
// and partial blocks go through the reference, block by block.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "blockcast/kernels/simd_arch.hpp"  // first: it includes xsimd and the intrinsics

#include "blockcast/block/packed.hpp"
#include "blockcast/kernels/reference.hpp"

namespace blockcast::simd {

template <class Format, class Arch>
struct kernels {
  using element = typename Format::element_type;
  using scale = typename Format::scale_type;
  using f32 = xsimd::batch<float, Arch>;
  using i32 = xsimd::batch<std::int32_t, Arch>;
  using u32 = xsimd::batch<std::uint32_t, Arch>;
  static constexpr std::size_t lanes = f32::size;
  static constexpr std::size_t B = Format::block_size;
  static constexpr int bits = Format::element_bits;
  static constexpr std::size_t vectors_per_block = B / lanes;
  static constexpr std::size_t block_bytes = B * bits / 8;
  /// Whole blocks are vectorized when they are whole vectors and whole bytes of codes.
  static constexpr bool vectorized = B % lanes == 0 && B % 8 == 0;

  static constexpr detail::grid_spec grid = element::grid;
  static constexpr int emin = grid.emin;
  static constexpr int mbits = grid.mbits;

  // ---- element rounding -------------------------------------------------------------------

  /// Magnitude codes of q >= 0 (exact quotients, q < 2^(emax+1)) on a grid, before
  /// saturation. `random` is used by rounding::stochastic only.
  /// Steps k of q's binade after rounding, and that binade's exponent field << 23.
  struct rounded_steps {
    i32 k;
    i32 step_binade;
  };

  template <rounding Mode, int Emin = emin, int Mbits = mbits>
  BLOCKCAST_INLINE static rounded_steps round_to_steps(const f32& q, const u32& random) {
    // binade exponent field (<< 23) of the step, C = 1.5 * step * 2^23 and its bits. A grid
    // of one binade (integer elements: q < 2 in every block) has one constant C.
    constexpr bool one_binade = Emin == emin && Mbits == mbits && element::emax == element::grid.emin;
    const i32 step_binade = one_binade ? i32((Emin + 127) << 23)
                                       : xsimd::max(xsimd::bitwise_cast<i32>(q) & i32(0x7f800000), i32((Emin + 127) << 23));
    constexpr std::int32_t c_offset = ((23 - Mbits) << 23) | 0x400000;
    const i32 c_bits = step_binade + i32(c_offset);
    const f32 c = xsimd::bitwise_cast<f32>(c_bits);
    const f32 sum = q + c;
    i32 k = xsimd::bitwise_cast<i32>(sum) - c_bits;  // steps, ties to even
    if constexpr (Mode != rounding::nearest_even) {
      const i32 binade = step_binade >> 23;
      const f32 rounded = sum - c;  // exact
      if constexpr (Mode == rounding::nearest_away) {
        const f32 half = xsimd::bitwise_cast<f32>((binade - (Mbits + 1)) << 23);
        k = k + xsimd::select(xsimd::bool_cast(q - rounded == half), i32(1), i32(0));  // a tie that went down
      } else {
        const auto went_up = rounded > q;
        k = k - xsimd::select(xsimd::bool_cast(went_up), i32(1), i32(0));  // toward zero
        if constexpr (Mode == rounding::stochastic) {
          const f32 step = xsimd::bitwise_cast<f32>((binade - Mbits) << 23);
          const f32 truncated = xsimd::select(went_up, rounded - step, rounded);
          // F = floor(remainder / step * 2^32), exact: up iff random < F (as unsigned)
          const f32 y = (q - truncated) * xsimd::bitwise_cast<f32>((i32(286 + Mbits) - binade) << 23);
          const auto big = y >= f32(2147483648.0f);
          const i32 low = xsimd::to_int(xsimd::select(big, y - f32(2147483648.0f), y));
          const i32 flip(std::numeric_limits<std::int32_t>::min());
          const i32 f = low | xsimd::select(xsimd::bool_cast(big), flip, i32(0));
          const auto up = (xsimd::bitwise_cast<i32>(random) ^ flip) < (f ^ flip);
          k = k + xsimd::select(up, i32(1), i32(0));
        }
      }
    }
    return {k, step_binade};
  }

  /// Magnitude codes of q >= 0 on the grid, before saturation: ((binade - emin) << mbits) + k.
  template <rounding Mode, int Emin = emin, int Mbits = mbits>
  BLOCKCAST_INLINE static i32 round_steps(const f32& q, const u32& random) {
    const rounded_steps r = round_to_steps<Mode, Emin, Mbits>(q, random);
    constexpr std::int32_t c_offset = ((23 - Mbits) << 23) | 0x400000;
    // binade << mbits = c_bits >> (23 - mbits) minus the offset's share
    constexpr std::int32_t offset = (c_offset >> (23 - Mbits)) + ((Emin + 127) << Mbits);
    return r.k + ((r.step_binade + i32(c_offset)) >> (23 - Mbits)) - i32(offset);
  }

  /// Values (float elements) of one vector on the grid times the block scale, without codes:
  /// k * step, saturated, signed, scaled: the same bits as decode(code) * scale (all exact).
  template <rounding Mode>
  BLOCKCAST_INLINE static f32 vector_values(const float* in, const f32& factor, const f32& block_scale,
                                            std::uint32_t key, std::uint32_t first) {
    const f32 x = f32::load_unaligned(in);
    const f32 q = xsimd::bitwise_cast<f32>(xsimd::bitwise_cast<i32>(x) & i32(0x7fffffff)) * factor;
    u32 random(0u);
    if constexpr (Mode == rounding::stochastic) random = random_bits(key, first);
    const rounded_steps r = round_to_steps<Mode>(q, random);
    const f32 step = xsimd::bitwise_cast<f32>(r.step_binade - i32(mbits << 23));
    const f32 magnitude = xsimd::min(xsimd::to_float(r.k) * step, f32(element::max_normal()));
    const i32 sign = xsimd::bitwise_cast<i32>(x) & i32(std::numeric_limits<std::int32_t>::min());
    return xsimd::bitwise_cast<f32>(xsimd::bitwise_cast<i32>(magnitude) | sign) * block_scale;
  }

  /// Element codes from the magnitudes and the sign (float: sign bit; int: two's complement),
  /// saturating.
  BLOCKCAST_INLINE static i32 make_codes(i32 magnitude, const i32& sign_source, bool full_range) {
    // sign_source: negative lanes have bit 31 set
    if constexpr (element::is_float) {
      magnitude = xsimd::min(magnitude, i32(element::max_magnitude));
      return arch::or_sign<Arch>(magnitude, sign_source, element::sign_mask);
    } else {
      if (full_range) {
        const i32 limit = i32(element::max_magnitude) - (sign_source >> 31);  // negative: one more
        magnitude = xsimd::min(magnitude, limit);
      } else {
        magnitude = xsimd::min(magnitude, i32(element::max_magnitude));
      }
      const i32 code = arch::negate_where_sign<Arch>(magnitude, sign_source);
      return code & i32(element::code_mask);  // SSE/AVX2 narrowing saturates: keep codes in 0..255
    }
  }

  /// The 32 random bits of elements first..first+lanes-1 (same hash as the reference).
  BLOCKCAST_INLINE static u32 random_bits(std::uint32_t key, std::uint32_t first) {
    alignas(64) std::uint32_t iota[lanes];
    for (std::size_t i = 0; i < lanes; ++i) iota[i] = static_cast<std::uint32_t>(i);
    auto mix = [](u32 x) {
      x = x ^ (x >> 16);
      x = x * u32(0x7feb352du);
      x = x ^ (x >> 15);
      x = x * u32(0x846ca68bu);
      return x ^ (x >> 16);
    };
    const u32 k(key);
    return mix(mix(u32::load_aligned(iota) + u32(first) + k) ^ k);
  }

  // ---- decoding ---------------------------------------------------------------------------

  /// Values of element codes (one code per lane), exactly element::decode, by arithmetic.
  BLOCKCAST_INLINE static f32 decode(const i32& code) {
    if constexpr (element::is_float) {
      constexpr int m = element::mantissa_bits;
      const i32 magnitude = code & i32(element::magnitude_mask);
      const i32 exponent = magnitude >> m;
      const i32 normal_bits = (magnitude << (23 - m)) + i32((127 - element::bias) << 23);
      const f32 subnormal = xsimd::to_float(magnitude) * f32(detail::exp2i(element::emin - m));
      f32 value = xsimd::select(xsimd::bool_cast(exponent == i32(0)), subnormal,
                                xsimd::bitwise_cast<f32>(normal_bits));
      if constexpr (element::special_values == specials::ieee) {
        const auto all_ones = exponent == i32((1 << element::exponent_bits) - 1);
        const f32 special = xsimd::select(xsimd::bool_cast((magnitude & i32((1 << m) - 1)) == i32(0)),
                                          f32(std::numeric_limits<float>::infinity()),
                                          f32(std::numeric_limits<float>::quiet_NaN()));
        value = xsimd::select(xsimd::bool_cast(all_ones), special, value);
      } else if constexpr (element::special_values == specials::finite_nan) {
        value = xsimd::select(xsimd::bool_cast(magnitude == i32(element::magnitude_mask)),
                              f32(std::numeric_limits<float>::quiet_NaN()), value);
      }
      const i32 sign = (code >> (bits - 1)) << 31;
      return xsimd::bitwise_cast<f32>(xsimd::bitwise_cast<i32>(value) | sign);
    } else {
      const i32 k = (code << (32 - bits)) >> (32 - bits);  // sign-extend
      return xsimd::to_float(k) * f32(detail::exp2i(-element::fraction_bits));
    }
  }

  /// Decoding of codes times a positive block factor: by a register table lookup where the
  /// element has few enough codes (the factor folded into the table), else arithmetic.
  /// Either way each value is fp32(fp32(decode(code) * first) * second), as the reference.
  class scaled_decoder {
   public:
    static constexpr std::size_t table_size = arch::lookup_size<Arch>();
    // whole codes (sign included) fit the table, or else the magnitudes of a float element do
    static constexpr bool whole_codes = (std::size_t{1} << bits) <= table_size;
    static constexpr bool magnitudes = !whole_codes && element::is_float &&
                                       (std::size_t{1} << (bits - 1)) <= table_size;
    static constexpr bool use_table = whole_codes || magnitudes;
    static constexpr std::size_t table_vectors = table_size / lanes > 0 ? table_size / lanes : 1;

    /// The unscaled table, built once per call.
    scaled_decoder() {
      if constexpr (use_table) {
        alignas(64) float t[table_vectors * lanes];
        for (std::size_t c = 0; c < table_vectors * lanes; ++c)
          t[c] = c < (std::size_t{1} << bits) ? element::decode(static_cast<std::uint8_t>(c)) : 0.0f;
        for (std::size_t i = 0; i < table_vectors; ++i) table_[i] = f32::load_aligned(t + i * lanes);
      }
    }

    /// This decoder with its values multiplied by `first` (and then by `second` when
    /// `two_factors`: MX passes (2^se), two-level formats (s_b, S_dec)).
    BLOCKCAST_INLINE scaled_decoder scaled(float first, float second, bool two_factors) const {
      scaled_decoder d = *this;
      d.rescale(*this, first, second, two_factors);
      return d;
    }
    /// Makes this decoder `base` scaled by first (and second), without copying `base`.
    BLOCKCAST_INLINE void rescale(const scaled_decoder& base, float first, float second, bool two_factors) {
      first_ = f32(first);
      second_ = f32(second);
      two_factors_ = two_factors;
      if constexpr (use_table) {
        for (std::size_t i = 0; i < table_vectors; ++i) {
          table_[i] = base.table_[i] * first_;
          if (two_factors) table_[i] = table_[i] * second_;
        }
      }
    }

    /// The (scaled) table of whole codes.
    const f32* table() const { return table_; }

    BLOCKCAST_INLINE f32 operator()(const i32& code) const {
      if constexpr (whole_codes) {
        return arch::lookup<Arch>(code, table_);
      } else if constexpr (magnitudes) {
        // magnitudes from the table, then the sign (the products are sign-symmetric)
        const f32 m = arch::lookup<Arch>(code & i32(element::magnitude_mask), table_);
        return xsimd::bitwise_cast<f32>(xsimd::bitwise_cast<i32>(m) | ((code >> (bits - 1)) << 31));
      } else {
        const f32 v = decode(code) * first_;
        return two_factors_ ? v * second_ : v;
      }
    }

   private:
    f32 table_[table_vectors];
    f32 first_ = f32(1.0f);
    f32 second_ = f32(1.0f);
    bool two_factors_ = false;
  };

  // ---- groups of blocks: the per-block scale parameters, one vector for `lanes` blocks ----

  struct group_params {
    alignas(64) float factor[lanes];       // 2^-se (MX) or the inverse block scale (two-level)
    alignas(64) float block_scale[lanes];  // decoded block scale
    std::uint8_t scale_code[lanes];
    std::uint32_t reference_blocks = 0;    // bit b: block b goes through the reference
  };

  /// Magnitude-bits max of each block of the group (lane b: block b; 0 beyond `count`).
  BLOCKCAST_INLINE static i32 group_amax(const float* in, std::size_t count) {
    // a whole group (the common case) needs no clamping and masking of absent blocks
    return count == lanes ? group_amax<true>(in, count) : group_amax<false>(in, count);
  }
  template <bool Whole>
  BLOCKCAST_INLINE static i32 group_amax(const float* in, std::size_t count) {
    i32 m[lanes];  // stays in registers: every element is computed unconditionally
    for (std::size_t b = 0; b < lanes; ++b) {
      const float* block = in + (Whole || b < count ? b : 0) * B;  // in bounds; masked to 0 below
      i32 v = xsimd::bitwise_cast<i32>(f32::load_unaligned(block)) & i32(0x7fffffff);
      for (std::size_t k = 1; k < vectors_per_block; ++k)
        v = xsimd::max(v, xsimd::bitwise_cast<i32>(f32::load_unaligned(block + k * lanes)) & i32(0x7fffffff));
      m[b] = Whole ? v : v & i32(b < count ? -1 : 0);
    }
    return arch::block_maxes<Arch>(m);
  }

  /// Vector form of detail::shared_exponent for finite amax bits.
  BLOCKCAST_INLINE static i32 shared_exponents(const i32& a, scale_rule rule) {
    const i32 exponent = a >> 23;
    const auto subnormal = exponent == i32(0);
    // an FP32 subnormal amax: its exponent and fraction from the exact int -> float conversion
    const i32 as_float = xsimd::bitwise_cast<i32>(xsimd::to_float(a));
    i32 e = xsimd::select(subnormal, (as_float >> 23) - i32(127 + 149), exponent - i32(127));
    const i32 fraction = xsimd::select(subnormal, as_float, a) & i32(0x7fffff);
    auto bump = [&](const auto& condition) { e = e + xsimd::select(condition, i32(1), i32(0)); };
    switch (rule) {
      case scale_rule::ocp_floor: break;
      case scale_rule::ceil: bump(fraction != i32(0)); break;
      case scale_rule::even: bump(fraction >= i32((1 << 23) - (1 << (22 - mbits)))); break;
      case scale_rule::rceil: bump(fraction > i32(detail::max_fraction_bits<element>())); break;
    }
    e = xsimd::min(xsimd::max(e - i32(element::emax), i32(e8m0::min_exponent)), i32(e8m0::max_exponent));
    return xsimd::select(a == i32(0), i32(e8m0::min_exponent), e);
  }

  BLOCKCAST_INLINE static group_params make_group_params(const float* in, std::size_t count,
                                        const reference::block_context& ctx, std::uint64_t first) {
    group_params p;
    const i32 a = group_amax(in, count);
    const auto special = a >= i32(0x7f800000);
    i32 codes;
    if constexpr (Format::has_tensor_scale) {
      // s_b = e4m3_rne(min(amax * (S_enc * fp32(1 / elem_max)), 448)); factor = min(1 / (s_b * S_dec), FLT_MAX)
      constexpr float inv_elem_max = 1.0f / element::max_normal();
      using e4m3 = typename scale::value_format;
      const f32 amax = xsimd::bitwise_cast<f32>(xsimd::select(special, i32(0), a));
      const f32 scaled = xsimd::min(amax * f32(ctx.tensor_encode * inv_elem_max), f32(scale::max_value()));
      const i32 code = xsimd::min(round_steps<rounding::nearest_even, e4m3::emin, e4m3::mantissa_bits>(scaled, u32(0u)),
                                  i32(e4m3::max_magnitude));
      const f32 s = kernels<block_format<e4m3, e8m0, lanes>, Arch>::decode(code);
      const f32 factor = xsimd::min(f32(1.0f) / (s * f32(ctx.tensor_decode)), f32(std::numeric_limits<float>::max()));
      factor.store_aligned(p.factor);
      s.store_aligned(p.block_scale);
      codes = xsimd::select(special, i32(scale::nan_code), code);
    } else {
      const i32 se = shared_exponents(xsimd::select(special, i32(0), a), ctx.scale_rule);
      // 2^-se, normal for se <= 126; se = 127 goes through the reference
      xsimd::bitwise_cast<f32>((i32(127) - se) << 23).store_aligned(p.factor);
      codes = xsimd::select(special, i32(e8m0::nan_code), se + i32(127));
      p.reference_blocks = arch::movemask<Arch>(se > i32(126));
    }
    arch::narrow_bytes<Arch>(codes, p.scale_code);
    p.reference_blocks |= arch::movemask<Arch>(special);
    p.reference_blocks &= count >= 32 ? ~0u : (1u << count) - 1u;
    if (ctx.round == rounding::stochastic) {
      for (std::size_t b = 0; b < count; ++b) {
        const std::uint64_t f = first + b * B;  // the generator's key changes inside the block
        if ((f >> 32) != ((f + B - 1) >> 32)) p.reference_blocks |= 1u << b;
      }
    }
    return p;
  }

  /// The parameters of the groups of blocks [0, nblocks), in order, each computed while the
  /// group before it is coded: a group's parameters are one long chain of dependent
  /// instructions (amax, scale, NVFP4's inverse), and made right before their own blocks they
  /// stalled them (quantize in the L2 on Zen 4: NVFP4 57 -> 37 ns per 256 values, MXFP4 33
  /// -> 27). Two slots and no copies: copying a group_params into place cost the gain back.
  class groups_ahead {
   public:
    groups_ahead(const float* in, std::size_t nblocks, const reference::block_context& ctx, std::uint64_t first_index)
        : in_(in), nblocks_(nblocks), ctx_(ctx), first_index_(first_index) {
      if (nblocks > 0) make(0);
    }
    /// Group g's parameters (g = 0, lanes, 2 lanes, ... in turn); starts on the next group's.
    BLOCKCAST_INLINE const group_params& operator[](std::size_t g) {
      if (g + lanes < nblocks_) make(g + lanes);
      return slots_[g / lanes % 2];
    }

   private:
    BLOCKCAST_INLINE void make(std::size_t g) {
      slots_[g / lanes % 2] = make_group_params(in_ + g * B, std::min(lanes, nblocks_ - g), ctx_, first_index_ + g * B);
    }
    const float* in_;
    std::size_t nblocks_;
    const reference::block_context& ctx_;
    std::uint64_t first_index_;
    group_params slots_[2];
  };

  /// Codes of one vector of values given the block's factor.
  template <rounding Mode>
  BLOCKCAST_INLINE static i32 vector_codes(const float* in, const f32& factor, bool full_range, std::uint32_t key,
                          std::uint32_t first) {
    return vector_codes<Mode>(f32::load_unaligned(in), factor, full_range, key, first);
  }
  template <rounding Mode>
  BLOCKCAST_INLINE static i32 vector_codes(const f32& x, const f32& factor, bool full_range, std::uint32_t key,
                                           std::uint32_t first) {
    i32 sign_source;
    f32 q;
    if constexpr (Format::has_tensor_scale) {
      // TE: clamp(x * inv, -max, max); the sign is x * inv < 0, so -0 encodes as +0
      const f32 limit(element::max_normal());
      const f32 v = xsimd::min(xsimd::max(x * factor, -limit), limit);
      sign_source = xsimd::select(xsimd::bool_cast(v < f32(0.0f)), i32(-1), i32(0));
      q = xsimd::abs(v);
    } else {
      sign_source = xsimd::bitwise_cast<i32>(x);
      q = xsimd::bitwise_cast<f32>(xsimd::bitwise_cast<i32>(x) & i32(0x7fffffff)) * factor;
    }
    u32 random(0u);
    if constexpr (Mode == rounding::stochastic) random = random_bits(key, first);
    return make_codes(round_steps<Mode>(q, random), sign_source, full_range);
  }

  /// Values that each have a block scale of their own (error diffusion quantizes a column of
  /// rows, each in its own block): n values, value i with factor[i] (MX: 2^-se, se <= 126;
  /// two-level: the block's inverse) and decoded block scale block_scale[i], to codes (one per
  /// byte) and their values, decode(code) * scale (two-level: times the tensor's decode scale).
  /// The reference's bits for every finite value, including values far beyond the block's
  /// range, which saturate. Not for stochastic rounding (invalid_argument): its bits follow
  /// tensor indices.
  static void quantize_lanes(const float* in, const float* factor, const float* block_scale, std::size_t n,
                             const reference::block_context& ctx, std::uint8_t* codes, float* values) {
    with_mode(ctx.round, [&](auto mode) {
      if constexpr (decltype(mode)::value == rounding::stochastic)
        detail::fail<invalid_argument>("quantize_lanes: stochastic rounding draws its bits per tensor index");
      else
        quantize_lanes<decltype(mode)::value>(in, factor, block_scale, n, ctx, codes, values);
    });
  }
  template <rounding Mode>
  static void quantize_lanes(const float* in, const float* factor, const float* block_scale, std::size_t n,
                             const reference::block_context& ctx, std::uint8_t* codes, float* values) {
    // MX: x * factor clamped to +-2^(emax+1), the end of round_steps' domain: everything from
    // there saturates, as in the reference (and -2^(emax+1) is full-range INT8's -128, even
    // rounding toward zero); two-level formats clamp in vector_codes
    const f32 limit(detail::exp2i(element::emax + 1));
    auto one = [&](const float* x, const float* f, const float* s, std::uint8_t* c, float* v) {
      i32 code;
      if constexpr (Format::has_tensor_scale) {
        code = vector_codes<Mode>(f32::load_unaligned(x), f32::load_unaligned(f), ctx.int8_full_range, 0, 0);
      } else {
        const f32 q = f32::load_unaligned(x) * f32::load_unaligned(f);
        code = vector_codes<Mode>(xsimd::min(xsimd::max(q, -limit), limit), f32(1.0f), ctx.int8_full_range, 0, 0);
      }
      f32 value = decode(code) * f32::load_unaligned(s);
      if constexpr (Format::has_tensor_scale) value = value * f32(ctx.tensor_decode);
      value.store_unaligned(v);
      arch::narrow_bytes<Arch>(code, c);
    };
    std::size_t i = 0;
    // whole vectors straight to the output (narrow_bytes writes exactly `lanes` bytes); the
    // tail through padded copies
    for (; i + lanes <= n; i += lanes) one(in + i, factor + i, block_scale + i, codes + i, values + i);
    if (i == n) return;
    alignas(64) float x[lanes] = {}, f[lanes], s[lanes], v[lanes];
    std::uint8_t bytes[lanes];
    std::fill(f, f + lanes, 1.0f);
    std::fill(s, s + lanes, 1.0f);
    std::copy(in + i, in + n, x);
    std::copy(factor + i, factor + n, f);
    std::copy(block_scale + i, block_scale + n, s);
    one(x, f, s, bytes, v);
    std::copy(v, v + (n - i), values + i);
    std::copy(bytes, bytes + (n - i), codes + i);
  }

  /// Asks for the input `distance` floats ahead of block `x`, a cache line at a time. The
  /// hardware prefetcher alone leaves a single core well short of DRAM bandwidth here: 4 KiB
  /// ahead took MXFP4 quantize at 64 Mi values from about 3.4 to 4.3 G values/s on the
  /// benchmark machine. quantize_blocks reads the next group's amax while it codes block `x`
  /// (groups_ahead), so it asks for 8 KiB beyond that group: 4 KiB beyond it lost 20-30% at 16
  /// Mi values (MXFP4, E4M3, MXINT8; same-process A/B) and 16 KiB was 2-8% slower.
  template <std::size_t distance = 1024>
  BLOCKCAST_INLINE static void prefetch_block(const float* x) {
    constexpr std::size_t line = 64 / sizeof(float);
    // an address, not a pointer: the lines ahead may lie past the end of the input
    const std::uintptr_t ahead = reinterpret_cast<std::uintptr_t>(x) + distance * sizeof(float);
    for (std::size_t i = 0; i < B; i += line) __builtin_prefetch(reinterpret_cast<const void*>(ahead + i * sizeof(float)));
  }

  /// Runs f(mode_constant) with the rounding mode as a compile-time constant.
  template <class F>
  static void with_mode(rounding mode, F&& f) {
    switch (mode) {
      case rounding::nearest_even: f(std::integral_constant<rounding, rounding::nearest_even>{}); break;
      case rounding::nearest_away: f(std::integral_constant<rounding, rounding::nearest_away>{}); break;
      case rounding::toward_zero: f(std::integral_constant<rounding, rounding::toward_zero>{}); break;
      case rounding::stochastic: f(std::integral_constant<rounding, rounding::stochastic>{}); break;
    }
  }

  /// Whether blocks of E2M1 go through arch::e2m1_rne_packer, 32 values a store: whole MX
  /// blocks, or NVFP4's blocks of 16 in pairs (each with its factor).
  template <rounding Mode>
  static constexpr bool e2m1_fast = arch::has_e2m1_packer<Arch>() && Mode == rounding::nearest_even &&
                                    std::is_same_v<element, fp4_e2m1> && lanes == 16 && (B % 32 == 0 || B == 16);

  /// What e2m1_rne_packer rounds (it needs |q| < 8 and takes the sign of q, zeros included):
  /// MX, x * 2^-se, below 8 by the shared exponent, the sign of x kept for zeros; two-level
  /// formats, x * factor clamped to the element's range with -0 made +0, as vector_codes.
  BLOCKCAST_INLINE static f32 packer_input(const float* in, const f32& factor) {
    const f32 x = f32::load_unaligned(in);
    if constexpr (Format::has_tensor_scale) {
      const f32 limit(element::max_normal());
      return xsimd::min(xsimd::max(x * factor, -limit), limit) + f32(0.0f);
    } else {
      return factor * x;
    }
  }

  /// Quantizes `nblocks` whole blocks starting at tensor index first_index: codes packed into
  /// `codes` (block_bytes each), one scale byte per block.
  static void quantize_blocks(const float* in, std::size_t nblocks, std::uint8_t* codes,
                              std::uint8_t* scales, const reference::block_context& ctx,
                              std::uint64_t first_index) {
    with_mode(ctx.round, [&](auto mode) {
      constexpr rounding Mode = decltype(mode)::value;
      [[maybe_unused]] const std::conditional_t<e2m1_fast<Mode>, arch::e2m1_rne_packer, char> e2m1{};
      groups_ahead groups(in, nblocks, ctx, first_index);
      constexpr std::size_t ahead = 2048 + lanes * B;
      for (std::size_t g = 0; g < nblocks; g += lanes) {
        const std::size_t count = std::min(lanes, nblocks - g);
        const float* x = in + g * B;
        const group_params& p = groups[g];
        // every block by the vector path (no calls in this loop: they would spill every
        // register); blocks the reference must do are redone after it
        for (std::size_t b = 0; b < count; ++b) {
          const float* xb = x + b * B;
          prefetch_block<ahead>(xb);
          const std::uint64_t first = first_index + (g + b) * B;
          const f32 factor(p.factor[b]);
          std::uint32_t key = 0;
          if constexpr (Mode == rounding::stochastic)
            key = detail::stochastic_key(ctx.seed, static_cast<std::uint32_t>(first >> 32));
          if constexpr (e2m1_fast<Mode>) {
            if constexpr (B % 32 == 0) {
              for (std::size_t v = 0; v < vectors_per_block; v += 2)
                e2m1.store(packer_input(xb + v * lanes, factor), packer_input(xb + (v + 1) * lanes, factor),
                           codes + (g + b) * block_bytes + v * lanes / 2);
              continue;
            } else if (b + 1 < count) {  // blocks of 16: this one and the next (a lone last one: below)
              prefetch_block<ahead>(xb + B);
              e2m1.store(packer_input(xb, factor), packer_input(xb + B, f32(p.factor[b + 1])), codes + (g + b) * block_bytes);
              ++b;
              continue;
            }
          }
          i32 c[vectors_per_block];
          for (std::size_t v = 0; v < vectors_per_block; ++v)
            c[v] = vector_codes<Mode>(xb + v * lanes, factor, ctx.int8_full_range, key,
                                      static_cast<std::uint32_t>(first + v * lanes));
          arch::store_codes<bits, Arch>(c, vectors_per_block, codes + (g + b) * block_bytes);
        }
        for (std::uint32_t r = p.reference_blocks; r != 0; r &= r - 1) {
          const std::size_t b = static_cast<std::size_t>(__builtin_ctz(r));
          reference_block(x + b * B, codes + (g + b) * block_bytes, ctx, first_index + (g + b) * B);
        }
        if (count == lanes) std::memcpy(scales + g, p.scale_code, lanes);
        else std::copy(p.scale_code, p.scale_code + count, scales + g);
      }
    });
  }

  /// One block by the reference, packed into `out` (its scale equals the group's).
  static void reference_block(const float* in, std::uint8_t* out, reference::block_context ctx,
                              std::uint64_t first) {
    std::uint8_t block_codes[B];
    ctx.first_index = first;
    reference::quantize_block<Format>(in, B, block_codes, ctx);
    detail::pack_codes(block_codes, B, bits, out);
  }

  /// Decodes `nblocks` whole blocks.
  static void dequantize_blocks(const std::uint8_t* codes, const std::uint8_t* scales,
                                std::size_t nblocks, float tensor_decode, float* out) {
    const scaled_decoder decoder;
    for (std::size_t b = 0; b < nblocks; ++b) {
      float* y = out + b * B;
      if (scale::is_nan(scales[b])) {
        std::fill(y, y + B, std::numeric_limits<float>::quiet_NaN());
        continue;
      }
      const scaled_decoder decode_scaled = decoder.scaled(scale::decode(scales[b]), tensor_decode, Format::has_tensor_scale);
      i32 c[vectors_per_block];
      arch::load_codes<bits, Arch>(codes + b * block_bytes, vectors_per_block, c);
      for (std::size_t v = 0; v < vectors_per_block; ++v) decode_scaled(c[v]).store_unaligned(y + v * lanes);
    }
  }

  /// Quantize + dequantize of whole blocks, without packing.
  static void fake_quantize_blocks(const float* in, std::size_t nblocks, float* out,
                                   const reference::block_context& ctx, std::uint64_t first_index) {
    with_mode(ctx.round, [&](auto mode) {
      constexpr rounding Mode = decltype(mode)::value;
      const scaled_decoder decoder;
      // the parameters made just before their blocks: made a group ahead (as quantize_blocks
      // does) lost 4-16% at 16 Mi values, where this pass also writes 4 bytes per value
      for (std::size_t g = 0; g < nblocks; g += lanes) {
        const std::size_t count = std::min(lanes, nblocks - g);
        const float* x = in + g * B;
        const group_params p = make_group_params(x, count, ctx, first_index + g * B);
        for (std::size_t b = 0; b < count; ++b) {
          const float* xb = x + b * B;
          prefetch_block(xb);
          float* y = out + (g + b) * B;
          const std::uint64_t first = first_index + (g + b) * B;
          const f32 factor(p.factor[b]);
          const float block_scale = Format::has_tensor_scale ? p.block_scale[b] : scale::decode(p.scale_code[b]);
          const scaled_decoder decode_scaled = decoder.scaled(block_scale, ctx.tensor_decode, Format::has_tensor_scale);
          std::uint32_t key = 0;
          if constexpr (Mode == rounding::stochastic)
            key = detail::stochastic_key(ctx.seed, static_cast<std::uint32_t>(first >> 32));
          for (std::size_t v = 0; v < vectors_per_block; ++v) {
            if constexpr (element::is_float && !Format::has_tensor_scale) {
              vector_values<Mode>(xb + v * lanes, factor, f32(block_scale), key,
                                  static_cast<std::uint32_t>(first + v * lanes)).store_unaligned(y + v * lanes);
            } else {
              const i32 c = vector_codes<Mode>(xb + v * lanes, factor, ctx.int8_full_range, key,
                                               static_cast<std::uint32_t>(first + v * lanes));
              decode_scaled(c).store_unaligned(y + v * lanes);
            }
          }
        }
        for (std::uint32_t r = p.reference_blocks; r != 0; r &= r - 1) {
          const std::size_t b = static_cast<std::size_t>(__builtin_ctz(r));
          std::uint8_t block_codes[B];
          reference::block_context c = ctx;
          c.first_index = first_index + (g + b) * B;
          const std::uint8_t s = reference::quantize_block<Format>(x + b * B, B, block_codes, c);
          reference::dequantize_block<Format>(block_codes, B, s, ctx.tensor_decode, out + (g + b) * B);
        }
      }
    });
  }

  // ---- whole tensors ----------------------------------------------------------------------

  /// Finite amax of n values (two-level formats), as reference::finite_amax.
  static float finite_amax(const float* in, std::size_t n) {
    i32 m(0);
    std::size_t i = 0;
    for (; i + lanes <= n; i += lanes) {
      const i32 a = xsimd::bitwise_cast<i32>(f32::load_unaligned(in + i)) & i32(0x7fffffff);
      m = xsimd::max(m, xsimd::select(a < i32(0x7f800000), a, i32(0)));
    }
    const float head = detail::bits_float(static_cast<std::uint32_t>(arch::hmax<Arch>(m)));
    return std::max(head, reference::finite_amax(in + i, n - i));
  }

  static reference::block_context make_context(const float* in, std::size_t n, const cast_options& opt) {
    cast_options o = opt;
    if constexpr (Format::has_tensor_scale)
      if (!o.tensor_amax) o.tensor_amax = finite_amax(in, n);
    return reference::make_context<Format>(in, n, o);
  }

  /// Rows r0..r1 of a rows x cols tensor: whole blocks vectorized, the partial last block of
  /// each row by the reference.
  static void quantize_rows(const float* in, std::size_t r0, std::size_t r1, std::size_t cols,
                            mutable_packed_view<Format> out, const reference::block_context& ctx) {
    const std::size_t whole = vectorized ? cols / B : 0;
    for (std::size_t r = r0; r < r1; ++r) {
      quantize_row_part(in, r, 0, whole, cols, out, ctx);
      quantize_tail(in, r, whole * B, cols, out, ctx);
    }
  }

  /// Blocks [b0, b1) of row r (whole blocks only).
  static void quantize_row_part(const float* in, std::size_t r, std::size_t b0, std::size_t b1,
                                std::size_t cols, mutable_packed_view<Format> out,
                                const reference::block_context& ctx) {
    if (b1 <= b0) return;
    quantize_blocks(in + r * cols + b0 * B, b1 - b0, out.row_codes(r) + b0 * block_bytes,
                    out.row_scales(r) + b0, ctx, r * cols + b0 * B);
  }

  /// Columns [start, cols) of row r by the reference (start is a block boundary).
  static void quantize_tail(const float* in, std::size_t r, std::size_t start, std::size_t cols,
                            mutable_packed_view<Format> out, reference::block_context ctx) {
    if (start >= cols) return;
    std::uint8_t codes[B];
    std::uint8_t* row = out.row_codes(r);
    // Repack from the tail's first byte: whole blocks end on byte boundaries.
    const std::size_t byte0 = start * bits / 8;
    std::vector<std::uint8_t> tail_codes(cols - start);
    for (std::size_t s = start, b = start / B; s < cols; s += B, ++b) {
      const std::size_t len = std::min(B, cols - s);
      ctx.first_index = r * cols + s;
      out.row_scales(r)[b] = reference::quantize_block<Format>(in + r * cols + s, len, codes, ctx);
      std::copy(codes, codes + len, tail_codes.begin() + (s - start));
    }
    detail::pack_codes(tail_codes.data(), tail_codes.size(), bits, row + byte0);
  }

  static void dequantize_rows(packed_view<Format> in, std::size_t r0, std::size_t r1, float* out) {
    const std::size_t cols = in.cols();
    const std::size_t whole = vectorized ? cols / B : 0, start = whole * B;
    std::vector<std::uint8_t> tail_codes(cols - start);  // the same columns in every row
    for (std::size_t r = r0; r < r1; ++r) {
      dequantize_blocks(in.row_codes(r), in.row_scales(r), whole, in.tensor_scale(), out + r * cols);
      if (start == cols) continue;
      detail::unpack_codes(in.row_codes(r) + start * bits / 8, cols - start, bits, tail_codes.data());
      for (std::size_t s = start, b = whole; s < cols; s += B, ++b)
        reference::dequantize_block<Format>(tail_codes.data() + (s - start), std::min(B, cols - s),
                                            in.row_scales(r)[b], in.tensor_scale(), out + r * cols + s);
    }
  }

  static void fake_quantize_rows(const float* in, float* out, std::size_t r0, std::size_t r1,
                                 std::size_t cols, const reference::block_context& ctx) {
    const std::size_t whole = vectorized ? cols / B : 0;
    for (std::size_t r = r0; r < r1; ++r) {
      fake_quantize_blocks(in + r * cols, whole, out + r * cols, ctx, r * cols);
      fake_quantize_tail(in, out, r, whole * B, cols, ctx);
    }
  }

  /// Columns [start, cols) of row r by the reference (start is a block boundary).
  static void fake_quantize_tail(const float* in, float* out, std::size_t r, std::size_t start,
                                 std::size_t cols, reference::block_context ctx) {
    std::uint8_t codes[B];
    for (std::size_t s = start; s < cols; s += B) {
      const std::size_t len = std::min(B, cols - s);
      ctx.first_index = r * cols + s;
      const std::uint8_t sc = reference::quantize_block<Format>(in + r * cols + s, len, codes, ctx);
      reference::dequantize_block<Format>(codes, len, sc, ctx.tensor_decode, out + r * cols + s);
    }
  }
};

}  // namespace blockcast::simd
