// SPDX-License-Identifier: MIT
// Helpers of the file and command-line tests: scratch directories, their listings, file
// contents, random weight matrices.
#pragma once

#include <catch2/catch.hpp>

#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "blockcast/io/io_error.hpp"
#include "blockcast/ptq/matrix.hpp"
#include "scratch_dir.hpp"

namespace blockcast::test {

/// A new, empty directory under $TMPDIR, removed when the test process exits.
inline std::string fresh_dir() { return scratch_dir("blockcast-cli-test-"); }

/// `read()` must throw io_error with a message that names `path` and says `what`.
template <class F>
void require_refused(F&& read, const std::string& path, const std::string& what) {
  INFO(path << ": wanted an io_error mentioning '" << what << "'");
  try {
    read();
    FAIL("read without error");
  } catch (const blockcast::io::io_error& e) {
    const std::string message = e.what();
    INFO("got: " << message);
    CHECK(message.find(path) != std::string::npos);
    CHECK(message.find(what) != std::string::npos);
  }
}

/// The bytes of a file ("" if it cannot be read).
inline std::string file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

/// rows x cols weights drawn from N(0, 0.05^2).
inline ptq::matrix random_matrix(Eigen::Index rows, Eigen::Index cols, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  ptq::matrix m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = normal(rng);
  return m;
}

}  // namespace blockcast::test
