// SPDX-License-Identifier: MIT
// A test tool: the input statistics C++ computes (ptq::input_stats, stored as in
// docs/calibration_stats.md) from raw layer inputs, so that tests/stats_interop.py can compare
// them with tools/collect_stats.py's from the same inputs.
// Usage: stats_tool IN.safetensors OUT.safetensors BATCH [gaussian]
//   IN holds "<name>.inputs" (F32, N x K); each is added to a fresh input_stats (default sketch
//   and seed; the default test matrix, or a Gaussian one) BATCH rows at a time, in order, as
//   collect_stats.Stats.add gets them.
#include <cstdio>
#include <optional>
#include <string>

#include "blockcast/io/input_stats_file.hpp"
#include "blockcast/io/safetensors.hpp"

namespace io = blockcast::io;

int main(int argc, char** argv) {
  const bool gaussian = argc == 5 && std::string(argv[4]) == "gaussian";
  if (argc != 4 && !gaussian) {
    std::fprintf(stderr, "usage: %s IN.safetensors OUT.safetensors BATCH [gaussian]\n", argv[0]);
    return 2;
  }
  try {
    const io::safetensors_file in(argv[1]);
    io::safetensors_writer out(argv[2]);
    const Eigen::Index batch = std::stol(argv[3]);
    const std::string suffix = ".inputs";
    for (const auto& t : in.tensors()) {
      if (t.name.size() <= suffix.size() || t.name.compare(t.name.size() - suffix.size(), suffix.size(), suffix) != 0)
        continue;
      if (t.type != io::dtype::f32 || t.shape.size() != 2) throw std::runtime_error(t.name + " is not an F32 matrix");
      const auto values = in.to_float(t);
      const auto rows = static_cast<Eigen::Index>(t.shape[0]), cols = static_cast<Eigen::Index>(t.shape[1]);
      const Eigen::Map<const blockcast::ptq::matrix> x(values.data(), rows, cols);
      std::optional<blockcast::ptq::test_matrix_kind> kind;
      if (gaussian) kind = blockcast::ptq::test_matrix_kind::gaussian;
      blockcast::ptq::input_stats stats(static_cast<std::size_t>(cols), blockcast::ptq::input_stats::auto_sketch, 0, kind);
      for (Eigen::Index r = 0; r < rows; r += batch) stats.add(x.middleRows(r, std::min(batch, rows - r)));
      io::add_input_stats(out, t.name.substr(0, t.name.size() - suffix.size()), stats);
    }
    out.commit();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stats_tool: %s\n", e.what());
    return 1;
  }
  return 0;
}
