// SPDX-License-Identifier: MIT
// What a command is asked to do and what it reports: the requests (options parsed into enums
// once), the per-tensor report, progress callbacks, and the helpers every conversion uses
// (calibration inputs, shape text).
#pragma once

#include <sched.h>
#include <sys/stat.h>

#include <Eigen/Dense>

#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "blockcast/io/imatrix_file.hpp"
#include "blockcast/io/input_stats_file.hpp"
#include "blockcast/io/layout.hpp"
#include "blockcast/io/model_directory.hpp"
#include "blockcast/io/model_files.hpp"
#include "blockcast/io/safetensors.hpp"
#include "blockcast/ptq.hpp"
#include "options.hpp"
#include "pipeline.hpp"

namespace blockcast::cli {


/// The CPUs this process may run on (its affinity mask): the default thread count.
inline unsigned available_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return static_cast<unsigned>(CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

struct quantize_request {
  std::string input, output, format = "mxfp4";
  cli::method method = method::rtn;
  std::optional<io::layout> layout;      // default: gguf for a .gguf input, else blockcast
  std::string calibration;
  std::string include = ".*", exclude;  // ECMAScript regexes searched in tensor names
  std::string part;                      // "i/n": only part i of n of a sharded model (parts.hpp)
  unsigned threads = available_cores();
  detail::pipeline_sizes sizes;  // how tensors are cut (not on the command line: the output never depends on it)
};

struct dequantize_request {
  std::string input, output;
  out_dtype dtype = out_dtype::bf16;
  unsigned threads = available_cores();
};

/// One line of the quantize summary.
struct tensor_report {
  std::string name, shape, stored;  // stored: "mxfp4 ed", or "copied (F32)"; name printable
  std::string tensor;               // the name as stored
  std::string note;                 // why a weight was left unquantized (layout or default), if it was
  bool quantized = false;
  bool calibrated = false;          // measured on raw calibration inputs: output_sqnr_db is one (statistics give none)
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

// The input files of a run, identified by device and inode (stat'ed once).
struct input_file {
  std::string path;
  struct stat id;
};
inline std::vector<input_file> identify_inputs(const std::vector<std::string>& paths) {
  std::vector<input_file> out;
  for (const auto& p : paths) {
    struct stat st {};
    if (::stat(p.c_str(), &st) == 0) out.push_back({p, st});
  }
  return out;
}

// Refuses writing `out`, one file of the output the user named `label`, when it exists and is
// not a regular file, or is (by inode, whatever its name) one of `inputs`, except input
// `replaceable` when `out` is the same directory entry (a file replaced by its new version).
inline void refuse_overwrite(const std::string& label, const std::string& out, const std::vector<input_file>& inputs,
                             const std::string& replaceable = {}) {
  struct stat st {};
  if (::stat(out.c_str(), &st) != 0) return;
  if (!S_ISREG(st.st_mode)) throw io::file_error(label, "'" + io::printable(out) + "' exists and is not a regular file");
  for (const auto& in : inputs) {
    if (st.st_dev != in.id.st_dev || st.st_ino != in.id.st_ino) continue;
    if (!replaceable.empty() && in.path == replaceable && same_entry(out, replaceable)) continue;
    throw io::file_error(label, "writing it would overwrite the input file '" + io::printable(in.path) +
                                    "' (refused: choose an output that is not one of the input files)");
  }
}

// What a run does with a tensor: quantize it, or keep it as it is; `kept` says why a weight
// the run would have quantized is kept (the layout cannot hold it, or the engines' quantizers
// leave it: io::kept_by_default).
struct tensor_choice {
  bool quantize = false;
  std::string kept;
};

// The name rules of a run, for a tensor that could be quantized (a float matrix): --include
// (default: everything; for an engine layout, what the engines' quantizers quantize) and
// --exclude. `file` names the input in the error for a name too long to match.
class name_rules {
 public:
  name_rules(const quantize_request& req, io::layout l)
      : everything_(req.include.empty() || req.include == ".*"), matches_exclude_(!req.exclude.empty()), layout_(l),
        include_(everything_ ? "" : req.include), exclude_(req.exclude) {}

  tensor_choice choose(const std::string& name, const std::string& file) const {
    tensor_choice c{true, {}};
    if ((!everything_ || matches_exclude_) && name.size() > max_matched_name)
      throw io::file_error(file, "tensor name of " + std::to_string(name.size()) + " bytes (" + io::in_quotes(name) +
                                     ") is too long to match --include/--exclude against (limit " + std::to_string(max_matched_name) + ")");
    if (!everything_) c.quantize = std::regex_search(name, include_);
    else if (layout_ != io::layout::blockcast) c.kept = io::kept_by_default(layout_, name);
    if (c.quantize && matches_exclude_) c.quantize = !std::regex_search(name, exclude_);
    if (!c.kept.empty()) c.quantize = false;
    return c;
  }

 private:
  bool everything_, matches_exclude_;
  io::layout layout_;
  std::regex include_, exclude_;
};

// The values of packed `p` decoded to BF16 or F32, as the bytes a file stores.
template <class Format>
std::vector<std::uint8_t> decoded_bytes(packed_view<Format> p, out_dtype type, unsigned threads) {
  cast_options cast;
  cast.threads = threads;
  std::vector<std::uint8_t> out(p.rows() * p.cols() * (type == out_dtype::bf16 ? 2 : 4));
  if (type == out_dtype::bf16) blockcast::dequantize_bf16(p, reinterpret_cast<std::uint16_t*>(out.data()), cast);
  else blockcast::dequantize(p, reinterpret_cast<float*>(out.data()), cast);
  return out;
}

// The calibration inputs of weight `name` (N x cols), from "<name>.inputs", checked finite.
inline ptq::matrix calibration_inputs(const io::safetensors_file& calib, const std::string& name, std::size_t cols) {
  const std::string key = name + ".inputs";
  if (!calib.contains(key))
    throw io::file_error(calib.path(), "no tensor " + io::in_quotes(key) + " (ED and GPTQ need each quantized weight's layer inputs, N x " +
                                       std::to_string(cols) + ")");
  const auto& t = calib.find(key);
  if (!is_float(t.type) || t.shape.size() != 2 || t.shape[1] != cols || t.shape[0] == 0)
    throw io::file_error(calib.path(), "tensor " + io::in_quotes(key) + " has shape " + shape_text(t.shape) + " (" + io::name(t.type) +
                                       "), expected N x " + std::to_string(cols) + " floats (N >= 1 samples of the weight's input)");
  const auto values = calib.to_float(t);
  ptq::matrix x = Eigen::Map<const ptq::matrix>(values.data(), static_cast<Eigen::Index>(t.shape[0]), static_cast<Eigen::Index>(cols));
  try {
    ptq::detail::require_finite_inputs(x, "calibration");
  } catch (const blockcast::invalid_argument& e) {
    throw io::file_error(calib.path(), "tensor " + io::in_quotes(key) + ": " + e.what());
  }
  return x;
}

/// The --calibration file: safetensors (raw inputs "<weight>.inputs" or statistics) or a
/// llama.cpp importance matrix (GGUF or legacy .dat), which is read whole when opened.
struct calibration_file {
  std::unique_ptr<io::safetensors_file> tensors;
  std::optional<io::importance_matrix> imatrix;

  static std::unique_ptr<calibration_file> open(const std::string& path) {
    auto c = std::make_unique<calibration_file>();
    if (io::is_imatrix_file(path)) c->imatrix = io::read_imatrix(path);
    else c->tensors = std::make_unique<io::safetensors_file>(path);
    return c;
  }
  /// A file that changed while it was read fails the run (the importance matrix was read whole).
  void check_unchanged() const {
    if (tensors) tensors->check_unchanged();
  }
};

// How weight `name` (K = cols) is quantized given an importance matrix: ED from its diagonal
// model with importance-weighted block-scale search (without the search ED would be RTN).
inline method_plan importance_plan(method m, const io::importance_matrix& imatrix, const std::string& name, std::size_t cols) {
  const io::importance* imp = imatrix.find(name);
  if (!imp)
    throw io::file_error(imatrix.path, "no entry for " + io::in_quotes(name) + " (nor " + io::in_quotes(io::gguf_weight_name(name)) +
                                           "): exclude the weight (--exclude) or use an importance matrix of this model");
  if (m == method::gptq)
    throw io::file_error(imatrix.path, "an importance matrix holds only H's diagonal; GPTQ needs H itself: use --method ed");
  if (imp->mean_square.size() != cols)
    throw io::file_error(imatrix.path, "the entry for " + io::in_quotes(name) + " has " + std::to_string(imp->mean_square.size()) +
                                           " input channels, the weight has K = " + std::to_string(cols));
  method_plan plan{m, nullptr, {}, {}};
  // ED's defaults include the block-scale search: with a diagonal model, all it can do beyond RTN
  plan.ed = ptq::diagonal_model(Eigen::Map<const Eigen::VectorXd>(imp->mean_square.data(), static_cast<Eigen::Index>(cols)));
  return plan;
}

// How weight `name` (K = cols) is quantized given the calibration file, if any: from stored
// statistics (io/input_stats_file.hpp) when the file has them for this weight, from an
// importance matrix's diagonal (importance_plan), else from its
// raw inputs "<name>.inputs", kept in `inputs` (the report's output SQNR needs them; with
// statistics there is none). GPTQ needs H itself, so from statistics only exact ones (K <=
// sketch size) serve it.
inline method_plan calibrated_plan(method m, const calibration_file* file, const std::string& name, std::size_t cols,
                                   unsigned threads, ptq::matrix& inputs) {
  if (file && file->imatrix) return importance_plan(m, *file->imatrix, name, cols);
  const io::safetensors_file* calib = file ? file->tensors.get() : nullptr;
  if (calib && io::has_input_stats(*calib, name)) {
    const ptq::input_stats stats = io::read_input_stats(*calib, name);
    const std::string what = "the input statistics of " + io::in_quotes(name);
    if (stats.channels() != cols)
      throw io::file_error(calib->path(), what + " are for K = " + std::to_string(stats.channels()) +
                                              " input channels, the weight has K = " + std::to_string(cols));
    if (stats.count() == 0) throw io::file_error(calib->path(), what + " hold no samples");
    method_plan plan{m, nullptr, {}, {}};
    if (m == method::ed) plan.ed = stats.model();
    if (m == method::gptq) {
      if (!stats.exact())
        throw io::file_error(calib->path(), what + " are sketched (K = " + std::to_string(cols) + ", sketch size " +
                                                std::to_string(stats.sketch_size()) +
                                                "); GPTQ needs H itself: collect them with a sketch size of at least K, or "
                                                "use --method ed");
      const ptq::input_stats_state st = stats.state();
      plan.gptq_factor = ptq::gptq_factor_from_hessian((st.moments / static_cast<double>(st.count)).cast<float>(),
                                                       ptq::gptq_options{}.damp);
    }
    return plan;
  }
  if (calib) inputs = calibration_inputs(*calib, name, cols);
  return plan_method(m, calib ? &inputs : nullptr, threads);
}

}  // namespace detail

}  // namespace blockcast::cli
