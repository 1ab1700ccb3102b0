// SPDX-License-Identifier: MIT
// Reading gzipped IDX files (the MNIST family's format): a big-endian magic number whose low
// byte is the rank, then the dimensions, then unsigned bytes. Debian's dataset-fashion-mnist
// package installs them in /usr/share/datasets/fashion-mnist/.
#pragma once

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace fashion {

struct idx_array {
  std::vector<std::uint32_t> dims;
  std::vector<std::uint8_t> data;
};

inline idx_array read_idx(const std::string& path, std::size_t max_items = SIZE_MAX) {
  const std::unique_ptr<gzFile_s, int (*)(gzFile)> f(gzopen(path.c_str(), "rb"), gzclose);
  if (!f) throw std::runtime_error(path + ": cannot open (install Debian's dataset-fashion-mnist package)");
  auto read = [&](void* to, unsigned bytes) {
    if (gzread(f.get(), to, bytes) != static_cast<int>(bytes)) throw std::runtime_error(path + ": truncated or not gzip");
  };
  auto read_u32 = [&] {
    std::uint8_t b[4];
    read(b, 4);
    return std::uint32_t{b[0]} << 24 | std::uint32_t{b[1]} << 16 | std::uint32_t{b[2]} << 8 | b[3];
  };
  const std::uint32_t magic = read_u32();
  if ((magic >> 8) != 0x08 || (magic & 0xff) == 0 || (magic & 0xff) > 4)
    throw std::runtime_error(path + ": not an IDX file of unsigned bytes (magic " + std::to_string(magic) + ")");
  idx_array a;
  std::size_t count = 1;
  for (std::uint32_t i = 0; i < (magic & 0xff); ++i) a.dims.push_back(read_u32());
  if (a.dims[0] > max_items) a.dims[0] = static_cast<std::uint32_t>(max_items);
  for (auto d : a.dims) count *= d;
  a.data.resize(count);
  for (std::size_t done = 0; done < count;) {
    const unsigned chunk = static_cast<unsigned>(std::min<std::size_t>(count - done, 1u << 30));
    read(a.data.data() + done, chunk);
    done += chunk;
  }
  return a;
}

}  // namespace fashion
