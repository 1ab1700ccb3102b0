// SPDX-License-Identifier: MIT
// Reporting each kernel's rate next to its roof, without taking over the output format:
// roof_reporter<Base> is Google Benchmark's own console or JSON reporter (the one
// --benchmark_format asks for) that also remembers every rate and, at the end, prints the
// "% of roof" summary: after the table on the console, to stderr otherwise, so that
// `--benchmark_format=json > out.json` stays one JSON document.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace roof {

/// Rates by run name: of every iteration run, the first of the reporter's counters it has.
using rates = std::map<std::string, double>;

template <class Base>
class roof_reporter : public Base {
 public:
  roof_reporter(std::vector<std::string> counters, std::function<void(const rates&, std::FILE*)> summary,
                std::FILE* out)
      : counters_(std::move(counters)), summary_(std::move(summary)), out_(out) {}
  void ReportRuns(const std::vector<benchmark::BenchmarkReporter::Run>& runs) override {
    Base::ReportRuns(runs);
    for (const auto& r : runs) {
      if (r.run_type != benchmark::BenchmarkReporter::Run::RT_Iteration || r.error_occurred) continue;
      for (const auto& counter : counters_) {
        const auto it = r.counters.find(counter);
        if (it == r.counters.end()) continue;
        rates_[r.benchmark_name()] = it->second.value;
        break;
      }
    }
  }
  void Finalize() override {
    Base::Finalize();
    std::fflush(stdout);
    summary_(rates_, out_);
  }

 private:
  std::vector<std::string> counters_;
  std::function<void(const rates&, std::FILE*)> summary_;
  std::FILE* out_;
  rates rates_;
};

/// Runs the registered benchmarks with the reporter --benchmark_format names (console by
/// default), plus the summary. Call after benchmark::Initialize.
inline void run_with_summary(const std::string& format, const std::vector<std::string>& counters,
                             std::function<void(const rates&, std::FILE*)> summary) {
  if (format == "json") {
    roof_reporter<benchmark::JSONReporter> r(counters, summary, stderr);
    benchmark::RunSpecifiedBenchmarks(&r);
  } else if (format != "console") {
    benchmark::RunSpecifiedBenchmarks();  // csv (deprecated upstream): no summary
  } else {
    roof_reporter<benchmark::ConsoleReporter> r(counters, summary, stdout);
    benchmark::RunSpecifiedBenchmarks(&r);
  }
}

/// The value of --benchmark_format=... in argv ("console" when absent); read before
/// benchmark::Initialize removes the flags it knows.
inline std::string requested_format(int argc, char** argv) {
  std::string format = "console";
  for (int i = 1; i < argc; ++i) {
    constexpr const char* flag = "--benchmark_format=";
    if (std::strncmp(argv[i], flag, std::strlen(flag)) == 0) format = argv[i] + std::strlen(flag);
  }
  return format;
}

}  // namespace roof
