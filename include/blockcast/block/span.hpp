// SPDX-License-Identifier: MIT
// A minimal contiguous view (std::span is C++20; public headers are C++17).
#pragma once

#include <cstddef>
#include <type_traits>
#include <utility>

#include "blockcast/config.hpp"

namespace blockcast {

template <class T>
class span;

namespace detail {
template <class T>
struct is_span : std::false_type {};
template <class T>
struct is_span<span<T>> : std::true_type {};
}  // namespace detail

template <class T>
class span {
 public:
  constexpr span() = default;
  constexpr span(T* data, std::size_t size) : data_(data), size_(size) {}
  template <class Container,
            class = std::enable_if_t<!detail::is_span<std::remove_cv_t<Container>>::value>,
            class = decltype(std::declval<Container&>().data())>
  constexpr span(Container& c) : data_(c.data()), size_(c.size()) {}  // NOLINT: implicit
  template <class U, class = std::enable_if_t<std::is_convertible_v<U (*)[], T (*)[]>>>
  constexpr span(span<U> other) : data_(other.data()), size_(other.size()) {}  // NOLINT

  constexpr T* data() const { return data_; }
  constexpr std::size_t size() const { return size_; }
  constexpr bool empty() const { return size_ == 0; }
  constexpr T* begin() const { return data_; }
  constexpr T* end() const { return data_ + size_; }
  constexpr T& operator[](std::size_t i) const {
    BLOCKCAST_ASSERT(i < size_);
    return data_[i];
  }

 private:
  T* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace blockcast
