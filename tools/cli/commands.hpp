// SPDX-License-Identifier: MIT
// The command-line tool's work, separate from its argument parsing (main.cpp) so the tests
// can call it: quantize / dequantize whole models (one safetensors file, or a sharded model
// through its model.safetensors.index.json), inspect files, list formats.
//
// Streaming: a tensor is read from the memory-mapped input in slices of rows, converted and
// written (pipeline.hpp), so peak memory is a few slices plus the calibration inputs, not the
// tensor or the model. Outputs are all or nothing (io/output_set.hpp): every file is staged
// and all of them (every shard, then the index) are renamed into place together, or none.
// No output may be one of the run's input files (compared by inode, not by name), except a
// single file replaced by its own quantized version.
#pragma once

#include <sched.h>
#include <sys/stat.h>

#include <Eigen/Dense>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <ostream>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "blockcast/blockcast.hpp"
#include "blockcast/io/model_files.hpp"
#include "blockcast/io/output_set.hpp"
#include "blockcast/io/quantized_tensors.hpp"
#include "blockcast/io/safetensors.hpp"
#include "blockcast/ptq.hpp"
#include "parts.hpp"
#include "pipeline.hpp"

namespace blockcast::cli {

using io::io_error;

/// The CPUs this process may run on (its affinity mask): the default thread count.
inline unsigned available_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return static_cast<unsigned>(CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

struct quantize_request {
  std::string input, output, format = "mxfp4", method = "rtn", calibration;
  std::string include = ".*", exclude;  // ECMAScript regexes searched in tensor names
  std::string part;                      // "i/n": only part i of n of a sharded model (parts.hpp)
  unsigned threads = available_cores();
  detail::pipeline_sizes sizes;  // how tensors are cut (not on the command line: the output never depends on it)
};

struct dequantize_request {
  std::string input, output, dtype = "bf16";  // "bf16" or "f32"
  unsigned threads = available_cores();
};

/// One line of the quantize summary.
struct tensor_report {
  std::string name, shape, stored;  // stored: "mxfp4 ed", or "copied (F32)"
  bool quantized = false, calibrated = false;
  std::size_t values = 0;
  double seconds = 0, weight_sqnr_db = NAN, output_sqnr_db = NAN;  // NaN: none (not quantized, or NaN/Inf in it)
};

/// Progress callbacks: (tensor name, tensors done, tensors in all, values done so far).
using progress_fn = std::function<void(const std::string&, std::size_t, std::size_t, std::uint64_t)>;

namespace detail {

inline std::string shape_text(const std::vector<std::uint64_t>& shape) {
  std::string s;
  for (auto d : shape) s += (s.empty() ? "" : "x") + std::to_string(d);
  return s.empty() ? "scalar" : s;
}
inline bool is_float(io::dtype t) { return t == io::dtype::f32 || t == io::dtype::f16 || t == io::dtype::bf16; }

// The longest tensor name --include/--exclude are matched against: std::regex backtracks with
// recursion, so a hostile name of unbounded length would overflow the stack.
inline constexpr std::size_t max_matched_name = 1024;

// Whether two paths name the same directory entry (the same name in the same directory), not
// only the same file: a hard link or a symlink to the input is another entry.
inline bool same_entry(const std::string& a, const std::string& b) {
  struct stat da {}, db {}, la {}, lb {};
  return io::file_name_of(a) == io::file_name_of(b) && ::stat(io::directory_of(a).c_str(), &da) == 0 &&
         ::stat(io::directory_of(b).c_str(), &db) == 0 && da.st_dev == db.st_dev && da.st_ino == db.st_ino &&
         ::lstat(a.c_str(), &la) == 0 && ::lstat(b.c_str(), &lb) == 0 && !S_ISLNK(la.st_mode) && !S_ISLNK(lb.st_mode);
}

// Refuses outputs that are (by inode, whatever their names) one of the run's input files:
// the input itself is allowed only for a single file replaced atomically by its new version.
// An output that exists must be a regular file.
inline void check_outputs(const io::model_files& in, const std::string& output, const std::vector<std::string>& other_inputs) {
  if (in.sharded != io::is_index_path(output))
    io::detail::fail(output, in.sharded ? "a sharded model's output must be an index (.../model.safetensors.index.json)"
                                        : "a single-file model's output must be a .safetensors file, not an index");
  std::vector<std::pair<std::string, struct stat>> inputs;
  auto add_input = [&](const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) inputs.emplace_back(path, st);
  };
  add_input(in.path);
  for (std::size_t i = 0; in.sharded && i < in.shards.size(); ++i) add_input(in.shard_path(i));
  for (const auto& p : other_inputs) add_input(p);
  std::vector<std::string> outputs{output};
  const std::string out_dir = io::directory_of(output);
  for (const auto& shard : in.sharded ? in.shards : std::vector<std::string>{}) outputs.push_back(out_dir + "/" + shard);
  for (const auto& out : outputs) {
    struct stat st {};
    if (::stat(out.c_str(), &st) != 0) continue;
    if (!S_ISREG(st.st_mode)) io::detail::fail(output, "'" + io::printable(out) + "' exists and is not a regular file");
    for (const auto& [path, id] : inputs) {
      if (st.st_dev != id.st_dev || st.st_ino != id.st_ino) continue;
      if (!in.sharded && out == output && path == in.path && same_entry(output, in.path)) continue;  // replaced by its new version
      io::detail::fail(output, "writing it would overwrite the input file '" + io::printable(path) +
                                   "' (refused: choose an output that is not one of the input files)");
    }
  }
}

// Runs convert(input shard, staged output path, label) over every file of a model into an
// all-or-nothing output set, then writes the output index (sharded models) mapping every
// output tensor to its shard. `other_inputs` (calibration) may not be overwritten either.
// With a part chosen, only that part's shards are converted, and a manifest describing them
// (with `run`, the run's identity) takes the index's place (parts.hpp).
template <class Convert>
void map_model(const io::model_files& in, const std::string& output, const std::vector<std::string>& other_inputs, Convert convert,
               const part_choice& part = {}, const nlohmann::json& run = {}) {
  check_outputs(in, output, other_inputs);
  const std::string index_name = io::file_name_of(output);
  const std::string set_name = part.whole() ? index_name : manifest_name(index_name, part.index, part.count);
  io::output_set set(io::directory_of(output), set_name, output);
  if (!in.sharded) {
    convert(in.path, set.stage(index_name), output);
    set.commit();
    return;
  }
  const std::string out_dir = io::directory_of(output);
  std::vector<std::pair<std::string, std::string>> written;  // shard name, staged path
  for (std::size_t i = 0; i < in.shards.size(); ++i) {
    if (!part.takes(i, in.shards.size())) continue;
    const std::string staged = set.stage(in.shards[i]);
    convert(in.shard_path(i), staged, out_dir + "/" + in.shards[i]);
    written.emplace_back(in.shards[i], staged);
  }
  if (part.whole()) {
    set.put_text(index_name, detail::index_text(in.metadata, written));
  } else {
    nlohmann::json shards = nlohmann::json::array();
    for (const auto& [name, staged] : written) {
      std::uint64_t size = 0;
      const std::uint32_t crc = detail::file_crc32(staged, &size);
      shards.push_back({{"name", name}, {"size", size}, {"crc32", crc}});
    }
    const nlohmann::json manifest = {{"blockcast_part_manifest", manifest_version}, {"part", part.index}, {"parts", part.count},
                                     {"run", run}, {"shards", shards}};
    set.put_text(set_name, manifest.dump(2) + "\n");
  }
  set.commit();
}

// The calibration inputs of weight `name` (N x cols), from "<name>.inputs", checked finite.
inline ptq::matrix calibration_inputs(const io::safetensors_file& calib, const std::string& name, std::size_t cols) {
  const std::string key = name + ".inputs";
  if (!calib.contains(key))
    io::detail::fail(calib.path(), "no tensor " + io::in_quotes(key) + " (ED and GPTQ need each quantized weight's layer inputs, N x " +
                                       std::to_string(cols) + ")");
  const auto& t = calib.find(key);
  if (!is_float(t.type) || t.shape.size() != 2 || t.shape[1] != cols || t.shape[0] == 0)
    io::detail::fail(calib.path(), "tensor " + io::in_quotes(key) + " has shape " + shape_text(t.shape) + " (" + io::name(t.type) +
                                       "), expected N x " + std::to_string(cols) + " floats (N >= 1 samples of the weight's input)");
  const auto values = calib.to_float(t);
  ptq::matrix x = Eigen::Map<const ptq::matrix>(values.data(), static_cast<Eigen::Index>(t.shape[0]), static_cast<Eigen::Index>(cols));
  try {
    ptq::detail::require_finite_inputs(x, "calibration");
  } catch (const blockcast::invalid_argument& e) {
    io::detail::fail(calib.path(), "tensor " + io::in_quotes(key) + ": " + e.what());
  }
  return x;
}

// Which tensors of a file are quantized: float tensors of 2 or more dimensions (not already
// quantized, nor the scales of one) whose names --include matches and --exclude does not.
inline std::vector<bool> selection(const io::safetensors_file& in, const quantize_request& req) {
  const bool everything = req.include.empty() || req.include == ".*";
  const std::regex include(everything ? "" : req.include), exclude(req.exclude);
  const auto quantized = io::quantized_tensors(in);
  const auto scales = io::scale_entries(quantized);
  std::vector<bool> chosen;
  for (const auto& t : in.tensors()) {
    bool take = is_float(t.type) && t.shape.size() >= 2 && t.elements() > 0 && !quantized.count(t.name) && !scales.count(t.name);
    if (take && (!everything || !req.exclude.empty()) && t.name.size() > max_matched_name)
      io::detail::fail(in.path(), "tensor name of " + std::to_string(t.name.size()) + " bytes (" + io::in_quotes(t.name) +
                                      ") is too long to match --include/--exclude against (limit " +
                                      std::to_string(max_matched_name) + ")");
    if (take && !everything) take = std::regex_search(t.name, include);
    if (take && !req.exclude.empty()) take = !std::regex_search(t.name, exclude);
    chosen.push_back(take);
  }
  return chosen;
}

template <class Format>
void quantize_file(const std::string& in_path, const std::string& out_path, const std::string& label, const quantize_request& req,
                   const io::safetensors_file* calib, std::vector<tensor_report>& reports, const progress_fn& progress,
                   std::size_t& done, std::size_t total, std::uint64_t& values_done) {
  const io::safetensors_file in(in_path);
  const std::vector<bool> quantized = selection(in, req);
  std::set<std::string> taken;  // scale entries may not take the name of a tensor of the model
  for (const auto& t : in.tensors()) taken.insert(t.name);
  io::safetensors_stream_writer out(out_path, label);
  for (const auto& [key, value] : in.metadata()) out.set_metadata(key, value);
  std::vector<io::quantized_names> names(in.tensors().size());
  pipeline_buffers buffers;
  for (std::size_t i = 0; i < in.tensors().size(); ++i) {
    const auto& t = in.tensors()[i];
    if (quantized[i]) {
      names[i] = io::declare_quantized<Format>(out, t.name, t.shape, req.method, taken);
      taken.insert({names[i].scales, names[i].tensor_scale});
    } else {
      out.declare(t.name, t.type, t.shape);
    }
  }
  for (std::size_t i = 0; i < in.tensors().size(); ++i) {
    const auto& t = in.tensors()[i];
    if (progress) progress(io::printable(t.name), done, total, values_done);
    tensor_report r{io::printable(t.name), shape_text(t.shape), std::string("copied (") + io::name(t.type) + ")", quantized[i], false,
                    static_cast<std::size_t>(t.elements())};
    const auto start = std::chrono::steady_clock::now();
    if (!quantized[i]) {
      out.write(t.name, in.bytes(t));
      in.release_pages(t);
    } else {
      const auto cols = io::detail::matrix_dims(t.name, t.shape).second;
      ptq::matrix x;
      if (calib) x = calibration_inputs(*calib, t.name, cols);
      const method_plan plan = plan_method(req.method, calib ? &x : nullptr, req.threads);
      const tensor_result q = quantize_tensor<Format>(in, t, names[i], plan, req.threads, req.sizes, out, buffers);
      r.stored = req.format + " " + req.method;
      r.calibrated = calib != nullptr;
      r.weight_sqnr_db = q.weight_sqnr_db;
      r.output_sqnr_db = q.output_sqnr_db;
    }
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    values_done += r.values;
    ++done;
    reports.push_back(std::move(r));
  }
  // what was read must be one version of each input: a file changed meanwhile fails the run
  in.check_unchanged();
  if (calib) calib->check_unchanged();
  out.commit();
}

}  // namespace detail

/// Quantizes a model (file or sharded index); returns one report per tensor.
inline std::vector<tensor_report> quantize_model(const quantize_request& req, const progress_fn& progress = {}) {
  find_format(req.format);  // unknown_format before any work
  if (req.method != "rtn" && req.method != "ed" && req.method != "gptq")
    blockcast::detail::fail<invalid_argument>("unknown method '" + io::printable(req.method) + "' (known: rtn, ed, gptq)");
  if (req.method != "rtn" && req.calibration.empty())
    blockcast::detail::fail<invalid_argument>("--method " + req.method +
                                              " needs --calibration FILE (each weight's layer inputs as '<name>.inputs')");
  if (req.threads == 0) blockcast::detail::fail<invalid_argument>("--threads must be >= 1");
  try {
    std::regex(req.include), std::regex(req.exclude);
  } catch (const std::regex_error& e) {
    blockcast::detail::fail<invalid_argument>(std::string("bad --include/--exclude regex: ") + e.what());
  }
  const part_choice part = req.part.empty() ? part_choice{} : parse_part(req.part);
  const io::model_files in = io::open_model(req.input);
  if (!part.whole() && !in.sharded)
    io::detail::fail(req.input, "--part splits a sharded model (its model.safetensors.index.json); this is a single file");
  const std::size_t total = io::check_shards(in);
  std::unique_ptr<io::safetensors_file> calib;
  if (!req.calibration.empty()) calib = std::make_unique<io::safetensors_file>(req.calibration);
  nlohmann::json run;  // a part's identity: what must be the same in every part of one conversion
  if (!part.whole()) {
    nlohmann::json shards = nlohmann::json::array();
    for (std::size_t i = 0; i < in.shards.size(); ++i) {
      nlohmann::json s = detail::input_identity(in.shard_path(i));
      s["name"] = in.shards[i];
      shards.push_back(s);
    }
    run = {{"blockcast_version", BLOCKCAST_VERSION_STRING}, {"index_metadata", in.metadata}, {"input_shards", shards},
           {"format", req.format}, {"method", req.method}, {"include", req.include}, {"exclude", req.exclude},
           {"calibration", calib ? detail::input_identity(req.calibration) : nlohmann::json()}};
  }
  std::size_t done = 0;
  std::uint64_t values_done = 0;
  std::vector<tensor_report> reports;
  visit_format(req.format, [&](auto tag) {
    using F = typename decltype(tag)::type;
    const std::vector<std::string> other_inputs = calib ? std::vector<std::string>{req.calibration} : std::vector<std::string>{};
    detail::map_model(in, req.output, other_inputs, [&](const std::string& in_path, const std::string& out, const std::string& label) {
      detail::quantize_file<F>(in_path, out, label, req, calib.get(), reports, progress, done, total, values_done);
    }, part, run);
  });
  if (progress) progress("", done, total, values_done);
  return reports;
}

/// Decodes every quantized tensor of a model back to BF16 or F32 (shapes as before
/// quantization); other tensors are copied.
inline void dequantize_model(const dequantize_request& req) {
  if (req.dtype != "bf16" && req.dtype != "f32")
    blockcast::detail::fail<invalid_argument>("unknown dtype '" + io::printable(req.dtype) + "' (known: bf16, f32)");
  if (req.threads == 0) blockcast::detail::fail<invalid_argument>("--threads must be >= 1");
  const io::model_files model = io::open_model(req.input);
  io::check_shards(model);
  detail::map_model(model, req.output, {}, [&](const std::string& in_path, const std::string& out_path, const std::string& label) {
    const io::safetensors_file in(in_path);
    const auto quantized = io::quantized_tensors(in);
    const std::set<std::string> scales = io::scale_entries(quantized);
    const io::dtype type = req.dtype == "bf16" ? io::dtype::bf16 : io::dtype::f32;
    io::safetensors_stream_writer out(out_path, label);
    for (const auto& [key, value] : in.metadata())
      if (key.rfind("blockcast.", 0) != 0) out.set_metadata(key, value);
    for (const auto& t : in.tensors()) {
      if (scales.count(t.name)) continue;
      const auto q = quantized.find(t.name);
      if (q == quantized.end()) out.declare(t.name, t.type, t.shape);
      else out.declare(t.name, type, q->second.shape);
    }
    cast_options cast;
    cast.threads = req.threads;
    for (const auto& t : in.tensors()) {
      if (scales.count(t.name)) continue;
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
    in.check_unchanged();
    out.commit();
  });
}

/// The `inspect` listing of a model (file or sharded index). Quantized tensors are checked
/// against their bytes as dequantize checks them; names are printed escaped.
inline void inspect_model(const std::string& path, std::ostream& os) {
  const io::model_files files = io::open_model(path);
  io::check_shards(files);
  std::uint64_t stored = 0, as_f32 = 0, q_stored = 0, q_f32 = 0;
  std::size_t tensors = 0, quantized_count = 0;
  char line[512];
  std::snprintf(line, sizeof line, "%-40s %-22s %-16s %12s\n", "tensor", "stored as", "shape", "bytes");
  os << line;
  for (std::size_t i = 0; i < files.shards.size(); ++i) {
    const io::safetensors_file f(files.shard_path(i));
    if (files.shards.size() > 1) os << "-- " << io::printable(files.shards[i]) << "\n";
    const auto quantized = io::quantized_tensors(f);
    const std::set<std::string> scales = io::scale_entries(quantized);
    for (const auto& t : f.tensors()) {
      if (scales.count(t.name)) continue;
      ++tensors;
      std::uint64_t bytes = t.end - t.begin;
      std::string as = io::name(t.type), shape = detail::shape_text(t.shape);
      std::uint64_t values = t.elements();
      const auto q = quantized.find(t.name);
      if (q != quantized.end()) {
        const auto& d = q->second;
        for (const auto& entry : {d.names.scales, d.names.tensor_scale})
          if (!entry.empty()) bytes += f.find(entry).end - f.find(entry).begin;
        values = static_cast<std::uint64_t>(d.rows) * d.cols;
        as = d.format + (d.method.empty() ? "" : " " + io::printable(d.method, 20));
        shape = detail::shape_text(d.shape);
        ++quantized_count;
        q_stored += bytes;
        q_f32 += values * 4;
      }
      stored += bytes;
      as_f32 += detail::is_float(t.type) || q != quantized.end() ? values * 4 : bytes;
      std::snprintf(line, sizeof line, "%-40s %-22s %-16s %12llu\n", io::printable(t.name).c_str(), as.c_str(), shape.c_str(),
                    static_cast<unsigned long long>(bytes));
      os << line;
    }
  }
  std::snprintf(line, sizeof line, "\n%zu tensors (%zu quantized) in %zu file%s: %llu bytes of data; as F32 %llu bytes (%.2fx)\n",
                tensors, quantized_count, files.shards.size(), files.shards.size() == 1 ? "" : "s",
                static_cast<unsigned long long>(stored), static_cast<unsigned long long>(as_f32),
                stored ? static_cast<double>(as_f32) / static_cast<double>(stored) : 1.0);
  os << line;
  if (quantized_count && q_stored && q_f32) {
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
