// SPDX-License-Identifier: MIT
// Scratch directories for the tests: made under $TMPDIR (or /tmp) with mkdtemp, and removed
// with everything in them when the test process exits, so a test run leaves nothing behind.
// Set BLOCKCAST_KEEP_TEST_FILES=1 to keep them for a look after a failure.
#pragma once

#include <dirent.h>
#include <ftw.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace blockcast::test {
namespace detail {

/// The directories this process made; each is removed, never followed through a symlink,
/// when the process ends. A forked child (which must leave by _exit anyway) removes nothing.
class scratch_registry {
 public:
  ~scratch_registry() {
    if (::getpid() != owner_ || std::getenv("BLOCKCAST_KEEP_TEST_FILES")) return;
    for (const std::string& dir : dirs_) {
      // First make every directory writable (a test may have taken the permission away),
      // then remove depth first.
      ::nftw(dir.c_str(), [](const char* path, const struct stat* st, int type, FTW*) {
        if (type == FTW_D || type == FTW_DNR) ::chmod(path, (st->st_mode & 07777) | S_IRWXU);
        return 0;
      }, 16, FTW_PHYS);
      ::nftw(dir.c_str(), [](const char* path, const struct stat*, int, FTW*) {
        std::remove(path);
        return 0;
      }, 16, FTW_DEPTH | FTW_PHYS);
    }
  }
  void add(std::string dir) {
    std::lock_guard<std::mutex> lock(mutex_);
    dirs_.push_back(std::move(dir));
  }

 private:
  pid_t owner_ = ::getpid();
  std::mutex mutex_;
  std::vector<std::string> dirs_;
};

inline scratch_registry& scratch_dirs() {
  static scratch_registry registry;
  return registry;
}

}  // namespace detail

/// A new, empty directory named `prefix` + six random characters, removed at exit.
inline std::string scratch_dir(const std::string& prefix) {
  const char* tmp = std::getenv("TMPDIR");
  std::string path = std::string(tmp && *tmp ? tmp : "/tmp") + "/" + prefix + "XXXXXX";
  if (!::mkdtemp(path.data())) throw std::runtime_error("cannot make a scratch directory " + path);
  detail::scratch_dirs().add(path);
  return path;
}

/// Every entry of a directory (hidden ones too), sorted.
inline std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> names;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d))
      if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") names.emplace_back(e->d_name);
    ::closedir(d);
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace blockcast::test
