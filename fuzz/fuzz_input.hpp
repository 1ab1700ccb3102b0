// SPDX-License-Identifier: MIT
// Reading a fuzzer's bytes as typed fields; past the end, fields read as zero.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>

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
