// SPDX-License-Identifier: MIT
// One weight tensor through the quantizer in slices of rows: read from the mapped input
// (widened from BF16/F16 to float slice by slice), quantized (RTN, ED or GPTQ: rows are
// independent in all three once the tensor-wide context is fixed), its codes appended to the
// output as they come, its report (weight and output SQNR) accumulated from the same slices.
// Peak memory is a few slices plus the tensor's scale bytes (1/16 or 1/32 of a byte per value),
// not a copy of the tensor; the output is the same bytes whatever the slice size.
#pragma once

#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "blockcast/blockcast.hpp"
#include "blockcast/io/quantized_tensors.hpp"
#include "blockcast/io/safetensors.hpp"
#include "blockcast/ptq.hpp"

namespace blockcast::cli::detail {

/// Values per slice: large enough that per-slice set-up (ED's diffusion weights, O(K r^2))
/// is small against the pass, small enough to stay a fixed amount of memory.
inline constexpr std::size_t slice_values = std::size_t{1} << 22;

/// Rows [r0, r1) of a float tensor (F32/F16/BF16) as contiguous floats: the mapped bytes
/// themselves when they are aligned F32, else widened into `buffer` (rows split over threads).
inline const float* float_rows(const io::safetensors_file& in, const io::tensor_info& t, std::size_t cols, std::size_t r0,
                               std::size_t r1, std::vector<float>& buffer, unsigned threads) {
  const std::size_t n = (r1 - r0) * cols, element = io::size_of(t.type);
  const std::uint8_t* src = in.bytes(t).data() + r0 * cols * element;
  if (t.type == io::dtype::f32 && reinterpret_cast<std::uintptr_t>(src) % alignof(float) == 0)
    return reinterpret_cast<const float*>(src);
  buffer.resize(n);
  float* out = buffer.data();
  blockcast::detail::parallel_for(n, threads, std::size_t{1} << 16, [&](std::size_t b, std::size_t e) {
    if (t.type == io::dtype::f32) {
      std::memcpy(out + b, src + 4 * b, (e - b) * 4);
    } else if (t.type == io::dtype::bf16) {  // a BF16 is the top half of an FP32
      std::size_t i = b;
      for (; i + 16 <= e; i += 16) {  // fixed-size groups: the compiler vectorizes them
        std::uint16_t h[16];
        std::uint32_t bits[16];
        std::memcpy(h, src + 2 * i, sizeof h);
        for (int k = 0; k < 16; ++k) bits[k] = static_cast<std::uint32_t>(h[k]) << 16;
        std::memcpy(out + i, bits, sizeof bits);
      }
      for (; i < e; ++i) {
        std::uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        const std::uint32_t bits = static_cast<std::uint32_t>(h) << 16;
        std::memcpy(out + i, &bits, 4);
      }
    } else {
      for (std::size_t i = b; i < e; ++i) {
        std::uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        out[i] = io::detail::half_to_float(h);
      }
    }
  });
  return out;
}

/// Drops the mapped pages of rows [r0, r1) once read, so resident memory stays a few slices.
inline void release_rows(const io::safetensors_file& in, const io::tensor_info& t, std::size_t cols, std::size_t r0, std::size_t r1) {
  const std::uint64_t row_bytes = cols * io::size_of(t.type);
  in.release_pages(t, r0 * row_bytes, r1 * row_bytes);
}

/// Signal and noise sums for an SQNR over many slices: per row in float (Eigen vectorizes
/// the reduction), rows added in double in row order, so the sum is the same for every
/// thread count.
struct sqnr_sums {
  double signal = 0, noise = 0;
  void add(const Eigen::Ref<const ptq::matrix>& w, const Eigen::Ref<const ptq::matrix>& q, unsigned threads) {
    std::vector<double> s(static_cast<std::size_t>(w.rows())), e(s.size());
    blockcast::detail::parallel_for(s.size(), threads, 64, [&](std::size_t b, std::size_t end) {
      for (std::size_t i = b; i < end; ++i) {
        const auto r = static_cast<Eigen::Index>(i);
        s[i] = w.row(r).squaredNorm();
        e[i] = (w.row(r) - q.row(r)).squaredNorm();
      }
    });
    for (std::size_t i = 0; i < s.size(); ++i) signal += s[i], noise += e[i];
  }
  double db() const { return ptq::sqnr_db(signal, noise); }
};

/// How a tensor is quantized: the method and what it was calibrated with.
struct method_plan {
  std::string method;          // "rtn", "ed", "gptq"
  const ptq::matrix* inputs = nullptr;  // calibration inputs (N x K), ed and gptq
  ptq::ed_model ed;            // ed: the model of H
  Eigen::MatrixXf gptq_factor; // gptq: the inverse-Hessian factor
};

inline method_plan plan_method(const std::string& method, const ptq::matrix* inputs, unsigned threads) {
  method_plan plan{method, inputs, {}, {}};
  if (method == "ed") plan.ed = ptq::input_stats::from(*inputs, ptq::input_stats::default_sketch, 0, threads).model();
  if (method == "gptq") plan.gptq_factor = ptq::gptq_inverse_factor(*inputs, ptq::gptq_options{}.damp, threads);
  return plan;
}

/// What the pipeline measured of one tensor.
struct tensor_result {
  double weight_sqnr_db = NAN, output_sqnr_db = NAN;
};

/// Quantizes tensor `t` of `in` (rows = shape[0]) to Format and writes its declared entries
/// `names` to `out`.
template <class Format>
tensor_result quantize_tensor(const io::safetensors_file& in, const io::tensor_info& t, const io::quantized_names& names,
                              const method_plan& plan, unsigned threads, io::safetensors_stream_writer& out) {
  const auto [rows, cols] = io::detail::matrix_dims(t.name, t.shape);
  const std::size_t slice_rows = std::max<std::size_t>(1, slice_values / std::max<std::size_t>(cols, 1));
  std::vector<float> buffer;
  cast_options opt;
  opt.threads = threads;
  if constexpr (Format::has_tensor_scale) {  // the tensor-wide amax: one pass over the mapped input
    float amax = 0.0f;
    for (std::size_t r0 = 0; r0 < rows; r0 += slice_rows) {
      const std::size_t r1 = std::min(rows, r0 + slice_rows);
      amax = std::max(amax, reference::finite_amax(float_rows(in, t, cols, r0, r1, buffer, threads), (r1 - r0) * cols));
      release_rows(in, t, cols, r0, r1);
    }
    opt.tensor_amax = amax;
  }
  std::vector<std::uint8_t> scales;
  scales.reserve(rows * blocks_per_row<Format>(cols));
  float tensor_scale = 1.0f;
  sqnr_sums weight, output;
  ptq::matrix dequantized;
  for (std::size_t r0 = 0; r0 < rows; r0 += slice_rows) {
    const std::size_t r1 = std::min(rows, r0 + slice_rows), n = r1 - r0;
    const Eigen::Map<const ptq::matrix> w(float_rows(in, t, cols, r0, r1, buffer, threads), static_cast<Eigen::Index>(n),
                                          static_cast<Eigen::Index>(cols));
    packed_tensor<Format> packed;
    if (plan.method == "rtn") {
      packed = quantize<Format>(w.data(), n, cols, opt);
      dequantized.resize(w.rows(), w.cols());
      dequantize(packed, dequantized.data(), opt);
    } else {
      ptq::quantized_matrix<Format> q;
      if (plan.method == "ed") {
        ptq::ed_options ed;
        ed.cast = opt;
        q = ptq::error_diffusion<Format>(w, plan.ed, ed);
      } else {
        ptq::gptq_options gptq;
        gptq.cast = opt;
        q = ptq::gptq_with_factor<Format>(w, plan.gptq_factor, gptq);
      }
      packed = std::move(q.packed);
      dequantized = std::move(q.dequantized);
    }
    out.append(names.codes, packed.codes());
    scales.insert(scales.end(), packed.scales().begin(), packed.scales().end());
    tensor_scale = packed.tensor_scale();
    weight.add(w, dequantized, threads);
    if (plan.inputs) {  // the layer's output on the calibration inputs, these rows of it
      const ptq::matrix y = w * plan.inputs->transpose(), e = (w - dequantized) * plan.inputs->transpose();
      output.signal += y.cast<double>().squaredNorm();
      output.noise += e.cast<double>().squaredNorm();
    }
    release_rows(in, t, cols, r0, r1);
  }
  out.append(names.scales, span<const std::uint8_t>(scales.data(), scales.size()));
  if constexpr (Format::has_tensor_scale)
    out.append(names.tensor_scale, span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(&tensor_scale), 4));
  return {weight.db(), plan.inputs ? output.db() : NAN};
}

}  // namespace blockcast::cli::detail
