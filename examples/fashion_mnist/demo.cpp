// SPDX-License-Identifier: MIT
// The blockcast demo: a real network on real data. Loads the committed Fashion-MNIST CNN,
// evaluates it in float on the 10,000 test images, then quantizes every weight layer to every
// preset format with RTN, error diffusion (ED) and GPTQ -- ED and GPTQ calibrated on 1,000
// training images, layer by layer through the already-quantized network -- and prints what
// each does: top-1, its change from float, the logits' MSE against the float model, the
// weights' SQNR and the time to quantize. Writes an SVG chart of the table and, for the
// command-line tool, a calibration file of the float network's layer inputs.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <regex>
#include <sstream>

#include "blockcast/io/safetensors.hpp"
#include "blockcast/ptq.hpp"
#include "../chart.hpp"
#include "../demo_options.hpp"
#include "../method_options.hpp"
#include "cnn.hpp"
#include "idx.hpp"

namespace {

using fashion::activation;
using fashion::cnn;
using fashion::matrix;
namespace ptq = blockcast::ptq;

struct dataset {
  fashion::idx_array images, labels;
  int size() const { return static_cast<int>(images.dims[0]); }
};

dataset load(const std::string& dir, const std::string& prefix, std::size_t count) {
  dataset d{fashion::read_idx(dir + "/" + prefix + "-images-idx3-ubyte.gz", count),
            fashion::read_idx(dir + "/" + prefix + "-labels-idx1-ubyte.gz", count)};
  if (d.images.dims.size() != 3 || d.images.dims[1] != 28 || d.images.dims[2] != 28 || d.labels.dims[0] != d.images.dims[0])
    throw std::runtime_error(dir + ": " + prefix + " images and labels do not match");
  return d;
}

// The quantized weights of every layer, and the time it took (calibration passes included).
struct quantized_network {
  std::vector<matrix> weights;
  double seconds = 0;
};

// Which layers are quantized, and what ED and GPTQ calibrate on.
struct quantize_choice {
  std::regex layers{".*"};     // weight names of the layers to quantize (the others stay float)
  bool float_inputs = false;   // each layer's input through the float network (as a --calibration dump
                               // gives `blockcast quantize`), not through the quantized layers before it
};

template <class Format>
quantized_network quantize_network(const cnn& net, const std::string& method, const activation& calibration,
                                   unsigned threads, const quantize_choice& choice, const demo::method_options& mo) {
  const auto start = std::chrono::steady_clock::now();
  blockcast::cast_options cast;
  cast.threads = threads;
  quantized_network q;
  activation a = calibration;  // the input of layer l through the already-quantized layers
  for (std::size_t l = 0; l < net.layers.size(); ++l) {
    const matrix& w = net.layers[l].weight;
    const bool quantized = std::regex_search(net.layers[l].name, choice.layers);
    if (method == "rtn") {
      q.weights.push_back(quantized ? ptq::rtn<Format>(w, cast).dequantized : w);
      continue;
    }
    const matrix x = net.layer_input(l, a);
    matrix wq;
    if (!quantized) {
      wq = w;
    } else if (method == "ed") {
      wq = ptq::error_diffusion<Format>(w, ptq::input_stats::from(x, mo.sketch, 0, threads), mo.ed_with(cast)).dequantized;
    } else {
      wq = ptq::gptq<Format>(w, x, mo.gptq_with(cast)).dequantized;
    }
    if (l + 1 < net.layers.size()) a = net.layer_output(l, a, x, choice.float_inputs ? w : wq);
    q.weights.push_back(std::move(wq));
  }
  q.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return q;
}

double weight_sqnr_db(const cnn& net, const std::vector<matrix>& q) {
  double signal = 0, noise = 0;
  for (std::size_t l = 0; l < q.size(); ++l) {
    signal += net.layers[l].weight.cast<double>().squaredNorm();
    noise += (net.layers[l].weight - q[l]).cast<double>().squaredNorm();
  }
  return noise == 0 ? INFINITY : 10 * std::log10(signal / noise);
}

// The float network's layer inputs on the calibration images, as an engine would dump them:
// "<weight>.inputs", at most `max_rows` evenly spaced samples per layer.
void write_calibration(const cnn& net, const activation& calibration, const std::string& path, Eigen::Index max_rows) {
  blockcast::io::safetensors_writer out(path);
  activation a = calibration;
  for (std::size_t l = 0; l < net.layers.size(); ++l) {
    const matrix x = net.layer_input(l, a);
    const Eigen::Index rows = std::min(max_rows, x.rows());
    matrix sample(rows, x.cols());
    for (Eigen::Index i = 0; i < rows; ++i) sample.row(i) = x.row(i * x.rows() / rows);
    out.add_f32(net.layers[l].name + ".inputs", {static_cast<std::uint64_t>(rows), static_cast<std::uint64_t>(x.cols())},
                blockcast::span<const float>(sample.data(), static_cast<std::size_t>(sample.size())));
    a = net.layer_output(l, a, x, net.layers[l].weight);
  }
  out.set_metadata("blockcast.calibration", "float-network layer inputs of examples/fashion_mnist, rows = samples");
  out.commit();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"blockcast demo: a Fashion-MNIST CNN quantized to every format with RTN, ED and GPTQ"};
  std::string model = BLOCKCAST_FASHION_DIR "/model.safetensors", record = BLOCKCAST_FASHION_DIR "/model.json";
  std::string data = "/usr/share/datasets/fashion-mnist", svg, calibration_out;
  std::string formats, methods = "rtn,ed,gptq";
  unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  int calibration_images = 1000;
  bool float_only = false;
  std::string layers = ".*";
  quantize_choice choice;
  demo::method_options options;
  app.add_option("--model", model, "the network's weights (safetensors)");
  app.add_option("--record", record, "the training script's record of the float accuracy (JSON)");
  app.add_option("--data", data, "the Fashion-MNIST directory (gzipped IDX files)");
  app.add_option("--formats", formats, "comma-separated formats (default: every preset)");
  app.add_option("--methods", methods, "comma-separated methods among rtn, ed, gptq");
  app.add_option("--calibration-images", calibration_images, "training images ED and GPTQ calibrate on")->check(CLI::Range(1, 60000));
  app.add_option("--threads", threads, "threads for evaluation and quantization")->check(CLI::Range(1u, 256u));
  app.add_option("--svg", svg, "write the chart of the table to this SVG file");
  app.add_option("--calibration-out", calibration_out, "write the float network's layer inputs for `blockcast quantize --calibration`");
  app.add_option("--layers", layers, "quantize only the layers whose weight name matches this regex (e.g. '^fc': what "
                                    "engine layouts hold); the others stay float")->capture_default_str();
  app.add_flag("--calibrate-on-float", choice.float_inputs, "ED and GPTQ calibrate each layer on its float-network input, as "
                                                            "`blockcast quantize --calibration` does with --calibration-out's file");
  app.add_flag("--float-only", float_only, "evaluate the float model only; exit 1 unless it matches the recorded accuracy");
  options.add_to(app);
  CLI11_PARSE(app, argc, argv);

  try {
    const bool tty = ::isatty(2);
    choice.layers = std::regex(layers);
    const cnn net = cnn::load(model);
    std::ifstream record_file(record);
    if (!record_file) throw std::runtime_error(record + ": cannot open");
    const auto recorded = nlohmann::json::parse(record_file);
    const int recorded_correct = recorded.at("test_correct").get<int>();

    std::fprintf(stderr, "loading Fashion-MNIST from %s\n", data.c_str());
    const dataset test = load(data, "t10k", SIZE_MAX);
    const dataset train = load(data, "train", static_cast<std::size_t>(calibration_images));
    const matrix float_logits = net.logits(test.images.data.data(), test.size(), net.float_weights(), threads);
    const int float_correct = fashion::correct(float_logits, test.labels.data.data());
    const double float_top1 = 100.0 * float_correct / test.size();
    std::printf("float model: top-1 %.2f%% (%d / %d test images; the training script recorded %d)\n", float_top1,
                float_correct, test.size(), recorded_correct);
    const activation calibration = net.input(train.images.data.data(), train.size());
    if (!calibration_out.empty()) {
      write_calibration(net, calibration, calibration_out, 4096);
      std::fprintf(stderr, "wrote %s\n", calibration_out.c_str());
    }
    if (float_only) return float_correct == recorded_correct ? 0 : 1;

    const std::vector<std::string> format_names = demo::format_list(formats);
    const std::vector<std::string> method_names = demo::split(methods);
    for (const auto& m : method_names)
      if (m != "rtn" && m != "ed" && m != "gptq") throw std::runtime_error("unknown method '" + m + "' (known: rtn, ed, gptq)");

    std::vector<chart::row> rows;
    const std::size_t total = format_names.size() * method_names.size();
    std::printf("\n%-11s %5s  %-6s %8s %9s %11s %12s %9s\n", "format", "bits", "method", "top-1", "vs float", "logit MSE",
                "weight SQNR", "time");
    for (const auto& format : format_names) {
      const double bits = blockcast::find_format(format).bits_per_value;
      for (const auto& method : method_names) {
        std::fprintf(stderr, tty ? "\r[%2zu/%zu] %-11s %-5s quantizing and evaluating...\033[K" : "[%2zu/%zu] %s %s\n",
                     rows.size() + 1, total, format.c_str(), method.c_str());
        const quantized_network q = blockcast::visit_format(format, [&](auto tag) {
          return quantize_network<typename decltype(tag)::type>(net, method, calibration, threads, choice, options);
        });
        const matrix logits = net.logits(test.images.data.data(), test.size(), q.weights, threads);
        const double top1 = 100.0 * fashion::correct(logits, test.labels.data.data()) / test.size();
        const double logit_mse = (logits - float_logits).squaredNorm() / static_cast<double>(logits.size());
        const chart::row r{format, method, bits, logit_mse, top1};
        if (tty) std::fprintf(stderr, "\r\033[K");
        std::printf("%-11s %5.2f  %-6s %7.2f%% %+8.2f %11.3e %9.1f dB %7.3f s\n", format.c_str(), bits, method.c_str(),
                    top1, top1 - float_top1, logit_mse, weight_sqnr_db(net, q.weights), q.seconds);
        std::fflush(stdout);
        rows.push_back(r);
      }
    }
    std::printf("\ntop-1 is on the 10,000 test images; logit MSE is against the float model's logits;\n"
                "time includes ED's and GPTQ's calibration passes through the network (%u threads).\n", threads);
    if (!svg.empty()) {
      chart::write(svg, rows, {"logit MSE vs float (lower is better)", true, NAN},
                   {"top-1 accuracy, % (higher is better)", false, float_top1});
      std::fprintf(stderr, "wrote %s\n", svg.c_str());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "blockcast demo: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
