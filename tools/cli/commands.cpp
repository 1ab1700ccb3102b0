// SPDX-License-Identifier: MIT
// The command-line tool's commands (declared in commands.hpp), compiled once into the
// blockcast_cli_commands library that the tool and its tests link: the streaming pipeline is
// instantiated for every format here, and nowhere else.
#include "commands.hpp"

#include <sched.h>
#include <sys/stat.h>

#include <Eigen/Dense>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <ostream>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "blockcast/blockcast.hpp"
#include "blockcast/io/hf_layouts.hpp"
#include "blockcast/io/layout.hpp"
#include "blockcast/io/model_directory.hpp"
#include "blockcast/io/model_files.hpp"
#include "blockcast/io/output_set.hpp"
#include "blockcast/io/quantized_tensors.hpp"
#include "blockcast/io/quantized_weights.hpp"
#include "blockcast/io/safetensors.hpp"
#include "blockcast/ptq.hpp"
#include "gguf_model.hpp"
#include "options.hpp"
#include "parts.hpp"
#include "pipeline.hpp"
#include "run.hpp"

namespace blockcast::cli {

using io::io_error;

namespace detail {


// Refuses outputs that are (by inode, whatever their names) one of the run's input files:
// the input itself is allowed only for a single file replaced atomically by its new version.
// An output that exists must be a regular file.
inline void check_outputs(const io::model_files& in, const std::string& output, const std::vector<std::string>& other_inputs) {
  if (in.sharded != io::is_index_path(output))
    throw io::file_error(output, in.sharded ? "a sharded model's output must be an index (.../model.safetensors.index.json)"
                                        : "a single-file model's output must be a .safetensors file, not an index");
  std::vector<std::string> input_paths{in.path};
  for (std::size_t i = 0; in.sharded && i < in.shards.size(); ++i) input_paths.push_back(in.shard_path(i));
  input_paths.insert(input_paths.end(), other_inputs.begin(), other_inputs.end());
  const std::vector<input_file> inputs = identify_inputs(input_paths);
  // a single file may be replaced by its own quantized version
  refuse_overwrite(output, output, inputs, in.sharded ? std::string() : in.path);
  const std::string out_dir = io::directory_of(output);
  for (const auto& shard : in.sharded ? in.shards : std::vector<std::string>{}) refuse_overwrite(output, out_dir + "/" + shard, inputs);
}

// Runs convert(input shard, staged output path, label) over every file of a model into an
// all-or-nothing output set, then writes the output index (sharded models) mapping every
// output tensor to its shard, and `extra` adds the set's other files (a model directory's). `other_inputs` (calibration) may not be overwritten either.
// With a part chosen, only that part's shards are converted, and a manifest describing them
// (with `run`, the run's identity) takes the index's place (parts.hpp).
template <class Convert>
void map_model(const io::model_files& in, const std::string& output, const std::vector<std::string>& other_inputs, Convert convert,
               const part_choice& part = {}, const nlohmann::json& run = {},
               const std::function<void(io::output_set&)>& extra = {}) {
  check_outputs(in, output, other_inputs);
  const std::string index_name = io::file_name_of(output);
  const std::string set_name = part.whole() ? index_name : manifest_name(index_name, part.index, part.count);
  io::output_set set(io::directory_of(output), set_name, output);
  if (!in.sharded) {
    convert(in.path, set.stage(index_name), output);
    if (extra) extra(set);
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
  if (extra) extra(set);
  set.commit();
}

// Which tensors of a file are quantized: float tensors of 2 or more dimensions (not already
// quantized, nor the scales of one) that the name rules choose, and for an engine layout only
// what the layout can hold.
template <class Format>
std::vector<tensor_choice> selection(const io::safetensors_file& in, const quantize_request& req, io::layout l) {
  const name_rules rules(req, l);
  const auto quantized = io::quantized_tensors(in);
  const auto scales = io::scale_entries(quantized);
  std::vector<tensor_choice> chosen;
  for (const auto& t : in.tensors()) {
    tensor_choice c;
    if (is_float(t.type) && t.shape.size() >= 2 && t.elements() > 0 && !quantized.count(t.name) && !scales.count(t.name))
      c = rules.choose(t.name, in.path());
    if (c.quantize && l != io::layout::blockcast)
      c.kept = io::engine_layout_refusal<Format>(l, t.name, t.shape.size(), io::matrix_shape(t.name, t.shape).second);
    if (!c.kept.empty()) c.quantize = false;
    chosen.push_back(std::move(c));
  }
  return chosen;
}

// The run as the per-file conversions see it.
struct quantize_run {
  const quantize_request& req;
  io::layout layout;
  const calibration_file* calib;
  const progress_fn& progress;
  std::vector<tensor_report> reports;
  std::size_t done = 0, total = 0;
  std::uint64_t values_done = 0;
};

template <class Format>
void quantize_file(const std::string& in_path, const std::string& out_path, const std::string& label, quantize_run& run) {
  const quantize_request& req = run.req;
  const io::safetensors_file in(in_path);
  const std::vector<tensor_choice> choices = selection<Format>(in, req, run.layout);
  // a file of one layout only: weights of an engine layout are never copied beside new ones
  // (blockcast's own quantized tensors are, when writing blockcast's layout)
  const auto engine = io::engine_weights(in);
  if (!engine.empty() || (run.layout != io::layout::blockcast && !io::quantized_tensors(in).empty()))
    throw io::file_error(in_path, "already holds quantized weights" +
                                      (engine.empty() ? std::string() : " (" + std::string(io::info(engine.begin()->second.where).name) + ")") +
                                      ": writing it as " + std::string(io::info(run.layout).name) + " would mix layouts (dequantize it first)");
  std::set<std::string> taken;  // entries may not take the name of a tensor of the model
  for (const auto& t : in.tensors()) taken.insert(t.name);
  io::safetensors_stream_writer out(out_path, label);
  for (const auto& [key, value] : in.metadata()) out.set_metadata(key, value);
  std::vector<std::vector<io::stored_entry>> entries(in.tensors().size());
  for (std::size_t i = 0; i < in.tensors().size(); ++i) {
    const auto& t = in.tensors()[i];
    if (!choices[i].quantize) {
      out.declare(t.name, t.type, t.shape);
      continue;
    }
    const auto [rows, cols] = io::matrix_shape(t.name, t.shape);
    if (run.layout == io::layout::blockcast) {
      const io::quantized_names names = io::declare_quantized<Format>(out, t.name, t.shape, std::string(name_of(req.method)), taken);
      entries[i] = io::quantized_entries<Format>(names, rows, cols);
    } else {
      entries[i] = io::engine_layout_entries<Format>(run.layout, t.name, rows, cols);
      for (const auto& e : entries[i]) {
        if (e.name != t.name && taken.count(e.name))
          throw io::file_error(in_path, "tensor " + io::in_quotes(t.name) + " would be stored as " + io::in_quotes(e.name) +
                                            ", the name of another tensor of the model");
        out.declare(e.name, e.type, e.shape);
      }
    }
    for (const auto& e : entries[i]) taken.insert(e.name);
  }
  pipeline_buffers buffers;
  for (std::size_t i = 0; i < in.tensors().size(); ++i) {
    const auto& t = in.tensors()[i];
    if (run.progress) run.progress(io::printable(t.name), run.done, run.total, run.values_done);
    tensor_report r{io::printable(t.name), shape_text(t.shape), std::string("copied (") + io::name(t.type) + ")", t.name, choices[i].kept,
                    choices[i].quantize, false, static_cast<std::size_t>(t.elements())};
    const auto start = std::chrono::steady_clock::now();
    if (!choices[i].quantize) {
      out.write(t.name, in.bytes(t));
      in.release_pages(t);
    } else {
      const auto [rows, cols] = io::matrix_shape(t.name, t.shape);
      ptq::matrix x;
      const method_plan plan = calibrated_plan(req.method, run.calib, t.name, cols, req.threads, x);
      const tensor_source source = source_of(in, t);
      const float amax = Format::has_tensor_scale ? tensor_amax(source, rows * cols, req.threads, req.sizes) : 0.0f;
      const tensor_sink sink = safetensors_sink<Format>(out, run.layout, entries[i], cols, t.name);
      const tensor_result q = quantize_tensor<Format>(source, rows, cols, amax, plan, req.threads, req.sizes, sink, buffers);
      r.stored = req.format + " " + std::string(name_of(req.method));
      r.calibrated = plan.inputs != nullptr;
      r.weight_sqnr_db = q.weight_sqnr_db;
      r.output_sqnr_db = q.output_sqnr_db;
    }
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    run.values_done += r.values;
    ++run.done;
    run.reports.push_back(std::move(r));
  }
  // what was read must be one version of each input: a file changed meanwhile fails the run
  in.check_unchanged();
  if (run.calib) run.calib->check_unchanged();
  out.commit();
}

// The modules whose "<module>.weight" (a matrix) a run left unquantized: an engine's "ignore".
inline std::vector<std::string> ignored_modules(const std::vector<tensor_report>& reports) {
  std::vector<std::string> modules;
  for (const auto& r : reports) {
    const std::string m = io::module_of(r.tensor);
    if (!r.quantized && !m.empty() && r.shape.find('x') != std::string::npos) modules.push_back(m);  // matrices: "64x32"
  }
  std::sort(modules.begin(), modules.end());
  return modules;
}

// Checks a model directory's output: a directory path that is not the input directory nor
// inside it (compared by the real paths); creates it if missing. Returns whether it did.
inline bool prepare_output_directory(const std::string& input, const std::string& output) {
  char real_in[PATH_MAX];
  if (!::realpath(input.c_str(), real_in)) throw io::file_error(input, std::string("cannot resolve: ") + std::strerror(errno));
  struct stat st {};
  const bool exists = ::stat(output.c_str(), &st) == 0;
  if (exists && !S_ISDIR(st.st_mode)) throw io::file_error(output, "exists and is not a directory (a model directory's output is one)");
  char real_out[PATH_MAX];
  const std::string parent = io::directory_of(output);
  std::string resolved;
  if (exists) {
    if (!::realpath(output.c_str(), real_out)) throw io::file_error(output, std::string("cannot resolve: ") + std::strerror(errno));
    resolved = real_out;
  } else {
    if (!::realpath(parent.c_str(), real_out)) throw io::file_error(output, "its parent directory '" + io::printable(parent) + "' does not exist");
    resolved = std::string(real_out) + "/" + io::file_name_of(output);
  }
  const std::string in_dir = real_in;
  if (resolved == in_dir || resolved.compare(0, in_dir.size() + 1, in_dir + "/") == 0)
    throw io::file_error(output, "is the input directory or inside it (refused: the input model is never written to)");
  if (exists) return false;
  if (::mkdir(output.c_str(), 0755) != 0) throw io::file_error(output, std::string("cannot create the directory: ") + std::strerror(errno));
  return true;
}

// Copies file `from` into the staged output `name` of `set`, byte for byte.
inline void stage_copy(io::output_set& set, const std::string& name, const std::string& from) {
  const io::mapped_file in(from);
  const std::string path = set.stage(name);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) throw io::file_error(path, std::string("cannot create: ") + std::strerror(errno));
  std::vector<std::uint8_t> buffer(std::size_t{1} << 20);
  std::string error;
  for (std::uint64_t at = 0; at < in.size() && error.empty();) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), in.size() - at));
    in.read(at, n, buffer.data());
    for (std::size_t put = 0; put < n;) {
      const ssize_t w = ::write(fd, buffer.data() + put, n - put);
      if (w <= 0) {
        error = std::strerror(errno);
        break;
      }
      put += static_cast<std::size_t>(w);
    }
    at += n;
  }
  if (error.empty() && ::fsync(fd) != 0) error = std::strerror(errno);
  ::close(fd);
  if (!error.empty()) throw io::file_error(set.label(), "cannot copy " + io::in_quotes(name) + ": " + error);
  in.check_unchanged();
}

// Checks the request before any work: a known format, calibration for ED/GPTQ, a layout that
// holds the format and can be written, valid regexes.
inline io::layout check_request(const quantize_request& req) {
  find_format(req.format);  // unknown_format before any work
  if (req.method != method::rtn && req.calibration.empty())
    throw invalid_argument("--method " + std::string(name_of(req.method)) +
                           " needs --calibration FILE (each weight's layer inputs as '<name>.inputs', or their statistics)");
  if (req.threads == 0) throw invalid_argument("--threads must be >= 1");
  try {
    std::regex(req.include), std::regex(req.exclude);
  } catch (const std::regex_error& e) {
    throw invalid_argument(std::string("bad --include/--exclude regex: ") + e.what());
  }
  const io::layout l = req.layout ? *req.layout : io::is_gguf_path(req.input) ? io::layout::gguf : io::layout::blockcast;
  if (!io::info(l).writable) throw invalid_argument("layout " + std::string(io::info(l).name) + " is read only (blockcast reads it, it does not write it)");
  if (!io::holds(l, req.format))
    throw invalid_argument("layout " + std::string(io::info(l).name) + " holds " + std::string(io::info(l).formats) + ", not " + req.format);
  if ((l == io::layout::gguf) != io::is_gguf_path(req.input))
    throw invalid_argument(l == io::layout::gguf ? "--layout gguf converts a GGUF file (convert a Hugging Face model with llama.cpp's convert_hf_to_gguf.py first)"
                                                 : "a GGUF input is written as GGUF (--layout gguf)");
  return l;
}

// The quantize run over a safetensors model (file, index) whose weights are `weights`, into
// `output`; `extra` adds a directory's other files.
inline std::vector<tensor_report> quantize_safetensors(const quantize_request& req, io::layout l, const std::string& weights,
                                                       const std::string& output, const progress_fn& progress,
                                                       const std::function<void(io::output_set&, const std::vector<tensor_report>&)>& extra = {}) {
  const part_choice part = req.part.empty() ? part_choice{} : parse_part(req.part);
  const io::model_files in = io::open_model(weights);
  if (!part.whole() && !in.sharded)
    throw io::file_error(weights, "--part splits a sharded model (its model.safetensors.index.json); this is a single file");
  std::unique_ptr<calibration_file> calib;
  if (!req.calibration.empty()) calib = calibration_file::open(req.calibration);
  quantize_run run{req, l, calib.get(), progress, {}, 0, io::check_shards(in), 0};
  nlohmann::json identity;  // a part's identity: what must be the same in every part of one conversion
  if (!part.whole()) {
    nlohmann::json shards = nlohmann::json::array();
    for (std::size_t i = 0; i < in.shards.size(); ++i) {
      nlohmann::json s = input_identity(in.shard_path(i));
      s["name"] = in.shards[i];
      shards.push_back(s);
    }
    identity = {{"blockcast_version", BLOCKCAST_VERSION_STRING}, {"index_metadata", in.metadata}, {"input_shards", shards},
                {"format", req.format}, {"method", name_of(req.method)}, {"layout", io::info(l).name}, {"include", req.include},
                {"exclude", req.exclude}, {"calibration", calib ? input_identity(req.calibration) : nlohmann::json()}};
  }
  visit_format(req.format, [&](auto tag) {
    using F = typename decltype(tag)::type;
    const std::vector<std::string> other_inputs = calib ? std::vector<std::string>{req.calibration} : std::vector<std::string>{};
    map_model(in, output, other_inputs, [&](const std::string& in_path, const std::string& out, const std::string& label) {
      quantize_file<F>(in_path, out, label, run);
    }, part, identity, extra ? std::function<void(io::output_set&)>([&](io::output_set& set) { extra(set, run.reports); })
                             : std::function<void(io::output_set&)>());
  });
  if (progress) progress("", run.done, run.total, run.values_done);
  return std::move(run.reports);
}

// A Hugging Face model directory into directory req.output: the weights through
// quantize_safetensors, config.json with the layout's quantization_config (and ModelOpt's
// hf_quant_config.json), every other file copied; all in one output set.
inline std::vector<tensor_report> quantize_directory(const quantize_request& req, io::layout l, const progress_fn& progress) {
  if (!req.part.empty()) throw invalid_argument("--part splits a sharded model's index, not a model directory (see docs/scale_out.md)");
  const io::model_directory m = io::open_model_directory(req.input);
  if (m.has_config && m.config.contains("quantization_config"))
    throw io::file_error(req.input + "/" + io::config_file_name, "the model is quantized already (its config has a quantization_config)");
  for (const auto& name : m.other_files)
    if (name == io::modelopt_config_file_name) throw io::file_error(req.input + "/" + name, "the model is quantized already (ModelOpt)");
  if (l != io::layout::blockcast && !m.has_config)
    throw io::file_error(req.input, std::string("has no ") + io::config_file_name + ": an engine needs it to load the quantized model");
  std::string output = req.output;
  while (output.size() > 1 && output.back() == '/') output.pop_back();
  const bool created = prepare_output_directory(req.input, output);
  try {
    auto extra = [&](io::output_set& set, const std::vector<tensor_report>& reports) {
      const std::vector<std::string> ignore = ignored_modules(reports);
      for (const auto& name : m.other_files) {
        if (name == io::config_file_name && l != io::layout::blockcast) {
          nlohmann::ordered_json config = m.config;
          config["quantization_config"] = l == io::layout::compressed_tensors ? io::compressed_tensors_config(req.format, ignore)
                                                                               : io::modelopt_config(ignore);
          set.put_text(name, config.dump(2) + "\n");
        } else {
          stage_copy(set, name, req.input + "/" + name);
        }
      }
      if (l == io::layout::modelopt)
        set.put_text(io::modelopt_config_file_name, io::modelopt_quant_config(ignore, BLOCKCAST_VERSION_STRING).dump(2) + "\n");
    };
    return quantize_safetensors(req, l, m.weights, output + "/" + io::file_name_of(m.weights), progress, extra);
  } catch (...) {
    if (created) ::rmdir(output.c_str());  // only if still empty: nothing else is ever removed
    throw;
  }
}

}  // namespace detail

std::vector<tensor_report> quantize_model(const quantize_request& req, const progress_fn& progress) {
  const io::layout l = detail::check_request(req);
  if (io::is_directory(req.input)) return detail::quantize_directory(req, l, progress);
  if (l == io::layout::gguf) return detail::quantize_gguf(req, progress);
  return detail::quantize_safetensors(req, l, req.input, req.output, progress);
}

namespace detail {

// A directory's weights must be in the layout its configuration names (io::configured_layout).
inline void check_configured_layout(io::layout expected, const std::map<std::string, io::quantized_weight>& weights, const std::string& path) {
  for (const auto& entry : weights)
    if (entry.second.where != expected)
      throw io::file_error(path, "weight " + io::in_quotes(entry.first) + " is stored as " + std::string(io::info(entry.second.where).name) +
                                     ", but the model's configuration says " + std::string(io::info(expected).name) + ": refused as inconsistent");
}

// Dequantizes one safetensors file (any layout) into `out_path`.
inline void dequantize_file(const std::string& in_path, const std::string& out_path, const std::string& label, const dequantize_request& req,
                            std::optional<io::layout> expected = {}) {
  const io::safetensors_file in(in_path);
  const auto weights = io::quantized_weights(in);
  if (expected) check_configured_layout(*expected, weights, in_path);
  const std::set<std::string> parts = io::weight_parts(in, weights);
  const io::dtype type = req.dtype == out_dtype::bf16 ? io::dtype::bf16 : io::dtype::f32;
  io::safetensors_stream_writer out(out_path, label);
  for (const auto& [key, value] : in.metadata())
    if (key.rfind("blockcast.", 0) != 0) out.set_metadata(key, value);
  // each weight where its codes were, other tensors as they were
  std::map<std::string, const io::quantized_weight*> at_codes;
  for (const auto& [name, w] : weights) at_codes[w.entries[0]] = &w;
  for (const auto& t : in.tensors()) {
    const auto w = at_codes.find(t.name);
    if (w != at_codes.end()) out.declare(w->second->name, type, w->second->shape);
    else if (!parts.count(t.name)) out.declare(t.name, t.type, t.shape);
  }
  for (const auto& t : in.tensors()) {
    const auto w = at_codes.find(t.name);
    if (w == at_codes.end()) {
      if (!parts.count(t.name)) out.write(t.name, in.bytes(t));
      continue;
    }
    visit_format(w->second->format, [&](auto tag) {
      using F = typename decltype(tag)::type;
      const auto decoded = decoded_bytes<F>(io::read_quantized_weight<F>(in, *w->second), req.dtype, req.threads);
      out.write(w->second->name, span<const std::uint8_t>(decoded.data(), decoded.size()));
    });
  }
  in.check_unchanged();
  out.commit();
}

}  // namespace detail

void dequantize_model(const dequantize_request& req) {
  if (req.threads == 0) throw invalid_argument("--threads must be >= 1");
  if (io::is_gguf_path(req.input)) return detail::dequantize_gguf(req);
  auto convert = [&](const std::string& in_path, const std::string& out_path, const std::string& label) {
    detail::dequantize_file(in_path, out_path, label, req);
  };
  if (!io::is_directory(req.input)) {
    const io::model_files model = io::open_model(req.input);
    io::check_shards(model);
    detail::map_model(model, req.output, {}, convert);
    return;
  }
  const io::model_directory m = io::open_model_directory(req.input);
  const io::layout configured = io::configured_layout(m);
  std::string output = req.output;
  while (output.size() > 1 && output.back() == '/') output.pop_back();
  const bool created = detail::prepare_output_directory(req.input, output);
  try {
    const io::model_files model = io::open_model(m.weights);
    io::check_shards(model);
    auto convert_checked = [&](const std::string& in_path, const std::string& out_path, const std::string& label) {
      detail::dequantize_file(in_path, out_path, label, req, configured);
    };
    detail::map_model(model, output + "/" + io::file_name_of(m.weights), {}, convert_checked, {}, {}, [&](io::output_set& set) {
      for (const auto& name : m.other_files) {
        if (name == io::modelopt_config_file_name) continue;
        if (name == io::config_file_name && m.config.contains("quantization_config")) {
          nlohmann::ordered_json config = m.config;
          config.erase("quantization_config");
          set.put_text(name, config.dump(2) + "\n");
        } else {
          detail::stage_copy(set, name, req.input + "/" + name);
        }
      }
    });
  } catch (...) {
    if (created) ::rmdir(output.c_str());
    throw;
  }
}

void inspect_model(const std::string& path, std::ostream& os) {
  if (io::is_gguf_path(path)) return detail::inspect_gguf(path, os);
  std::optional<io::layout> configured;
  std::string weights = path;
  if (io::is_directory(path)) {
    const io::model_directory m = io::open_model_directory(path);
    configured = io::configured_layout(m);
    weights = m.weights;
  }
  const io::model_files files = io::open_model(weights);
  io::check_shards(files);
  std::uint64_t stored = 0, as_f32 = 0, q_stored = 0, q_f32 = 0;
  std::size_t tensors = 0, quantized_count = 0;
  std::set<std::string> layouts_seen;
  char line[512];
  std::snprintf(line, sizeof line, "%-40s %-22s %-16s %12s\n", "tensor", "stored as", "shape", "bytes");
  os << line;
  for (std::size_t i = 0; i < files.shards.size(); ++i) {
    const io::safetensors_file f(files.shard_path(i));
    if (files.shards.size() > 1) os << "-- " << io::printable(files.shards[i]) << "\n";
    const auto weights_of = io::quantized_weights(f);
    if (configured) detail::check_configured_layout(*configured, weights_of, f.path());
    const std::set<std::string> parts = io::weight_parts(f, weights_of);
    std::map<std::string, const io::quantized_weight*> at_codes;
    for (const auto& [name, w] : weights_of) at_codes[w.entries[0]] = &w;
    for (const auto& t : f.tensors()) {
      const auto q = at_codes.find(t.name);
      if (q == at_codes.end() && parts.count(t.name)) continue;
      ++tensors;
      std::uint64_t bytes = t.end - t.begin;
      std::string name = t.name, as = io::name(t.type), shape = detail::shape_text(t.shape);
      std::uint64_t values = t.elements();
      if (q != at_codes.end()) {
        const io::quantized_weight& w = *q->second;
        for (std::size_t e = 1; e < w.entries.size(); ++e) bytes += f.find(w.entries[e]).end - f.find(w.entries[e]).begin;
        values = static_cast<std::uint64_t>(w.rows) * w.cols;
        name = w.name;
        as = w.format + (w.where != io::layout::blockcast ? " (" + std::string(io::info(w.where).name) + ")"
                                                          : w.method.empty() ? "" : " " + io::printable(w.method, 20));
        shape = detail::shape_text(w.shape);
        layouts_seen.insert(std::string(io::info(w.where).name));
        ++quantized_count;
        q_stored += bytes;
        q_f32 += values * 4;
      }
      stored += bytes;
      as_f32 += detail::is_float(t.type) || q != at_codes.end() ? values * 4 : bytes;
      std::snprintf(line, sizeof line, "%-40s %-22s %-16s %12llu\n", io::printable(name).c_str(), as.c_str(), shape.c_str(),
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
    std::string layout_list;
    for (const auto& l : layouts_seen) layout_list += (layout_list.empty() ? "" : ", ") + l;
    std::snprintf(line, sizeof line, "quantized tensors (%s layout): %llu bytes, %.3f bits per value, %.2fx smaller than F32\n",
                  layout_list.c_str(), static_cast<unsigned long long>(q_stored),
                  8.0 * 4 * static_cast<double>(q_stored) / static_cast<double>(q_f32), static_cast<double>(q_f32) / static_cast<double>(q_stored));
    os << line;
  }
}

void list_formats(std::ostream& os) {
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
