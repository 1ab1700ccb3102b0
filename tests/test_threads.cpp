// SPDX-License-Identifier: MIT
// The multi-threaded paths, small enough to run under ThreadSanitizer (scripts/test.sh,
// stage "threads"): casts split over threads, PTQ split over row chunks and sample parts, and
// independent calls from many threads at once, and the kept worker threads (nested calls,
// signal masks, fork). Every result must equal the one-thread result.
#include <blockcast/blockcast.hpp>
#include <blockcast/ptq.hpp>

#include <catch2/catch.hpp>

#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>
#include <thread>
#include <tuple>
#include <vector>

namespace bc = blockcast;
namespace ptq = blockcast::ptq;

namespace {

std::vector<float> values(std::size_t n, unsigned seed, bool with_nan = true) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = normal(rng) * std::exp2(static_cast<float>(static_cast<int>(rng() % 9) - 4));
  if (with_nan) v[n / 3] = NAN;
  return v;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

template <class Format>
struct cast_result {
  bc::packed_tensor<Format> packed;
  std::vector<float> fake, decoded;
  std::vector<std::uint16_t> bf16;
};

template <class Format>
cast_result<Format> casts(const std::vector<float>& x, std::size_t rows, std::size_t cols, const bc::cast_options& opt) {
  cast_result<Format> r{bc::quantize<Format>(x.data(), rows, cols, opt), std::vector<float>(x.size()),
                        std::vector<float>(x.size()), std::vector<std::uint16_t>(x.size())};
  bc::fake_quantize<Format>(x.data(), r.fake.data(), rows, cols, opt);
  bc::dequantize(r.packed, r.decoded.data(), opt);
  bc::dequantize_bf16(r.packed, r.bf16.data(), opt);
  return r;
}

template <class Format>
bool same(const cast_result<Format>& a, const cast_result<Format>& b) {
  return std::equal(a.packed.codes().begin(), a.packed.codes().end(), b.packed.codes().begin()) &&
         std::equal(a.packed.scales().begin(), a.packed.scales().end(), b.packed.scales().begin()) &&
         a.packed.tensor_scale() == b.packed.tensor_scale() && same_bits(a.fake, b.fake) &&
         same_bits(a.decoded, b.decoded) && a.bf16 == b.bf16;
}

using presets = std::tuple<bc::mxfp8_e4m3, bc::mxfp8_e5m2, bc::mxfp6_e3m2, bc::mxfp6_e2m3, bc::mxfp4, bc::mxint8, bc::nvfp4>;

}  // namespace

TEMPLATE_LIST_TEST_CASE("casts split over threads equal one thread", "[threads]", presets) {
  const std::size_t rows = 37, cols = 1000;  // rows and a partial last block per row
  const auto x = values(rows * cols, 1);
  for (auto round : {bc::rounding::nearest_even, bc::rounding::stochastic}) {
    bc::cast_options opt;
    opt.round = round;
    const auto one = casts<TestType>(x, rows, cols, opt);
    for (unsigned threads : {2u, 3u, 5u}) {
      opt.threads = threads;
      INFO("threads " << threads);
      CHECK(same(casts<TestType>(x, rows, cols, opt), one));
      CHECK(same(casts<TestType>(x, 1, rows * cols, opt), casts<TestType>(x, 1, rows * cols, bc::cast_options{})) ==
            (round == bc::rounding::nearest_even));  // stochastic: opt.round differs from the default
    }
  }
}

TEST_CASE("independent calls from many threads at once", "[threads]") {
  const auto x = values(64 * 512, 2);
  const auto expected = casts<bc::nvfp4>(x, 64, 512, {});
  std::vector<char> ok(4, 0);
  std::vector<std::thread> pool;
  for (std::size_t t = 0; t < ok.size(); ++t)
    pool.emplace_back([&, t] {
      bc::cast_options opt;
      opt.threads = 1 + static_cast<unsigned>(t % 2);  // some calls split again
      bool all = true;
      for (int i = 0; i < 3; ++i) all = all && same(casts<bc::nvfp4>(x, 64, 512, opt), expected);
      all = all && bc::find_format("mxfp4").block_size == 32;  // the preset table, shared
      ok[t] = all;
    });
  for (auto& t : pool) t.join();
  CHECK(ok == std::vector<char>(ok.size(), 1));
}

TEST_CASE("PTQ split over threads equals one thread", "[threads]") {
  const auto wv = values(70 * 96, 3, false), xv = values(300 * 96, 4, false);
  ptq::matrix w = Eigen::Map<const ptq::matrix>(wv.data(), 70, 96);
  ptq::matrix x = Eigen::Map<const ptq::matrix>(xv.data(), 300, 96).cwiseAbs();
  const auto stats1 = ptq::input_stats::from(x, 32, 0, 1), stats3 = ptq::input_stats::from(x, 32, 0, 3);
  CHECK(stats1.model().U == stats3.model().U);
  ptq::ed_options e1, e3;
  e3.cast.threads = 3;
  CHECK(ptq::error_diffusion<bc::mxfp4>(w, stats1, e1).dequantized == ptq::error_diffusion<bc::mxfp4>(w, stats1, e3).dequantized);
  ptq::gptq_options g1, g3;
  g3.cast.threads = 3;
  CHECK(ptq::gptq<bc::nvfp4>(w, x, g1).dequantized == ptq::gptq<bc::nvfp4>(w, x, g3).dequantized);
  bc::cast_options c3;
  c3.threads = 3;
  CHECK(ptq::rtn<bc::mxint8>(w).dequantized == ptq::rtn<bc::mxint8>(w, c3).dequantized);
}

TEST_CASE("parallel_claim runs every index once, on its own state per thread, and passes exceptions on", "[threads]") {
  for (std::size_t n : {0u, 1u, 2u, 7u, 1000u}) {
    for (unsigned threads : {0u, 1u, 2u, 3u, 8u}) {
      INFO(n << " indices on " << threads << " threads");
      std::vector<std::atomic<int>> seen(n);
      std::atomic<int> states{0};
      blockcast::detail::parallel_claim(
          n, threads, [&] { return ++states; },
          [&](int&, std::size_t i) { seen[i].fetch_add(1); });
      for (std::size_t i = 0; i < n; ++i) {
        INFO("index " << i);
        CHECK(seen[i].load() == 1);
      }
      CHECK(states.load() <= static_cast<int>(std::max(1u, threads)));
    }
  }
  for (unsigned threads : {1u, 2u}) {
    INFO(threads << " threads");
    std::atomic<int> after{0};
    CHECK_THROWS_WITH(blockcast::detail::parallel_claim(
                          100, threads, [] { return 0; },
                          [&](int&, std::size_t i) {
                            if (i == 3) throw std::runtime_error("index 3 failed");
                            ++after;
                          }),
                      "index 3 failed");
    if (threads == 1) CHECK(after.load() == 3);  // nothing is taken after the failure
  }
}

TEST_CASE("a part that splits again completes, whatever the workers are doing", "[threads]") {
  for (unsigned threads : {2u, 3u, 8u}) {
    INFO(threads << " threads, nested twice");
    std::vector<std::atomic<int>> seen(7 * 5 * 3);
    blockcast::detail::parallel_for(7, threads, 1, [&](std::size_t a0, std::size_t a1) {
      for (std::size_t a = a0; a < a1; ++a)
        blockcast::detail::parallel_for(5, threads, 1, [&](std::size_t b0, std::size_t b1) {
          for (std::size_t b = b0; b < b1; ++b)
            blockcast::detail::parallel_claim(
                3, threads, [] { return 0; }, [&](int&, std::size_t c) { seen[(a * 5 + b) * 3 + c].fetch_add(1); });
        });
    });
    for (std::size_t i = 0; i < seen.size(); ++i) {
      INFO("index " << i);
      CHECK(seen[i].load() == 1);
    }
  }
}

TEST_CASE("the kept workers block asynchronous signals, so that they reach the program's threads", "[threads]") {
  const auto caller = std::this_thread::get_id();
  std::atomic<int> on_workers{0}, unblocked{0};
  blockcast::detail::parallel_for(2, 2, 1, [&](std::size_t, std::size_t) {
    if (std::this_thread::get_id() == caller) {  // part 0: wait (up to 10 s) for a worker to take part 1
      for (int i = 0; i < 10000 && on_workers.load() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      return;
    }
    sigset_t mask;
    ::pthread_sigmask(SIG_BLOCK, nullptr, &mask);
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE})
      if (!sigismember(&mask, sig)) ++unblocked;
    for (int sig : {SIGBUS, SIGSEGV})  // a fault must stay the faulting thread's to handle
      if (sigismember(&mask, sig)) ++unblocked;
    ++on_workers;
  });
  CHECK(on_workers.load() > 0);
  CHECK(unblocked.load() == 0);
}

#if !defined(__SANITIZE_THREAD__)  // ThreadSanitizer does not support threads after a multi-threaded fork
TEST_CASE("a child of fork() runs parallel calls without the parent's workers", "[threads]") {
  // The parent's idle workers wait on the pool's condition variable when it forks. Before the
  // child got a fresh one, its first parallel call waited for those phantom waiters forever
  // in about one fork in four (glibc), so a round is repeated, with the parent's workers left
  // by calls of 1 to 4 threads.
  for (int round = 0; round < 20; ++round) {
    std::atomic<int> sum{0};
    for (int i = 0; i < 10; ++i)
      blockcast::detail::parallel_for(100, static_cast<unsigned>(1 + (i + round) % 4), 1,
                                      [&](std::size_t b, std::size_t e) { sum += static_cast<int>(e - b); });
    REQUIRE(sum.load() == 1000);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      std::atomic<int> in_child{0};
      for (int i = 0; i < 10; ++i)
        blockcast::detail::parallel_for(100, 3, 1, [&](std::size_t b, std::size_t e) { in_child += static_cast<int>(e - b); });
      ::_exit(in_child.load() == 1000 ? 0 : 1);
    }
    // a child that hangs fails the test instead of hanging it: 30 s, then it is killed
    int status = 0;
    bool ended = false;
    for (int ms = 0; ms < 30000 && !ended; ++ms) {
      ended = ::waitpid(child, &status, WNOHANG) == child;
      if (!ended) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (!ended) {
      ::kill(child, SIGKILL);
      ::waitpid(child, &status, 0);
      FAIL("fork " << round << ": the child's parallel calls did not finish within 30 s (deadlocked)");
    }
    INFO("fork " << round);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
}
#endif
