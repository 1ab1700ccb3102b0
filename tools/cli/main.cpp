// SPDX-License-Identifier: MIT
// `blockcast`: the command-line quantizer. Exit codes: 0 success, 1 a file, format or shape
// error (one line on stderr saying what and where), 2 a usage error.
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iostream>

#include "arguments.hpp"

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
  // a SQNR is printed only where there is one: NaN means NaN/Inf in the tensor or its output
  auto db = [](bool has, double v) {
    char b[32];
    std::snprintf(b, sizeof b, !has ? "-" : std::isnan(v) ? "NaN/Inf" : "%.2f dB", v);
    return std::string(b);
  };
  double seconds = 0;
  std::size_t quantized = 0, nonfinite = 0;
  for (const auto& r : reports) {
    std::printf("%-40s %-16s %-16s %12s %12s %7.3f s\n", r.name.c_str(), r.shape.c_str(), r.stored.c_str(),
                db(r.quantized, r.weight_sqnr_db).c_str(), db(r.quantized && r.calibrated, r.output_sqnr_db).c_str(), r.seconds);
    seconds += r.seconds;
    quantized += r.quantized;
    nonfinite += r.quantized && (std::isnan(r.weight_sqnr_db) || (r.calibrated && std::isnan(r.output_sqnr_db)));
  }
  std::printf("%zu of %zu tensors quantized in %.3f s\n", quantized, reports.size(), seconds);
  std::size_t notes = 0;
  for (const auto& r : reports)
    if (!r.note.empty()) std::printf("%s %s: %s\n", notes++ ? "     " : "note:", r.name.c_str(), blockcast::cli::one_line(r.note).c_str());
  if (nonfinite)
    std::printf("note: %zu quantized tensor%s NaN or Inf values (kept as the formats define them: a NaN block decodes to NaN)\n",
                nonfinite, nonfinite == 1 ? " holds" : "s hold");
}

// The run as a whole: values converted per second (reading, converting, writing and syncing
// included) and the peak resident memory, which the streaming pipeline keeps independent of
// the tensors' sizes.
void print_totals(const std::vector<blockcast::cli::tensor_report>& reports, double seconds) {
  std::uint64_t values = 0;
  for (const auto& r : reports) values += r.quantized ? r.values : 0;
  struct rusage usage {};
  ::getrusage(RUSAGE_SELF, &usage);
  std::printf("%.3f G values quantized in %.3f s (%.2f G values/s), peak memory %.1f MiB\n", static_cast<double>(values) * 1e-9,
              seconds, seconds > 0 ? static_cast<double>(values) * 1e-9 / seconds : 0.0, static_cast<double>(usage.ru_maxrss) / 1024.0);
}

}  // namespace

int main(int argc, char** argv) {
  namespace cli = blockcast::cli;
  using command = cli::invocation::command;
  const cli::invocation args = cli::parse_arguments(argc, argv);
  // SIGINT/SIGTERM/SIGHUP remove this run's temporaries; an input truncated under the run is an error
  blockcast::io::install_signal_cleanup("blockcast");
  if (args.what == command::none) {
    std::fprintf(args.exit_code == 0 ? stdout : stderr, "%s\n", args.text.c_str());
    return args.exit_code;
  }
  try {
    switch (args.what) {
      case command::formats:
        cli::list_formats(std::cout);
        break;
      case command::quantize: {
        progress_bar bar;
        cli::progress_fn progress;
        if (::isatty(2)) progress = std::ref(bar);
        const auto start = std::chrono::steady_clock::now();
        const auto reports = cli::quantize_model(args.quantize, progress);
        print_summary(reports);
        if (args.quantize.part.empty()) {
          std::printf("wrote %s\n", cli::one_line(args.quantize.output).c_str());
        } else {
          const auto part = cli::parse_part(args.quantize.part);
          std::printf("wrote part %u of %u: %s/%s (when every part is done: blockcast merge %s)\n", part.index, part.count,
                      cli::one_line(blockcast::io::directory_of(args.quantize.output)).c_str(),
                      cli::one_line(cli::manifest_name(blockcast::io::file_name_of(args.quantize.output), part.index, part.count)).c_str(),
                      cli::one_line(args.quantize.output).c_str());
        }
        print_totals(reports, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
        break;
      }
      case command::inspect:
        cli::inspect_model(args.inspect_path, std::cout);
        break;
      case command::dequantize:
        cli::dequantize_model(args.dequantize);
        std::printf("wrote %s\n", cli::one_line(args.dequantize.output).c_str());
        break;
      case command::merge:
        cli::merge_parts(args.merge_output);
        std::printf("wrote %s\n", cli::one_line(args.merge_output).c_str());
        break;
      case command::none:
        break;
    }
  } catch (const std::exception& e) {
    if (::isatty(2)) std::fprintf(stderr, "\r\033[K");  // clear the progress bar
    std::fprintf(stderr, "blockcast: error: %s\n", cli::one_line(e.what()).c_str());
    return 1;
  }
  return 0;
}
