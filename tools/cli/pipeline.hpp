// SPDX-License-Identifier: MIT
// One weight tensor through the quantizer in slices of rows: read from the input with pread
// (widened from BF16/F16 to float chunk by chunk), quantized (RTN, ED or GPTQ: rows are
// independent in all three once the tensor-wide context is fixed), its codes appended to the
// output as they come, its report (weight and output SQNR) accumulated from the same slices.
// Peak memory is a few slices plus the tensor's scale bytes (1/16 or 1/32 of a byte per value),
// not a copy of the tensor; the output is the same bytes whatever the slice size.
#pragma once

#include <Eigen/Dense>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <future>
#include <string>
#include <vector>

#include "blockcast/blockcast.hpp"
#include "blockcast/io/hf_layouts.hpp"
#include "blockcast/io/quantized_tensors.hpp"
#include "blockcast/io/safetensors.hpp"
#include "blockcast/ptq.hpp"
#include "options.hpp"

namespace blockcast::cli::detail {

/// How a tensor is cut: slices of rows are the unit of writing (and of ED/GPTQ work), chunks
/// of rows the unit of RTN work inside a slice. The output does not depend on either; the
/// tests run with tiny ones.
struct pipeline_sizes {
  /// Values per slice: large enough that per-slice set-up (ED's diffusion weights, O(K r^2))
  /// is small against the pass, small enough to stay a fixed amount of memory.
  std::size_t slice_values = std::size_t{1} << 22;
  /// Values per chunk: a chunk's floats and their dequantized copy (512 KB) stay in a core's
  /// L2 cache between reading, quantizing and measuring, and each read is large enough that
  /// the system call costs little against the copy (2^14 values a read: pread itself copied
  /// BF16 at 9 GB/s here, 16 GB/s at 2^16).
  std::size_t chunk_values = std::size_t{1} << 16;
  /// Values per read of NVFP4's amax pass, which keeps nothing: large reads, fewer system
  /// calls (2^17 BF16 values: the pass took 0.19 s instead of 0.23-0.31 s on 2.4 GB).
  std::size_t amax_values = std::size_t{1} << 17;
};

/// A float tensor to read, wherever it is stored (a safetensors or GGUF file): its name,
/// stored type (F32, F16 or BF16) and a pread of `size` bytes at `offset` within its data.
struct tensor_source {
  std::string name;
  io::dtype type = io::dtype::f32;
  std::function<void(std::uint64_t offset, std::size_t size, void* out)> read;
};

inline tensor_source source_of(const io::safetensors_file& in, const io::tensor_info& t) {
  return {t.name, t.type, [&in, &t](std::uint64_t offset, std::size_t size, void* out) { in.read(t, offset, size, out); }};
}

/// Where a quantized tensor goes, in whatever layout: `rows` receives each slice of rows
/// (their codes and block scales, blockcast's packing) in row order; `finish` all the block
/// scales and the decode scale (1 for one-level formats) at the end.
struct tensor_sink {
  std::function<void(std::size_t r0, std::size_t n, const std::uint8_t* codes, const std::uint8_t* scales)> rows;
  std::function<void(span<const std::uint8_t> scales, float tensor_scale)> finish;
};

/// Widens n F32/F16/BF16 values at `src` (any alignment) to floats.
inline void widen(const std::uint8_t* src, io::dtype type, std::size_t n, float* out) {
  if (type == io::dtype::f32) std::memcpy(out, src, n * 4);
  else if (type == io::dtype::bf16) blockcast::widen_bf16(src, n, out);
  else blockcast::widen_f16(src, n, out);
}

/// Reads rows [r0, r1) of a float tensor (F32/F16/BF16, rows of `cols` values) into `out` as
/// floats; `raw` holds the stored bytes on the way. pread, not the mapping (see
/// safetensors_file::read).
inline void read_floats(const tensor_source& t, std::size_t cols, std::size_t r0, std::size_t r1, float* out,
                        blockcast::detail::tensor_vector<std::uint8_t>& raw) {
  const std::size_t n = (r1 - r0) * cols, element = io::size_of(t.type);
  if (t.type == io::dtype::f32) return t.read(r0 * cols * element, n * element, out);
  raw.resize(n * element);
  t.read(r0 * cols * element, n * element, raw.data());
  widen(raw.data(), t.type, n, out);
}

/// Rows [r0, r1) as contiguous floats in `buffer`, read and widened in pieces split over threads.
inline const float* float_rows(const tensor_source& t, std::size_t cols, std::size_t r0, std::size_t r1,
                               blockcast::detail::tensor_vector<float>& buffer, unsigned threads) {
  buffer.resize((r1 - r0) * cols);
  blockcast::detail::parallel_for(r1 - r0, threads, 1, [&](std::size_t b, std::size_t e) {
    blockcast::detail::tensor_vector<std::uint8_t> raw;
    read_floats(t, cols, r0 + b, r0 + e, buffer.data() + b * cols, raw);
  });
  return buffer.data();
}

/// The kernels' name for a stored float type (F32, F16 or BF16).
inline stored_float stored_float_of(io::dtype type) {
  return type == io::dtype::f32 ? stored_float::f32 : type == io::dtype::bf16 ? stored_float::bf16 : stored_float::f16;
}

/// Signal and noise sums for an SQNR over many slices: per row (squared_error_sums, the same
/// whatever the row's alignment), rows added in row order, so the sum is the same for every
/// slice size and thread count.
struct sqnr_sums {
  double signal = 0, noise = 0;
  std::vector<double> row_signal, row_noise;  // of the current slice
  void start(std::size_t rows) { row_signal.assign(rows, 0.0), row_noise.assign(rows, 0.0); }
  void finish() {
    for (std::size_t i = 0; i < row_signal.size(); ++i) signal += row_signal[i], noise += row_noise[i];
  }
  void add(const Eigen::Ref<const ptq::matrix>& w, const Eigen::Ref<const ptq::matrix>& q, unsigned threads) {
    start(static_cast<std::size_t>(w.rows()));
    const std::size_t cols = static_cast<std::size_t>(w.cols());
    blockcast::detail::parallel_for(row_signal.size(), threads, 64, [&](std::size_t b, std::size_t end) {
      for (std::size_t i = b; i < end; ++i) {
        const auto r = static_cast<Eigen::Index>(i);
        const error_sums e = squared_error_sums(w.data() + r * w.outerStride(), q.data() + r * q.outerStride(), cols);
        row_signal[i] = e.signal, row_noise[i] = e.noise;
      }
    });
    finish();
  }
  double db() const { return ptq::sqnr_db(signal, noise); }
};

/// A thread's buffers for rtn_rows: a chunk's floats, their dequantized values, its stored bytes.
struct rtn_scratch {
  blockcast::detail::tensor_vector<float> w, q;
  blockcast::detail::tensor_vector<std::uint8_t> raw;
};

/// RTN of rows [r0, r1) of tensor t into `codes` and `scales` (those rows' bytes), in chunks
/// of rows split over threads: each chunk is widened, quantized, dequantized and measured
/// while it is in the cache. Every row's bytes and sums depend only on the row (and on the
/// tensor amax in opt), not on the chunk or thread. `scratch`: one per thread, kept from call
/// to call (made afresh each slice, they were page faults and heap trimming each time).
template <class Format>
void rtn_rows(const tensor_source& t, std::size_t cols, std::size_t r0, std::size_t r1, const cast_options& opt, std::size_t chunk_values,
              std::uint8_t* codes, std::uint8_t* scales, sqnr_sums& sums, std::vector<rtn_scratch>& scratch) {
  const std::size_t chunk_rows = std::max<std::size_t>(1, chunk_values / std::max<std::size_t>(cols, 1));
  const std::size_t code_row = row_code_bytes<Format>(cols), scale_row = blocks_per_row<Format>(cols);
  sums.start(r1 - r0);
  // threads take whole chunks as they finish one: a chunk's bytes do not depend on who took it
  const std::size_t chunks = (r1 - r0 + chunk_rows - 1) / chunk_rows;
  cast_options one = opt;
  one.threads = 1;
  scratch.resize(std::max<std::size_t>(scratch.size(), std::max(1u, opt.threads)));
  std::atomic<std::size_t> handed{0};  // each thread takes a scratch of its own
  blockcast::detail::parallel_claim(
      chunks, opt.threads,
      [&] {
        rtn_scratch& s = scratch[handed++];
        s.w.resize(std::max(s.w.size(), chunk_rows * cols));
        s.q.resize(std::max(s.q.size(), chunk_rows * cols));
        return std::ref(s);
      },
      [&](std::reference_wrapper<rtn_scratch> mine, std::size_t c) {
        rtn_scratch& s = mine.get();
        const std::size_t a = c * chunk_rows, n = std::min(r1 - r0, a + chunk_rows) - a;
        read_floats(t, cols, r0 + a, r0 + a + n, s.w.data(), s.raw);
        const mutable_packed_view<Format> view(n, cols, span<std::uint8_t>(codes + a * code_row, n * code_row),
                                               span<std::uint8_t>(scales + a * scale_row, n * scale_row));
        const float tensor_scale = quantize_into<Format>(s.w.data(), n, cols, view, one);
        dequantize(packed_view<Format>(n, cols, view.codes(), view.scales(), tensor_scale), s.q.data(), one);
        for (std::size_t i = 0; i < n; ++i) {
          const error_sums e = squared_error_sums(&s.w[i * cols], &s.q[i * cols], cols);
          sums.row_signal[a + i] = e.signal, sums.row_noise[a + i] = e.noise;
        }
      });
  sums.finish();
}

/// How a tensor is quantized: the method and what it was calibrated with.
struct method_plan {
  cli::method method = method::rtn;
  const ptq::matrix* inputs = nullptr;  // calibration inputs (N x K), ed and gptq
  ptq::ed_model ed;            // ed: the model of H
  Eigen::MatrixXf gptq_factor; // gptq: the inverse-Hessian factor
};

inline method_plan plan_method(cli::method method, const ptq::matrix* inputs, unsigned threads) {
  method_plan plan{method, inputs, {}, {}};
  if (method == method::ed) plan.ed = ptq::input_stats::from(*inputs, ptq::input_stats::auto_sketch, 0, threads).model();
  if (method == method::gptq) plan.gptq_factor = ptq::gptq_inverse_factor(*inputs, ptq::gptq_options{}.damp, threads);
  return plan;
}

/// What the pipeline measured of one tensor.
struct tensor_result {
  double weight_sqnr_db = NAN, output_sqnr_db = NAN;
};

/// Buffers kept from tensor to tensor: allocating them per slice would fault in fresh pages
/// every time. Like all of the pipeline's working buffers they are tensor_vectors, which grow
/// without zeroing: every byte is written before it is read, and zeroing the grown part of
/// plain vectors, with its fresh pages' faults, took 3% of an MXFP8 conversion.
struct pipeline_buffers {
  blockcast::detail::tensor_vector<float> widened;
  blockcast::detail::tensor_vector<std::uint8_t> codes[2], scales;  // codes: one slice computed while the other is written
  std::vector<rtn_scratch> rtn;                  // rtn_rows' per thread
};

/// The largest finite |value| of a float tensor of n values (NVFP4's tensor amax): one pass
/// over the stored bits, a chunk at a time, threads taking chunks as they finish one; nothing
/// kept. The max does not depend on which thread saw which chunk.
inline float tensor_amax(const tensor_source& t, std::size_t n, unsigned threads, const pipeline_sizes& sizes) {
  const std::size_t chunk_values = std::max<std::size_t>(1, sizes.amax_values), element = io::size_of(t.type);
  const std::size_t chunks = (n + chunk_values - 1) / chunk_values;
  std::vector<float> amax(chunks, 0.0f);
  blockcast::detail::parallel_claim(
      chunks, threads, [&] { return blockcast::detail::tensor_vector<std::uint8_t>(chunk_values * element); },
      [&](blockcast::detail::tensor_vector<std::uint8_t>& raw, std::size_t c) {
        const std::size_t b = c * chunk_values, m = std::min(n, b + chunk_values) - b;
        t.read(b * element, m * element, raw.data());
        amax[c] = max_finite_magnitude(raw.data(), m, stored_float_of(t.type));
      });
  return amax.empty() ? 0.0f : *std::max_element(amax.begin(), amax.end());
}

/// The decode scale a two-level format gets for a tensor of this amax (1 for MX formats).
template <class Format>
float decode_scale_for(float amax) {
  if constexpr (Format::has_tensor_scale) return blockcast::detail::two_level_tensor_scales<Format>(amax).decode;
  else return (void)amax, 1.0f;
}

/// Quantizes float tensor `t` (rows x cols) to Format and hands its slices to `sink`.
/// `amax`: the tensor's finite amax (tensor_amax), for two-level formats.
template <class Format>
tensor_result quantize_tensor(const tensor_source& t, std::size_t rows, std::size_t cols, float amax, const method_plan& plan,
                              unsigned threads, const pipeline_sizes& sizes, const tensor_sink& sink, pipeline_buffers& buffers) {
  const std::size_t slice_rows = std::max<std::size_t>(1, sizes.slice_values / std::max<std::size_t>(cols, 1));
  const std::size_t chunk_values = std::max<std::size_t>(1, sizes.chunk_values);
  const std::size_t code_row = row_code_bytes<Format>(cols), scale_row = blocks_per_row<Format>(cols);
  cast_options opt;
  opt.threads = threads;
  if constexpr (Format::has_tensor_scale) opt.tensor_amax = amax;
  // grown only: kept at the largest tensor's size from tensor to tensor
  buffers.scales.resize(std::max(buffers.scales.size(), rows * scale_row));
  float tensor_scale = decode_scale_for<Format>(amax);
  sqnr_sums weight, output;
  // RTN hands a slice to the sink on another thread while it computes the next slice; on an
  // exception, destroying `writing` waits for that write (the buffers outlive it)
  std::future<void> writing;
  for (std::size_t r0 = 0; r0 < rows; r0 += slice_rows) {
    const std::size_t r1 = std::min(rows, r0 + slice_rows), n = r1 - r0;
    std::uint8_t* scales = buffers.scales.data() + r0 * scale_row;
    if (plan.method == method::rtn) {
      blockcast::detail::tensor_vector<std::uint8_t>& codes = buffers.codes[(r0 / slice_rows) % 2];
      codes.resize(std::max(codes.size(), slice_rows * code_row));
      rtn_rows<Format>(t, cols, r0, r1, opt, chunk_values, codes.data(), scales, weight, buffers.rtn);
      if (writing.valid()) writing.get();
      writing = std::async(std::launch::async, [&sink, &codes, r0, n, scales] { sink.rows(r0, n, codes.data(), scales); });
    } else {
      const Eigen::Map<const ptq::matrix> w(float_rows(t, cols, r0, r1, buffers.widened, threads), static_cast<Eigen::Index>(n),
                                            static_cast<Eigen::Index>(cols));
      ptq::quantized_matrix<Format> q;
      if (plan.method == method::ed) {
        ptq::ed_options ed;
        ed.cast = opt;
        q = ptq::error_diffusion<Format>(w, plan.ed, ed);
      } else {
        ptq::gptq_options gptq;
        gptq.cast = opt;
        q = ptq::gptq_with_factor<Format>(w, plan.gptq_factor, gptq);
      }
      std::copy(q.packed.scales().begin(), q.packed.scales().end(), scales);
      sink.rows(r0, n, q.packed.codes().data(), scales);
      tensor_scale = q.packed.tensor_scale();
      weight.add(w, q.dequantized, threads);
      if (plan.inputs) {  // the layer's output on the calibration inputs, these rows of it
        const ptq::matrix y = w * plan.inputs->transpose(), e = (w - q.dequantized) * plan.inputs->transpose();
        output.signal += y.cast<double>().squaredNorm();
        output.noise += e.cast<double>().squaredNorm();
      }
    }
  }
  if (writing.valid()) writing.get();
  sink.finish(span<const std::uint8_t>(buffers.scales.data(), rows * scale_row), tensor_scale);
  return {weight.db(), plan.inputs ? output.db() : NAN};
}

/// The sink that stores a tensor in blockcast's own layout or a safetensors engine layout
/// (compressed-tensors, ModelOpt) through the entries `entries` declared on `out` (codes,
/// scales, tensor scale: io::quantized_entries or io::engine_layout_entries).
template <class Format>
tensor_sink safetensors_sink(io::safetensors_stream_writer& out, io::layout l, std::vector<io::stored_entry> entries, std::size_t cols,
                             std::string weight) {
  const std::size_t code_row = row_code_bytes<Format>(cols);
  tensor_sink s;
  s.rows = [&out, codes = entries[0].name, code_row](std::size_t, std::size_t n, const std::uint8_t* c, const std::uint8_t*) {
    out.append(codes, span<const std::uint8_t>(c, n * code_row));
  };
  s.finish = [&out, l, entries = std::move(entries), weight = std::move(weight)](span<const std::uint8_t> scales, float decode) {
    io::check_engine_scales<Format>(l, scales, weight);
    out.append(entries[1].name, scales);
    if constexpr (Format::has_tensor_scale) {
      const float stored = io::stored_tensor_scale(l, decode, weight);
      out.append(entries[2].name, span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(&stored), 4));
    }
  };
  return s;
}

}  // namespace blockcast::cli::detail
