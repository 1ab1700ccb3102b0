// SPDX-License-Identifier: MIT
// tiny_lm: a LLaMA-architecture language model (examples/tiny_lm/train.py, committed as a
// Hugging Face model directory) quantized through the network. Every linear layer of every
// block (q, k, v, o, gate, up, down) goes to each format with RTN, error diffusion (ED) and
// GPTQ; ED and GPTQ calibrate block by block on training text that runs through the blocks
// already quantized, in the order the block uses its layers (q/k/v, then o on the output
// of the quantized q/k/v, then gate/up, then down). Statistics are accumulated window by
// window (input_stats::add for ED, X^T X for GPTQ): no layer's inputs are held whole.
// q/k/v share one statistics object, as gate/up do. The embedding, the norms and the output
// head stay in float, as engines keep them.
//
// Prints, per format and method, the held-out perplexity, its change from float, the
// weights' SQNR and the time to quantize; --svg writes the chart of the table.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "../chart.hpp"
#include "../demo_options.hpp"
#include "../method_options.hpp"
#include "blockcast/io/imatrix_file.hpp"
#include "blockcast/io/input_stats_file.hpp"
#include "blockcast/ptq.hpp"
#include "model.hpp"

namespace {

using tiny_lm::block;
using tiny_lm::for_each_window;
using tiny_lm::linear_input;
using tiny_lm::matrix;
using tiny_lm::proj;
namespace ptq = blockcast::ptq;

// ed_diag: ED from the diagonal of the same statistics alone (what an importance matrix such
// as llama.cpp's holds) with importance-weighted block-scale search.
enum class method { rtn, ed, ed_diag, gptq };
const char* name_of(method m) {
  return m == method::rtn ? "rtn" : m == method::ed ? "ed" : m == method::ed_diag ? "ed-diag" : "gptq";
}

struct quantized_model {
  std::vector<block> blocks;
  double seconds = 0;
};

/// Statistics of one group of layers' inputs, accumulated a window at a time.
struct group_statistics {
  group_statistics(Eigen::Index k, std::size_t sketch)
      : ed(static_cast<std::size_t>(k), sketch), hessian(Eigen::MatrixXd::Zero(k, k)) {}
  void add(const matrix& x, method m) {
    if (m != method::gptq) ed.add(x);
    else hessian.selfadjointView<Eigen::Lower>().rankUpdate(x.transpose().cast<double>());
    count += static_cast<std::size_t>(x.rows());
  }
  Eigen::MatrixXf gptq_factor(double damp) const {
    const Eigen::MatrixXd h = hessian.selfadjointView<Eigen::Lower>();
    return ptq::gptq_factor_from_hessian((h / static_cast<double>(count)).cast<float>(), damp);
  }
  ptq::input_stats ed;
  Eigen::MatrixXd hessian;
  std::size_t count = 0;
};

template <class Format>
quantized_model quantize(const tiny_lm::model& m, method how, const std::string& calibration, unsigned threads,
                         const demo::method_options& mo) {
  const auto start = std::chrono::steady_clock::now();
  blockcast::cast_options cast;
  cast.threads = threads;
  quantized_model q{m.blocks, 0};
  if (how == method::rtn) {
    for (auto& b : q.blocks)
      for (proj p : tiny_lm::projections) b[p] = ptq::rtn<Format>(b[p], cast).dequantized;
  } else {
    // the residual stream of every calibration window, through the blocks quantized so far
    const std::size_t window = static_cast<std::size_t>(m.cfg.context), windows = calibration.size() / window;
    std::vector<matrix> stream(windows);
    for_each_window(windows, threads, [&](std::size_t w) {
      stream[w] = m.embed_bytes(reinterpret_cast<const std::uint8_t*>(calibration.data()) + w * window, m.cfg.context);
    });
    for (block& b : q.blocks) {
      for (linear_input kind : {linear_input::attention, linear_input::attention_output, linear_input::mlp,
                                linear_input::mlp_hidden}) {
        const Eigen::Index k = kind == linear_input::mlp_hidden ? m.cfg.intermediate : m.cfg.hidden;
        group_statistics stats(k, mo.sketch);
        // inputs computed in parallel a batch of windows at a time, added in window order
        constexpr std::size_t batch = 8;
        std::vector<matrix> inputs(batch);
        for (std::size_t w0 = 0; w0 < windows; w0 += batch) {
          const std::size_t n = std::min(batch, windows - w0);
          for_each_window(n, threads, [&](std::size_t i) { inputs[i] = m.linear_inputs(b, stream[w0 + i], kind); });
          for (std::size_t i = 0; i < n; ++i) stats.add(inputs[i], how);
        }
        Eigen::MatrixXf factor;
        if (how == method::gptq) factor = stats.gptq_factor(mo.gptq.damp);
        for (proj p : tiny_lm::projections) {
          if (tiny_lm::input_of(p) != kind) continue;
          if (how == method::ed) {
            b[p] = ptq::error_diffusion<Format>(b[p], stats.ed, mo.ed_with(cast)).dequantized;
          } else if (how == method::ed_diag) {
            ptq::ed_options opt;  // the defaults, as the CLI runs ED from an importance matrix
            opt.cast = cast;
            b[p] = ptq::error_diffusion<Format>(b[p], ptq::diagonal_model(stats.ed.mean_square()), opt).dequantized;
          } else {
            b[p] = ptq::gptq_with_factor<Format>(b[p], factor, mo.gptq_with(cast)).dequantized;
          }
        }
      }
      for_each_window(windows, threads, [&](std::size_t w) { stream[w] = m.block_forward(b, std::move(stream[w])); });
    }
  }
  q.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return q;
}

/// The statistics (input_stats::add) of every projection's inputs on the float model over the
/// calibration text, by stored weight name: what tools/collect_stats.py gathers from the
/// PyTorch model, for `blockcast quantize --calibration`. q/k/v (and gate/up) get one object.
std::map<std::string, ptq::input_stats> float_model_stats(const tiny_lm::model& m, const std::string& calibration,
                                                          unsigned threads) {
  const std::size_t window = static_cast<std::size_t>(m.cfg.context), windows = calibration.size() / window;
  std::vector<matrix> stream(windows);
  for_each_window(windows, threads, [&](std::size_t w) {
    stream[w] = m.embed_bytes(reinterpret_cast<const std::uint8_t*>(calibration.data()) + w * window, m.cfg.context);
  });
  std::map<std::string, ptq::input_stats> out;
  for (std::size_t l = 0; l < m.blocks.size(); ++l) {
    const block& b = m.blocks[l];
    for (linear_input kind : {linear_input::attention, linear_input::attention_output, linear_input::mlp,
                              linear_input::mlp_hidden}) {
      ptq::input_stats stats(static_cast<std::size_t>(kind == linear_input::mlp_hidden ? m.cfg.intermediate : m.cfg.hidden));
      std::vector<matrix> inputs(windows);
      for_each_window(windows, threads, [&](std::size_t w) { inputs[w] = m.linear_inputs(b, stream[w], kind); });
      for (const matrix& x : inputs) stats.add(x);  // in window order, as Python adds them
      for (proj p : tiny_lm::projections)
        if (tiny_lm::input_of(p) == kind) out.emplace(tiny_lm::model::tensor_name(static_cast<int>(l), p), stats);
    }
    for_each_window(windows, threads, [&](std::size_t w) { stream[w] = m.block_forward(b, std::move(stream[w])); });
  }
  return out;
}

/// --check-checkpoint: the checkpoint `blockcast quantize --method ed --calibration <stats>`
/// wrote must hold exactly the weights ED gives here in process from the same statistics file,
/// and so the same held-out perplexity. Returns the process's exit code.
int check_checkpoint(const tiny_lm::model& m, const std::string& dir, const std::string& stats_path, const std::string& text,
                     unsigned threads) {
  const tiny_lm::model written = tiny_lm::model::load(dir);
  // statistics (ED), or an importance matrix (ED from its diagonal, with scale search)
  const bool imatrix = blockcast::io::is_imatrix_file(stats_path);
  const std::optional<blockcast::io::importance_matrix> importance =
      imatrix ? std::optional(blockcast::io::read_imatrix(stats_path)) : std::nullopt;
  const std::optional<blockcast::io::safetensors_file> stats_file =
      imatrix ? std::nullopt : std::optional<blockcast::io::safetensors_file>(stats_path);
  const auto formats = blockcast::io::quantized_weights(blockcast::io::safetensors_file(dir + "/model.safetensors"));
  std::vector<block> here = m.blocks;
  std::size_t differing = 0, compared = 0;
  for (std::size_t l = 0; l < here.size(); ++l)
    for (proj p : tiny_lm::projections) {
      const std::string name = tiny_lm::model::tensor_name(static_cast<int>(l), p);
      const auto w = formats.find(name);
      if (w == formats.end()) throw std::runtime_error(dir + ": " + name + " is not quantized");
      ptq::ed_options opt;
      ptq::ed_model model;
      if (importance) {
        const blockcast::io::importance* imp = importance->find(name);
        if (!imp) throw std::runtime_error(stats_path + ": no entry for " + name);
        model = ptq::diagonal_model(Eigen::Map<const Eigen::VectorXd>(imp->mean_square.data(),
                                                                      static_cast<Eigen::Index>(imp->mean_square.size())));
      } else {
        model = blockcast::io::read_input_stats(*stats_file, name).model(opt.rank, opt.damp);
      }
      blockcast::visit_format(w->second.format, [&](auto tag) {
        here[l][p] = ptq::error_diffusion<typename decltype(tag)::type>(m.blocks[l][p], model, opt).dequantized;
      });
      const matrix& got = written.blocks[l][p];
      for (Eigen::Index i = 0; i < got.size(); ++i) {
        if (std::memcmp(got.data() + i, here[l][p].data() + i, sizeof(float)) != 0 && differing++ < 5)
          std::printf("  %s value %ld: the checkpoint holds %g, ED here gives %g\n", name.c_str(), static_cast<long>(i),
                      static_cast<double>(got.data()[i]), static_cast<double>(here[l][p].data()[i]));
      }
      compared += static_cast<std::size_t>(got.size());
    }
  const double from_file = tiny_lm::perplexity(written, written.blocks, text, threads).perplexity;
  const double in_process = tiny_lm::perplexity(m, here, text, threads).perplexity;
  std::printf("checkpoint %s (%s): held-out perplexity %.6f; ED in process from %s: %.6f; %zu of %zu weights differ\n",
              dir.c_str(), formats.begin()->second.format.c_str(), from_file, stats_path.c_str(), in_process, differing,
              compared);
  return differing == 0 && from_file == in_process ? 0 : 1;
}

double weight_sqnr_db(const tiny_lm::model& m, const std::vector<block>& q) {
  double signal = 0, noise = 0;
  for (std::size_t l = 0; l < q.size(); ++l)
    for (proj p : tiny_lm::projections) {
      signal += m.blocks[l][p].cast<double>().squaredNorm();
      noise += (m.blocks[l][p] - q[l][p]).cast<double>().squaredNorm();
    }
  return noise == 0 ? INFINITY : 10 * std::log10(signal / noise);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tiny_lm: a LLaMA-architecture model quantized to every format with RTN, ED and GPTQ"};
  std::string dir = BLOCKCAST_TINY_LM_DIR, model_dir, record, heldout, calibration_text;
  std::string formats, methods = "rtn,ed,gptq", svg;
  unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  std::size_t calibration_bytes = 16384;
  std::string stats_out, checkpoint, stats_in;
  std::vector<std::string> imatrix_out;
  demo::method_options options;
  bool float_only = false;
  app.add_option("--model", model_dir, "the Hugging Face model directory (default: the committed one)");
  app.add_option("--record", record, "the training record (JSON) with the float held-out perplexity");
  app.add_option("--heldout", heldout, "the held-out text the perplexity is measured on");
  app.add_option("--calibration", calibration_text, "the training text ED and GPTQ calibrate on");
  app.add_option("--calibration-bytes", calibration_bytes, "how much of it (whole windows of the context)")
      ->capture_default_str();
  app.add_option("--formats", formats, "comma-separated formats (default: every preset)");
  app.add_option("--methods", methods, "comma-separated methods among rtn, ed, ed-diag (ED from the statistics' diagonal alone, as from an importance matrix), gptq")->capture_default_str();
  app.add_option("--threads", threads, "threads")->check(CLI::Range(1u, 256u));
  app.add_option("--svg", svg, "write the chart of the table to this SVG file");
  options.add_to(app);
  app.add_flag("--float-only", float_only, "evaluate the float model only; exit 1 unless it matches the record (relative 1e-4)");
  app.add_option("--stats-out", stats_out,
                 "write the float model's input statistics of every projection over the calibration text "
                 "(docs/calibration_stats.md), then exit");
  app.add_option("--imatrix-out", imatrix_out,
                 "write the same statistics' diagonal as a llama.cpp importance matrix (.gguf, or legacy .dat), then exit "
                 "(repeatable; with --stats-out, from the same pass)");
  app.add_option("--check-checkpoint", checkpoint,
                 "a model directory written by `blockcast quantize --method ed --calibration STATS`: exit 1 unless its "
                 "weights and perplexity are those of ED in process from STATS (--stats)");
  app.add_option("--stats", stats_in, "the statistics file or importance matrix --check-checkpoint was quantized with");
  CLI11_PARSE(app, argc, argv);
  if (!checkpoint.empty() && stats_in.empty()) {
    std::fprintf(stderr, "tiny_lm: --check-checkpoint needs --stats\n");
    return 2;
  }
  if (model_dir.empty()) model_dir = dir + "/model";
  if (record.empty()) record = dir + "/record.json";
  if (heldout.empty()) heldout = dir + "/data/heldout.txt";
  if (calibration_text.empty()) calibration_text = dir + "/data/calibration.txt";

  try {
    const bool tty = ::isatty(2);
    const tiny_lm::model m = tiny_lm::model::load(model_dir);
    const std::string text = tiny_lm::read_text(heldout);
    std::ifstream record_file(record);
    if (!record_file) throw std::runtime_error(record + ": cannot open");
    const auto recorded = nlohmann::json::parse(record_file);
    const double recorded_ppl = recorded.at("heldout_perplexity").get<double>();

    const auto float_result = tiny_lm::perplexity(m, m.blocks, text, threads);
    const double relative = std::abs(float_result.perplexity - recorded_ppl) / recorded_ppl;
    const auto recorded_bytes = recorded.at("eval_windows").get<std::size_t>() * recorded.at("context").get<std::size_t>();
    if (text.size() == recorded_bytes)
      std::printf("float model: held-out perplexity %.4f over %zu bytes (the training script recorded %.4f; relative "
                  "difference %.1e)\n",
                  float_result.perplexity, float_result.predicted, recorded_ppl, relative);
    else  // another text (data/heldout_all.txt): the record is of the first 16 KB
      std::printf("float model: held-out perplexity %.4f over %zu bytes of %s\n", float_result.perplexity,
                  float_result.predicted, heldout.c_str());
    if (float_only) return relative <= 1e-4 ? 0 : 1;
    if (!checkpoint.empty()) return check_checkpoint(m, checkpoint, stats_in, text, threads);

    std::string calibration = tiny_lm::read_text(calibration_text);
    calibration.resize(std::min(calibration.size(), calibration_bytes));
    if (calibration.size() < static_cast<std::size_t>(m.cfg.context))
      throw std::runtime_error(calibration_text + ": less calibration text than one window");
    if (!stats_out.empty() || !imatrix_out.empty()) {
      const auto stats = float_model_stats(m, calibration, threads);
      const std::size_t windows = calibration.size() / static_cast<std::size_t>(m.cfg.context);
      if (!stats_out.empty()) {
        blockcast::io::safetensors_writer out(stats_out);
        for (const auto& [name, st] : stats) blockcast::io::add_input_stats(out, name, st);
        out.commit();
        std::printf("wrote %s: statistics of %zu weights' inputs over %zu bytes of calibration text\n", stats_out.c_str(),
                    stats.size(), windows * static_cast<std::size_t>(m.cfg.context));
      }
      std::map<std::string, blockcast::io::importance> weights;  // llama.cpp's names
      for (const auto& [name, st] : stats) {
        const Eigen::VectorXd ms = st.mean_square();
        weights[blockcast::io::gguf_weight_name(name)] = {std::vector<double>(ms.data(), ms.data() + ms.size()),
                                                          static_cast<double>(st.count())};
      }
      for (const std::string& path : imatrix_out) {
        const bool dat = path.size() > 4 && path.compare(path.size() - 4, 4, ".dat") == 0;
        if (dat) blockcast::io::write_imatrix_dat(path, weights, static_cast<std::int32_t>(windows));
        else blockcast::io::write_imatrix_gguf(path, weights);
        std::printf("wrote %s: importance matrix (%s) of %zu weights\n", path.c_str(), dat ? "legacy .dat" : "GGUF",
                    weights.size());
      }
      return 0;
    }

    const std::vector<std::string> format_names = demo::format_list(formats);
    std::vector<method> method_list;
    for (const auto& name : demo::split(methods)) {
      if (name == "rtn") method_list.push_back(method::rtn);
      else if (name == "ed") method_list.push_back(method::ed);
      else if (name == "ed-diag") method_list.push_back(method::ed_diag);
      else if (name == "gptq") method_list.push_back(method::gptq);
      else throw std::runtime_error("unknown method '" + name + "' (known: rtn, ed, ed-diag, gptq)");
    }

    const std::size_t total = format_names.size() * method_list.size();
    std::size_t done = 0;
    std::vector<chart::row> rows;
    std::printf("\n%-11s %5s  %-7s %10s %9s %12s %9s\n", "format", "bits", "method", "perplexity", "vs float",
                "weight SQNR", "time");
    for (const auto& format : format_names) {
      const double bits = blockcast::find_format(format).bits_per_value;
      for (method how : method_list) {
        std::fprintf(stderr, tty ? "\r[%2zu/%zu] %-11s %-5s quantizing and evaluating...\033[K" : "[%2zu/%zu] %s %s\n",
                     ++done, total, format.c_str(), name_of(how));
        const quantized_model q = blockcast::visit_format(format, [&](auto tag) {
          return quantize<typename decltype(tag)::type>(m, how, calibration, threads, options);
        });
        const auto r = tiny_lm::perplexity(m, q.blocks, text, threads);
        const double increase = 100.0 * (r.perplexity / float_result.perplexity - 1.0), sqnr = weight_sqnr_db(m, q.blocks);
        if (tty) std::fprintf(stderr, "\r\033[K");
        std::printf("%-11s %5.2f  %-7s %10.4f %+8.2f%% %9.1f dB %7.2f s\n", format.c_str(), bits, name_of(how), r.perplexity,
                    increase, sqnr, q.seconds);
        rows.push_back({format, name_of(how), bits, std::max(increase, 0.01), sqnr});
        std::fflush(stdout);
      }
    }
    std::printf("\nperplexity is on the %zu held-out bytes; every linear layer of every block is quantized (embedding,\n"
                "norms and output head stay float); ED and GPTQ calibrate on %zu bytes of training text, block by block\n"
                "through the quantized blocks; time includes those passes (%u threads).\n",
                float_result.predicted, calibration.size() / m.cfg.context * m.cfg.context, threads);
    if (!svg.empty()) {
      chart::write(svg, rows, {"perplexity increase over float, % (lower is better)", true, NAN},
                   {"weight SQNR, dB (higher is better)", false, NAN});
      std::fprintf(stderr, "wrote %s\n", svg.c_str());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tiny_lm: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
