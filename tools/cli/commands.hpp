// SPDX-License-Identifier: MIT
// The command-line tool's work, separate from its argument parsing (main.cpp) so the tests
// can call it: quantize / dequantize whole models (one safetensors file, or a sharded model
// through its model.safetensors.index.json), inspect files, list formats.
//
// Streaming: a tensor is read from the memory-mapped input, converted, written and dropped
// before the next, so peak memory is about one tensor (plus its calibration inputs), not the
// model. Outputs are atomic: every file is written under a temporary name and renamed into
// place only when all of them (every shard, then the index) are complete.
#pragma once

#include <Eigen/Dense>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <ostream>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "blockcast/blockcast.hpp"
#include "blockcast/io/quantized_tensors.hpp"
#include "blockcast/io/safetensors.hpp"
#include "blockcast/ptq.hpp"

namespace blockcast::cli {

using io::io_error;

struct quantize_request {
  std::string input, output, format = "mxfp4", method = "rtn", calibration;
  std::string include = ".*", exclude;  // ECMAScript regexes searched in tensor names
  unsigned threads = 1;
};

struct dequantize_request {
  std::string input, output, dtype = "bf16";  // "bf16" or "f32"
  unsigned threads = 1;
};

/// One line of the quantize summary.
struct tensor_report {
  std::string name, shape, stored;  // stored: "mxfp4 ed", or "copied (F32)"
  std::size_t values = 0;
  double seconds = 0, weight_sqnr_db = NAN, output_sqnr_db = NAN;
};

/// Progress callbacks: (tensor name, tensors done, tensors in all, values done so far).
using progress_fn = std::function<void(const std::string&, std::size_t, std::size_t, std::uint64_t)>;

namespace detail {

inline bool is_index(const std::string& path) {
  const std::string suffix = ".index.json";
  return path.size() >= suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
}
inline std::string directory_of(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}
inline std::string shape_text(const std::vector<std::uint64_t>& shape) {
  std::string s;
  for (auto d : shape) s += (s.empty() ? "" : "x") + std::to_string(d);
  return s.empty() ? "scalar" : s;
}
inline bool is_float(io::dtype t) { return t == io::dtype::f32 || t == io::dtype::f16 || t == io::dtype::bf16; }

// A model on disk: one file, or shards listed by an index.
struct model_files {
  std::vector<std::string> shards;  // file names relative to dir
  std::string dir;
  nlohmann::json index;             // the index (sharded models only)
};

inline model_files open_model(const std::string& path) {
  if (!is_index(path)) return {{path}, "", nlohmann::json()};
  std::ifstream in(path);
  if (!in) io::detail::fail(path, "cannot open");
  model_files m{{}, directory_of(path), nlohmann::json()};
  try {
    m.index = nlohmann::json::parse(in);
    for (const auto& [tensor, file] : m.index.at("weight_map").items()) {
      const std::string name = file.get<std::string>();
      if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
        io::detail::fail(path, "weight_map['" + tensor + "'] names a file outside the index's directory: '" + name + "'");
      if (std::find(m.shards.begin(), m.shards.end(), name) == m.shards.end()) m.shards.push_back(name);
    }
  } catch (const nlohmann::json::exception& e) {
    io::detail::fail(path, std::string("not a safetensors index (needs a weight_map of tensor -> file): ") + e.what());
  }
  if (m.shards.empty()) io::detail::fail(path, "the index lists no shards");
  return m;
}
inline std::string shard_path(const model_files& m, const std::string& shard) {
  return m.dir.empty() ? shard : m.dir + "/" + shard;
}

// Output files written under "<path>.partial" and renamed into place together by commit();
// removed if commit() is never reached.
class pending_outputs {
 public:
  pending_outputs() = default;
  pending_outputs(const pending_outputs&) = delete;
  pending_outputs& operator=(const pending_outputs&) = delete;
  ~pending_outputs() {
    if (!committed_)
      for (const auto& p : paths_) std::remove((p + ".partial").c_str());
  }
  std::string add(const std::string& path) {
    paths_.push_back(path);
    return path + ".partial";
  }
  void commit() {
    for (const auto& p : paths_)
      if (std::rename((p + ".partial").c_str(), p.c_str()) != 0)
        io::detail::fail(p, std::string("cannot rename the finished output into place: ") + std::strerror(errno));
    committed_ = true;
  }

 private:
  std::vector<std::string> paths_;
  bool committed_ = false;
};

// Runs convert(input shard, output path) over every file of a model, then writes the
// output index (sharded models) mapping every output tensor to its shard.
template <class Convert>
void map_model(const std::string& input, const std::string& output, Convert convert) {
  const model_files in = open_model(input);
  if (is_index(input) != is_index(output))
    io::detail::fail(output, is_index(input) ? "a sharded model's output must be an index (…/model.safetensors.index.json)"
                                             : "a single-file model's output must be a .safetensors file, not an index");
  pending_outputs pending;
  if (!is_index(input)) {
    convert(input, pending.add(output));
    pending.commit();
    return;
  }
  const std::string out_dir = directory_of(output);
  nlohmann::json weight_map = nlohmann::json::object();
  std::uint64_t total = 0;
  for (const auto& shard : in.shards) {
    const std::string partial = pending.add(out_dir + "/" + shard);
    convert(shard_path(in, shard), partial);
    const io::safetensors_file written(partial);
    for (const auto& t : written.tensors()) {
      weight_map[t.name] = shard;
      total += t.end - t.begin;
    }
  }
  nlohmann::json index = {{"metadata", in.index.value("metadata", nlohmann::json::object())}, {"weight_map", weight_map}};
  index["metadata"]["total_size"] = total;
  const std::string partial = pending.add(output);
  {
    std::ofstream out(partial);
    out << index.dump(2) << "\n";
    if (!out.flush()) io::detail::fail(output, "cannot write the index");
  }
  pending.commit();
}

// The scale entries stored beside a file's quantized tensors ("<name>.scales",
// "<name>.tensor_scale"): parts of those tensors, not tensors of their own.
inline std::set<std::string> companion_names(const io::safetensors_file& f) {
  std::set<std::string> names;
  for (const auto& t : f.tensors())
    if (io::is_quantized(f, t.name)) names.insert({t.name + ".scales", t.name + ".tensor_scale"});
  return names;
}

// The calibration inputs of weight `name` (N x cols), from "<name>.inputs".
inline ptq::matrix calibration_inputs(const io::safetensors_file& calib, const std::string& name, std::size_t cols) {
  const std::string key = name + ".inputs";
  if (!calib.contains(key))
    io::detail::fail(calib.path(), "no tensor '" + key + "' (ED and GPTQ need each quantized weight's layer inputs, N x " +
                                       std::to_string(cols) + ")");
  const auto& t = calib.find(key);
  if (t.shape.size() != 2 || t.shape[1] != cols || t.shape[0] == 0)
    io::detail::fail(calib.path(), "tensor '" + key + "' has shape " + shape_text(t.shape) + ", expected N x " +
                                       std::to_string(cols) + " (N >= 1 samples of the weight's input)");
  const auto values = calib.to_float(t);
  return Eigen::Map<const ptq::matrix>(values.data(), static_cast<Eigen::Index>(t.shape[0]), static_cast<Eigen::Index>(cols));
}

template <class Format>
ptq::quantized_matrix<Format> quantize_matrix(const ptq::matrix& w, const quantize_request& req, const ptq::matrix* x) {
  cast_options cast;
  cast.threads = req.threads;
  if (req.method == "ed") {
    ptq::ed_options opt;
    opt.cast = cast;
    return ptq::error_diffusion<Format>(w, ptq::input_stats::from(*x, ptq::input_stats::default_sketch, 0, req.threads), opt);
  }
  if (req.method == "gptq") {
    ptq::gptq_options opt;
    opt.cast = cast;
    return ptq::gptq<Format>(w, *x, opt);
  }
  return ptq::rtn<Format>(w, cast);
}

template <class Format>
void quantize_file(const std::string& in_path, const std::string& out_path, const quantize_request& req,
                   const io::safetensors_file* calib, std::vector<tensor_report>& reports, const progress_fn& progress,
                   std::size_t& done, std::size_t total, std::uint64_t& values_done) {
  const io::safetensors_file in(in_path);
  const std::regex include(req.include), exclude(req.exclude.empty() ? "$^" : req.exclude);
  auto selected = [&](const io::tensor_info& t) {
    return is_float(t.type) && t.shape.size() >= 2 && t.elements() > 0 && std::regex_search(t.name, include) &&
           !(req.exclude.size() && std::regex_search(t.name, exclude)) && !io::is_quantized(in, t.name);
  };
  std::vector<bool> quantized;
  for (const auto& t : in.tensors()) quantized.push_back(selected(t));
  io::safetensors_stream_writer out(out_path);
  for (const auto& [key, value] : in.metadata()) out.set_metadata(key, value);
  for (std::size_t i = 0; i < in.tensors().size(); ++i) {
    const auto& t = in.tensors()[i];
    if (quantized[i]) io::declare_quantized<Format>(out, t.name, t.shape, req.method);
    else out.declare(t.name, t.type, t.shape);
  }
  for (std::size_t i = 0; i < in.tensors().size(); ++i) {
    const auto& t = in.tensors()[i];
    if (progress) progress(t.name, done, total, values_done);
    tensor_report r{t.name, shape_text(t.shape), std::string("copied (") + io::name(t.type) + ")",
                    static_cast<std::size_t>(t.elements())};
    const auto start = std::chrono::steady_clock::now();
    if (!quantized[i]) {
      out.write(t.name, in.bytes(t));
    } else {
      const auto [rows, cols] = io::detail::matrix_dims(t.name, t.shape);
      const auto values = in.to_float(t);
      const ptq::matrix w = Eigen::Map<const ptq::matrix>(values.data(), static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols));
      ptq::matrix x;
      if (calib) x = calibration_inputs(*calib, t.name, cols);
      const auto q = quantize_matrix<Format>(w, req, calib ? &x : nullptr);
      io::write_quantized(out, t.name, q.packed);
      r.stored = req.format + " " + req.method;
      r.weight_sqnr_db = ptq::weight_sqnr_db(w, q.dequantized);
      if (calib) r.output_sqnr_db = ptq::output_sqnr_db(w, q.dequantized, x);
    }
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    values_done += r.values;
    ++done;
    reports.push_back(std::move(r));
  }
  out.commit();
}

}  // namespace detail

/// Quantizes a model (file or sharded index); returns one report per tensor.
inline std::vector<tensor_report> quantize_model(const quantize_request& req, const progress_fn& progress = {}) {
  find_format(req.format);  // unknown_format before any work
  if (req.method != "rtn" && req.method != "ed" && req.method != "gptq")
    blockcast::detail::fail<invalid_argument>("unknown method '" + req.method + "' (known: rtn, ed, gptq)");
  if (req.method != "rtn" && req.calibration.empty())
    blockcast::detail::fail<invalid_argument>("--method " + req.method +
                                              " needs --calibration FILE (each weight's layer inputs as '<name>.inputs')");
  try {
    std::regex(req.include), std::regex(req.exclude);
  } catch (const std::regex_error& e) {
    blockcast::detail::fail<invalid_argument>(std::string("bad --include/--exclude regex: ") + e.what());
  }
  std::unique_ptr<io::safetensors_file> calib;
  if (!req.calibration.empty()) calib = std::make_unique<io::safetensors_file>(req.calibration);
  std::size_t total = 0, done = 0;
  std::uint64_t values_done = 0;
  const detail::model_files files = detail::open_model(req.input);
  for (const auto& shard : files.shards) total += io::safetensors_file(detail::shard_path(files, shard)).tensors().size();
  std::vector<tensor_report> reports;
  visit_format(req.format, [&](auto tag) {
    using F = typename decltype(tag)::type;
    detail::map_model(req.input, req.output, [&](const std::string& in, const std::string& out) {
      detail::quantize_file<F>(in, out, req, calib.get(), reports, progress, done, total, values_done);
    });
  });
  if (progress) progress("", done, total, values_done);
  return reports;
}

/// Decodes every quantized tensor of a model back to BF16 or F32 (shapes as before
/// quantization); other tensors are copied.
inline void dequantize_model(const dequantize_request& req) {
  if (req.dtype != "bf16" && req.dtype != "f32")
    blockcast::detail::fail<invalid_argument>("unknown dtype '" + req.dtype + "' (known: bf16, f32)");
  detail::map_model(req.input, req.output, [&](const std::string& in_path, const std::string& out_path) {
    const io::safetensors_file in(in_path);
    const std::set<std::string> companions = detail::companion_names(in);
    std::map<std::string, io::quantized_description> quantized;
    for (const auto& t : in.tensors())
      if (io::is_quantized(in, t.name)) quantized[t.name] = io::describe_quantized(in, t.name);
    const io::dtype type = req.dtype == "bf16" ? io::dtype::bf16 : io::dtype::f32;
    io::safetensors_stream_writer out(out_path);
    for (const auto& [key, value] : in.metadata())
      if (key.rfind("blockcast.", 0) != 0) out.set_metadata(key, value);
    for (const auto& t : in.tensors()) {
      if (companions.count(t.name)) continue;
      const auto q = quantized.find(t.name);
      if (q == quantized.end()) out.declare(t.name, t.type, t.shape);
      else out.declare(t.name, type, q->second.shape);
    }
    cast_options cast;
    cast.threads = req.threads;
    for (const auto& t : in.tensors()) {
      if (companions.count(t.name)) continue;
      const auto q = quantized.find(t.name);
      if (q == quantized.end()) {
        out.write(t.name, in.bytes(t));
        continue;
      }
      visit_format(q->second.format, [&](auto tag) {
        using F = typename decltype(tag)::type;
        const auto p = io::read_quantized<F>(in, t.name);
        if (type == io::dtype::bf16) {
          std::vector<std::uint16_t> v(p.rows() * p.cols());
          blockcast::dequantize_bf16(p, v.data(), cast);
          out.write(t.name, span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(v.data()), v.size() * 2));
        } else {
          std::vector<float> v(p.rows() * p.cols());
          blockcast::dequantize(p, v.data(), cast);
          out.write(t.name, span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(v.data()), v.size() * 4));
        }
      });
    }
    out.commit();
  });
}

/// The `inspect` listing of a model (file or sharded index).
inline void inspect_model(const std::string& path, std::ostream& os) {
  const detail::model_files files = detail::open_model(path);
  std::uint64_t stored = 0, as_f32 = 0, q_stored = 0, q_f32 = 0;
  std::size_t tensors = 0, quantized_count = 0;
  char line[512];
  std::snprintf(line, sizeof line, "%-40s %-22s %-16s %12s\n", "tensor", "stored as", "shape", "bytes");
  os << line;
  for (const auto& shard : files.shards) {
    const io::safetensors_file f(detail::shard_path(files, shard));
    if (files.shards.size() > 1) os << "-- " << shard << "\n";
    const std::set<std::string> companions = detail::companion_names(f);
    for (const auto& t : f.tensors()) {
      if (companions.count(t.name)) continue;
      ++tensors;
      std::uint64_t bytes = t.end - t.begin;
      std::string as = io::name(t.type), shape = detail::shape_text(t.shape);
      std::uint64_t values = t.elements();
      if (io::is_quantized(f, t.name)) {
        const auto d = io::describe_quantized(f, t.name);
        for (const auto& c : {t.name + ".scales", t.name + ".tensor_scale"})
          if (f.contains(c)) bytes += f.find(c).end - f.find(c).begin;
        values = static_cast<std::uint64_t>(d.rows) * d.cols;
        as = d.format + (d.method.empty() ? "" : " " + d.method);
        shape = detail::shape_text(d.shape);
        ++quantized_count;
        q_stored += bytes;
        q_f32 += values * 4;
      }
      stored += bytes;
      as_f32 += detail::is_float(t.type) || io::is_quantized(f, t.name) ? values * 4 : bytes;
      std::snprintf(line, sizeof line, "%-40s %-22s %-16s %12llu\n", t.name.c_str(), as.c_str(), shape.c_str(),
                    static_cast<unsigned long long>(bytes));
      os << line;
    }
  }
  std::snprintf(line, sizeof line, "\n%zu tensors (%zu quantized) in %zu file%s: %llu bytes of data; as F32 %llu bytes (%.2fx)\n",
                tensors, quantized_count, files.shards.size(), files.shards.size() == 1 ? "" : "s",
                static_cast<unsigned long long>(stored), static_cast<unsigned long long>(as_f32),
                stored ? static_cast<double>(as_f32) / static_cast<double>(stored) : 1.0);
  os << line;
  if (quantized_count) {
    std::snprintf(line, sizeof line, "quantized tensors: %llu bytes, %.3f bits per value, %.2fx smaller than F32\n",
                  static_cast<unsigned long long>(q_stored), 8.0 * 4 * static_cast<double>(q_stored) / static_cast<double>(q_f32),
                  static_cast<double>(q_f32) / static_cast<double>(q_stored));
    os << line;
  }
}

/// The `formats` table.
inline void list_formats(std::ostream& os) {
  char line[256];
  std::snprintf(line, sizeof line, "%-11s %-10s %-13s %6s %10s %13s %11s\n", "format", "element", "scale", "block",
                "bits/value", "max |value|", "min > 0");
  os << line;
  for (const auto& f : preset_formats()) {
    std::snprintf(line, sizeof line, "%-11s %-10s %-13s %6zu %10.3g %13g %11g\n", std::string(f.name).c_str(),
                  std::string(f.element).c_str(), std::string(f.scale).c_str(), f.block_size, f.bits_per_value,
                  static_cast<double>(f.max_value), static_cast<double>(f.min_value));
    os << line;
  }
  os << "bits/value counts the shared scale; max and min are the element's before scaling.\n";
}

}  // namespace blockcast::cli
