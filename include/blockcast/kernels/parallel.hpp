// SPDX-License-Identifier: MIT
// Splitting work across threads. Results never depend on the split: every output byte is
// written by exactly one worker, from inputs that do not depend on the split.
#pragma once

#include <algorithm>
#include <atomic>
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

/// Calls f(state, i) for every i in [0, n) on up to `threads` threads (the caller is one),
/// each taking the next i when it finishes one, with `state` its own make_state(): for work
/// whose pieces take uneven time, or threads the OS may interrupt, where a fixed split leaves
/// one thread waiting for the other. The first exception stops the others taking more and
/// is rethrown on the caller.
template <class MakeState, class F>
void parallel_claim(std::size_t n, unsigned threads, MakeState&& make_state, F&& f) {
  const std::size_t parts = std::min<std::size_t>(threads == 0 ? 1 : threads, n);
  std::atomic<std::size_t> next{0};
  std::atomic<bool> failed{false};
  std::vector<std::exception_ptr> errors(parts);
  auto run = [&](std::size_t p) {
#if BLOCKCAST_HAS_EXCEPTIONS
    try {
#endif
      auto state = make_state();
      for (std::size_t i; !failed.load(std::memory_order_relaxed) && (i = next.fetch_add(1)) < n;) f(state, i);
#if BLOCKCAST_HAS_EXCEPTIONS
    } catch (...) {
      errors[p] = std::current_exception();
      failed = true;
    }
#else
    (void)p;
#endif
  };
  std::vector<std::thread> workers;
  workers.reserve(parts > 0 ? parts - 1 : 0);
  for (std::size_t p = 1; p < parts; ++p) workers.emplace_back(run, p);
  if (parts > 0) run(0);
  for (auto& w : workers) w.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace blockcast::detail
