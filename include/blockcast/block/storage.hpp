// SPDX-License-Identifier: MIT
// The byte storage of packed tensors. A fresh buffer is the slow part of an allocating cast:
// zeroing it is a pass over memory the kernel then overwrites, and every 4 KiB page costs a
// page fault on first touch. tensor_allocator leaves bytes uninitialised unless asked for a
// value (packed_tensor zeroes them itself unless the caller will write every byte), and on
// Linux asks for transparent huge pages for large buffers, so that a fresh 34 MB tensor
// faults 17 times instead of 8,300.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace blockcast::detail {

/// Buffers from this size (one huge page) on are worth huge pages.
inline constexpr std::size_t huge_pages_from = std::size_t{2} << 20;

/// Asks Linux for transparent huge pages over the whole pages of [p, p + bytes), before the
/// first touch, when the buffer is large: it then faults once per 2 MiB instead of once per
/// 4 KiB. On the VM this was measured on, first touching 64 MB took 0.16 s in 4 KiB pages and
/// 0.01 s in huge pages (16,384 faults at about 10 us each). Advice only: nothing changes
/// where THP is off or the call fails.
inline void advise_huge_pages(void* p, std::size_t bytes) noexcept {
#if defined(__linux__)
  if (bytes < huge_pages_from) return;
  constexpr std::uintptr_t page = 4096;
  const std::uintptr_t b = (reinterpret_cast<std::uintptr_t>(p) + page - 1) / page * page;
  const std::uintptr_t e = (reinterpret_cast<std::uintptr_t>(p) + bytes) / page * page;
  if (e > b) madvise(reinterpret_cast<void*>(b), e - b, MADV_HUGEPAGE);
#else
  (void)p, (void)bytes;
#endif
}

template <class T>
struct tensor_allocator {
  using value_type = T;
  /// Buffers from huge_pages_from on are 2 MiB-aligned and advised as huge pages (Linux).
  static constexpr std::size_t huge_page = std::size_t{2} << 20;

  tensor_allocator() = default;
  template <class U>
  tensor_allocator(const tensor_allocator<U>&) noexcept {}  // NOLINT: rebinding

  T* allocate(std::size_t n) {
    const std::size_t bytes = n * sizeof(T);
#if defined(__linux__)
    if (bytes >= huge_pages_from) {
      const std::size_t rounded = (bytes + huge_page - 1) / huge_page * huge_page;
      void* p = std::aligned_alloc(huge_page, rounded);
      if (p == nullptr) throw std::bad_alloc();
      advise_huge_pages(p, rounded);
      return static_cast<T*>(p);
    }
#endif
    return static_cast<T*>(::operator new(bytes, std::align_val_t{64}));
  }
  void deallocate(T* p, std::size_t n) noexcept {
#if defined(__linux__)
    if (n * sizeof(T) >= huge_pages_from) {
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

/// A vector that grows without zeroing, in huge pages from 2 MiB on (tensor_allocator): for
/// buffers whose every element is written before it is read.
template <class T>
using tensor_vector = std::vector<T, tensor_allocator<T>>;

}  // namespace blockcast::detail
