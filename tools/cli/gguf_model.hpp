// SPDX-License-Identifier: MIT
// GGUF in, GGUF out (llama.cpp): `blockcast quantize model-f16.gguf -o model-mxfp4.gguf`.
// Every metadata entry is kept; general.file_type and general.quantization_version are set as
// llama-quantize sets them. F32/F16/BF16 weights ("<x>.weight", 2 or more dimensions, rows
// of whole ggml blocks) are quantized to ggml's MXFP4 or NVFP4 blocks (io/ggml_blocks.hpp);
// what llama-quantize leaves alone (1-D tensors, norms, token embeddings, the output head,
// MoE routers: io::kept_by_default) stays as it was, byte for byte. An NVFP4 weight's decode
// scale goes in llama.cpp's F32 "<x>.scale" tensor right after it (left out when it is 1).
// Streaming: a tensor at a time, in slices (pipeline.hpp).
#pragma once

#include <sys/stat.h>

#include <chrono>
#include <cmath>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "blockcast/io/ggml_blocks.hpp"
#include "blockcast/io/gguf.hpp"
#include "blockcast/io/model_directory.hpp"
#include "blockcast/io/model_files.hpp"
#include "blockcast/io/output_set.hpp"
#include "pipeline.hpp"
#include "run.hpp"

namespace blockcast::cli::detail {

inline bool ggml_float(std::uint32_t type) { return type == io::ggml_f32 || type == io::ggml_f16 || type == io::ggml_bf16; }
inline io::dtype dtype_of_ggml(std::uint32_t type) {
  return type == io::ggml_f16 ? io::dtype::f16 : type == io::ggml_bf16 ? io::dtype::bf16 : io::dtype::f32;
}
inline std::string ggml_type_name(std::uint32_t type) {
  const io::ggml_type_info* info = io::find_ggml_type(type);
  return info ? info->name : "type " + std::to_string(type);
}
// A GGUF tensor's shape as rows x cols (cols = dims[0], the contiguous one), printed outermost first.
inline std::string gguf_shape_text(const io::gguf_tensor& t) {
  std::vector<std::uint64_t> shape(t.dims.rbegin(), t.dims.rend());
  return shape_text(shape);
}

inline tensor_source source_of(const io::gguf_file& in, const io::gguf_tensor& t) {
  return {t.name, dtype_of_ggml(t.type), [&in, &t](std::uint64_t offset, std::size_t size, void* out) { in.read(t, offset, size, out); }};
}


template <class Format>
void quantize_gguf_file(const io::gguf_file& in, const std::string& staged, const std::string& label, const quantize_request& req,
                        const calibration_file* calib, std::vector<tensor_report>& reports, const progress_fn& progress) {
  const name_rules rules(req, io::layout::gguf);
  struct plan {
    bool quantize = false, scale_tensor = false;
    std::string kept;
    std::size_t rows = 0, cols = 0;
    float amax = 0;
  };
  std::vector<plan> plans(in.tensors().size());
  const pipeline_sizes& sizes = req.sizes;
  for (std::size_t i = 0; i < in.tensors().size(); ++i) {
    const auto& t = in.tensors()[i];
    plan& p = plans[i];
    if (ggml_float(t.type) && t.dims.size() >= 2 && t.elements() > 0) {
      const tensor_choice c = rules.choose(t.name, in.path());
      p.quantize = c.quantize;
      p.kept = c.kept;
    }
    if (p.quantize && p.kept.empty() && t.dims[0] % io::ggml_block_values<Format>() != 0)
      p.kept = "rows of " + std::to_string(t.dims[0]) + " values are not whole " + std::to_string(io::ggml_block_values<Format>()) +
               "-value ggml blocks";
    if (p.quantize && p.kept.empty() && Format::has_tensor_scale && io::ggml_scale_tensor_name(t.name).empty())
      p.kept = "llama.cpp keeps an NVFP4 scale only for '<x>.weight' tensors";
    if (!p.kept.empty()) p.quantize = false;
    if (!p.quantize) continue;
    p.cols = static_cast<std::size_t>(t.dims[0]);
    p.rows = static_cast<std::size_t>(t.elements() / t.dims[0]);
    if constexpr (Format::has_tensor_scale) {
      const std::string scale = io::ggml_scale_tensor_name(t.name);
      if (in.contains(scale)) throw io::file_error(in.path(), "tensor " + io::in_quotes(scale) + " exists already: it is where " + io::in_quotes(t.name) + "'s NVFP4 scale goes");
      p.amax = tensor_amax(source_of(in, t), p.rows * p.cols, req.threads, sizes);
      p.scale_tensor = decode_scale_for<Format>(p.amax) != 1.0f;
    }
  }
  io::gguf_stream_writer out(staged, label);
  for (const auto& [key, value] : in.metadata()) out.set_metadata(key, value);
  out.set_metadata("general.quantization_version", io::gguf_value::u32(io::ggml_quantization_version));
  out.set_metadata("general.file_type", io::gguf_value::u32(io::llama_file_type_of<Format>()));
  for (std::size_t i = 0; i < in.tensors().size(); ++i) {
    const auto& t = in.tensors()[i];
    out.declare(t.name, t.dims, plans[i].quantize ? io::ggml_type_of<Format>() : t.type);
    if (plans[i].scale_tensor) out.declare(io::ggml_scale_tensor_name(t.name), {1}, io::ggml_f32);
  }
  pipeline_buffers buffers;
  std::vector<std::uint8_t> blocks;
  std::size_t done = 0;
  std::uint64_t values_done = 0;
  for (std::size_t i = 0; i < in.tensors().size(); ++i) {
    const auto& t = in.tensors()[i];
    const plan& p = plans[i];
    if (progress) progress(io::printable(t.name), done, in.tensors().size(), values_done);
    tensor_report r{io::printable(t.name), gguf_shape_text(t), "copied (" + ggml_type_name(t.type) + ")", t.name, p.kept, p.quantize, false,
                    static_cast<std::size_t>(t.elements())};
    const auto start = std::chrono::steady_clock::now();
    if (!p.quantize) {
      out.write(t.name, in.bytes(t));
    } else {
      ptq::matrix x;
      const method_plan m = calibrated_plan(req.method, calib, t.name, p.cols, req.threads, x);
      io::layout_report changed;
      tensor_sink sink;
      sink.rows = [&](std::size_t, std::size_t n, const std::uint8_t* codes, const std::uint8_t* scales) {
        blocks.resize(n * io::ggml_row_bytes<Format>(p.cols));
        io::to_ggml_rows<Format>(codes, scales, n, p.cols, blocks.data(), changed, t.name);
        out.append(t.name, span<const std::uint8_t>(blocks.data(), blocks.size()));
      };
      sink.finish = [&](span<const std::uint8_t>, float decode) {
        if (p.scale_tensor)
          out.write(io::ggml_scale_tensor_name(t.name), span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(&decode), 4));
      };
      const tensor_result q = quantize_tensor<Format>(source_of(in, t), p.rows, p.cols, p.amax, m, req.threads, sizes, sink, buffers);
      r.stored = req.format + " " + std::string(name_of(req.method));
      r.calibrated = m.inputs != nullptr;
      r.weight_sqnr_db = q.weight_sqnr_db;
      r.output_sqnr_db = q.output_sqnr_db;
      if (changed.negative_zeros)
        r.note = std::to_string(changed.negative_zeros) + " -0 codes stored as +0 (ggml decodes -0 as +0)";
    }
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    values_done += r.values;
    ++done;
    reports.push_back(std::move(r));
  }
  in.check_unchanged();
  if (calib) calib->check_unchanged();
  out.commit();
}

// A GGUF model quantized into GGUF file req.output.
inline std::vector<tensor_report> quantize_gguf(const quantize_request& req, const progress_fn& progress) {
  if (!req.part.empty()) throw invalid_argument("--part splits a sharded safetensors model, not a GGUF file");
  if (!io::is_gguf_path(req.output)) throw io::file_error(req.output, "a GGUF model's output is a .gguf file");
  const io::gguf_file in(req.input);
  std::unique_ptr<calibration_file> calib;
  if (!req.calibration.empty()) calib = calibration_file::open(req.calibration);
  refuse_overwrite(req.output, req.output, identify_inputs(calib ? std::vector<std::string>{req.input, req.calibration} : std::vector<std::string>{req.input}),
                   req.input);
  std::vector<tensor_report> reports;
  io::output_set set(io::directory_of(req.output), io::file_name_of(req.output), req.output);
  const std::string staged = set.stage(io::file_name_of(req.output));
  visit_format(req.format, [&](auto tag) {
    using F = typename decltype(tag)::type;
    if constexpr (io::ggml_type_of<F>() != 0) quantize_gguf_file<F>(in, staged, req.output, req, calib.get(), reports, progress);
  });
  set.commit();
  if (progress) progress("", reports.size(), reports.size(), 0);
  return reports;
}

// The decode scale of NVFP4 weight `t` of `in`: its "<x>.scale" tensor (one finite F32 > 0),
// or 1 when there is none.
inline float gguf_tensor_scale(const io::gguf_file& in, const io::gguf_tensor& t) {
  const std::string name = io::ggml_scale_tensor_name(t.name);
  if (t.type != io::ggml_type_of<nvfp4>() || name.empty() || !in.contains(name)) return 1.0f;
  const auto& s = in.find(name);
  float v = 0;
  if (s.type != io::ggml_f32 || s.elements() != 1) throw io::file_error(in.path(), "tensor " + io::in_quotes(name) + " must be one F32 value (an NVFP4 scale)");
  in.read(s, 0, 4, &v);
  if (!(std::isfinite(v) && v > 0)) throw io::file_error(in.path(), "tensor " + io::in_quotes(name) + " holds " + std::to_string(v) + ", not a finite scale > 0");
  return v;
}

// The GGUF tensors that are NVFP4 scales of another tensor.
inline std::set<std::string> gguf_scale_tensors(const io::gguf_file& in) {
  std::set<std::string> out;
  for (const auto& t : in.tensors())
    if (t.type == io::ggml_type_of<nvfp4>() && !io::ggml_scale_tensor_name(t.name).empty() && in.contains(io::ggml_scale_tensor_name(t.name)))
      out.insert(io::ggml_scale_tensor_name(t.name));
  return out;
}

// Reads ggml MXFP4/NVFP4 tensor `t` as packed Format (its decode scale set).
template <class Format>
packed_tensor<Format> read_gguf_weight(const io::gguf_file& in, const io::gguf_tensor& t) {
  const std::size_t cols = static_cast<std::size_t>(t.dims[0]), rows = static_cast<std::size_t>(t.elements() / t.dims[0]);
  packed_tensor<Format> p(rows, cols);
  const auto bytes = in.bytes(t);
  try {
    io::from_ggml_rows<Format>(bytes.data(), rows, cols, p.codes().data(), p.scales().data(), t.name);
  } catch (const io::layout_error& e) {
    throw io::file_error(in.path(), e.what());
  }
  p.set_tensor_scale(gguf_tensor_scale(in, t));
  return p;
}

// A GGUF file with its MXFP4 and NVFP4 tensors decoded to F32 or BF16 (their scale tensors
// folded in); other tensors, and other quantized types, as they were.
inline void dequantize_gguf(const dequantize_request& req) {
  if (!io::is_gguf_path(req.output)) throw io::file_error(req.output, "a GGUF model's output is a .gguf file");
  const io::gguf_file in(req.input);
  refuse_overwrite(req.output, req.output, identify_inputs({req.input}), req.input);
  const std::set<std::string> scales = gguf_scale_tensors(in);
  const std::uint32_t type = req.dtype == out_dtype::bf16 ? io::ggml_bf16 : io::ggml_f32;
  io::output_set set(io::directory_of(req.output), io::file_name_of(req.output), req.output);
  io::gguf_stream_writer out(set.stage(io::file_name_of(req.output)), req.output);
  for (const auto& [key, value] : in.metadata()) out.set_metadata(key, value);
  out.set_metadata("general.file_type", io::gguf_value::u32(req.dtype == out_dtype::bf16 ? io::llama_file_type_bf16 : io::llama_file_type_f32));
  auto decoded = [](const io::gguf_tensor& t) { return t.type == io::ggml_type_of<mxfp4>() || t.type == io::ggml_type_of<nvfp4>(); };
  for (const auto& t : in.tensors())
    if (!scales.count(t.name)) out.declare(t.name, t.dims, decoded(t) ? type : t.type);
  for (const auto& t : in.tensors()) {
    if (scales.count(t.name)) continue;
    if (!decoded(t)) {
      out.write(t.name, in.bytes(t));
      continue;
    }
    const auto decoded = t.type == io::ggml_type_of<mxfp4>() ? decoded_bytes<mxfp4>(read_gguf_weight<mxfp4>(in, t), req.dtype, req.threads)
                                                              : decoded_bytes<nvfp4>(read_gguf_weight<nvfp4>(in, t), req.dtype, req.threads);
    out.write(t.name, span<const std::uint8_t>(decoded.data(), decoded.size()));
  }
  in.check_unchanged();
  out.commit();
  set.commit();
}

// The `inspect` listing of a GGUF file: every tensor with its ggml type, shape and bytes (an
// NVFP4 weight's scale tensor counted with it), MXFP4/NVFP4 blocks checked as dequantize
// reads them.
inline void inspect_gguf(const std::string& path, std::ostream& os) {
  const io::gguf_file in(path);
  const std::set<std::string> scales = gguf_scale_tensors(in);
  char line[512];
  std::uint32_t file_type = 0;
  const io::gguf_value* ft = in.find_metadata("general.file_type");
  std::snprintf(line, sizeof line, "GGUF v%u, %zu metadata entries, alignment %llu, general.file_type %s\n", in.version(), in.metadata().size(),
                static_cast<unsigned long long>(in.alignment()), ft && ft->get(io::gguf_type::u32, file_type) ? std::to_string(file_type).c_str() : "-");
  os << line;
  std::snprintf(line, sizeof line, "%-40s %-22s %-16s %12s\n", "tensor", "stored as", "shape", "bytes");
  os << line;
  std::uint64_t stored = 0, as_f32 = 0;
  std::size_t quantized = 0;
  for (const auto& t : in.tensors()) {
    if (scales.count(t.name)) continue;
    std::uint64_t bytes = t.bytes;
    std::string as = ggml_type_name(t.type);
    if (t.type == io::ggml_type_of<mxfp4>()) (void)read_gguf_weight<mxfp4>(in, t), ++quantized;
    if (t.type == io::ggml_type_of<nvfp4>()) {
      const auto p = read_gguf_weight<nvfp4>(in, t);
      ++quantized;
      if (scales.count(io::ggml_scale_tensor_name(t.name))) {
        bytes += 4;
        char scale[48];
        std::snprintf(scale, sizeof scale, " x %.4g", static_cast<double>(p.tensor_scale()));
        as += scale;
      }
    }
    stored += bytes;
    as_f32 += ggml_float(t.type) || t.type == io::ggml_type_of<mxfp4>() || t.type == io::ggml_type_of<nvfp4>() ? t.elements() * 4 : bytes;
    std::snprintf(line, sizeof line, "%-40s %-22s %-16s %12llu\n", io::printable(t.name).c_str(), as.c_str(), gguf_shape_text(t).c_str(),
                  static_cast<unsigned long long>(bytes));
    os << line;
  }
  std::snprintf(line, sizeof line, "\n%zu tensors (%zu MXFP4/NVFP4): %llu bytes of data; as F32 %llu bytes (%.2fx)\n",
                in.tensors().size() - scales.size(), quantized, static_cast<unsigned long long>(stored), static_cast<unsigned long long>(as_f32),
                stored ? static_cast<double>(as_f32) / static_cast<double>(stored) : 1.0);
  os << line;
}

}  // namespace blockcast::cli::detail
