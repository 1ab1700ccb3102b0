// SPDX-License-Identifier: MIT
// A regular file mapped read-only, for the readers of model files. Only regular files are
// opened (with O_NONBLOCK, so a FIFO is refused rather than waited on). The mapping is
// registered with io/signals.hpp: a SIGBUS inside it (the file truncated by another process)
// becomes an error message when the program installed those handlers. Bulk reads should use
// read() (pread), which on a file in the page cache is several times faster than touching
// fresh mapped pages and reports a truncation as an io_error.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>

#include "blockcast/io/io_error.hpp"
#include "blockcast/io/names.hpp"
#include "blockcast/io/signals.hpp"

namespace blockcast::io {

class mapped_file {
 public:
  mapped_file() = default;
  explicit mapped_file(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd_ < 0) detail::fail(path, std::string("cannot open: ") + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd_, &st) != 0) fail_and_close(std::string("cannot stat: ") + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) fail_and_close("not a regular file");
    size_ = static_cast<std::uint64_t>(st.st_size);
    mtime_ = st.st_mtim;
    if (size_ == 0) return;  // nothing to map; the format's reader says what is missing
    void* p = ::mmap(nullptr, static_cast<std::size_t>(size_), PROT_READ, MAP_PRIVATE, fd_, 0);
    if (p == MAP_FAILED) fail_and_close(std::string("cannot map: ") + std::strerror(errno));
    base_ = static_cast<const std::uint8_t*>(p);
    slot_ = detail::register_slot(detail::slot_kind::mapping, printable(path, 1024), base_, static_cast<std::size_t>(size_));
  }
  mapped_file(const mapped_file&) = delete;
  mapped_file& operator=(const mapped_file&) = delete;
  mapped_file(mapped_file&& o) noexcept { *this = std::move(o); }
  mapped_file& operator=(mapped_file&& o) noexcept {
    if (this != &o) {
      release();
      path_ = std::move(o.path_);
      fd_ = std::exchange(o.fd_, -1);
      base_ = std::exchange(o.base_, nullptr);
      size_ = std::exchange(o.size_, 0);
      mtime_ = o.mtime_;
      slot_ = std::exchange(o.slot_, -1);
    }
    return *this;
  }
  ~mapped_file() { release(); }

  const std::string& path() const { return path_; }
  const std::uint8_t* data() const { return base_; }
  std::uint64_t size() const { return size_; }

  /// Copies n bytes at offset `at` into out with pread; a short file is an io_error.
  void read(std::uint64_t at, std::size_t n, void* out) const {
    auto* dst = static_cast<std::uint8_t*>(out);
    while (n > 0) {
      const ssize_t got = ::pread(fd_, dst, n, static_cast<off_t>(at));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) detail::fail(path_, "read failed: " + std::string(std::strerror(errno)));
      if (got == 0) detail::fail(path_, "the file was truncated by another process while it was being read");
      dst += got, at += static_cast<std::uint64_t>(got), n -= static_cast<std::size_t>(got);
    }
  }
  /// Throws io_error if the file changed (size or modification time) since it was opened:
  /// what was read from it may be a mix of two versions.
  void check_unchanged() const {
    struct stat st {};
    if (::fstat(fd_, &st) != 0 || static_cast<std::uint64_t>(st.st_size) != size_ || st.st_mtim.tv_sec != mtime_.tv_sec ||
        st.st_mtim.tv_nsec != mtime_.tv_nsec)
      detail::fail(path_, "the file was changed by another process while it was being read");
  }
  /// Lets the kernel drop the mapped pages wholly inside bytes [from, to) once read (they are
  /// read again from the file if needed), so resident memory does not grow with the file.
  void release_pages(std::uint64_t from, std::uint64_t to) const {
    const std::uintptr_t page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
    if (!base_ || from >= to || to > size_) return;
    std::uintptr_t b = reinterpret_cast<std::uintptr_t>(base_ + from), e = reinterpret_cast<std::uintptr_t>(base_ + to);
    b = (b + page - 1) / page * page;
    e = e / page * page;
    if (e > b) ::madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
  }
  /// Unmaps and closes now (also done on destruction).
  void release() noexcept {
    detail::unregister_slot(std::exchange(slot_, -1));
    if (base_) ::munmap(const_cast<std::uint8_t*>(base_), static_cast<std::size_t>(size_));
    if (fd_ >= 0) ::close(fd_);
    base_ = nullptr;
    fd_ = -1;
  }

 private:
  [[noreturn]] void fail_and_close(const std::string& what) {
    release();
    detail::fail(path_, what);
  }

  std::string path_;
  int fd_ = -1;
  const std::uint8_t* base_ = nullptr;
  std::uint64_t size_ = 0;
  struct timespec mtime_ {};
  int slot_ = -1;
};

}  // namespace blockcast::io
