// SPDX-License-Identifier: MIT
// `blockcast`: the command-line quantizer. Exit codes: 0 success, 1 a file, format or shape
// error (one line on stderr saying what and where), 2 a usage error.
#include <CLI/CLI.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>

#include "commands.hpp"

namespace {

// A one-line progress bar on stderr, redrawn in place; only on a terminal.
class progress_bar {
 public:
  void operator()(const std::string& name, std::size_t done, std::size_t total, std::uint64_t values) {
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    constexpr int width = 24;
    const int filled = total ? static_cast<int>(width * done / total) : width;
    std::fprintf(stderr, "\r[%.*s%*s] %zu/%zu %-40.40s %7.1f M values/s\033[K", filled, "########################",
                 width - filled, "", done, total, name.c_str(), seconds > 0 ? static_cast<double>(values) / seconds / 1e6 : 0.0);
    if (name.empty()) std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
  }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

void print_summary(const std::vector<blockcast::cli::tensor_report>& reports) {
  std::printf("%-40s %-16s %-16s %12s %12s %9s\n", "tensor", "shape", "stored as", "weight SQNR", "output SQNR", "time");
  double seconds = 0;
  std::size_t quantized = 0;
  for (const auto& r : reports) {
    auto db = [](double v) {
      char b[32];
      std::snprintf(b, sizeof b, std::isnan(v) ? "-" : "%.2f dB", v);
      return std::string(b);
    };
    std::printf("%-40s %-16s %-16s %12s %12s %7.3f s\n", r.name.c_str(), r.shape.c_str(), r.stored.c_str(),
                db(r.weight_sqnr_db).c_str(), db(r.output_sqnr_db).c_str(), r.seconds);
    seconds += r.seconds;
    quantized += !std::isnan(r.weight_sqnr_db);
  }
  std::printf("%zu of %zu tensors quantized in %.3f s\n", quantized, reports.size(), seconds);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace blockcast;
  CLI::App app{"blockcast: block-scaled quantization of safetensors models (MX and NVFP4 formats; RTN, ED, GPTQ)"};
  app.require_subcommand(1);
  std::vector<std::string> format_names;
  for (const auto& f : preset_formats()) format_names.emplace_back(f.name);

  auto* formats = app.add_subcommand("formats", "list the preset formats: bits per value, range, block size");

  cli::quantize_request q;
  auto* quantize = app.add_subcommand("quantize", "quantize a model's weight tensors (2-D or more; others are copied)");
  quantize->add_option("input", q.input, "model.safetensors, or a sharded model's model.safetensors.index.json")->required()->check(CLI::ExistingFile);
  quantize->add_option("-o,--output", q.output, "output file (an index.json for a sharded model: shards go next to it)")->required();
  quantize->add_option("--format", q.format, "element format")->check(CLI::IsMember(format_names))->capture_default_str();
  quantize->add_option("--method", q.method, "rtn, ed (error diffusion) or gptq")->check(CLI::IsMember({"rtn", "ed", "gptq"}))->capture_default_str();
  quantize->add_option("--calibration", q.calibration, "safetensors file with '<weight>.inputs' (N x K layer inputs) for ed and gptq")->check(CLI::ExistingFile);
  quantize->add_option("--include", q.include, "quantize only tensors whose name matches this regex")->capture_default_str();
  quantize->add_option("--exclude", q.exclude, "copy tensors whose name matches this regex unchanged");
  quantize->add_option("--threads", q.threads, "threads")->check(CLI::Range(1u, 1024u))->capture_default_str();

  std::string inspect_path;
  auto* inspect = app.add_subcommand("inspect", "list a file's tensors, formats, sizes and compression ratio");
  inspect->add_option("file", inspect_path, "a .safetensors file or a sharded model's index.json")->required()->check(CLI::ExistingFile);

  cli::dequantize_request d;
  auto* dequantize = app.add_subcommand("dequantize", "decode quantized tensors back to BF16 or F32");
  dequantize->add_option("input", d.input, "a quantized .safetensors file or index.json")->required()->check(CLI::ExistingFile);
  dequantize->add_option("-o,--output", d.output, "output file (an index.json for a sharded model)")->required();
  dequantize->add_option("--dtype", d.dtype, "bf16 or f32")->check(CLI::IsMember({"bf16", "f32"}))->capture_default_str();
  dequantize->add_option("--threads", d.threads, "threads")->check(CLI::Range(1u, 1024u))->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "blockcast: error: %s (see blockcast --help)\n", e.what());
    return 2;
  }

  try {
    if (*formats) {
      cli::list_formats(std::cout);
    } else if (*quantize) {
      progress_bar bar;
      cli::progress_fn progress;
      if (::isatty(2)) progress = std::ref(bar);
      const auto reports = cli::quantize_model(q, progress);
      print_summary(reports);
      std::printf("wrote %s\n", q.output.c_str());
    } else if (*inspect) {
      cli::inspect_model(inspect_path, std::cout);
    } else if (*dequantize) {
      cli::dequantize_model(d);
      std::printf("wrote %s\n", d.output.c_str());
    }
  } catch (const std::exception& e) {
    if (::isatty(2)) std::fprintf(stderr, "\r\033[K");  // clear the progress bar
    std::fprintf(stderr, "blockcast: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
