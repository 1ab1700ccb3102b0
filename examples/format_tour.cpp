// SPDX-License-Identifier: MIT
// Quantizes a seeded random weight-like tensor (Student-t, heavy tails) to every preset and
// prints bits per value, RMSE, SQNR and max error per format.
#include <blockcast/blockcast.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

int main() {
  const std::size_t rows = 1024, cols = 1024;
  std::mt19937 rng(2026);
  std::student_t_distribution<float> t5(5.0f);
  std::vector<float> w(rows * cols), back(rows * cols);
  for (auto& v : w) v = 0.02f * t5(rng);
  double signal = 0;
  for (float v : w) signal += double(v) * v;

  std::printf("blockcast %s: %zu x %zu Student-t(5) weights, seed 2026\n\n",
              BLOCKCAST_VERSION_STRING, rows, cols);
  std::printf("%-11s %9s %11s %9s %11s %9s\n", "format", "bits/val", "RMSE", "SQNR dB",
              "max |err|", "ms");
  for (const auto& info : blockcast::preset_formats()) {
    const auto start = std::chrono::steady_clock::now();
    blockcast::visit_format(info.name, [&](auto tag) {
      using format = typename decltype(tag)::type;
      const auto packed = blockcast::quantize<format>(w.data(), rows, cols);
      blockcast::dequantize(packed, back.data());
    });
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    double noise = 0, max_err = 0;
    for (std::size_t i = 0; i < w.size(); ++i) {
      const double e = double(back[i]) - w[i];
      noise += e * e;
      max_err = std::max(max_err, std::fabs(e));
    }
    std::printf("%-11s %9.3f %11.3e %9.2f %11.3e %9.1f\n", std::string(info.name).c_str(),
                info.bits_per_value, std::sqrt(noise / w.size()), 10 * std::log10(signal / noise),
                max_err, ms);
  }
  return 0;
}
