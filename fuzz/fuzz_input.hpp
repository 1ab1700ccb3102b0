// SPDX-License-Identifier: MIT
// Reading a fuzzer's bytes as typed fields; past the end, fields read as zero.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "scratch_dir.hpp"

namespace blockcast::fuzz {

class fuzz_input {
 public:
  fuzz_input(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  template <class T>
  T take() {
    T v{};
    const std::size_t n = sizeof(T) < size_ ? sizeof(T) : size_;
    std::memcpy(&v, data_, n);
    data_ += n, size_ -= n;
    return v;
  }
  const std::uint8_t* rest() const { return data_; }
  std::size_t remaining() const { return size_; }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
};

// A file name in this process's scratch directory, which is removed when the fuzzer exits.
inline std::string scratch_file(const std::string& name) {
  static const std::string dir = blockcast::test::scratch_dir("blockcast-fuzz-");
  return dir + "/" + name;
}

// Writes the fuzzer's bytes to a file for the readers under test; false if it cannot.
inline bool write_file(const char* path, const void* data, std::size_t size) {
  std::FILE* f = std::fopen(path, "wb");
  if (!f) return false;
  const bool ok = std::fwrite(data, 1, size, f) == size;
  return std::fclose(f) == 0 && ok;
}

// Stops the fuzzer with a crash libFuzzer records (the input is saved as a reproducer).
[[noreturn]] inline void found(const char* what) {
  std::fprintf(stderr, "fuzz finding: %s\n", what);
  __builtin_trap();
}

inline bool same_bits(float a, float b) {
  std::uint32_t x, y;
  std::memcpy(&x, &a, 4);
  std::memcpy(&y, &b, 4);
  return x == y;
}

}  // namespace blockcast::fuzz
