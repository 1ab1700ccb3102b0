// SPDX-License-Identifier: MIT
// Calibration statistics (ptq::input_stats) stored in safetensors, so that statistics
// gathered where a model runs (tools/collect_stats.py, an engine) travel to where it is
// quantized. The format is versioned and described in docs/calibration_stats.md:
//
//   "<weight>.input_sum"      F64 [K]     sum of x over the samples, per input channel
//   "<weight>.input_sum_sq"   F64 [K]     sum of x^2
//   "<weight>.input_moments"  F64 [K, s]  N H Omega (the sketch), or N H (K x K) when s = K
//   metadata "blockcast.input_stats"            "2" (the version)
//   metadata "<weight>.input_stats"             {"samples": N, "sketch": s, "seed": seed,
//                                                "test_matrix": "hadamard" | "gaussian" | "none"}
//
// Omega is the K x s test matrix of ptq/test_matrix.hpp, a function of K, s, the seed and its
// kind alone, so statistics from different processes merge ("none": exact, s = K). Version 1
// files, which had no "test_matrix", are read too: their sketches are Gaussian.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "blockcast/io/io_error.hpp"
#include "blockcast/io/json.hpp"
#include "blockcast/io/safetensors.hpp"
#include "blockcast/ptq/input_stats.hpp"

namespace blockcast::io {

/// The version this code writes; it reads this one and version 1 (Gaussian sketches only).
inline constexpr const char* input_stats_version = "2";
inline constexpr const char* input_stats_version_1 = "1";
inline constexpr const char* input_stats_version_key = "blockcast.input_stats";
/// The test matrix entry of exact statistics, which have none.
inline constexpr const char* exact_kind = "none";

namespace detail {
inline std::vector<std::uint8_t> f64_bytes(const double* values, std::size_t n) {
  std::vector<std::uint8_t> bytes(n * 8);
  std::memcpy(bytes.data(), values, bytes.size());  // little-endian hosts only, as safetensors
  return bytes;
}
}  // namespace detail

/// Adds the statistics of weight `name`'s inputs to a file being written.
inline void add_input_stats(safetensors_writer& out, const std::string& name, const ptq::input_stats& stats) {
  const ptq::input_stats_state st = stats.state();
  const auto k = static_cast<std::uint64_t>(st.channels), s = static_cast<std::uint64_t>(st.moments.cols());
  out.add_owned(name + ".input_sum", dtype::f64, {k}, detail::f64_bytes(st.sum.data(), st.channels));
  out.add_owned(name + ".input_sum_sq", dtype::f64, {k}, detail::f64_bytes(st.sum_sq.data(), st.channels));
  // row-major K x s, as every safetensors tensor
  const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> moments = st.moments;
  out.add_owned(name + ".input_moments", dtype::f64, {k, s}, detail::f64_bytes(moments.data(), static_cast<std::size_t>(moments.size())));
  out.set_metadata(input_stats_version_key, input_stats_version);
  out.set_metadata(name + ".input_stats",
                   nlohmann::json{{"samples", st.count},
                                  {"sketch", st.sketch},
                                  {"seed", st.seed},
                                  {"test_matrix", st.sketch < st.channels ? ptq::test_matrix_name(st.omega) : exact_kind}}
                       .dump());
}

/// Whether a file holds statistics for weight `name`.
inline bool has_input_stats(const safetensors_file& f, const std::string& name) {
  return f.metadata().count(name + ".input_stats") != 0;
}

/// The statistics of weight `name`'s inputs; an io_error names the file and what is wrong.
inline ptq::input_stats read_input_stats(const safetensors_file& f, const std::string& name) {
  const auto& meta = f.metadata();
  const auto version = meta.find(input_stats_version_key);
  if (version == meta.end())
    detail::fail(f.path(), "holds no input statistics (no \"" + std::string(input_stats_version_key) + "\" metadata)");
  const bool version_1 = version->second == input_stats_version_1;
  if (!version_1 && version->second != input_stats_version)
    detail::fail(f.path(), "input statistics of version " + in_quotes(version->second) + "; this build reads versions " +
                               input_stats_version_1 + " and " + input_stats_version);
  const auto info = meta.find(name + ".input_stats");
  if (info == meta.end()) detail::fail(f.path(), "no input statistics for " + in_quotes(name));
  ptq::input_stats_state st;
  std::string kind;
  try {
    const auto j = parse_json(info->second);
    st.count = j.at("samples").get<std::size_t>();
    st.sketch = j.at("sketch").get<std::size_t>();
    st.seed = j.at("seed").get<std::uint64_t>();
    // version 1 sketched with Gaussian test matrices only
    kind = version_1 ? ptq::test_matrix_name(ptq::test_matrix_kind::gaussian) : j.at("test_matrix").get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    detail::fail(f.path(), "the input statistics of " + in_quotes(name) + " have malformed metadata: " + e.what());
  }
  auto read = [&](const std::string& suffix, std::size_t dims) {
    const auto& t = f.find(name + suffix);
    if (t.type != dtype::f64 || t.shape.size() != dims)
      detail::fail(f.path(), in_quotes(t.name) + " must be F64 with " + std::to_string(dims) + " dimension(s)");
    std::vector<double> v(static_cast<std::size_t>(t.elements()));
    const auto bytes = f.bytes(t);
    if (bytes.size() != v.size() * 8) detail::fail(f.path(), in_quotes(t.name) + " has the wrong number of bytes");
    std::memcpy(v.data(), bytes.data(), bytes.size());
    return std::make_pair(t.shape, v);
  };
  const auto [sum_shape, sum] = read(".input_sum", 1);
  const auto [sq_shape, sum_sq] = read(".input_sum_sq", 1);
  const auto [m_shape, moments] = read(".input_moments", 2);
  st.channels = static_cast<std::size_t>(sum_shape[0]);
  // a sketch names its test matrix; exact statistics (s = K) "none" (version 1: nothing)
  const bool sketched = st.sketch < st.channels;
  const auto omega = ptq::test_matrix_from_name(kind);
  if (sketched && omega) st.omega = *omega;
  else if (sketched || (kind != exact_kind && !version_1))
    detail::fail(f.path(), "the input statistics of " + in_quotes(name) + " name the test matrix " + in_quotes(kind) + " for " +
                               (sketched ? "a sketch of " + std::to_string(st.sketch) + " columns (wanted " +
                                               in_quotes(ptq::test_matrix_name(ptq::test_matrix_kind::hadamard)) + " or " +
                                               in_quotes(ptq::test_matrix_name(ptq::test_matrix_kind::gaussian)) + ")"
                                         : std::string("exact statistics (wanted ") + in_quotes(exact_kind) + ")"));
  st.sum = Eigen::Map<const Eigen::VectorXd>(sum.data(), static_cast<Eigen::Index>(sum.size()));
  st.sum_sq = Eigen::Map<const Eigen::VectorXd>(sum_sq.data(), static_cast<Eigen::Index>(sum_sq.size()));
  st.moments = Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
      moments.data(), static_cast<Eigen::Index>(m_shape[0]), static_cast<Eigen::Index>(m_shape[1]));
  try {
    return ptq::input_stats::from_state(std::move(st));
  } catch (const std::exception& e) {
    detail::fail(f.path(), "the input statistics of " + in_quotes(name) + ": " + e.what());
  }
}

}  // namespace blockcast::io
