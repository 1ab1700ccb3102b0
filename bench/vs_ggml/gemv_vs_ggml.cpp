// SPDX-License-Identifier: MIT
// blockcast's gemv against ggml's MXFP4 matrix-vector product (its plain vec_dot path and its
// repacked 8x8 path), one thread, in one process on the same weights, the calls alternating,
// and a plain read of the same number of bytes beside them. Not built with blockcast: it needs
// a ggml checkout built with its CPU backend, see bench/results/2026-12-04-gemv-vs-ggml-epyc-zen4.md.
//
//   cmake -S ggml -B ggml/build -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=OFF
//   cmake --build ggml/build --target ggml-cpu ggml-base
//   g++ -std=c++17 -O3 -DNDEBUG -march=native -Iggml/include -Iinclude -isystem /usr/include/eigen3
//       bench/vs_ggml/gemv_vs_ggml.cpp -o gemv_vs_ggml ggml/build/src/libggml-cpu.a ggml/build/src/libggml-base.a -fopenmp
//   (one command)
//   ./gemv_vs_ggml [rows]
#include <ggml.h>
#include <ggml-alloc.h>
#include <ggml-backend.h>
#include <ggml-cpu.h>
#include <immintrin.h>

#include <algorithm>
#include <blockcast/blockcast.hpp>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

// ggml's CPU backend exports it without declaring it in a public header (src/ggml-cpu/repack.h)
ggml_backend_buffer_type_t ggml_backend_cpu_repack_buffer_type(void);

using clk = std::chrono::steady_clock;
static double secs(clk::time_point a) { return std::chrono::duration<double>(clk::now() - a).count(); }

struct ggml_mv {
  ggml_context* ctx;
  ggml_tensor *w, *x, *y;
  ggml_cgraph* gf;
  ggml_backend_buffer_t wbuf;
  ggml_gallocr_t ga;
  ggml_mv(bool repack, const std::vector<std::uint8_t>& q, const std::vector<float>& xv, int K, int rows) {
    ggml_init_params ip{16 * ggml_tensor_overhead() + ggml_graph_overhead(), nullptr, true};
    ctx = ggml_init(ip);
    w = ggml_new_tensor_2d(ctx, GGML_TYPE_MXFP4, K, rows);
    x = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, K, 1);
    ggml_backend_buffer_type_t bt = repack ? ggml_backend_cpu_repack_buffer_type() : ggml_backend_cpu_buffer_type();
    wbuf = ggml_backend_buft_alloc_buffer(bt, ggml_backend_buft_get_alloc_size(bt, w) + 4096);
    ggml_backend_tensor_alloc(wbuf, w, ggml_backend_buffer_get_base(wbuf));
    ggml_backend_tensor_set(w, q.data(), 0, ggml_nbytes(w));
    y = ggml_mul_mat(ctx, w, x);
    gf = ggml_new_graph(ctx);
    ggml_build_forward_expand(gf, y);
    ga = ggml_gallocr_new(ggml_backend_cpu_buffer_type());
    ggml_gallocr_alloc_graph(ga, gf);
    ggml_backend_tensor_set(x, xv.data(), 0, ggml_nbytes(x));
  }
};

static std::uint64_t read_bytes(const std::uint8_t* p, std::size_t bytes, std::size_t prefetch) {
  __m512i acc[4] = {};
  for (std::size_t i = 0; i + 256 <= bytes; i += 256)
    for (int u = 0; u < 4; ++u) {
      if (prefetch) __builtin_prefetch(p + i + u * 64 + prefetch);
      acc[u] = _mm512_or_si512(acc[u], _mm512_loadu_si512(p + i + u * 64));
    }
  return _mm512_reduce_or_epi64(_mm512_or_si512(_mm512_or_si512(acc[0], acc[1]), _mm512_or_si512(acc[2], acc[3])));
}

int main(int argc, char** argv) {
  const int K = 4096, rows = argc > 1 ? std::atoi(argv[1]) : 16384, reps = 30;
  ggml_cpu_init();
  std::mt19937 g(1);
  std::normal_distribution<float> n;
  std::vector<float> w(std::size_t(rows) * K), xv(K);
  for (auto& v : w) v = n(g);
  for (auto& v : xv) v = n(g);
  std::vector<std::uint8_t> q(ggml_row_size(GGML_TYPE_MXFP4, K) * rows);
  ggml_quantize_chunk(GGML_TYPE_MXFP4, w.data(), q.data(), 0, rows, K, nullptr);
  ggml_mv plain(false, q, xv, K, rows), repacked(true, q, xv, K, rows);
  ggml_backend_t cpu = ggml_backend_cpu_init();
  ggml_backend_cpu_set_n_threads(cpu, 1);

  const auto bw = blockcast::quantize<blockcast::mxfp4>(w.data(), rows, K);
  std::vector<float> y(rows);
  blockcast::cast_options opt;
  opt.threads = 1;
  const double bytes = double(q.size());  // 2176 bytes a row, the same for both libraries
  blockcast::detail::tensor_vector<std::uint8_t> lin(q.size(), 1);

  std::vector<double> t[4];
  for (int r = 0; r < reps; ++r) {
    auto s = clk::now();
    ggml_backend_graph_compute(cpu, plain.gf);
    t[0].push_back(secs(s));
    s = clk::now();
    ggml_backend_graph_compute(cpu, repacked.gf);
    t[1].push_back(secs(s));
    s = clk::now();
    const auto xq = blockcast::quantize<blockcast::mxint8>(xv.data(), 1, K);
    blockcast::gemv(bw.view(), xq.view(), y.data(), opt);
    t[2].push_back(secs(s));
    double best = 1e9;
    for (std::size_t p : {std::size_t(0), std::size_t(4096), std::size_t(8192)}) {
      s = clk::now();
      volatile std::uint64_t sink = read_bytes(lin.data(), lin.size(), p);
      (void)sink;
      best = std::min(best, secs(s));
    }
    t[3].push_back(best);
  }
  // the two ggml paths agree with each other; blockcast's result against ggml's (different
  // activation formats, Q8_0 against MXINT8, so close but not equal)
  std::vector<float> yp(rows), yr(rows);
  ggml_backend_tensor_get(plain.y, yp.data(), 0, rows * 4);
  ggml_backend_tensor_get(repacked.y, yr.data(), 0, rows * 4);
  double dmax = 0, ref = 0;
  for (int i = 0; i < rows; ++i) dmax = std::max(dmax, double(std::abs(yp[i] - y[i]))), ref = std::max(ref, double(std::abs(yp[i])));
  const char* names[] = {"ggml mul_mat, MXFP4 x Q8_0 (vec_dot)", "ggml mul_mat, MXFP4 repacked 8x8", "blockcast quantize<mxint8> + gemv", "read roof (same bytes)"};
  std::printf("%d x %d MXFP4, %.1f MB of weights, one thread, %d alternating rounds\n", rows, K, bytes / 1e6, reps);
  for (int k = 0; k < 4; ++k) {
    std::sort(t[k].begin(), t[k].end());
    std::printf("%-40s best %.3f ms  median %.3f ms  %.1f GB/s (median)\n", names[k], t[k][0] * 1e3, t[k][reps / 2] * 1e3, bytes / t[k][reps / 2] / 1e9);
  }
  std::printf("ggml plain vs repacked max |diff| %.3g; blockcast vs ggml max |diff| %.3g of max |y| %.3g\n",
              [&] { double d = 0; for (int i = 0; i < rows; ++i) d = std::max(d, double(std::abs(yp[i] - yr[i]))); return d; }(), dmax, ref);
}
