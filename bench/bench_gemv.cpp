// SPDX-License-Identifier: MIT
// Inference kernels on packed weights, with their roofs measured in the same run:
//   gemv/<format>/<rows>/<threads>           MX dot products against MXINT8 activations
//   gemv_float/<format>/<rows>/<threads>     the exact path: float activations
//   matmul/<format>/<rows>/<n>/<threads>     Y = X W^T for n rows of float activations
//   roof_read/<format>/<rows>/<threads>      reading the same weight bytes, nothing else
//   gemv_round_robin/16384/<threads>         every preset's gemv in turn (see below)
//   gemv_warm_pairs/16384/<threads>          MXFP4's gemv and the read roof in alternating blocks
//   roof_fma/<threads>                       the FMA peak (independent FP32 fused multiply-adds)
// Every matrix has K = 4096 columns. gemv figures are weight bytes per second and % of the
// read roof; matmul figures are GFLOP/s (2 n rows K per call) and % of the FMA peak.
// Why round robin: at 16384 rows an MXFP4 matrix (36 MB) is about a Zen 4 L3's size and part
// of it stays there from call to call, while an 8-bit one (69 MB) does not, so gemv/... favours
// MXFP4 by cache, not by kernel. Called in turn, every format starts from memory, and so do
// reads of MXFP4's size: the cold read roof.
// Why the roofs read the weights' own bytes, and the round robin moves every format through
// the same memory: on the VM this was written on, one core read some 36 MB buffers at 19 GB/s
// and others, allocated the same way in the same process, at 30 GB/s, each at its own speed
// from round to round (where the host put their pages, presumably). A kernel timed on one
// buffer against a roof or another kernel timed on another measured mostly the two buffers.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <blockcast/blockcast.hpp>

#include "inputs.hpp"
#include "roof_report.hpp"

namespace bc = blockcast;

namespace {

constexpr std::size_t K = 4096;

const std::vector<float>& normal_values(std::size_t n) { return bench_inputs::weight_like(n); }

template <class Format>
const bc::packed_tensor<Format>& weights(std::size_t rows) {
  static std::map<std::size_t, bc::packed_tensor<Format>> cache;
  auto it = cache.find(rows);
  if (it == cache.end()) it = cache.emplace(rows, bc::quantize<Format>(normal_values(rows * K).data(), rows, K)).first;
  return it->second;
}

template <class Format>
std::size_t weight_bytes(std::size_t rows) {
  return bc::code_bytes<Format>(rows, K) + bc::scale_bytes<Format>(rows, K);
}

bc::cast_options with_threads(std::int64_t threads) {
  bc::cast_options opt;
  opt.threads = static_cast<unsigned>(threads);
  return opt;
}

template <class Format>
void bm_gemv(benchmark::State& state) {
  const auto rows = static_cast<std::size_t>(state.range(0));
  const auto& w = weights<Format>(rows);
  const auto x = bc::quantize<bc::mxint8>(normal_values(K).data(), 1, K);
  std::vector<float> y(rows);
  const auto opt = with_threads(state.range(1));
  for (auto _ : state) {
    bc::gemv(w.view(), x.view(), y.data(), opt);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * weight_bytes<Format>(rows)));
}

template <class Format>
void bm_gemv_float(benchmark::State& state) {
  const auto rows = static_cast<std::size_t>(state.range(0));
  const auto& w = weights<Format>(rows);
  std::vector<float> y(rows);
  const auto opt = with_threads(state.range(1));
  for (auto _ : state) {
    bc::gemv(w.view(), normal_values(K).data(), y.data(), opt);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * weight_bytes<Format>(rows)));
}

template <class Format>
void bm_matmul(benchmark::State& state) {
  const auto rows = static_cast<std::size_t>(state.range(0)), n = static_cast<std::size_t>(state.range(1));
  const auto& w = weights<Format>(rows);
  std::vector<float> Y(n * rows);
  const auto opt = with_threads(state.range(2));
  for (auto _ : state) {
    bc::matmul(w.view(), normal_values(n * K).data(), n, Y.data(), opt);
    benchmark::DoNotOptimize(Y.data());
    benchmark::ClobberMemory();
  }
  state.counters["flops"] = benchmark::Counter(2.0 * static_cast<double>(n * rows * K) * static_cast<double>(state.iterations()),
                                               benchmark::Counter::kIsRate);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * weight_bytes<Format>(rows)));
}

/// Reads `bytes` bytes (a vector OR over them, four independent chains) on `threads`
/// threads, split like gemv's rows; `prefetch` bytes ahead, a line at a time (0: none).
std::uint64_t read_bytes(const std::uint8_t* p, std::size_t bytes, unsigned threads, std::size_t prefetch) {
  using u64 = xsimd::batch<std::uint64_t>;
  constexpr std::size_t step = u64::size * 8, unroll = 4;
  std::vector<std::uint64_t> out(threads);
  bc::detail::parallel_for(threads, threads, 1, [&](std::size_t t0, std::size_t t1) {
    for (std::size_t t = t0; t < t1; ++t) {
      const std::size_t chunk = unroll * step;
      const std::size_t begin = bytes * t / threads / chunk * chunk, end = bytes * (t + 1) / threads / chunk * chunk;
      u64 acc[unroll] = {u64(0), u64(0), u64(0), u64(0)};
      for (std::size_t i = begin; i < end; i += chunk) {
        for (std::size_t u = 0; u < unroll; ++u) {
          if (prefetch != 0 && step * u % 64 == 0) __builtin_prefetch(p + i + u * step + prefetch);
          acc[u] |= u64::load_unaligned(reinterpret_cast<const std::uint64_t*>(p + i + u * step));
        }
      }
      out[t] = xsimd::hadd((acc[0] | acc[1]) | (acc[2] | acc[3]));
    }
  });
  std::uint64_t r = 0;
  for (auto v : out) r |= v;
  return r;
}

/// read_bytes over a packed tensor's codes and then its scales.
template <class Format>
std::uint64_t read_weights(bc::packed_view<Format> w, unsigned threads, std::size_t prefetch) {
  return read_bytes(w.codes().data(), w.codes().size(), threads, prefetch) |
         read_bytes(w.scales().data(), w.scales().size(), threads, prefetch);
}

/// roof_read's measure: the seconds of the fastest of three reads of the weights' bytes,
/// without software prefetch and with it 4 and 8 KiB ahead.
template <class Format>
double best_read_seconds(bc::packed_view<Format> w, unsigned threads) {
  double best = 1e30;
  for (std::size_t prefetch : {0, 4096, 8192}) {
    const auto start = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(read_weights(w, threads, prefetch));
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return best;
}

/// Where the scales of `Format`'s rows x K weights start in a slot: after the codes, at the
/// next 64-byte boundary.
template <class Format>
std::size_t slot_scales_offset(std::size_t rows) {
  return (bc::code_bytes<Format>(rows, K) + 63) / 64 * 64;
}
/// A packed view of `Format`'s rows x K weights laid out in `slot`.
template <class Format>
bc::packed_view<Format> slot_view(const std::uint8_t* slot, std::size_t rows) {
  return {rows, K, {slot, bc::code_bytes<Format>(rows, K)},
          {slot + slot_scales_offset<Format>(rows), bc::scale_bytes<Format>(rows, K)}};
}

/// Every preset's gemv on a 16384 x K matrix, and three reads of MXFP4's size (one at each of
/// roof_read's prefetch distances), one call each per round and in turn: between two calls on
/// one slot the other calls and the copies move more than 800 MB, so every call starts from
/// memory. The calls move through the same memory: with n calls per round there are n slots,
/// and in round r call i reads slot (i + r) mod n, into which the preset's weights are copied
/// before the round; an iteration is n rounds, so every call reads every slot once, and the
/// order of the calls turns by one each round, so every call also comes first once.
/// Counters: each call's bytes per second over all its rounds (<format>_GB/s,
/// read_<distance>_GB/s), a preset's rate over MXFP4's (<format>/mxfp4: how close its kernel
/// comes to MXFP4's on equal terms), and MXFP4's over the best read's (mxfp4/cold_roof).
void bm_gemv_round_robin(benchmark::State& state) {
  const auto rows = static_cast<std::size_t>(state.range(0));
  const auto opt = with_threads(state.range(1));
  const auto x = bc::quantize<bc::mxint8>(normal_values(K).data(), 1, K);
  std::vector<float> y(rows);
  struct turn {  // one call of the round: a preset's gemv, or a read
    std::string name;
    std::function<void(const std::uint8_t* slot)> call;
    std::function<void(std::uint8_t* slot)> fill;  // presets: their weights into the slot
    std::size_t bytes;
    bool is_read;
    double seconds;
  };
  std::vector<turn> turns;
  std::size_t slot_size = 0;
#define BLOCKCAST_BENCH_PRESET(alias, ...)                                                                   \
  turns.push_back({#alias,                                                                                   \
                   [&](const std::uint8_t* slot) { bc::gemv(slot_view<bc::alias>(slot, rows), x.view(), y.data(), opt); }, \
                   [&](std::uint8_t* slot) {                                                                  \
                     const auto& w = weights<bc::alias>(rows);                                                \
                     std::copy(w.codes().begin(), w.codes().end(), slot);                                     \
                     std::copy(w.scales().begin(), w.scales().end(), slot + slot_scales_offset<bc::alias>(rows)); \
                   },                                                                                         \
                   weight_bytes<bc::alias>(rows), false, 0.0});                                             \
  slot_size = std::max(slot_size, slot_scales_offset<bc::alias>(rows) + bc::scale_bytes<bc::alias>(rows, K));
  BLOCKCAST_PRESETS(BLOCKCAST_BENCH_PRESET)
#undef BLOCKCAST_BENCH_PRESET
  const std::size_t read_size = weight_bytes<bc::mxfp4>(rows);
  for (std::size_t prefetch : {0, 4096, 8192})
    turns.push_back({"read_" + std::to_string(prefetch),
                     [&, prefetch](const std::uint8_t* slot) { benchmark::DoNotOptimize(read_bytes(slot, read_size, opt.threads, prefetch)); },
                     nullptr, read_size, true, 0.0});
  const std::size_t n = turns.size();
  std::vector<bc::detail::tensor_vector<std::uint8_t>> slots;  // allocated as weights are (huge pages)
  for (std::size_t i = 0; i < n; ++i) slots.emplace_back(slot_size, std::uint8_t{1});
  const auto round = [&](std::size_t r, bool timed) {
    for (std::size_t i = 0; i < n; ++i)
      if (turns[i].fill) turns[i].fill(slots[(i + r) % n].data());
    for (std::size_t j = 0; j < n; ++j) {
      const std::size_t i = (j + r) % n;  // each call first after the copies once per iteration
      const auto start = std::chrono::steady_clock::now();
      turns[i].call(slots[(i + r) % n].data());
      benchmark::DoNotOptimize(y.data());
      benchmark::ClobberMemory();
      if (timed) turns[i].seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
  };
  round(0, false);  // every kernel's first call (tables, threads) before the clock starts
  for (auto _ : state)
    for (std::size_t r = 0; r < n; ++r) round(r, true);
  const auto rate = [&](const turn& t) {
    return static_cast<double>(t.bytes) * static_cast<double>(n * state.iterations()) / t.seconds;
  };
  double mxfp4 = 0, roof = 0;
  for (const auto& t : turns) {
    if (t.name == "mxfp4") mxfp4 = rate(t);
    if (t.is_read) roof = std::max(roof, rate(t));
  }
  for (const auto& t : turns) {
    state.counters[t.name + "_GB/s"] = rate(t) / 1e9;
    if (!t.is_read && t.name != "mxfp4") state.counters[t.name + "/mxfp4"] = rate(t) / mxfp4;
  }
  state.counters["mxfp4/cold_roof"] = mxfp4 / roof;
}

/// The median of v (v is reordered).
double median(std::vector<double>& v) {
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
  return v[v.size() / 2];
}

/// MXFP4's gemv against the read roof, warm, in alternating blocks: each iteration makes 8
/// gemv calls on one 16384 x K matrix, then 8 of roof_read's reads (best_read_seconds) of the
/// same matrix's bytes. The first 2 of a block refill the caches and are not timed.
/// gemv/mxfp4 and roof_read/mxfp4 run seconds or minutes apart, and this VM's speed moves in
/// between; here both sides of a ratio come from the same few milliseconds. Counters: the
/// medians over iterations of the blocks' median rates (mxfp4_GB/s, roof_GB/s) and of their
/// ratio (mxfp4/warm_roof).
void bm_gemv_warm_pairs(benchmark::State& state) {
  const auto rows = static_cast<std::size_t>(state.range(0));
  const auto opt = with_threads(state.range(1));
  const auto& w = weights<bc::mxfp4>(rows);
  const auto x = bc::quantize<bc::mxint8>(normal_values(K).data(), 1, K);
  std::vector<float> y(rows);
  const std::size_t bytes = weight_bytes<bc::mxfp4>(rows);
  constexpr int calls = 8, untimed = 2;
  const auto block = [&](auto&& call) {  // the median rate of one block's timed calls
    std::vector<double> rates;
    for (int i = 0; i < calls; ++i) {
      const double seconds = call();
      if (i >= untimed) rates.push_back(static_cast<double>(bytes) / seconds);
    }
    return median(rates);
  };
  std::vector<double> gemv_rates, roof_rates, ratios;
  for (auto _ : state) {
    const double gemv = block([&] {
      const auto start = std::chrono::steady_clock::now();
      bc::gemv(w.view(), x.view(), y.data(), opt);
      benchmark::DoNotOptimize(y.data());
      benchmark::ClobberMemory();
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    });
    const double roof = block([&] { return best_read_seconds(w.view(), opt.threads); });
    gemv_rates.push_back(gemv);
    roof_rates.push_back(roof);
    ratios.push_back(gemv / roof);
  }
  state.counters["mxfp4_GB/s"] = median(gemv_rates) / 1e9;
  state.counters["roof_GB/s"] = median(roof_rates) / 1e9;
  state.counters["mxfp4/warm_roof"] = median(ratios);
}

/// Reads gemv/<format>'s own weights: a buffer of the same size elsewhere can read at another
/// speed (see the top of this file).
template <class Format>
void bm_roof_read(benchmark::State& state) {
  const auto rows = static_cast<std::size_t>(state.range(0));
  const auto threads = static_cast<unsigned>(state.range(1));
  const auto& w = weights<Format>(rows);
  for (auto _ : state) state.SetIterationTime(best_read_seconds(w.view(), threads));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * weight_bytes<Format>(rows)));
}

void bm_roof_fma(benchmark::State& state) {
  using f32 = xsimd::batch<float>;
  const auto threads = static_cast<unsigned>(state.range(0));
  constexpr std::size_t chains = 12, steps = 1 << 20;
  for (auto _ : state) {
    bc::detail::parallel_for(threads, threads, 1, [&](std::size_t, std::size_t) {
      f32 acc[chains];
      for (std::size_t c = 0; c < chains; ++c) acc[c] = f32(static_cast<float>(c));
      const f32 a(0.999f), b(0.001f);
      for (std::size_t i = 0; i < steps; ++i)
        for (std::size_t c = 0; c < chains; ++c) acc[c] = xsimd::fma(acc[c], a, b);
      f32 s = acc[0];
      for (std::size_t c = 1; c < chains; ++c) s += acc[c];
      benchmark::DoNotOptimize(s);
    });
  }
  state.counters["flops"] = benchmark::Counter(2.0 * f32::size * chains * steps * threads * static_cast<double>(state.iterations()),
                                               benchmark::Counter::kIsRate);
}

template <class Format>
void register_format(const std::string& name) {
  // Google Benchmark appends the arguments: gemv/<format>/<rows>/<threads>, ...
  auto* gemv = benchmark::RegisterBenchmark(("gemv/" + name).c_str(), bm_gemv<Format>);
  auto* gemv_float = benchmark::RegisterBenchmark(("gemv_float/" + name).c_str(), bm_gemv_float<Format>);
  auto* read = benchmark::RegisterBenchmark(("roof_read/" + name).c_str(), bm_roof_read<Format>);
  auto* matmul = benchmark::RegisterBenchmark(("matmul/" + name).c_str(), bm_matmul<Format>);
  for (std::int64_t rows : {4096, 16384})
    for (std::int64_t threads : {1, 2}) {
      for (auto* b : {gemv, gemv_float, read}) b->Args({rows, threads});
      for (std::int64_t n : {1, 8, 64, 512}) matmul->Args({rows, n, threads});
    }
  for (auto* b : {gemv, gemv_float, read, matmul}) b->Unit(benchmark::kMillisecond);
  read->UseManualTime();
}

/// gemv: GB/s of weights and % of the read roof; matmul: GFLOP/s and % of the FMA peak.
void print_summary(const roof::rates& rates, std::FILE* out) {
  std::fprintf(out, "\n%-34s %10s %10s %7s\n", "kernel", "rate", "roof", "% roof");
  for (const auto& [name, rate] : rates) {
    const auto kind = name.substr(0, name.find('/'));
    const auto rest = name.substr(kind.size());  // /format/rows[/n]/threads
    const auto threads = name.substr(name.rfind('/') + 1);
    std::string roof_name, unit;
    if (kind == "gemv" || kind == "gemv_float") {
      roof_name = "roof_read" + rest + "/manual_time";
      unit = "GB/s";
    } else if (kind == "matmul") {
      roof_name = "roof_fma/" + threads;
      unit = "GFLOP/s";
    } else {
      continue;
    }
    const auto r = rates.find(roof_name);
    if (r == rates.end()) continue;
    std::fprintf(out, "%-34s %10.2f %10.2f %6.0f%%  %s\n", name.c_str(), rate / 1e9, r->second / 1e9,
                 100.0 * rate / r->second, unit.c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
#define BLOCKCAST_BENCH_FORMAT(alias, ...) register_format<bc::alias>(#alias);
  BLOCKCAST_PRESETS(BLOCKCAST_BENCH_FORMAT)
#undef BLOCKCAST_BENCH_FORMAT
  for (std::int64_t threads : {1, 2}) {
    benchmark::RegisterBenchmark("roof_fma", bm_roof_fma)->Arg(threads)->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark("gemv_round_robin", bm_gemv_round_robin)->Args({16384, threads})->Unit(benchmark::kMillisecond)->MinTime(3.0);
    benchmark::RegisterBenchmark("gemv_warm_pairs", bm_gemv_warm_pairs)->Args({16384, threads})->Unit(benchmark::kMillisecond)->MinTime(2.0);
  }

  const std::string format = roof::requested_format(argc, argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("xsimd_arch", xsimd::default_arch::name());
  // matmul and the FMA peak report flops, gemv and the read roof bytes
  roof::run_with_summary(format, {"flops", "bytes_per_second"}, print_summary);
  benchmark::Shutdown();
  return 0;
}
