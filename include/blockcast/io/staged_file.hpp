// SPDX-License-Identifier: MIT
// Writing a file so that it appears whole or not at all: the bytes go to a temporary file of
// our own next to the target (created exclusively, so no existing file is ever opened for
// writing), registered for removal on a signal (io/signals.hpp); commit() syncs it and renames
// it into place. Destroyed before commit() (an exception on the way), it removes the temporary
// file. The safetensors and GGUF writers share it.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
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

  bool is_open() const { return file_ != nullptr; }
  const std::string& label() const { return label_; }

  /// Creates the temporary file.
  void open() {
    static std::atomic<unsigned> counter{0};
    int fd = -1;
    for (int attempt = 0; fd < 0; ++attempt) {
      tmp_ = path_ + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
      fd = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd < 0 && (errno != EEXIST || attempt == 100))
        fail(label_, "cannot create a temporary file next to it: " + std::string(std::strerror(errno)));
    }
    slot_ = register_slot(slot_kind::temp_file, tmp_);
    file_ = ::fdopen(fd, "wb");
    if (!file_) {
      ::close(fd);
      fail_errno("cannot open the temporary file");
    }
  }

  /// Appends bytes; every 64 MB asks the kernel to start writing them back, so the fsync at
  /// commit has little left to do and dirty pages do not pile up.
  void put(const void* data, std::size_t size) {
    if (size == 0) return;
    if (const int injected = injected_fault("write", path_)) {
      errno = injected;
      fail_errno("write failed");
    }
    if (std::fwrite(data, 1, size, file_) != size) fail_errno("write failed");
    unsynced_ += size;
    if (unsynced_ >= writeback_bytes) {
      unsynced_ = 0;
#if defined(__linux__)
      if (std::fflush(file_) != 0) fail_errno("write failed");
      ::sync_file_range(::fileno(file_), 0, 0, SYNC_FILE_RANGE_WRITE);  // advisory: an error shows at fsync
#endif
    }
  }

  /// Syncs the file and renames it into place; throws io_error (leaving nothing) on failure.
  void commit() {
    bool ok = std::fflush(file_) == 0;
    if (const int injected = injected_fault("fsync", path_)) {
      errno = injected;
      ok = false;
    } else {
      ok = ::fsync(::fileno(file_)) == 0 && ok;
    }
    ok = (std::fclose(std::exchange(file_, nullptr)) == 0) && ok;
    if (!ok) fail_errno("write failed");
    if (const int injected = injected_fault("rename", path_)) errno = injected;
    else if (std::rename(tmp_.c_str(), path_.c_str()) == 0) {
      committed_ = true;
      unregister_slot(std::exchange(slot_, -1));
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
  void abandon() noexcept {
    if (file_) std::fclose(std::exchange(file_, nullptr));
    if (!committed_ && !tmp_.empty()) std::remove(tmp_.c_str());
    unregister_slot(std::exchange(slot_, -1));
  }

  static constexpr std::uint64_t writeback_bytes = std::uint64_t{64} << 20;
  std::string path_, label_, tmp_;
  std::FILE* file_ = nullptr;
  int slot_ = -1;
  bool committed_ = false;
  std::uint64_t unsynced_ = 0;
};

}  // namespace blockcast::io::detail
