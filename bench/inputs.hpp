// SPDX-License-Identifier: MIT
// The benchmarks' input: weight-like values (normal, sigma 0.02), the same for every run.
#pragma once

#include <cstddef>
#include <map>
#include <random>
#include <vector>

namespace bench_inputs {

/// n weight-like values, built once per n (references stay valid for the whole run).
inline const std::vector<float>& weight_like(std::size_t n) {
  static std::map<std::size_t, std::vector<float>> cache;
  auto& v = cache[n];
  if (v.empty()) {
    v.resize(n);
    std::mt19937 rng(1);
    std::normal_distribution<float> normal(0.0f, 0.02f);
    for (auto& x : v) x = normal(rng);
  }
  return v;
}

}  // namespace bench_inputs
