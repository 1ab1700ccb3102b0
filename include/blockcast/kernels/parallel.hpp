// SPDX-License-Identifier: MIT
// Splitting work across threads. Results never depend on the split: every output byte is
// written by exactly one worker, from inputs that do not depend on the split.
//
// The threads are kept from call to call (worker_pool): starting and joining a thread per
// call cost about 46 us here, a quarter of a 2-thread gemv over a 4096 x 4096 MXFP4 matrix.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <system_error>
#include <thread>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#include <signal.h>
#define BLOCKCAST_POSIX_THREADS 1
#else
#define BLOCKCAST_POSIX_THREADS 0
#endif

#include "blockcast/config.hpp"

namespace blockcast::detail {

/// Threads that run the parts of parallel calls, started when a call first needs them and
/// kept for the life of the process. The caller always runs parts too, taking them one at a
/// time like the workers, and then waits only for parts a worker has started: a call made
/// from inside a part (or with every worker busy, or in a child after fork()) completes on
/// its own thread. Workers block the asynchronous signals (SIGINT, SIGTERM, ...), so those
/// reach the program's own threads, as they did when no thread outlived its call.
class worker_pool {
 public:
  /// The process's pool. Never destroyed: a static's destructor could still need it, and
  /// idle workers simply end with the process.
  static worker_pool& shared() {
    static worker_pool* const pool = new worker_pool;
    return *pool;
  }

  /// Runs part(p) for every p in [0, parts), on the caller and up to parts - 1 workers, and
  /// returns when all have returned. `part` must not throw.
  template <class Part>
  void run(std::size_t parts, Part& part) {
    if (parts == 0) return;
    if (parts == 1) return part(std::size_t{0});
    const auto job = std::make_shared<job_state>(parts, &part, [](void* f, std::size_t p) { (*static_cast<Part*>(f))(p); });
    {
      std::lock_guard<std::mutex> lock(mutex_);
      start_workers(parts - 1);
      queue_.push_back(job);
    }
    // as many wake-ups as the call has parts for workers: a 2-part call on a 64-core pool
    // wakes one idle worker, not all of them (a woken worker that finds the parts taken sleeps
    // again, and the caller runs whatever no worker took)
    for (std::size_t i = 1; i < parts; ++i) wake_.notify_one();
    job->work();
    job->wait();
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.erase(std::remove(queue_.begin(), queue_.end(), job), queue_.end());
  }

 private:
  /// One call's parts: taken in order by whoever comes, counted when done.
  struct job_state {
    job_state(std::size_t n, void* f, void (*c)(void*, std::size_t)) : parts(n), fn(f), call(c) {}
    const std::size_t parts;
    void* const fn;
    void (*const call)(void*, std::size_t);
    std::atomic<std::size_t> next{0};
    std::mutex m;
    std::condition_variable all_done;
    std::size_t finished = 0;  // guarded by m

    bool taken() const { return next.load() >= parts; }
    /// Runs parts until none is left to take.
    void work() {
      for (std::size_t p; (p = next.fetch_add(1)) < parts;) {
        call(fn, p);
        std::lock_guard<std::mutex> lock(m);
        if (++finished == parts) all_done.notify_all();
      }
    }
    void wait() {
      std::unique_lock<std::mutex> lock(m);
      all_done.wait(lock, [&] { return finished == parts; });
    }
  };

  worker_pool() {
#if BLOCKCAST_POSIX_THREADS
    // a child of fork() has none of the parent's workers, and the pool's lock as the forking
    // thread left it: take it across the fork, and start the child's pool empty. The
    // parent's idle workers were waiting on wake_, and the child's copy still counts them:
    // glibc's notify then waits for those waiters, which do not exist in the child, forever
    // (a child hung in 11 of 40 forks). So the child gets a new condition variable in its
    // place; the old one is not destroyed (with waiters, that too would wait, or is undefined).
    ::pthread_atfork([] { shared().mutex_.lock(); }, [] { shared().mutex_.unlock(); },
                     [] {
                       worker_pool& pool = shared();
                       pool.workers_ = 0;
                       pool.queue_.clear();
                       ::new (static_cast<void*>(&pool.wake_)) std::condition_variable;
                       pool.mutex_.unlock();
                     });
#endif
  }

  /// Starts workers until there are `wanted` (at most max_workers). Called with mutex_ held.
  /// A thread the system refuses is not an error: the callers run the parts it would have.
  void start_workers(std::size_t wanted) {
    wanted = std::min(wanted, max_workers);
    if (workers_ >= wanted) return;
#if BLOCKCAST_POSIX_THREADS
    sigset_t blocked, previous;
    ::sigfillset(&blocked);
    for (int sync : {SIGBUS, SIGSEGV, SIGFPE, SIGILL, SIGTRAP, SIGSYS}) ::sigdelset(&blocked, sync);  // faults stay the thread's own
    ::pthread_sigmask(SIG_BLOCK, &blocked, &previous);  // inherited by the new threads
#endif
#if BLOCKCAST_HAS_EXCEPTIONS
    try {
#endif
      for (; workers_ < wanted; ++workers_) std::thread([this] { serve(); }).detach();
#if BLOCKCAST_HAS_EXCEPTIONS
    } catch (const std::system_error&) {  // no more threads: fewer workers
    }
#endif
#if BLOCKCAST_POSIX_THREADS
    ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
#endif
  }

  /// A worker: takes parts of the oldest call that has parts left.
  void serve() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return !queue_.empty(); });
      const std::shared_ptr<job_state> job = queue_.front();
      if (job->taken()) {  // all its parts are running or done: nothing here for this worker
        queue_.pop_front();
        continue;
      }
      lock.unlock();
      job->work();
      lock.lock();
    }
  }

  static constexpr std::size_t max_workers = 256;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<job_state>> queue_;  // calls that may have parts left, oldest first
  std::size_t workers_ = 0;
};

/// Runs part(p) for p in [0, parts) on the shared pool, each part's exception caught and the
/// first rethrown on the caller.
template <class F>
void run_parts(std::size_t parts, F&& f) {
  std::vector<std::exception_ptr> errors(parts);
  auto part = [&](std::size_t p) {
#if BLOCKCAST_HAS_EXCEPTIONS
    try {
      f(p);
    } catch (...) {
      errors[p] = std::current_exception();
    }
#else
    f(p);  // errors abort (config.hpp)
#endif
  };
  worker_pool::shared().run(parts, part);
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

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
  run_parts(parts, [&](std::size_t p) { f(n * p / parts, n * (p + 1) / parts); });
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
  run_parts(parts, [&](std::size_t) {
    if (next.load() >= n) return;  // a participant that came after the last index: no state to make
#if BLOCKCAST_HAS_EXCEPTIONS
    try {
#endif
      auto state = make_state();
      for (std::size_t i; !failed.load(std::memory_order_relaxed) && (i = next.fetch_add(1)) < n;) f(state, i);
#if BLOCKCAST_HAS_EXCEPTIONS
    } catch (...) {
      failed = true;
      throw;
    }
#endif
  });
}

}  // namespace blockcast::detail
