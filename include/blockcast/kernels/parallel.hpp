// SPDX-License-Identifier: MIT
// Splitting work across threads. Results never depend on the split: every output byte is
// written by exactly one worker, from inputs that do not depend on the split.
#pragma once

#include <cstddef>
#include <exception>
#include <thread>
#include <vector>

#include "blockcast/config.hpp"

namespace blockcast::detail {

/// Calls f(begin, end) on `threads` contiguous parts of [0, n) (fewer when n is small; on the
/// calling thread when one part). Exceptions from workers are rethrown on the caller.
template <class F>
void parallel_for(std::size_t n, unsigned threads, std::size_t min_per_thread, F&& f) {
  std::size_t parts = threads == 0 ? 1 : threads;
  if (min_per_thread > 0 && n / min_per_thread < parts) parts = n / min_per_thread;
  if (parts <= 1) {
    if (n > 0) f(std::size_t{0}, n);
    return;
  }
  std::vector<std::thread> workers;
  std::vector<std::exception_ptr> errors(parts);
  workers.reserve(parts - 1);
  auto run = [&](std::size_t p) {
#if BLOCKCAST_HAS_EXCEPTIONS
    try {
      f(n * p / parts, n * (p + 1) / parts);
    } catch (...) {
      errors[p] = std::current_exception();
    }
#else
    f(n * p / parts, n * (p + 1) / parts);  // errors abort (config.hpp)
#endif
  };
  for (std::size_t p = 1; p < parts; ++p) workers.emplace_back(run, p);
  run(0);
  for (auto& w : workers) w.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace blockcast::detail
