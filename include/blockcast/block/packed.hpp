// SPDX-License-Identifier: MIT
// Packed tensors: the owning packed_tensor and the non-owning packed_view /
// mutable_packed_view over caller memory. Byte layout: block/layout.hpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "blockcast/block/layout.hpp"
#include "blockcast/block/span.hpp"
#include "blockcast/block/storage.hpp"
#include "blockcast/error.hpp"

namespace blockcast {

namespace detail {
inline std::string shape_string(std::size_t rows, std::size_t cols) {
  return std::to_string(rows) + " x " + std::to_string(cols);
}

template <class Format>
void check_packed_sizes(std::size_t rows, std::size_t cols, std::size_t code_size,
                        std::size_t scale_size) {
  if (code_size != code_bytes<Format>(rows, cols) || scale_size != scale_bytes<Format>(rows, cols))
    fail<shape_error>("packed view of shape " + shape_string(rows, cols) + " needs " +
                      std::to_string(code_bytes<Format>(rows, cols)) + " code bytes and " +
                      std::to_string(scale_bytes<Format>(rows, cols)) + " scale bytes, got " +
                      std::to_string(code_size) + " and " + std::to_string(scale_size));
}
}  // namespace detail

/// A rows x cols packed tensor in caller memory; Byte is std::uint8_t (writable) or
/// const std::uint8_t (read-only). Construction checks the buffer sizes.
template <class Format, class Byte>
class basic_packed_view {
  static_assert(is_block_format_v<Format>, "packed views take a block_format");

 public:
  using format = Format;

  basic_packed_view(std::size_t rows, std::size_t cols, span<Byte> codes, span<Byte> scales,
                    float tensor_scale = 1.0f)
      : rows_(rows), cols_(cols), codes_(codes), scales_(scales), tensor_scale_(tensor_scale) {
    detail::check_packed_sizes<Format>(rows, cols, codes.size(), scales.size());
  }
  /// A writable view converts to a read-only one.
  template <class B = Byte, class = std::enable_if_t<std::is_const_v<B>>>
  basic_packed_view(const basic_packed_view<Format, std::uint8_t>& other)  // NOLINT: implicit
      : rows_(other.rows()), cols_(other.cols()), codes_(other.codes()),
        scales_(other.scales()), tensor_scale_(other.tensor_scale()) {}

  std::size_t rows() const { return rows_; }
  std::size_t cols() const { return cols_; }
  std::size_t size() const { return rows_ * cols_; }
  span<Byte> codes() const { return codes_; }
  span<Byte> scales() const { return scales_; }
  /// FP32 tensor scale (the decode multiplier S_dec) of two-level formats; 1 otherwise.
  float tensor_scale() const { return tensor_scale_; }

  std::size_t row_bytes() const { return row_code_bytes<Format>(cols_); }
  Byte* row_codes(std::size_t r) const { return codes_.data() + r * row_bytes(); }
  Byte* row_scales(std::size_t r) const { return scales_.data() + r * blocks_per_row<Format>(cols_); }

 private:
  std::size_t rows_;
  std::size_t cols_;
  span<Byte> codes_;
  span<Byte> scales_;
  float tensor_scale_;
};

template <class Format>
using packed_view = basic_packed_view<Format, const std::uint8_t>;
template <class Format>
using mutable_packed_view = basic_packed_view<Format, std::uint8_t>;

/// An owning rows x cols packed tensor (a 1-D tensor of n values is 1 x n).
template <class Format>
class packed_tensor {
  static_assert(is_block_format_v<Format>, "packed_tensor takes a block_format");

 public:
  using format = Format;

  packed_tensor() = default;
  /// All codes and scales zero.
  packed_tensor(std::size_t rows, std::size_t cols)
      : rows_(rows), cols_(cols), codes_(code_bytes<Format>(rows, cols), 0), scales_(scale_bytes<Format>(rows, cols), 0) {}
  /// Storage left unwritten, for a caller that writes every byte next (as quantize does):
  /// no zeroing pass.
  static packed_tensor for_overwrite(std::size_t rows, std::size_t cols) {
    packed_tensor p;
    p.rows_ = rows;
    p.cols_ = cols;
    p.codes_.resize(code_bytes<Format>(rows, cols));
    p.scales_.resize(scale_bytes<Format>(rows, cols));
    return p;
  }

  std::size_t rows() const { return rows_; }
  std::size_t cols() const { return cols_; }
  /// Number of values.
  std::size_t size() const { return rows_ * cols_; }
  span<const std::uint8_t> codes() const { return codes_; }
  span<std::uint8_t> codes() { return codes_; }
  /// One byte per block, row after row.
  span<const std::uint8_t> scales() const { return scales_; }
  span<std::uint8_t> scales() { return scales_; }
  /// FP32 tensor scale (the decode multiplier S_dec) of two-level formats (NVFP4); 1 otherwise.
  float tensor_scale() const { return tensor_scale_; }
  void set_tensor_scale(float s) { tensor_scale_ = s; }

  packed_view<Format> view() const {
    return {rows_, cols_, codes(), scales(), tensor_scale_};
  }
  mutable_packed_view<Format> mutable_view() {
    return {rows_, cols_, codes(), scales(), tensor_scale_};
  }
  operator packed_view<Format>() const { return view(); }  // NOLINT: implicit

 private:
  std::size_t rows_ = 0;
  std::size_t cols_ = 0;
  detail::tensor_vector<std::uint8_t> codes_;
  detail::tensor_vector<std::uint8_t> scales_;
  float tensor_scale_ = 1.0f;
};

}  // namespace blockcast
