// SPDX-License-Identifier: MIT
// The byte storage of packed tensors. A fresh buffer is the slow part of an allocating cast:
// zeroing it is a pass over memory the kernel then overwrites, and every 4 KiB page costs a
// page fault on first touch. tensor_allocator leaves bytes uninitialised unless asked for a
// value (packed_tensor zeroes them itself unless the caller will write every byte), and on
// Linux asks for transparent huge pages for large buffers, so that a fresh 34 MB tensor
// faults 17 times instead of 8,300.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>
#include <utility>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace blockcast::detail {

template <class T>
struct tensor_allocator {
  using value_type = T;
  /// Buffers from this size on are 2 MiB-aligned and advised as huge pages (Linux).
  static constexpr std::size_t huge_from = std::size_t{4} << 20;
  static constexpr std::size_t huge_page = std::size_t{2} << 20;

  tensor_allocator() = default;
  template <class U>
  tensor_allocator(const tensor_allocator<U>&) noexcept {}  // NOLINT: rebinding

  T* allocate(std::size_t n) {
    const std::size_t bytes = n * sizeof(T);
#if defined(__linux__)
    if (bytes >= huge_from) {
      const std::size_t rounded = (bytes + huge_page - 1) / huge_page * huge_page;
      void* p = std::aligned_alloc(huge_page, rounded);
      if (p == nullptr) throw std::bad_alloc();
      madvise(p, rounded, MADV_HUGEPAGE);  // advice only: without THP it stays 4 KiB pages
      return static_cast<T*>(p);
    }
#endif
    return static_cast<T*>(::operator new(bytes, std::align_val_t{64}));
  }
  void deallocate(T* p, std::size_t n) noexcept {
#if defined(__linux__)
    if (n * sizeof(T) >= huge_from) {
      std::free(p);
      return;
    }
#endif
    ::operator delete(p, std::align_val_t{64});
    (void)n;
  }
  /// Default-initialisation: no zeroing (the vector's value-initialising resize would).
  template <class U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }

  template <class U>
  bool operator==(const tensor_allocator<U>&) const noexcept {
    return true;
  }
  template <class U>
  bool operator!=(const tensor_allocator<U>&) const noexcept {
    return false;
  }
};

}  // namespace blockcast::detail
