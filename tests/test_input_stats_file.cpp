// SPDX-License-Identifier: MIT
// Calibration statistics stored in safetensors (io/input_stats_file.hpp): a round trip keeps
// every bit of the state, restored statistics give the same ED model and merge with new
// batches as if never stored; damaged or foreign files are refused with the file and the
// problem named.
#include <blockcast/io/input_stats_file.hpp>

#include "cli_test_files.hpp"

#include <catch2/catch.hpp>

#include <optional>
#include <random>
#include <string>
#include <tuple>

namespace io = blockcast::io;
namespace ptq = blockcast::ptq;

namespace {

ptq::matrix samples(Eigen::Index n, Eigen::Index k, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  ptq::matrix x(n, k);
  for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = normal(rng) * (1.0f + static_cast<float>(i % k) / 8.0f);
  return x;
}

void require_same_state(const ptq::input_stats& a, const ptq::input_stats& b) {
  const auto sa = a.state(), sb = b.state();
  REQUIRE(sa.channels == sb.channels);
  REQUIRE(sa.sketch == sb.sketch);
  REQUIRE(sa.seed == sb.seed);
  REQUIRE(sa.omega == sb.omega);
  REQUIRE(sa.count == sb.count);
  REQUIRE(sa.sum == sb.sum);  // bit for bit
  REQUIRE(sa.sum_sq == sb.sum_sq);
  REQUIRE(sa.moments == sb.moments);
}

}  // namespace

TEST_CASE("input statistics survive a safetensors round trip bit for bit", "[io][input_stats]") {
  // K = 40 with a sketch of 16 (sketched: Hadamard by default, Gaussian as version 1 files
  // hold), K = 40 with a sketch of 33 (more columns than the 32 of its Hadamard transform:
  // Gaussian), K = 12 (exact: the sketch holds H itself)
  using kind = ptq::test_matrix_kind;
  for (const auto& [k, sketch, seed, omega, omega_name] :
       {std::tuple<Eigen::Index, std::size_t, std::uint64_t, std::optional<kind>, const char*>{40, 16, 7, std::nullopt, "hadamard"},
        {40, 16, 7, kind::gaussian, "gaussian"},
        {40, 33, 7, std::nullopt, "gaussian"},
        {12, 128, 0, std::nullopt, "none"}}) {
    INFO("K = " << k << ", sketch " << sketch << ", test matrix " << omega_name);
    const ptq::matrix x = samples(300, k, static_cast<unsigned>(k));
    ptq::input_stats stats(static_cast<std::size_t>(k), sketch, seed, omega);
    stats.add(x);
    CHECK(std::string(stats.exact() ? "none" : ptq::test_matrix_name(stats.test_matrix_type())) == omega_name);
    const std::string path = blockcast::test::fresh_dir() + "/stats-" + std::to_string(k) + ".safetensors";
    {
      io::safetensors_writer out(path);
      io::add_input_stats(out, "layers.0.q_proj.weight", stats);
      out.commit();
    }
    const io::safetensors_file f(path);
    CHECK(f.metadata().at("layers.0.q_proj.weight.input_stats").find(std::string("\"test_matrix\":\"") + omega_name + "\"") !=
          std::string::npos);
    REQUIRE(io::has_input_stats(f, "layers.0.q_proj.weight"));
    REQUIRE_FALSE(io::has_input_stats(f, "layers.0.k_proj.weight"));
    const ptq::input_stats back = io::read_input_stats(f, "layers.0.q_proj.weight");
    require_same_state(stats, back);
    const auto m1 = stats.model(), m2 = back.model();
    REQUIRE(m1.U == m2.U);
    REQUIRE(m1.d == m2.d);
    // restored statistics take more batches exactly as the originals do
    const ptq::matrix more = samples(50, k, 99);
    ptq::input_stats a = stats, b = back;
    a.add(more);
    b.add(more);
    require_same_state(a, b);
  }
}

TEST_CASE("version 1 statistics files (Gaussian sketches, no test_matrix entry) are read as they were written", "[io][input_stats]") {
  const ptq::matrix x = samples(200, 40, 5);
  ptq::input_stats stats(40, 16, 3, ptq::test_matrix_kind::gaussian);
  stats.add(x);
  const std::string path = blockcast::test::fresh_dir() + "/v1.safetensors";
  {
    io::safetensors_writer out(path);
    io::add_input_stats(out, "w", stats);
    out.set_metadata("blockcast.input_stats", "1");
    out.set_metadata("w.input_stats", "{\"samples\": 200, \"sketch\": 16, \"seed\": 3}");
    out.commit();
  }
  const ptq::input_stats back = io::read_input_stats(io::safetensors_file(path), "w");
  CHECK(back.test_matrix_type() == ptq::test_matrix_kind::gaussian);
  require_same_state(stats, back);
  // and they do not merge with today's default (Hadamard) statistics of the same K, s and seed
  ptq::input_stats fresh(40, 16, 3);
  fresh.add(x);
  ptq::input_stats merged = back;
  CHECK_THROWS_WITH(merged.merge(fresh), Catch::Contains("(sketch 16, hadamard, seed 3) into K = 40 (sketch 16, gaussian, seed 3)"));
}

TEST_CASE("damaged or foreign statistics files are refused, naming the file and the problem", "[io][input_stats][errors]") {
  const ptq::input_stats stats = ptq::input_stats::from(samples(64, 20, 3), 8, 1);
  const std::string dir = blockcast::test::fresh_dir();
  auto write = [&](const std::string& name, auto&& edit) {
    const std::string path = dir + "/" + name + ".safetensors";
    io::safetensors_writer out(path);
    io::add_input_stats(out, "w", stats);
    edit(out);
    out.commit();
    return path;
  };
  auto refused = [](const std::string& path, const std::string& what) {
    blockcast::test::require_refused([&] { (void)io::read_input_stats(io::safetensors_file(path), "w"); }, path, what);
  };
  // a file whose "w.input_stats" metadata is `info` instead of what the writer put there
  auto with_info = [&](const std::string& name, const std::string& info) {
    return write(name, [&](io::safetensors_writer& o) { o.set_metadata("w.input_stats", info); });
  };
  refused(write("version", [](io::safetensors_writer& o) { o.set_metadata("blockcast.input_stats", "3"); }), "version '3'");
  refused(with_info("kind", "{\"samples\": 64, \"sketch\": 8, \"seed\": 1, \"test_matrix\": \"sobol\"}"),
          "test matrix 'sobol' for a sketch of 8 columns");
  refused(with_info("no-kind", "{\"samples\": 64, \"sketch\": 8, \"seed\": 1}"),
          "malformed metadata");
  // K = 20: its Hadamard transform has 16 columns
  refused(with_info("wide-hadamard", "{\"samples\": 64, \"sketch\": 17, \"seed\": 1, \"test_matrix\": \"hadamard\"}"),
          "Hadamard test matrix of 17 columns (at most 16 exist)");
  refused(with_info("exact-kind", "{\"samples\": 64, \"sketch\": 20, \"seed\": 1, \"test_matrix\": \"hadamard\"}"),
          "test matrix 'hadamard' for exact statistics (wanted 'none')");
  refused(with_info("sketch-none", "{\"samples\": 64, \"sketch\": 8, \"seed\": 1, \"test_matrix\": \"none\"}"),
          "test matrix 'none' for a sketch of 8 columns (wanted 'hadamard' or 'gaussian')");
  refused(with_info("metadata", "{\"samples\": -1}"),
          "malformed metadata");
  refused(with_info("no-sketch", "{\"samples\": 64, \"sketch\": 0, \"seed\": 1, \"test_matrix\": \"hadamard\"}"),
          "sketch size 0");
  refused(with_info("other-sketch", "{\"samples\": 64, \"sketch\": 4, \"seed\": 1, \"test_matrix\": \"hadamard\"}"),
          "moments of 20 x 8 (wanted 20 and 20 x 4)");
  {
    // a tensor of the wrong type: F32 sums
    const std::string path = dir + "/f32.safetensors";
    io::safetensors_writer out(path);
    const std::vector<float> v(20, 1.0f);
    out.add_f32("w.input_sum", {20}, blockcast::span<const float>(v.data(), v.size()));
    out.set_metadata("blockcast.input_stats", "1");
    out.set_metadata("w.input_stats", "{\"samples\": 64, \"sketch\": 8, \"seed\": 1}");
    out.commit();
    refused(path, "must be F64");
  }
  {
    const std::string path = dir + "/plain.safetensors";
    io::safetensors_writer out(path);
    const std::vector<float> v(4, 1.0f);
    out.add_f32("w.inputs", {1, 4}, blockcast::span<const float>(v.data(), v.size()));
    out.commit();
    refused(path, "holds no input statistics");
  }
  {
    auto st = stats.state();
    st.sum_sq(3) = std::nan("");
    CHECK_THROWS_AS(ptq::input_stats::from_state(st), blockcast::invalid_argument);
  }
}
