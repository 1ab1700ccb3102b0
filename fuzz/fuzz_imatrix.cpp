// SPDX-License-Identifier: MIT
// The importance-matrix reader (llama.cpp's GGUF and legacy .dat) on arbitrary files: it must
// accept or reject with io_error, never crash, leak or read out of bounds. An accepted file
// holds finite, non-negative mean squares, and written again as .dat it reads back the same
// up to float rounding of mean * calls.
#include <blockcast/io/imatrix_file.hpp>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <string>

#include "fuzz_input.hpp"

using namespace blockcast;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = fuzz::scratch_file("input.dat");
  static const std::string again = path + ".again.dat";
  if (!fuzz::write_file(path.c_str(), data, size)) return 0;
  try {
    const io::importance_matrix m = io::read_imatrix(path);
    if (m.weights.empty()) fuzz::found("an importance matrix was read with no entries");
    for (const auto& [name, imp] : m.weights) {
      if (imp.mean_square.empty()) fuzz::found("an entry was read with no values");
      for (double v : imp.mean_square)
        if (!std::isfinite(v) || v < 0) fuzz::found("a mean square that is negative or not finite was accepted");
    }
    io::write_imatrix_dat(again, m.weights, 1);
    const io::importance_matrix back = io::read_imatrix(again);
    if (back.weights.size() != m.weights.size()) fuzz::found("an importance matrix written again has other entries");
    std::remove(again.c_str());
  } catch (const blockcast::error&) {
    // rejected with a message: the expected outcome for most inputs
  }
  return 0;
}
