// SPDX-License-Identifier: MIT
// What every PTQ method returns, and the per-row machinery they share: exact block scales
// and element codes from kernels/reference.hpp, rows in fixed chunks across threads.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <string>
#include <vector>

#include "blockcast/api.hpp"
#include "blockcast/kernels/parallel.hpp"
#include "blockcast/kernels/reference.hpp"
#include "blockcast/kernels/simd.hpp"
#include "blockcast/ptq/matrix.hpp"

namespace blockcast::ptq {

/// A quantized weight matrix.
template <class Format>
struct quantized_matrix {
  matrix dequantized;             // m x K, on the format's grid
  packed_tensor<Format> packed;   // row after row; blocks restart at each row
  std::string method;             // "rtn", "ed", "gptq", or "rtn (no calibration statistics)"
};

namespace detail {

// Rows are processed in chunks of this many, whatever the thread count: every result is a
// function of its chunk alone, so it is identical for every number of threads. The per-column
// kernels and the block products run on a chunk's rows side by side: with 128 rows ED's pass
// at K = 4096 (one thread) took about a tenth less time than with 32, with 256 or 512 more
// (the chunk's copies leave the L2).
inline constexpr std::size_t row_chunk = 128;

/// for_row_chunks with buffers: f(scratch, first_row, end_row), `scratch` made by
/// make_scratch() once per thread and kept from chunk to chunk. A method's large per-chunk
/// buffers then fault in their pages once per call and thread, not once per chunk (ED's
/// 2-4 MB buffers, made per chunk, faulted afresh in every chunk of a process's first call).
/// Threads take the next chunk as they finish one; the results do not depend on which
/// thread took it.
template <class MakeScratch, class F>
void for_row_chunks(std::size_t rows, unsigned threads, MakeScratch&& make_scratch, F&& f) {
  const std::size_t chunks = (rows + row_chunk - 1) / row_chunk;
  blockcast::detail::parallel_claim(chunks, threads, make_scratch, [&](auto& scratch, std::size_t c) {
    f(scratch, c * row_chunk, std::min(rows, (c + 1) * row_chunk));
  });
}

/// f(first_row, end_row) for every chunk of rows, split over threads as above.
template <class F>
void for_row_chunks(std::size_t rows, unsigned threads, F&& f) {
  for_row_chunks(rows, threads, [] { return 0; }, [&](int, std::size_t first_row, std::size_t end_row) { f(first_row, end_row); });
}

/// The finite amax of a matrix (rows may be strided).
inline float finite_amax(const matrix_ref& w) {
  float amax = 0.0f;
  for (Eigen::Index i = 0; i < w.rows(); ++i)
    amax = std::max(amax, reference::finite_amax(w.row(i).data(), static_cast<std::size_t>(w.cols())));
  return amax;
}

/// The tensor-level context (options; NVFP4 tensor scale from the weights' finite amax
/// unless opt.tensor_amax is given).
template <class Format>
reference::block_context weight_context(const matrix_ref& w, cast_options opt) {
  blockcast::detail::check_options(opt);
  if (Format::has_tensor_scale && !opt.tensor_amax) opt.tensor_amax = finite_amax(w);
  return reference::make_context<Format>(nullptr, 0, opt);
}

/// An empty m x K result of a method, with the tensor scale of its context.
template <class Format>
quantized_matrix<Format> empty_result(const matrix_ref& w, const char* method, const reference::block_context& ctx) {
  quantized_matrix<Format> q;
  q.method = method;
  q.packed = packed_tensor<Format>(static_cast<std::size_t>(w.rows()), static_cast<std::size_t>(w.cols()));
  q.packed.set_tensor_scale(ctx.tensor_decode);
  q.dequantized.resize(w.rows(), w.cols());
  // first touched by the method: in huge pages a 64 MB result faults about 550 times (4 KiB
  // pages remain at its unaligned ends), not 16,384
  blockcast::detail::advise_huge_pages(q.dequantized.data(), static_cast<std::size_t>(q.dequantized.size()) * sizeof(float));
  return q;
}

/// Decodes rows [r0, r1) of q.packed into q.dequantized with the dequantize kernel. ED takes
/// a chunk's dequantized values from its stored codes, so the two agree by construction and
/// the result is written a row at a time (its store of each block's values across the chunk's
/// rows, one short strided row each, was the pass's slowest loop).
template <class Format>
void decode_rows(quantized_matrix<Format>& q, std::size_t r0, std::size_t r1) {
  const std::size_t cols = q.packed.cols(), code_row = row_code_bytes<Format>(cols), scale_row = blocks_per_row<Format>(cols);
  const packed_view<Format> rows(r1 - r0, cols, span<const std::uint8_t>(q.packed.codes().data() + r0 * code_row, (r1 - r0) * code_row),
                                 span<const std::uint8_t>(q.packed.scales().data() + r0 * scale_row, (r1 - r0) * scale_row),
                                 q.packed.tensor_scale());
  dequantize(rows, q.dequantized.data() + r0 * cols);
}

/// Whether simd::kernels::quantize_lanes quantizes with block scale bs as the reference does
/// (not a NaN scale, nor the E8M0 exponent 127), and the factor it takes for it.
template <class Format>
bool lanes_cover(const reference::block_scale& bs) {
  return !bs.nan && (Format::has_tensor_scale || bs.shared_exp <= 126);
}
template <class Format>
float lane_factor(const reference::block_scale& bs) {
  return Format::has_tensor_scale ? bs.inverse : blockcast::detail::exp2i(-std::min(bs.shared_exp, 126));
}

/// The values of a block quantized with scale bs (not NaN), into q.
template <class Format>
void block_values(const float* v, std::size_t len, const reference::block_scale& bs, const reference::block_context& ctx,
                  std::uint64_t first_index, float* q) {
  constexpr std::size_t B = Format::block_size;
  if (ctx.round != rounding::stochastic && lanes_cover<Format>(bs)) {
    // the block's values are finite (a non-finite one makes the scale NaN): the SIMD path
    float factor[B], scale[B];
    std::uint8_t codes[B];
    std::fill(factor, factor + len, lane_factor<Format>(bs));
    std::fill(scale, scale + len, bs.value);
    simd::kernels<Format, simd::best_arch>::quantize_lanes(v, factor, scale, len, ctx, codes, q);
  } else {
    for (std::size_t j = 0; j < len; ++j)
      q[j] = reference::dequantize_value<Format>(reference::quantize_value<Format>(v[j], bs, ctx, first_index + j), bs,
                                                 ctx.tensor_decode);
  }
}

/// sum_j weight_j (v_j - q_j)^2 of a block quantized with scale bs (a NaN scale: infinite),
/// in FP64, summed in index order.
template <class Format>
double weighted_block_error(const float* v, const float* weight, std::size_t len, const reference::block_scale& bs,
                            const reference::block_context& ctx, std::uint64_t first_index) {
  if (bs.nan) return INFINITY;
  float q[Format::block_size];
  block_values<Format>(v, len, bs, ctx, first_index, q);
  double error = 0.0;
  for (std::size_t j = 0; j < len; ++j) {
    const double d = static_cast<double>(v[j]) - static_cast<double>(q[j]);
    error += static_cast<double>(weight[j]) * (d * d);
  }
  return error;
}

/// Block-scale search: the scale the block's amax gives (the format's rule) or one of the codes
/// either side of it, whichever gives the smallest error weighted by `weight` (H's diagonal;
/// all ones for the plain error). Ties keep the amax scale, so the result is never worse than
/// it under that weighting. A NaN/Inf block keeps its NaN scale; a zero NVFP4 scale stays.
/// Each candidate's error is weighted_block_error's, to the bit; the three sums run side by
/// side (each a chain of dependent FP64 additions, which one at a time took most of the search).
template <class Format>
reference::block_scale searched_block_scale(const float* v, const float* weight, std::size_t len,
                                            const reference::block_context& ctx, std::uint64_t first_index) {
  using scale = typename Format::scale_type;
  constexpr std::size_t B = Format::block_size;
  const reference::block_scale base = reference::make_block_scale<Format>(reference::amax_bits(v, len), ctx);
  if (base.nan || (Format::has_tensor_scale && base.code == 0)) return base;
  // the lowest and highest codes of a finite, nonzero scale
  constexpr int lowest = Format::has_tensor_scale ? 1 : 0;
  constexpr int highest = Format::has_tensor_scale ? 0x7e : e8m0::nan_code - 1;
  static_assert(!Format::has_tensor_scale || std::is_same_v<scale, ue4m3>, "scale search: UE4M3 codes 1..0x7e");
  // the amax scale, then the codes below and above it (the amax scale again where there is none)
  reference::block_scale candidates[3] = {base, base, base};
  for (int side = 0; side < 2; ++side) {
    const int code = static_cast<int>(base.code) + (side == 0 ? -1 : 1);
    if (code >= lowest && code <= highest)
      candidates[1 + side] = reference::block_scale_of_code<Format>(static_cast<std::uint8_t>(code), ctx);
  }
  float q[3][B];
  for (int c = 0; c < 3; ++c) block_values<Format>(v, len, candidates[c], ctx, first_index, q[c]);
  double error[3] = {0.0, 0.0, 0.0};
  for (std::size_t j = 0; j < len; ++j) {
    const double value = v[j], w = weight[j];
    for (int c = 0; c < 3; ++c) {
      const double d = value - static_cast<double>(q[c][j]);
      error[c] += w * (d * d);
    }
  }
  int best = 0;  // a smaller error only: ties keep the earlier candidate
  for (int c = 1; c < 3; ++c)
    if (error[c] < error[best]) best = c;
  return candidates[best];
}

/// The codes (one per byte) of a chunk of rows, and the scale of each of their blocks.
template <class Format>
struct chunk_codes {
  std::vector<std::vector<std::uint8_t>> codes;
  std::vector<std::vector<reference::block_scale>> scales_in_use;  // per row, per block

  chunk_codes(std::size_t rows, std::size_t k)
      : codes(rows, std::vector<std::uint8_t>(k)),
        scales_in_use(rows, std::vector<reference::block_scale>(blocks_per_row<Format>(k))),
        lane_factor_(rows * blocks_per_row<Format>(k)),
        lane_scale_(rows * blocks_per_row<Format>(k)),
        needs_reference_(blocks_per_row<Format>(k), 0) {}

  /// Starts block b of row i with the scale of its (adjusted or updated) values: the amax
  /// rule's, or with `search_weight` (the block's weights, H's diagonal) the searched scale
  /// (searched_block_scale; `first_index`: the block's tensor index, for stochastic rounding).
  void start_block(std::size_t i, std::size_t b, const float* values, std::size_t len, const reference::block_context& ctx,
                   const float* search_weight = nullptr, std::uint64_t first_index = 0) {
    const reference::block_scale bs = search_weight ? searched_block_scale<Format>(values, search_weight, len, ctx, first_index)
                                                    : reference::make_block_scale<Format>(reference::amax_bits(values, len), ctx);
    scales_in_use[i][b] = bs;
    // quantize_column's view: the rows of a block side by side
    const std::size_t lane = b * codes.size() + i;
    lane_factor_[lane] = lane_factor<Format>(bs);
    lane_scale_[lane] = bs.value;
    if (!lanes_cover<Format>(bs)) needs_reference_[b] = 1;
  }

  /// Quantizes value v of row i, column j (tensor index `index`) with its block's scale and
  /// returns its dequantized value.
  float quantize(std::size_t i, std::size_t j, float v, std::uint64_t index, const reference::block_context& ctx) {
    const auto& b = scales_in_use[i][j / Format::block_size];
    const std::uint8_t c = b.nan ? std::uint8_t{0} : reference::quantize_value<Format>(v, b, ctx, index);
    codes[i][j] = c;
    return reference::dequantize_value<Format>(c, b, ctx.tensor_decode);
  }

  /// Quantizes column j of every row of the chunk, v[i] the value of row i, each with its
  /// row's scale for that block, without storing: codes to c[i], their values to q[i]. The SIMD
  /// path (simd::kernels::quantize_lanes) where it gives the reference's bits; the reference
  /// for stochastic rounding, NaN scales, E8M0 exponent 127 and non-finite values.
  /// `first_index`: row 0's tensor index of column j; rows are `row_stride` apart.
  void quantize_column(std::size_t j, const float* v, std::uint8_t* c, float* q, std::uint64_t first_index,
                       std::uint64_t row_stride, const reference::block_context& ctx) {
    const std::size_t n = codes.size(), b = j / Format::block_size;
    auto reference_value = [&](std::size_t i) {
      const auto& bs = scales_in_use[i][b];
      c[i] = bs.nan ? std::uint8_t{0} : reference::quantize_value<Format>(v[i], bs, ctx, first_index + i * row_stride);
      q[i] = reference::dequantize_value<Format>(c[i], bs, ctx.tensor_decode);
    };
    if (ctx.round == rounding::stochastic) {
      for (std::size_t i = 0; i < n; ++i) reference_value(i);
      return;
    }
    simd::kernels<Format, simd::best_arch>::quantize_lanes(v, lane_factor_.data() + b * n, lane_scale_.data() + b * n, n, ctx, c, q);
    // the usual column: every scale covered and every value finite, checked as one vector
    // reduction (checked row by row, it took about 5% of ED's greedy pass)
    if (!needs_reference_[b] && Eigen::Map<const Eigen::ArrayXf>(v, static_cast<Eigen::Index>(n)).allFinite()) return;
    for (std::size_t i = 0; i < n; ++i) {
      if (!std::isfinite(v[i]) || (needs_reference_[b] && !lanes_cover<Format>(scales_in_use[i][b]))) reference_value(i);
    }
  }

  /// Whether a row's block b has a NaN scale (it keeps its codes 0).
  bool has_nan_scale(std::size_t b) const {
    if (!needs_reference_[b]) return false;
    for (const auto& row : scales_in_use)
      if (row[b].nan) return true;
    return false;
  }

  /// Packs the chunk's rows into rows r0.. of the result.
  void store(packed_tensor<Format>& p, std::size_t r0) const {
    auto view = p.mutable_view();
    for (std::size_t i = 0; i < codes.size(); ++i) {
      blockcast::detail::pack_codes(codes[i].data(), codes[i].size(), Format::element_bits, view.row_codes(r0 + i));
      std::uint8_t* scale_bytes = view.row_scales(r0 + i);
      for (const auto& scale : scales_in_use[i]) *scale_bytes++ = scale.code;
    }
  }

 private:
  // per block, per row (the rows of a block side by side): the factor and decoded scale of
  // quantize_column's SIMD path, and whether a row of the block needs the reference
  std::vector<float> lane_factor_, lane_scale_;
  std::vector<char> needs_reference_;
};

}  // namespace detail
}  // namespace blockcast::ptq
