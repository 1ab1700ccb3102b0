// SPDX-License-Identifier: MIT
// Bandwidth roofs: kernels that move exactly the bytes a cast moves and do no arithmetic, so
// every cast's figure can be read as a fraction of what memory allows in the same run.
#pragma once

#include <blockcast/blockcast.hpp>

#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <cstring>

namespace roof {

using f32 = xsimd::batch<float>;
constexpr std::size_t lanes = f32::size;

/// Reads n floats, writes out_bytes_per_block bytes per block of `block` values (codes and
/// scale), in order: the traffic of quantize. `prefetch` adds the kernels' software prefetch.
inline void quantize_traffic(const float* in, std::size_t n, std::size_t block,
                             std::size_t out_bytes_per_block, std::uint8_t* out, bool prefetch) {
  alignas(64) std::uint8_t staging[256];
  for (std::size_t b = 0; b < n / block; ++b) {
    const float* x = in + b * block;
    if (prefetch) __builtin_prefetch(x + 1024);
    f32 acc = f32::load_unaligned(x);
    for (std::size_t v = lanes; v < block; v += lanes) acc = xsimd::bitwise_or(acc, f32::load_unaligned(x + v));
    acc.store_aligned(reinterpret_cast<float*>(staging));
    std::memcpy(out + b * out_bytes_per_block, staging, out_bytes_per_block);
  }
}

/// Reads in_bytes_per_block bytes per block, writes `block` floats per block: the traffic of
/// dequantize.
inline void dequantize_traffic(const std::uint8_t* in, std::size_t n, std::size_t block,
                               std::size_t in_bytes_per_block, float* out) {
  for (std::size_t b = 0; b < n / block; ++b) {
    float first;
    std::memcpy(&first, in + b * in_bytes_per_block + in_bytes_per_block - 4, 4);
    const f32 v(first);
    for (std::size_t i = 0; i < block; i += lanes) v.store_unaligned(out + b * block + i);
  }
}

/// The same traffic written with std::fill per block (the library's own store strategy).
inline void dequantize_fill(const std::uint8_t* in, std::size_t n, std::size_t block,
                            std::size_t in_bytes_per_block, float* out) {
  for (std::size_t b = 0; b < n / block; ++b)
    std::fill(out + b * block, out + (b + 1) * block, static_cast<float>(in[b * in_bytes_per_block]));
}

/// Reads n floats (an amax pass): returns a value that depends on every one.
inline std::uint32_t read_traffic(const float* in, std::size_t n) {
  using i32 = xsimd::batch<std::int32_t>;
  i32 acc(0);
  for (std::size_t i = 0; i + lanes <= n; i += lanes) acc = xsimd::max(acc, xsimd::bitwise_cast<i32>(f32::load_unaligned(in + i)));
  alignas(64) std::int32_t lanes_out[lanes];
  acc.store_aligned(lanes_out);
  return static_cast<std::uint32_t>(lanes_out[0]);
}

/// Reads and writes n floats in 2 KiB chunks, each read twice (first pass, then load and
/// store from L1): the access pattern of the kernels.
inline void copy_chunked(const float* in, std::size_t n, float* out) {
  constexpr std::size_t chunk = 512;
  using i32 = xsimd::batch<std::int32_t>;
  for (std::size_t c = 0; c + chunk <= n; c += chunk) {
    i32 acc(0);
    for (std::size_t i = c; i < c + chunk; i += lanes) acc = acc | xsimd::bitwise_cast<i32>(f32::load_unaligned(in + i));
    const f32 t = xsimd::bitwise_cast<f32>(acc & i32(0));
    for (std::size_t i = c; i < c + chunk; i += lanes) (f32::load_unaligned(in + i) + t).store_unaligned(out + i);
  }
}

/// Dequantize traffic in 2 KiB output chunks, one vector store per 16 values.
inline void dequantize_chunked(const std::uint8_t* in, std::size_t n, std::size_t block,
                               std::size_t in_bytes_per_block, float* out) {
  for (std::size_t b = 0; b < n / block; ++b) {
    const f32 v(static_cast<float>(in[b * in_bytes_per_block] + in[b * in_bytes_per_block + in_bytes_per_block - 1]));
    for (std::size_t i = 0; i < block; i += lanes) v.store_unaligned(out + b * block + i);
  }
}

/// Reads and writes n floats: the traffic of fake_quantize.
inline void copy_traffic(const float* in, std::size_t n, float* out, bool prefetch) {
  for (std::size_t i = 0; i + lanes <= n; i += lanes) {
    if (prefetch && i % 32 == 0) __builtin_prefetch(in + i + 1024);
    f32::load_unaligned(in + i).store_unaligned(out + i);
  }
}

}  // namespace roof
