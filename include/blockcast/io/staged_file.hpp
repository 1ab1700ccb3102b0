// SPDX-License-Identifier: MIT
// Writing a file so that it appears whole or not at all: the bytes go to a temporary file of
// our own next to the target (created exclusively, so no existing file is ever opened for
// writing), registered for removal on a signal (io/signals.hpp); commit() syncs it and renames
// it into place. Destroyed before commit() (an exception on the way), it removes the temporary
// file. The safetensors and GGUF writers share it.
//
// The bytes are written with O_DIRECT where the file system takes it, from aligned buffers
// of our own in whole blocks: they go to the disk without being copied into the page cache.
// Writing a quantized model through the page cache cost more than quantizing it (a 650 MB
// output: 0.14 to 4.7 s of buffered writes on one machine, 0.24 to 0.38 s direct), and a
// conversion then does not evict the rest of the cache. Where O_DIRECT is refused (tmpfs and
// some network file systems fail the open or the write with EINVAL), the same buffers are
// written through the page cache instead; the last partial block always is.
//
// A full buffer is written on a thread of its own while put() fills the other one: a direct
// write returns only when the disk has the bytes, and a caller waiting for each one spent a
// fifth of a conversion's time idle. Such a write's failure therefore shows at a later put()
// or at commit(), never later, and still leaves nothing behind. Through the page cache, a
// put() of 1 MiB or more is written from the caller's memory, without the copy, before put()
// returns (a failure throws there).
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <future>
#include <memory>
#include <new>
#include <string>
#include <utility>

#include "blockcast/io/fault_injection.hpp"
#include "blockcast/io/io_error.hpp"
#include "blockcast/io/signals.hpp"

namespace blockcast::io::detail {

class staged_file {
 public:
  /// `path`: the file commit() creates or replaces; `label`: how errors name it.
  staged_file(std::string path, std::string label) : path_(std::move(path)), label_(std::move(label)) {}
  staged_file(const staged_file&) = delete;
  staged_file& operator=(const staged_file&) = delete;
  ~staged_file() { abandon(); }

  bool is_open() const { return fd_ >= 0; }
  /// Whether the bytes are still going to the file with O_DIRECT.
  bool direct() const { return direct_.load(); }
  const std::string& label() const { return label_; }

  /// Creates the temporary file.
  void open() {
    static std::atomic<unsigned> counter{0};
    for (int attempt = 0; fd_ < 0; ++attempt) {
      tmp_ = path_ + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
      fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd_ < 0 && (errno != EEXIST || attempt == 100))
        fail(label_, "cannot create a temporary file next to it: " + std::string(std::strerror(errno)));
    }
    slot_ = register_slot(slot_kind::temp_file, tmp_);
    // O_DIRECT is set afterwards, not at open: a file system without it fails such an open
    // only after creating the file
    const int flags = ::fcntl(fd_, F_GETFL);
    direct_ = direct_flag() != 0 && flags >= 0 && !injected_fault("direct", path_) && ::fcntl(fd_, F_SETFL, flags | direct_flag()) == 0;
    for (auto& b : buffers_) b.reset(static_cast<std::uint8_t*>(::operator new(buffer_bytes, std::align_val_t{block_bytes})));
  }

  /// Appends bytes (a full buffer is written while the next one fills, the rest at commit).
  /// Throws io_error if a write started before failed.
  void put(const void* data, std::size_t size) {
    if (size == 0) return;
    if (const int injected = injected_fault("write", path_)) {
      errno = injected;
      fail_errno("write failed");
    }
    const auto* bytes = static_cast<const std::uint8_t*>(data);
    if (!direct_ && size >= unbuffered_bytes) {
      // through the page cache, large pieces go from the caller's memory: write() copies them
      // into the cache anyway, and copying them into a buffer first cost 7% of an MXFP8
      // conversion's CPU time. What is buffered goes first, on this thread, before it returns.
      finish_write();
      if (buffered_ > 0) check(write_all(buffers_[filling_].get(), std::exchange(buffered_, 0), 0));
      check(write_all(bytes, size, 0));
      return;
    }
    while (size > 0) {
      const std::size_t n = std::min(size, buffer_bytes - buffered_);
      std::memcpy(buffers_[filling_].get() + buffered_, bytes, n);
      buffered_ += n, bytes += n, size -= n;
      if (buffered_ == buffer_bytes) write_in_background();
    }
  }

  /// Syncs the file and renames it into place; throws io_error (leaving nothing) on failure.
  void commit() {
    finish_write();
    const std::uint8_t* rest = buffers_[filling_].get();
    const std::size_t whole = buffered_ / block_bytes * block_bytes;  // the whole blocks, then the rest
    if (whole > 0) check(write_all(rest, whole, direct_ ? injected_fault("direct write", path_) : 0));
    if (whole < buffered_) {
      if (!stop_direct()) fail_errno("cannot write without O_DIRECT");
      check(write_all(rest + whole, buffered_ - whole, 0));
    }
    buffered_ = 0;
    bool ok = true;
    if (const int injected = injected_fault("fsync", path_)) {
      errno = injected;
      ok = false;
    } else {
      ok = ::fsync(fd_) == 0;
    }
    const int err = errno;
    ok = (::close(std::exchange(fd_, -1)) == 0) && ok;
    if (!ok) {
      errno = err;
      fail_errno("write failed");
    }
    if (const int injected = injected_fault("rename", path_)) errno = injected;
    else if (std::rename(tmp_.c_str(), path_.c_str()) == 0) {
      committed_ = true;
      unregister_slot(std::exchange(slot_, -1));
      for (auto& b : buffers_) b.reset();
      return;
    }
    fail_errno("cannot rename the temporary file into place");
  }

  /// Removes the temporary file (and throws io_error naming `what` and errno).
  [[noreturn]] void fail_errno(const char* what) {
    const int err = errno;
    abandon();
    fail(label_, std::string(what) + ": " + std::strerror(err));
  }

 private:
  /// How a write ended: 0, or the errno and what failed.
  struct write_result {
    int error = 0;
    const char* what = nullptr;
  };

  /// Starts writing the full buffer on a thread of its own and goes on filling the other one,
  /// once that one's write (started before) is done. The fault hook is asked here, on the
  /// caller's thread.
  void write_in_background() {
    finish_write();
    const int injected = direct_ ? injected_fault("direct write", path_) : 0;
    const std::uint8_t* full = buffers_[filling_].get();
    writing_ = std::async(std::launch::async, [this, full, injected] { return write_all(full, buffer_bytes, injected); });
    filling_ ^= 1;
    buffered_ = 0;
  }

  /// Waits for the write in flight, if any; throws io_error (leaving nothing) if it failed.
  void finish_write() {
    if (writing_.valid()) check(writing_.get());
  }

  void check(write_result r) {
    if (r.error == 0) return;
    errno = r.error;
    fail_errno(r.what);
  }

  /// Writes n bytes at the end of the file; `injected`, an errno the first attempt fails with.
  /// Direct writes are whole blocks from aligned memory; a file system that refuses one is
  /// written through the page cache from then on, with a writeback hint every 64 MB so that
  /// the fsync at commit has little left to do. Runs on the writing thread: no exceptions.
  write_result write_all(const std::uint8_t* data, std::size_t n, int injected) noexcept {
    std::size_t done = 0;
    while (done < n) {
      const ssize_t w = injected ? (errno = std::exchange(injected, 0), -1) : ::write(fd_, data + done, n - done);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0 && errno == EINVAL && direct_) {
        if (!stop_direct()) return {errno, "cannot write without O_DIRECT"};
        continue;
      }
      if (w < 0) return {errno, "write failed"};
      if (w == 0) return {EIO, "write failed"};
      done += static_cast<std::size_t>(w);
    }
    unsynced_ += n;
    if (!direct_ && unsynced_ >= writeback_bytes) {
      unsynced_ = 0;
#if defined(__linux__)
      ::sync_file_range(fd_, 0, 0, SYNC_FILE_RANGE_WRITE);  // advisory: an error shows at fsync
#endif
    }
    return {};
  }

  /// Clears O_DIRECT; false (errno set) if that failed.
  bool stop_direct() noexcept {
    if (!direct_) return true;
    const int flags = ::fcntl(fd_, F_GETFL);
    if (flags < 0 || ::fcntl(fd_, F_SETFL, flags & ~direct_flag()) != 0) return false;
    direct_ = false;
    return true;
  }

  static constexpr int direct_flag() {
#if defined(O_DIRECT)
    return O_DIRECT;
#else
    return 0;
#endif
  }

  void abandon() noexcept {
    if (writing_.valid()) writing_.wait();  // the file is closed only after its last write
    if (fd_ >= 0) ::close(std::exchange(fd_, -1));
    if (!committed_ && !tmp_.empty()) std::remove(tmp_.c_str());
    unregister_slot(std::exchange(slot_, -1));
    for (auto& b : buffers_) b.reset();
  }

  struct aligned_delete {
    void operator()(std::uint8_t* p) const { ::operator delete(p, std::align_val_t{block_bytes}); }
  };
  /// Direct writes are multiples of this, from memory aligned to it: 4096 covers the logical
  /// block size of the disks and file systems in use (and a refusal falls back, see above).
  static constexpr std::size_t block_bytes = 4096;
  static constexpr std::size_t buffer_bytes = std::size_t{4} << 20;
  /// Through the page cache, a put() of this much or more is not buffered (see put).
  static constexpr std::size_t unbuffered_bytes = std::size_t{1} << 20;
  static constexpr std::uint64_t writeback_bytes = std::uint64_t{64} << 20;
  std::string path_, label_, tmp_;
  int fd_ = -1;
  std::atomic<bool> direct_{false};
  std::unique_ptr<std::uint8_t, aligned_delete> buffers_[2];
  int filling_ = 0;           // the buffer put() fills; the other may be being written
  std::size_t buffered_ = 0;  // bytes in buffers_[filling_]
  std::future<write_result> writing_;
  int slot_ = -1;
  bool committed_ = false;
  std::uint64_t unsynced_ = 0;  // written through the page cache since the last writeback hint (writing thread)
};

}  // namespace blockcast::io::detail
