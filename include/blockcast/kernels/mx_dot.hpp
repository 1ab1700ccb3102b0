// SPDX-License-Identifier: MIT
// MX dot products (OCP MX v1.0, section 6): a packed weight row in any block format against
// MXINT8 activations. The dot product of two blocks is the product of their scales times the
// sum of their element products. Every element value is an integer times a power of two
// (element_integers), so that sum is computed exactly in integer arithmetic; the blocks are
// then scaled and accumulated in FP32 in one fixed order, the same on every instruction set
// and thread count (docs/kernels.md):
//
//   S_b    = sum_j int(w_j) * int(x_j)                  exact (IEEE when w_j is Inf or NaN)
//   term_b = (fp32(S_b) * d_w[b]) * d_x[b]              d = scale * 2^-shift, exact in FP32
//   p[b mod 16] += term_b                               blocks in row order, p starts at +0
//   dot    = ((p[i] + p[i+8]) + ...) tree of 8, 4, 2, 1 [* tensor scale, two-level formats]
//
// Weight blocks of 16 (NVFP4) take the half of the 32-value activation block they cover.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "blockcast/block/block_format.hpp"
#include "blockcast/block/layout.hpp"
#include "blockcast/block/packed.hpp"
#include "blockcast/block/storage.hpp"
#include "blockcast/error.hpp"
#include "blockcast/kernels/mx_dot_arch.hpp"
#include "blockcast/kernels/scalar_ops.hpp"

namespace blockcast {

/// The activations' format: OCP MXINT8 (int8 codes * 2^-6, one E8M0 scale per 32).
using mx_activation_format = mxint8;

/// Element values as integers: value(code) = integer(code) * 2^-shift, for every finite code.
template <class Element>
struct element_integers {
  /// Exponent of the smallest nonzero magnitude, negated (E2M1: 1, E4M3: 9, INT8: 6).
  static constexpr int shift = [] {
    if constexpr (Element::is_float) return Element::mantissa_bits - Element::emin;
    else return Element::fraction_bits;
  }();

  static constexpr std::int64_t integer(std::uint8_t code) {
    code = static_cast<std::uint8_t>(code & ((1u << Element::bits) - 1u));
    if constexpr (Element::is_float) {
      const int magnitude = code & Element::magnitude_mask;
      const int exponent_field = magnitude >> Element::mantissa_bits;
      const std::int64_t fraction = magnitude & ((1 << Element::mantissa_bits) - 1);
      const std::int64_t m = exponent_field == 0
                                 ? fraction
                                 : (fraction + (std::int64_t{1} << Element::mantissa_bits)) << (exponent_field - 1);
      return (code & Element::sign_mask) ? -m : m;
    } else {
      return Element::to_int(code);
    }
  }
  static constexpr bool special(std::uint8_t code) {
    if constexpr (Element::is_float) return Element::is_nan(code) || Element::is_inf(code);
    else return false;
  }
  /// Largest |integer(code)| over the finite codes.
  static constexpr std::int64_t max_magnitude() {
    std::int64_t m = 0;
    for (unsigned c = 0; c < (1u << Element::bits); ++c)
      if (!special(static_cast<std::uint8_t>(c))) {
        const std::int64_t v = integer(static_cast<std::uint8_t>(c));
        m = v > m ? v : (-v > m ? -v : m);
      }
    return m;
  }
};

namespace detail {
/// Adds the 16 partial sums in the documented tree: p[i] + p[i+8], then +4, +2, +1.
inline float tree_sum16(float* p) {
  for (std::size_t half = 8; half >= 1; half /= 2)
    for (std::size_t i = 0; i < half; ++i) p[i] = fp32_rounded(p[i] + p[i + half]);
  return p[0];
}

/// A block scale times 2^-shift: exact in FP32 for every E8M0 and UE4M3 code and every preset.
template <class Scale>
inline float scale_times(std::uint8_t code, int shift) {
  return Scale::decode(code) * exp2i(-shift);
}
}  // namespace detail

/// MXINT8 activations prepared once for the dot products of every row of a `Format` weight
/// matrix: per weight block its activation scale, and the forms the kernels multiply.
template <class Format>
class mx_activations {
  using scale_type = typename mx_activation_format::scale_type;
  static constexpr std::size_t B = Format::block_size;
  static_assert(mx_activation_format::block_size % B == 0,
                "MX dot products need weight blocks that tile the activation blocks of 32");

 public:
  using integers = element_integers<typename mx_activation_format::element_type>;

  explicit mx_activations(packed_view<mx_activation_format> x) : cols_(x.cols()) {
    if (x.rows() != 1)
      detail::fail<shape_error>("MX dot product: activations must be one row, got shape " +
                                detail::shape_string(x.rows(), x.cols()));
    const std::size_t blocks = blocks_per_row<Format>(cols_);
    const std::size_t padded = (blocks + 15) / 16 * 16;
    const std::size_t n = padded * B;  // whole groups of 16 blocks: a whole number of 128s
    codes_.assign(n, 0);
    std::copy(x.row_codes(0), x.row_codes(0) + cols_, codes_.begin());
    scale_.assign(padded, 0.0f);
    for (std::size_t b = 0; b < blocks; ++b)
      scale_[b] = detail::scale_times<scale_type>(x.row_scales(0)[b * B / mx_activation_format::block_size],
                                                  integers::shift);
    // Each form in its own loop over plain arrays, without a division or a read-modify-write
    // of another form in it, so that the compiler vectorizes them: written as one loop with
    // `form[i / 8] += ...` they took 7.5 us at K = 4096 (Zen 5), half of a whole MXFP4 gemv
    // of 256 rows from the L2 (now 1.2-1.9 us; that gemv 35 -> 59 GB/s).
    const std::int8_t* c = codes();
    wide_.resize(n);
    for (std::size_t i = 0; i < n; ++i) wide_[i] = c[i];
    split_.resize(n);
    for (std::size_t at = 0; at < n; at += 128)
      for (std::size_t i = 0; i < 64; ++i) {
        split_[at + i] = c[at + 2 * i];
        split_[at + 64 + i] = c[at + 2 * i + 1];
      }
    starts_.resize(n / 4);
    for (std::size_t i = 0; i < n / 4; ++i)
      starts_[i] = -128 * (wide_[4 * i] + wide_[4 * i + 1] + wide_[4 * i + 2] + wide_[4 * i + 3]);
    nibble_starts_.assign(n / 8, 0);  // tensor_vector leaves resized elements uninitialized
    for (std::size_t i = 0; i < n / 8; ++i) {
      for (std::size_t j = 0; j < 8; ++j) nibble_starts_[i] += wide_[8 * i + j];
      nibble_starts_[i] *= -simd::arch::nibble_offset;
    }
    sums_.assign(padded, 0);
    for (std::size_t b = 0; b < padded; ++b)
      for (std::size_t j = 0; j < B; ++j) sums_[b] += wide_[b * B + j];
    has_min_code_.resize(padded / 16);
    for (std::size_t g = 0; g < padded / 16; ++g) {
      std::int8_t least = 0;  // a min reduction: the compiler leaves an OR of comparisons scalar
      for (std::size_t i = 0; i < 16 * B; ++i) least = std::min(least, c[16 * B * g + i]);
      has_min_code_[g] = least == -128;
    }
  }

  std::size_t cols() const { return cols_; }
  /// Codes as signed bytes, zero past cols(), padded to whole groups of 16 blocks.
  const std::int8_t* codes() const { return reinterpret_cast<const std::int8_t*>(codes_.data()); }
  /// The same codes widened to 16 bits.
  const std::int16_t* wide_codes() const { return wide_.data(); }
  /// The forms the kernels read for the group of 16 weight blocks starting at `block`.
  simd::arch::group_activations group(std::size_t block) const {
    return {codes() + block * B,  wide_.data() + block * B, split_.data() + block * B,          sums_.data() + block,
            nibble_starts_.data() + block * B / 8, starts_.data() + block * B / 4, scale_.data() + block,
            has_min_code_[block / 16] != 0};
  }
  /// d_x of weight block b: the activation block's scale times 2^-6.
  const float* scales() const { return scale_.data(); }

 private:
  std::size_t cols_;
  detail::tensor_vector<std::uint8_t> codes_;
  detail::tensor_vector<std::int16_t> wide_;
  detail::tensor_vector<std::int8_t> split_;
  std::vector<std::uint8_t> has_min_code_;  // per group of 16 weight blocks
  detail::tensor_vector<float> scale_;
  detail::tensor_vector<std::int32_t> sums_;
  detail::tensor_vector<std::int32_t> nibble_starts_;
  detail::tensor_vector<std::int32_t> starts_;
};

namespace reference {

/// The exact block sum S_b of n element codes against n activation codes, as a double: an
/// integer (exact: at most 2^45 for every preset) unless an element is Inf or NaN, where
/// IEEE arithmetic on the decoded values decides (Inf * 0 and Inf - Inf are NaN).
template <class Element>
double block_sum(const std::uint8_t* w, const std::int8_t* x, std::size_t n) {
  using ints = element_integers<Element>;
  static constexpr auto integers = [] {
    std::array<std::int64_t, 256> t{};
    for (unsigned c = 0; c < 256; ++c) t[c] = ints::integer(static_cast<std::uint8_t>(c));
    return t;
  }();
  bool special = false;
  std::int64_t sum = 0;
  for (std::size_t j = 0; j < n; ++j) {
    if constexpr (Element::has_nan || Element::has_inf) special = special || ints::special(w[j]);
    sum += integers[w[j]] * x[j];
  }
  if (!special) return static_cast<double>(sum);
  double s = 0.0;
  for (std::size_t j = 0; j < n; ++j) {
    const double v = ints::special(w[j]) ? static_cast<double>(Element::decode(w[j])) : static_cast<double>(ints::integer(w[j]));
    s += v * x[j];
  }
  return s;
}

/// term_b = (fp32(S_b) * d_w) * d_x.
inline float block_term(double sum, float d_w, float d_x) {
  return detail::fp32_rounded(detail::fp32_rounded(static_cast<float>(sum) * d_w) * d_x);
}

/// The MX dot product of weight row `row` with the activations, in the documented order.
template <class Format>
float mx_dot(packed_view<Format> w, std::size_t row, const mx_activations<Format>& x) {
  using element = typename Format::element_type;
  using ints = element_integers<element>;
  constexpr std::size_t B = Format::block_size;
  const std::size_t cols = w.cols(), blocks = blocks_per_row<Format>(cols);
  std::vector<std::uint8_t> codes(cols);
  detail::unpack_codes(w.row_codes(row), cols, Format::element_bits, codes.data());
  float p[16] = {};
  for (std::size_t b = 0; b < blocks; ++b) {
    const std::size_t n = std::min(B, cols - b * B);
    const double s = block_sum<element>(codes.data() + b * B, x.codes() + b * B, n);
    const float d_w = detail::scale_times<typename Format::scale_type>(w.row_scales(row)[b], ints::shift);
    p[b % 16] = detail::fp32_rounded(p[b % 16] + block_term(s, d_w, x.scales()[b]));
  }
  const float total = detail::tree_sum16(p);
  return Format::has_tensor_scale ? total * w.tensor_scale() : total;
}

}  // namespace reference

namespace simd {

/// MX dot products of whole rows: groups of 16 blocks through arch::block_sums where Arch
/// has a kernel for the format, the rest (and every block holding Inf or NaN) by the
/// reference's block sum; the same FP32 order either way.
template <class Format, class Arch>
struct mx_dot_kernels {
  using element = typename Format::element_type;
  using scale_type = typename Format::scale_type;
  using ints = element_integers<element>;
  static constexpr std::size_t B = Format::block_size;
  static constexpr int bits = Format::element_bits;

  /// The kernel state of one call (lookup tables), built once for many rows.
  struct state {
    state() : group(ints::shift) {}
    [[maybe_unused]] std::conditional_t<arch::has_group_dot<Format, Arch>(), arch::group_dot<Format, Arch>, char> group;
  };

  /// The dot products of rows r0..r1 into y[0..r1-r0).
  static void rows(packed_view<Format> w, std::size_t r0, std::size_t r1, const mx_activations<Format>& x, float* y) {
    const state s;
    std::size_t r = r0;
    if constexpr (arch::has_group_dot<Format, Arch>()) {
      // several rows at once where the kernel can (the same bits as one at a time): rows of
      // whole groups only, the others need the reference's blocks. The rows taken together
      // are a part of the range apart (r0 + i, r0 + i + part, ...), so that each reads on
      // where its previous one ended: four long linear streams. Four adjacent rows are four
      // streams 2 KiB long (K = 4096) that end before they are fetched well (16384 x 4096
      // on Zen 4, one core, from memory: MXFP4 at a median 0.74 of the read roof before and
      // 0.84 after, seven runs each; warm, NVFP4 read about 20% faster)
      constexpr int together = arch::group_dot<Format, Arch>::rows_at_once;
      if constexpr (together > 1) {
        if (w.cols() % (16 * B) == 0) {
          const std::size_t part = (r1 - r0) / together;
          for (std::size_t i = 0; i < part; ++i) rows_together<together>(w, r0 + i, part, x, s, y + i);
          r = r0 + together * part;
        }
      }
    }
    for (; r < r1; ++r) y[r - r0] = row_dot(w, r, x, s);
  }

  static float row_dot(packed_view<Format> w, std::size_t row, const mx_activations<Format>& x, const state& s = {}) {
    const std::size_t cols = w.cols(), blocks = blocks_per_row<Format>(cols);
    const std::size_t groups = arch::has_group_dot<Format, Arch>() ? cols / (16 * B) : 0;
    // the terms of the blocks after the whole groups first: their calls would otherwise keep
    // the vector accumulator in memory during the groups
    std::vector<float> rest_terms;
    if (groups * 16 < blocks) rest_terms = rest(w, row, groups * 16, x);
    float p[16] = {};
    if constexpr (arch::has_group_dot<Format, Arch>()) {
      constexpr std::size_t group_bytes = 16 * B * bits / 8;
      const auto partials =
          s.group.accumulate(w.row_codes(row), group_bytes, w.row_scales(row), groups, x, special_terms(w, row, x));
      if (rest_terms.empty()) return finish(s.group.tree_sum(partials), w);
      s.group.store(partials, p);
    }
    for (std::size_t i = 0; i < rest_terms.size(); ++i) {
      const std::size_t b = groups * 16 + i;
      p[b % 16] = detail::fp32_rounded(p[b % 16] + rest_terms[i]);
    }
    return finish(detail::tree_sum16(p), w);
  }

 private:
  /// Rows r, r + step, ..., r + (R - 1) * step, all of whole groups, into y[0], y[step], ...
  template <int R>
  static void rows_together(packed_view<Format> w, std::size_t r, std::size_t step, const mx_activations<Format>& x,
                            const state& s, float* y) {
    constexpr std::size_t group_bytes = 16 * B * bits / 8;
    const std::uint8_t* codes[R];
    const std::uint8_t* scales[R];
    for (int k = 0; k < R; ++k) {
      codes[k] = w.row_codes(r + k * step);
      scales[k] = w.row_scales(r + k * step);
    }
    typename arch::group_dot<Format, Arch>::partials p[R];
    s.group.accumulate_rows(codes, group_bytes, scales, w.cols() / (16 * B), x, p);
    for (int k = 0; k < R; ++k) y[k * step] = finish(s.group.tree_sum(p[k]), w);
  }
  /// The terms of blocks `first` to the end of the row, by the reference's block sums.
  static std::vector<float> rest(packed_view<Format> w, std::size_t row, std::size_t first,
                                 const mx_activations<Format>& x) {
    const std::size_t cols = w.cols(), blocks = blocks_per_row<Format>(cols), start = first * B;
    std::vector<std::uint8_t> codes(cols - start);
    detail::unpack_codes(w.row_codes(row) + start * bits / 8, codes.size(), bits, codes.data());
    std::vector<float> terms;
    for (std::size_t b = first; b < blocks; ++b)
      terms.push_back(term(codes.data() + (b * B - start), w.row_scales(row)[b], x, b, std::min(B, cols - b * B)));
    return terms;
  }
  /// The terms of group g of a row, by the reference: for groups with an Inf or NaN element.
  static auto special_terms(packed_view<Format> w, std::size_t row, const mx_activations<Format>& x) {
    return [w, row, &x](std::size_t g, float* terms) {
      constexpr std::size_t group_bytes = 16 * B * bits / 8;
      std::uint8_t block_codes[16 * B];
      detail::unpack_codes(w.row_codes(row) + g * group_bytes, 16 * B, bits, block_codes);
      for (std::size_t i = 0; i < 16; ++i)
        terms[i] = term(block_codes + i * B, w.row_scales(row)[16 * g + i], x, 16 * g + i, B);
    };
  }
  static float finish(float total, packed_view<Format> w) {
    return Format::has_tensor_scale ? total * w.tensor_scale() : total;
  }
  static float term(const std::uint8_t* block_codes, std::uint8_t scale, const mx_activations<Format>& x,
                    std::size_t b, std::size_t n) {
    const double s = reference::block_sum<element>(block_codes, x.codes() + b * B, n);
    return reference::block_term(s, detail::scale_times<scale_type>(scale, ints::shift), x.scales()[b]);
  }
};

}  // namespace simd
}  // namespace blockcast
