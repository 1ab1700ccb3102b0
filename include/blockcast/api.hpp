// SPDX-License-Identifier: MIT
// The stable entry points: quantize (float -> packed), dequantize (packed -> float) and
// fake_quantize (float -> float on the format's grid). A 1-D array of n values is one row of
// n: cut into consecutive blocks, the last one possibly partial.
#pragma once

#include <cstddef>
#include <limits>
#include <string>

#include "blockcast/block/packed.hpp"
#include "blockcast/error.hpp"
#include "blockcast/kernels/cast.hpp"
#include "blockcast/kernels/convert.hpp"
#include "blockcast/kernels/dot.hpp"
#include "blockcast/kernels/mx_dot.hpp"
#include "blockcast/kernels/reference.hpp"
#if BLOCKCAST_RUNTIME_DISPATCH
#include "blockcast/dispatch.hpp"
#endif
#include "blockcast/policy.hpp"

namespace blockcast {

/// The kernels the entry points use: the best instruction set this translation unit is
/// compiled for (e.g. avx512vbmi with -march=native on Zen 4, SSE2 on baseline x86-64).
template <class Format>
using default_casts = simd::tensor_casts<Format, simd::best_arch>;

namespace detail {
inline void check_shape(std::size_t rows, std::size_t cols, const char* what) {
  if (cols != 0 && rows > std::numeric_limits<std::size_t>::max() / cols)
    fail<shape_error>(std::string(what) + ": shape " + shape_string(rows, cols) +
                      " overflows size_t");
}
inline void check_options(const cast_options& opt) {
  if (opt.threads == 0) fail<invalid_argument>("cast_options::threads must be >= 1");
  if (opt.tensor_amax && !(*opt.tensor_amax >= 0.0f && *opt.tensor_amax <= std::numeric_limits<float>::max()))
    fail<invalid_argument>("cast_options::tensor_amax must be finite and >= 0, got " +
                           std::to_string(*opt.tensor_amax));
}

/// Whether calls for Format go through the runtime-dispatched kernels (blockcast::dispatch).
template <class Format>
constexpr bool dispatched() {
#if BLOCKCAST_RUNTIME_DISPATCH && BLOCKCAST_DISPATCH_AVAILABLE
  return is_preset<Format>::value;
#else
  return false;
#endif
}
}  // namespace detail

/// Quantizes rows x cols row-major values into caller storage of the same shape; returns the
/// FP32 tensor scale (S_dec of two-level formats; 1 for MX formats).
template <class Format>
float quantize_into(const float* in, std::size_t rows, std::size_t cols,
                    mutable_packed_view<Format> out, const cast_options& opt = {}) {
  detail::check_shape(rows, cols, "quantize_into");
  detail::check_options(opt);
  if (out.rows() != rows || out.cols() != cols)
    detail::fail<shape_error>("quantize_into: input of shape " + detail::shape_string(rows, cols) +
                              " does not fit an output view of shape " +
                              detail::shape_string(out.rows(), out.cols()));
#if BLOCKCAST_RUNTIME_DISPATCH && BLOCKCAST_DISPATCH_AVAILABLE
  if constexpr (detail::dispatched<Format>()) return runtime::quantize<Format>(in, rows, cols, out, opt);
#endif
  return default_casts<Format>::quantize(in, rows, cols, out, opt);
}

/// Quantizes a rows x cols row-major matrix; blocks run along each row and restart at each row.
template <class Format>
packed_tensor<Format> quantize(const float* in, std::size_t rows, std::size_t cols,
                               const cast_options& opt = {}) {
  detail::check_shape(rows, cols, "quantize");
  auto p = packed_tensor<Format>::for_overwrite(rows, cols);  // quantize_into writes every byte
  p.set_tensor_scale(quantize_into<Format>(in, rows, cols, p.mutable_view(), opt));
  return p;
}

/// Quantizes n values (one row).
template <class Format>
packed_tensor<Format> quantize(const float* in, std::size_t n, const cast_options& opt = {}) {
  return quantize<Format>(in, 1, n, opt);
}

/// Decodes every value of `in` into out[0..in.size()).
template <class Format>
void dequantize(packed_view<Format> in, float* out, const cast_options& opt = {}) {
  detail::check_options(opt);
#if BLOCKCAST_RUNTIME_DISPATCH && BLOCKCAST_DISPATCH_AVAILABLE
  if constexpr (detail::dispatched<Format>()) return runtime::dequantize<Format>(in, out, opt.threads);
#endif
  default_casts<Format>::dequantize(in, out, opt.threads);
}
template <class Format>
void dequantize(const packed_tensor<Format>& in, float* out, const cast_options& opt = {}) {
  dequantize(in.view(), out, opt);
}
/// Checked form: `out` must hold in.size() values (a span, so that `dequantize(p, out, {})`
/// is the options form above, never a capacity of 0).
template <class Format>
void dequantize(packed_view<Format> in, span<float> out, const cast_options& opt = {}) {
  if (out.size() < in.size())
    detail::fail<shape_error>("dequantize: output holds " + std::to_string(out.size()) +
                              " values, the packed tensor " + std::to_string(in.size()));
  dequantize(in, out.data(), opt);
}
template <class Format>
void dequantize(const packed_tensor<Format>& in, span<float> out, const cast_options& opt = {}) {
  dequantize(in.view(), out, opt);
}

/// Rounds rows x cols values onto the format's grid (quantize + dequantize, without storing
/// packed codes); in == out is allowed.
template <class Format>
void fake_quantize(const float* in, float* out, std::size_t rows, std::size_t cols,
                   const cast_options& opt = {}) {
  detail::check_shape(rows, cols, "fake_quantize");
  detail::check_options(opt);
#if BLOCKCAST_RUNTIME_DISPATCH && BLOCKCAST_DISPATCH_AVAILABLE
  if constexpr (detail::dispatched<Format>()) return runtime::fake_quantize<Format>(in, out, rows, cols, opt);
#endif
  default_casts<Format>::fake_quantize(in, out, rows, cols, opt);
}

/// Rounds n values (one row) onto the format's grid.
template <class Format>
void fake_quantize(const float* in, float* out, std::size_t n, const cast_options& opt = {}) {
  fake_quantize<Format>(in, out, 1, n, opt);
}

namespace detail {
// The row kernels behind dequantize_bf16, dot, gemv and matmul: runtime-dispatched for presets
// when linked with blockcast::dispatch, this file's best_arch otherwise. The dot products of
// rows r0..r1 go to y[0..r1-r0).
template <class Format>
void dequantize_bf16_rows(packed_view<Format> in, std::size_t r0, std::size_t r1, std::uint16_t* out) {
#if BLOCKCAST_RUNTIME_DISPATCH && BLOCKCAST_DISPATCH_AVAILABLE
  if constexpr (dispatched<Format>()) return runtime::dequantize_bf16_rows<Format>(in, r0, r1, out);
#endif
  simd::tensor_casts<Format, simd::best_arch>::dequantize_bf16_rows(in, r0, r1, out);
}
template <class Format>
void float_dot_rows(packed_view<Format> w, std::size_t r0, std::size_t r1, const float* x, float* y) {
#if BLOCKCAST_RUNTIME_DISPATCH && BLOCKCAST_DISPATCH_AVAILABLE
  if constexpr (dispatched<Format>()) return runtime::float_dot_rows<Format>(w, r0, r1, x, y);
#endif
  simd::dot_kernels<Format, simd::best_arch>::rows(w, r0, r1, x, y);
}
template <class Format>
void mx_dot_rows(packed_view<Format> w, std::size_t r0, std::size_t r1, const mx_activations<Format>& x, float* y) {
#if BLOCKCAST_RUNTIME_DISPATCH && BLOCKCAST_DISPATCH_AVAILABLE
  if constexpr (dispatched<Format>()) return runtime::mx_dot_rows<Format>(w, r0, r1, x, y);
#endif
  simd::mx_dot_kernels<Format, simd::best_arch>::rows(w, r0, r1, x, y);
}
}  // namespace detail

/// Decodes every value of `in` to BF16 (round to nearest even) into out[0..in.size()).
template <class Format>
void dequantize_bf16(packed_view<Format> in, std::uint16_t* out, const cast_options& opt = {}) {
  detail::check_options(opt);
  detail::parallel_for(in.rows(), opt.threads, 1, [&](std::size_t r0, std::size_t r1) {
    detail::dequantize_bf16_rows(in, r0, r1, out);
  });
}
template <class Format>
void dequantize_bf16(const packed_tensor<Format>& in, std::uint16_t* out, const cast_options& opt = {}) {
  dequantize_bf16(in.view(), out, opt);
}

/// Dot product of packed row `row` with x[0..cols): sum of dequantized(w_j) * x_j, computed
/// on the packed codes (no dequantized copy), FP32 accumulation in a fixed order per ISA.
template <class Format>
float dot(packed_view<Format> w, std::size_t row, const float* x) {
  if (row >= w.rows())
    detail::fail<shape_error>("dot: row " + std::to_string(row) + " of a tensor with " +
                              std::to_string(w.rows()) + " rows");
  float y[1];
  detail::float_dot_rows(w, row, row + 1, x, y);
  return y[0];
}

/// y[r] = dot(w, r, x) for every row: a matrix-vector product on packed weights
/// (x has cols values, y has rows); rows are split across opt.threads.
template <class Format>
void gemv(packed_view<Format> w, const float* x, float* y, const cast_options& opt = {}) {
  detail::check_options(opt);
  detail::parallel_for(w.rows(), opt.threads, 64, [&](std::size_t r0, std::size_t r1) {
    detail::float_dot_rows(w, r0, r1, x, y + r0);
  });
}
template <class Format>
void gemv(const packed_tensor<Format>& w, const float* x, float* y, const cast_options& opt = {}) {
  gemv(w.view(), x, y, opt);
}

namespace detail {
template <class Format>
void check_mx_operands(packed_view<Format> w, packed_view<mx_activation_format> x, const char* what) {
  if (x.rows() != 1 || x.cols() != w.cols())
    fail<shape_error>(std::string(what) + ": activations of shape " + shape_string(x.rows(), x.cols()) +
                      " for weights of shape " + shape_string(w.rows(), w.cols()) + " (want 1 x " +
                      std::to_string(w.cols()) + ")");
}
}  // namespace detail

/// MX dot product (OCP MX section 6) of packed row `row` with MXINT8 activations prepared
/// once by mx_activations: exact integer block sums, FP32 accumulation in the fixed order of
/// kernels/mx_dot.hpp, the same bits on every instruction set.
template <class Format>
float dot(packed_view<Format> w, std::size_t row, const mx_activations<Format>& x) {
  if (row >= w.rows() || x.cols() != w.cols())
    detail::fail<shape_error>("dot: row " + std::to_string(row) + " of weights of shape " +
                              detail::shape_string(w.rows(), w.cols()) + " with " +
                              std::to_string(x.cols()) + " activations");
  float y = 0.0f;
  detail::mx_dot_rows(w, row, row + 1, x, &y);
  return y;
}

/// y[r] = MX dot product of weight row r with one row of MXINT8 activations (x: 1 x cols),
/// for every row; rows are split across opt.threads (the result does not depend on it).
template <class Format>
void gemv(packed_view<Format> w, packed_view<mx_activation_format> x, float* y, const cast_options& opt = {}) {
  detail::check_options(opt);
  detail::check_mx_operands(w, x, "gemv");
  const mx_activations<Format> prepared(x);
  detail::parallel_for(w.rows(), opt.threads, 64, [&](std::size_t r0, std::size_t r1) {
    detail::mx_dot_rows(w, r0, r1, prepared, y + r0);
  });
}

/// Y = X W^T for n rows of float activations X (n x cols, row-major) and packed weights W
/// (rows x cols): Y is n x rows. Each row of X is quantized to MXINT8 (round to nearest
/// even, E8M0 scale by the OCP floor rule) and multiplied as gemv does, so
/// Y[i] equals gemv(w, quantize<mxint8>(X[i]), ...) bit for bit. Weight rows are split
/// across opt.threads and visited in tiles, each tile against every row of X.
template <class Format>
void matmul(packed_view<Format> w, const float* X, std::size_t n, float* Y, const cast_options& opt = {}) {
  detail::check_options(opt);
  const std::size_t rows = w.rows(), cols = w.cols();
  detail::check_shape(n, cols, "matmul");
  std::vector<mx_activations<Format>> prepared;
  prepared.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    const packed_tensor<mx_activation_format> xq = quantize<mx_activation_format>(X + i * cols, 1, cols);
    prepared.emplace_back(xq.view());
  }
  constexpr std::size_t tile = 16;
  const std::size_t tiles = (rows + tile - 1) / tile;
  detail::parallel_for(tiles, opt.threads, 4, [&](std::size_t t0, std::size_t t1) {
    for (std::size_t t = t0; t < t1; ++t)
      for (std::size_t i = 0; i < n; ++i)
        detail::mx_dot_rows(w, t * tile, std::min(rows, (t + 1) * tile), prepared[i], Y + i * rows + t * tile);
  });
}
template <class Format>
void matmul(const packed_tensor<Format>& w, const float* X, std::size_t n, float* Y, const cast_options& opt = {}) {
  matmul(w.view(), X, n, Y, opt);
}

/// Widens n little-endian BF16 values (bytes at any alignment, as stored in a checkpoint) to
/// float, exactly.
inline void widen_bf16(const std::uint8_t* src, std::size_t n, float* out) {
#if BLOCKCAST_RUNTIME_DISPATCH && BLOCKCAST_DISPATCH_AVAILABLE
  return runtime::widen_bf16(src, n, out);
#endif
  portable::widen_bf16<simd::best_arch>(src, n, out);
}
/// Widens n little-endian IEEE binary16 values (any alignment) to float, exactly.
inline void widen_f16(const std::uint8_t* src, std::size_t n, float* out) {
#if BLOCKCAST_RUNTIME_DISPATCH && BLOCKCAST_DISPATCH_AVAILABLE
  return runtime::widen_f16(src, n, out);
#endif
  portable::widen_f16<simd::best_arch>(src, n, out);
}
/// sum w^2 and sum (w - q)^2 of n values (an SQNR's signal and noise), the same for every
/// alignment of w and q (kernels/convert.hpp).
inline error_sums squared_error_sums(const float* w, const float* q, std::size_t n) {
#if BLOCKCAST_RUNTIME_DISPATCH && BLOCKCAST_DISPATCH_AVAILABLE
  return runtime::squared_error_sums(w, q, n);
#endif
  return portable::squared_error_sums<simd::best_arch>(w, q, n);
}
/// The largest finite |value| of n stored floats (F32, F16 or BF16 bits, little-endian, any
/// alignment), from their bits; 0 when none is finite (Inf and NaN are skipped). NVFP4's tensor
/// amax in one pass over a checkpoint's bytes, nothing widened.
inline float max_finite_magnitude(const std::uint8_t* src, std::size_t n, stored_float type) {
#if BLOCKCAST_RUNTIME_DISPATCH && BLOCKCAST_DISPATCH_AVAILABLE
  return runtime::max_finite_magnitude(src, n, type);
#endif
  return portable::max_finite_magnitude<simd::best_arch>(src, n, type);
}

}  // namespace blockcast
