// SPDX-License-Identifier: MIT
// Quantize, dequantize and fake-quantize per format, reference vs SIMD, from in-cache to far
// beyond the last-level cache, with the bandwidth roofs measured in the same run.
//   quantize/<format>/<impl>/<n>    dequantize/<format>/<impl>/<n>
//   quantize_alloc/<format>/simd/<n>  (quantize<F>(in, n): a fresh packed_tensor per call)
//   first_touch/<format>/output/<n>   (the same fresh output written once: what the allocating
//                                      call pays for pages the kernel faults in and zeroes)
//   fake_quantize/<format>/<impl>/<n>
//   roof_quantize/<format>/<n>      roof_dequantize/<format>/<n>     roof_fake_quantize/<format>/<n>
// impl: reference | simd (the kernels of xsimd::default_arch this binary is built for).
// quantize/.../simd, quantize_alloc and first_touch also count the process's system time and
// page faults per call (sys_ms/call, faults/call): the operating system's share of a call.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <sys/resource.h>

#include "inputs.hpp"
#include "roof.hpp"
#include "roof_report.hpp"

namespace bc = blockcast;

namespace {

const std::vector<std::int64_t> sizes = {1 << 16, 1 << 20, 1 << 24, 1 << 26};

/// Weight-like input (shared, built once per size).
const std::vector<float>& input(std::size_t n) { return bench_inputs::weight_like(n); }

/// The float output of dequantize and fake_quantize, shared by each kernel and its roof: on
/// the VM these figures come from, equal buffers in one process read and write at speeds up
/// to 1.6 times apart (bench_gemv.cpp), so a roof on a buffer of its own measures the buffer.
std::vector<float>& float_output(std::size_t n) {
  static std::map<std::size_t, std::vector<float>> cache;
  auto& v = cache[n];
  v.resize(n);
  return v;
}

template <class Format>
std::size_t packed_bytes(std::size_t n) {
  return bc::code_bytes<Format>(1, n) + bc::scale_bytes<Format>(1, n);
}

template <class Format>
std::size_t input_reads() {
  return Format::has_tensor_scale ? 2 : 1;  // two-level formats: the tensor amax pass first
}

template <class Format>
void set_counters(benchmark::State& state, std::size_t n, std::size_t bytes) {
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes));
}

/// The operating system's share of a benchmark's calls: system CPU time and page faults of the
/// whole process from construction to report(), per iteration. An allocating call's fresh
/// pages are faulted in and zeroed there, outside the kernel's own loop.
class system_share {
 public:
  system_share() : start_(now()) {}
  void report(benchmark::State& state) const {
    const usage end = now();
    const double calls = static_cast<double>(state.iterations());
    state.counters["sys_ms/call"] = (end.system_seconds - start_.system_seconds) * 1e3 / calls;
    state.counters["faults/call"] = (end.faults - start_.faults) / calls;
  }

 private:
  struct usage {
    double system_seconds, faults;
  };
  static usage now() {
    rusage r{};
    getrusage(RUSAGE_SELF, &r);
    return {static_cast<double>(r.ru_stime.tv_sec) + 1e-6 * static_cast<double>(r.ru_stime.tv_usec),
            static_cast<double>(r.ru_minflt + r.ru_majflt)};
  }
  usage start_;
};

template <class Format, bool Simd>
void bm_quantize(benchmark::State& state) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  const auto& x = input(n);
  bc::packed_tensor<Format> p(1, n);
  const system_share system;
  for (auto _ : state) {
    if constexpr (Simd) bc::quantize_into<Format>(x.data(), 1, n, p.mutable_view());
    else bc::reference::quantize<Format>(x.data(), 1, n, p.mutable_view());
    benchmark::DoNotOptimize(p.codes().data());
    benchmark::ClobberMemory();
  }
  if constexpr (Simd) system.report(state);
  set_counters<Format>(state, n, input_reads<Format>() * n * 4 + packed_bytes<Format>(n));
}

/// The allocating call: quantize<F>(in, n) into a fresh packed_tensor each time (its pages
/// are first touched by the kernel).
template <class Format>
void bm_quantize_alloc(benchmark::State& state) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  const auto& x = input(n);
  const system_share system;
  for (auto _ : state) {
    const auto p = bc::quantize<Format>(x.data(), n);
    benchmark::DoNotOptimize(p.codes().data());
    benchmark::ClobberMemory();
  }
  system.report(state);
  set_counters<Format>(state, n, input_reads<Format>() * n * 4 + packed_bytes<Format>(n));
}

/// What quantize_alloc pays on top of quantize: a fresh output of the same size (the same
/// allocator) written once, so that every page is faulted in and zeroed by the kernel.
template <class Format>
void bm_first_touch(benchmark::State& state) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  const system_share system;
  for (auto _ : state) {
    auto p = bc::packed_tensor<Format>::for_overwrite(1, n);
    auto v = p.mutable_view();
    std::memset(v.codes().data(), 0x5a, v.codes().size());
    std::memset(v.scales().data(), 0x7f, v.scales().size());
    benchmark::DoNotOptimize(p.codes().data());
    benchmark::ClobberMemory();
  }
  system.report(state);
  set_counters<Format>(state, n, packed_bytes<Format>(n));
}

template <class Format, bool Simd>
void bm_dequantize(benchmark::State& state) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  const auto p = bc::quantize<Format>(input(n).data(), n);
  auto& y = float_output(n);
  for (auto _ : state) {
    if constexpr (Simd) bc::dequantize(p, y.data());
    else bc::reference::dequantize<Format>(p.view(), y.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_counters<Format>(state, n, n * 4 + packed_bytes<Format>(n));
}

template <class Format, bool Simd>
void bm_fake_quantize(benchmark::State& state) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  const auto& x = input(n);
  auto& y = float_output(n);
  for (auto _ : state) {
    if constexpr (Simd) bc::fake_quantize<Format>(x.data(), y.data(), n);
    else bc::reference::fake_quantize<Format>(x.data(), y.data(), 1, n);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_counters<Format>(state, n, n * (4 * input_reads<Format>() + 4));
}

/// Times f(variant) for each variant and reports the fastest: "best of" the straightforward
/// ways to move the bytes.
template <class F>
void best_of(benchmark::State& state, int variants, F&& f) {
  for (auto _ : state) {
    double best = 1e30;
    for (int v = 0; v < variants; ++v) {
      const auto start = std::chrono::steady_clock::now();
      f(v);
      benchmark::ClobberMemory();
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    state.SetIterationTime(best);
  }
}

template <class Format>
void bm_roof_quantize(benchmark::State& state) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  constexpr std::size_t B = Format::block_size;
  const std::size_t per_block = bc::row_code_bytes<Format>(B) + 1;
  const auto& x = input(n);
  std::vector<std::uint8_t> out(n / B * per_block);
  // two-level formats read the input twice: the tensor amax first, then the blocks
  best_of(state, 2, [&](int v) {
    if constexpr (Format::has_tensor_scale) benchmark::DoNotOptimize(roof::read_traffic(x.data(), n));
    roof::quantize_traffic(x.data(), n, B, per_block, out.data(), v == 1);
  });
  set_counters<Format>(state, n, input_reads<Format>() * n * 4 + packed_bytes<Format>(n));
}

template <class Format>
void bm_roof_dequantize(benchmark::State& state) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  constexpr std::size_t B = Format::block_size;
  const std::size_t per_block = bc::row_code_bytes<Format>(B) + 1;
  std::vector<std::uint8_t> in(n / B * per_block, 1);
  auto& y = float_output(n);
  best_of(state, 3, [&](int v) {
    if (v == 0) roof::dequantize_traffic(in.data(), n, B, per_block, y.data());
    else if (v == 1) roof::dequantize_fill(in.data(), n, B, per_block, y.data());
    else roof::dequantize_chunked(in.data(), n, B, per_block, y.data());
  });
  set_counters<Format>(state, n, n * 4 + packed_bytes<Format>(n));
}

/// fake_quantize's traffic: read and write n floats (two-level formats read the input twice).
template <class Format>
void bm_roof_fake_quantize(benchmark::State& state) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  const auto& x = input(n);
  auto& y = float_output(n);
  best_of(state, 4, [&](int v) {
    if constexpr (Format::has_tensor_scale) benchmark::DoNotOptimize(roof::read_traffic(x.data(), n));
    if (v == 3) roof::copy_chunked(x.data(), n, y.data());
    else if (v == 2) std::memcpy(y.data(), x.data(), n * 4);
    else roof::copy_traffic(x.data(), n, y.data(), v == 1);
  });
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * n * (4 * input_reads<Format>() + 4)));
}

template <class Format>
void register_format(const std::string& name, bool with_roofs = true) {
  auto add = [&](const std::string& kind, const std::string& impl, void (*fn)(benchmark::State&)) {
    auto* b = benchmark::RegisterBenchmark((kind + "/" + name + "/" + impl).c_str(), fn);
    for (auto n : sizes) b->Arg(n);
    b->Unit(benchmark::kMillisecond);
  };
  add("quantize", "reference", bm_quantize<Format, false>);
  add("quantize", "simd", bm_quantize<Format, true>);
  add("quantize_alloc", "simd", bm_quantize_alloc<Format>);
  add("first_touch", "output", bm_first_touch<Format>);
  add("dequantize", "reference", bm_dequantize<Format, false>);
  add("dequantize", "simd", bm_dequantize<Format, true>);
  add("fake_quantize", "reference", bm_fake_quantize<Format, false>);
  add("fake_quantize", "simd", bm_fake_quantize<Format, true>);
  if (!with_roofs) return;
  for (auto [kind, fn] : {std::pair<std::string, void (*)(benchmark::State&)>{"roof_quantize", bm_roof_quantize<Format>},
                          {"roof_dequantize", bm_roof_dequantize<Format>},
                          {"roof_fake_quantize", bm_roof_fake_quantize<Format>}}) {
    auto* b = benchmark::RegisterBenchmark((kind + "/" + name).c_str(), fn);
    for (auto n : sizes) b->Arg(n);
    b->UseManualTime()->Unit(benchmark::kMillisecond);
  }
}

/// Every SIMD figure as G values/s and % of its roof.
void print_roofs(const roof::rates& rates, std::FILE* out) {
  std::fprintf(out, "\n%-36s %12s %12s %9s\n", "simd kernel", "G values/s", "roof G/s", "% roof");
  for (const auto& [name, rate] : rates) {
    // name = kind/format/simd/n
    const auto p1 = name.find('/'), p2 = name.find('/', p1 + 1), p3 = name.find('/', p2 + 1);
    if (p3 == std::string::npos || name.substr(p2 + 1, p3 - p2 - 1) != "simd") continue;
    const std::string kind = name.substr(0, p1), format = name.substr(p1 + 1, p2 - p1 - 1), n = name.substr(p3 + 1);
    const std::string roof_kind = kind == "quantize_alloc" ? "quantize" : kind;  // the same bytes move
    const auto rr = rates.find("roof_" + roof_kind + "/" + format + "/" + n + "/manual_time");
    if (rr == rates.end()) continue;
    std::fprintf(out, "%-36s %12.3f %12.3f %8.0f%%\n", name.c_str(), rate / 1e9, rr->second / 1e9,
                 100.0 * rate / rr->second);
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_format<bc::mxfp8_e4m3>("mxfp8_e4m3");
  register_format<bc::mxfp8_e5m2>("mxfp8_e5m2");
  register_format<bc::mxfp6_e3m2>("mxfp6_e3m2");
  register_format<bc::mxfp6_e2m3>("mxfp6_e2m3");
  register_format<bc::mxfp4>("mxfp4");
  register_format<bc::mxint8>("mxint8");
  register_format<bc::nvfp4>("nvfp4");

  const std::string format = roof::requested_format(argc, argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("xsimd_arch", xsimd::default_arch::name());
  roof::run_with_summary(format, {"items_per_second"}, print_roofs);
  benchmark::Shutdown();
  return 0;
}
