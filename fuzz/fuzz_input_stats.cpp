// SPDX-License-Identifier: MIT
// The calibration-statistics reader (io/input_stats_file.hpp) on arbitrary files: it must
// accept or reject with a blockcast::error, never crash, leak or read out of bounds. Accepted
// statistics, written again, read back with the same state bit for bit, and give a finite
// model or an error that says the statistics are corrupt.
#include <blockcast/io/input_stats_file.hpp>

#include <cstdio>
#include <string>

#include "fuzz_input.hpp"

using namespace blockcast;

namespace {

bool same_state(const ptq::input_stats_state& a, const ptq::input_stats_state& b) {
  return a.channels == b.channels && a.sketch == b.sketch && a.seed == b.seed && a.omega == b.omega &&
         a.count == b.count && a.sum == b.sum && a.sum_sq == b.sum_sq && a.moments == b.moments;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = fuzz::scratch_file("stats.safetensors");
  static const std::string again = path + ".again.safetensors";
  if (!fuzz::write_file(path.c_str(), data, size)) return 0;
  const std::string suffix = ".input_stats";
  try {
    const io::safetensors_file f(path);
    for (const auto& [key, value] : f.metadata()) {
      if (key.size() <= suffix.size() || key.compare(key.size() - suffix.size(), suffix.size(), suffix) != 0) continue;
      const std::string name = key.substr(0, key.size() - suffix.size());
      try {
        const ptq::input_stats stats = io::read_input_stats(f, name);
        {
          io::safetensors_writer out(again);
          io::add_input_stats(out, name, stats);
          out.commit();
        }
        const ptq::input_stats back = io::read_input_stats(io::safetensors_file(again), name);
        if (!same_state(stats.state(), back.state())) fuzz::found("statistics written again read back with another state");
        try {
          const ptq::ed_model m = stats.model();
          if (!m.U.allFinite() || !m.d.allFinite() || !(m.d.array() > 0).all())
            fuzz::found("accepted statistics gave a model that is not finite or has d <= 0");
        } catch (const blockcast::error&) {
          // no samples, or corrupt statistics the model cannot be made from: said so
        }
      } catch (const blockcast::error&) {
        // rejected with a message: the expected outcome for most inputs
      }
    }
  } catch (const blockcast::error&) {
  }
  std::remove(again.c_str());
  return 0;
}
