// SPDX-License-Identifier: MIT
// Byte layout of packed tensors.
//
// A rows x cols tensor is blocked along each row; blocks restart at each row, so a row has
// ceil(cols / B) blocks and the last one may be partial.
//
//  codes : row after row, each row starting on a byte boundary. Within a row the codes form
//          a little-endian bit stream of `bits` per code: code i occupies stream bits
//          [i*bits, (i+1)*bits), stream bit j is bit (j % 8) of byte j / 8. So
//            8-bit: one code per byte;
//            6-bit: 4 codes in 3 bytes, b0 = c0 | c1 << 6, b1 = c1 >> 2 | c2 << 4,
//                   b2 = c2 >> 4 | c3 << 2;
//            4-bit: byte i = c[2i] | c[2i+1] << 4 (PyTorch float4_e2m1fn_x2 order).
//          Padding bits at the end of a row are zero.
//  scales: one byte per block, row after row (rows * ceil(cols / B) bytes).
//  tensor scale: one FP32 per tensor, two-level formats (NVFP4) only.
#pragma once

#include <cstddef>
#include <cstdint>

#include "blockcast/block/block_format.hpp"

namespace blockcast {

/// Bytes of one row of `cols` codes of `bits` each.
constexpr std::size_t row_code_bytes(std::size_t cols, int bits) {
  return (cols * static_cast<std::size_t>(bits) + 7) / 8;
}

template <class Format>
constexpr std::size_t blocks_per_row(std::size_t cols) {
  return (cols + Format::block_size - 1) / Format::block_size;
}
template <class Format>
constexpr std::size_t row_code_bytes(std::size_t cols) {
  return row_code_bytes(cols, Format::element_bits);
}
template <class Format>
constexpr std::size_t code_bytes(std::size_t rows, std::size_t cols) {
  return rows * row_code_bytes<Format>(cols);
}
template <class Format>
constexpr std::size_t scale_bytes(std::size_t rows, std::size_t cols) {
  return rows * blocks_per_row<Format>(cols);
}

// Pinned sizes of one full block of each preset: codes + scale bytes.
static_assert(row_code_bytes<mxfp8_e4m3>(32) == 32 && scale_bytes<mxfp8_e4m3>(1, 32) == 1);
static_assert(row_code_bytes<mxfp8_e5m2>(32) == 32);
static_assert(row_code_bytes<mxfp6_e3m2>(32) == 24 && row_code_bytes<mxfp6_e3m2>(4) == 3);
static_assert(row_code_bytes<mxfp6_e2m3>(32) == 24);
static_assert(row_code_bytes<mxfp4>(32) == 16 && row_code_bytes<mxfp4>(3) == 2);
static_assert(row_code_bytes<mxint8>(32) == 32);
static_assert(row_code_bytes<nvfp4>(16) == 8 && scale_bytes<nvfp4>(2, 17) == 4);

namespace detail {

/// Writes codes[0..n) (each < 2^bits) as a little-endian bit stream; fills
/// row_code_bytes(n, bits) bytes, padding bits zero.
inline void pack_codes(const std::uint8_t* codes, std::size_t n, int bits, std::uint8_t* out) {
  if (bits == 8) {
    for (std::size_t i = 0; i < n; ++i) out[i] = codes[i];
    return;
  }
  std::uint32_t acc = 0;
  int filled = 0;
  std::size_t o = 0;
  for (std::size_t i = 0; i < n; ++i) {
    acc |= static_cast<std::uint32_t>(codes[i]) << filled;
    filled += bits;
    while (filled >= 8) {
      out[o++] = static_cast<std::uint8_t>(acc);
      acc >>= 8;
      filled -= 8;
    }
  }
  if (filled > 0) out[o] = static_cast<std::uint8_t>(acc);
}

/// Reads n codes of `bits` each from a little-endian bit stream.
inline void unpack_codes(const std::uint8_t* in, std::size_t n, int bits, std::uint8_t* codes) {
  if (bits == 8) {
    for (std::size_t i = 0; i < n; ++i) codes[i] = in[i];
    return;
  }
  const std::uint32_t mask = (1u << bits) - 1u;
  std::uint32_t acc = 0;
  int filled = 0;
  std::size_t b = 0;
  for (std::size_t i = 0; i < n; ++i) {
    while (filled < bits) {
      acc |= static_cast<std::uint32_t>(in[b++]) << filled;
      filled += 8;
    }
    codes[i] = static_cast<std::uint8_t>(acc & mask);
    acc >>= bits;
    filled -= bits;
  }
}

}  // namespace detail
}  // namespace blockcast
