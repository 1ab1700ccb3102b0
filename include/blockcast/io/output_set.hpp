// SPDX-License-Identifier: MIT
// A set of output files in one directory (a model's shards and its index, or one file),
// written all or nothing: after a run the directory holds either every new file or exactly
// what it held before, whether the run succeeded, failed, was interrupted by a signal or
// killed outright. docs/atomic_outputs.md explains the design; in short:
//
//   1. A staging directory ".blockcast-staging.<name>.<pid>.<random>" is created next to the
//      outputs, with an "owner" file (a magic line and the set's name) that the run holds
//      locked (flock) while it lives. Every output is written there first as "new.<i>".
//   2. commit(): a "journal" lists each target with the inode of its new file. Each existing
//      target is hard-linked into the staging directory as "old.<i>" (its backup), then the new
//      file is renamed over it. The journal's removal is the commit point.
//   3. Any failure during commit rolls back: a target whose inode is a new file's gets its
//      backup renamed back over it (or, if it did not exist before, is removed), so only
//      files this run created are ever deleted. The cleanup signals are blocked meanwhile.
//   4. A run killed with SIGKILL leaves its staging directory, unlocked. The next output set
//      with the same name in the same directory finds it (name prefix, magic owner file, no
//      lock held), rolls back what its journal lists, and removes it. Nothing else is touched.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "blockcast/io/fault_injection.hpp"
#include "blockcast/io/names.hpp"
#include "blockcast/io/safetensors.hpp"
#include "blockcast/io/signals.hpp"

namespace blockcast::io {

namespace detail {

inline constexpr const char* staging_prefix = ".blockcast-staging.";
inline constexpr const char* owner_magic = "blockcast staging directory v1";
inline constexpr const char* journal_magic = "blockcast journal v1";

struct journal_entry {
  std::string name;   // the target's file name in the output directory
  std::uint64_t ino;  // the inode of its new file
};

inline bool lstat_regular(const std::string& path, struct stat& st) { return ::lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode); }

// Reads a small file without following a final symlink; empty on failure.
inline std::string read_small_file(const std::string& path, int* fd_out = nullptr) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return {};
  struct stat st {};
  std::string text;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size < 65536) {
    text.resize(static_cast<std::size_t>(st.st_size));
    if (::read(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) text.clear();
  }
  if (fd_out) *fd_out = fd;
  else ::close(fd);
  return text;
}

// Undoes a commit from its journal: see the top of this file. Never removes a file whose
// inode is not one of the run's new files. Returns false if a backup could not be put back
// (the staging directory, journal and backups must then be kept for the next run).
inline bool roll_back(const std::string& dir, const std::string& staging, const std::vector<journal_entry>& entries) {
  bool restored = true;
  for (std::size_t i = entries.size(); i-- > 0;) {
    const std::string target = dir + "/" + entries[i].name, backup = staging + "/old." + std::to_string(i);
    struct stat t {}, b {};
    const bool target_exists = ::lstat(target.c_str(), &t) == 0;
    const bool ours = target_exists && static_cast<std::uint64_t>(t.st_ino) == entries[i].ino && S_ISREG(t.st_mode);
    if (lstat_regular(backup, b)) {
      if ((!target_exists || ours) && (injected_fault("restore", target) != 0 || ::rename(backup.c_str(), target.c_str()) != 0))
        restored = false;
    } else if (ours) {
      ::unlink(target.c_str());
    }
  }
  return restored;
}

inline std::vector<journal_entry> parse_journal(const std::string& text) {
  std::vector<journal_entry> entries;
  std::istringstream in(text);
  std::string line;
  if (!std::getline(in, line) || line != journal_magic) return {};
  while (std::getline(in, line)) {
    const auto tab = line.find('\t');
    if (tab == std::string::npos) return {};
    journal_entry e{line.substr(tab + 1), 0};
    try {
      e.ino = std::stoull(line.substr(0, tab));
    } catch (const std::exception&) {
      return {};
    }
    if (!is_plain_file_name(e.name)) return {};
    entries.push_back(std::move(e));
  }
  return entries;
}

// Removes the staging directory's regular files and the directory (not following links).
inline void remove_staging(const std::string& staging) { remove_staging_dir(staging.c_str()); }

// Finds staging directories of earlier runs on the same output set that are no longer owned
// (their owner's lock is free: the run died), rolls back what their journals list and
// removes them.
inline void recover_abandoned(const std::string& dir, const std::string& prefix, const std::string& set_name) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;
  std::vector<std::string> candidates;
  while (const dirent* e = ::readdir(d)) {
    const std::string entry = e->d_name;
    if (entry.compare(0, prefix.size(), prefix) == 0) candidates.push_back(entry);
  }
  ::closedir(d);
  for (const auto& entry : candidates) {
    const std::string staging = dir + "/" + entry;
    struct stat st {};
    if (::lstat(staging.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) continue;
    int fd = -1;
    const std::string owner = read_small_file(staging + "/owner", &fd);
    if (fd < 0) continue;
    const bool ours = owner.rfind(std::string(owner_magic) + "\n" + "set " + set_name + "\n", 0) == 0;
    const bool abandoned = ours && ::flock(fd, LOCK_EX | LOCK_NB) == 0;
    if (abandoned && roll_back(dir, staging, parse_journal(read_small_file(staging + "/journal")))) remove_staging(staging);
    ::close(fd);
  }
}

}  // namespace detail

/// Output files in one directory, committed all or nothing (see the top of this file).
class output_set {
 public:
  /// `dir`: an existing directory; `set_name`: the file name that identifies the set (the
  /// output the user named; an earlier run's leftovers with the same name are recovered);
  /// `label`: how errors name it (the path the user gave).
  output_set(std::string dir, std::string set_name, std::string label)
      : dir_(std::move(dir)), set_name_(std::move(set_name)), label_(std::move(label)) {
    struct stat st {};
    if (::stat(dir_.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      detail::fail(label_, "the output directory '" + printable(dir_) + "' does not exist");
    std::string tag = set_name_;
    if (!is_plain_file_name(tag) || tag.size() > 100)  // keep the directory name short and plain
      tag = std::to_string(std::hash<std::string>{}(set_name_));
    const std::string prefix = std::string(detail::staging_prefix) + tag + ".";
    detail::recover_abandoned(dir_, prefix, set_name_);
    std::random_device entropy;
    for (int attempt = 0;; ++attempt) {
      staging_ = dir_ + "/" + prefix + std::to_string(::getpid()) + "." + std::to_string(entropy() % 1000000);
      const int injected = detail::injected_fault("mkdir", staging_);
      if (injected == 0 && ::mkdir(staging_.c_str(), 0700) == 0) {
        live_ = true;
        break;
      }
      const int err = injected ? injected : errno;
      if (err != EEXIST || attempt == 100) detail::fail(label_, "cannot create a staging directory in '" + printable(dir_) + "': " + std::strerror(err));
    }
    slot_ = detail::register_slot(detail::slot_kind::staging_dir, staging_);
    const std::string owner = staging_ + "/owner";
    owner_fd_ = ::open(owner.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    const std::string text = std::string(detail::owner_magic) + "\nset " + set_name_ + "\npid " + std::to_string(::getpid()) + "\n";
    const int injected = detail::injected_fault("owner", owner);
    if (owner_fd_ < 0 || injected || ::flock(owner_fd_, LOCK_EX) != 0 ||
        ::write(owner_fd_, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
      const int err = injected ? injected : errno;
      abandon();
      detail::fail(label_, "cannot write to the staging directory: " + std::string(std::strerror(err)));
    }
  }
  output_set(const output_set&) = delete;
  output_set& operator=(const output_set&) = delete;
  ~output_set() { abandon(); }

  /// Where to write the file `name` (a plain file name) that commit() puts in the directory.
  std::string stage(const std::string& name) {
    if (!is_plain_file_name(name)) detail::fail(label_, "output name " + in_quotes(name) + " is not a plain file name");
    if (!names_.insert(name).second) detail::fail(label_, "output " + in_quotes(name) + " written twice");
    targets_.push_back(name);
    return staged_path(targets_.size() - 1);
  }
  /// Stages the file `name` with content `text` (written and synced).
  void put_text(const std::string& name, const std::string& text) {
    if (const int err = write_synced(stage(name), text, "write"))
      detail::fail(label_, "cannot write " + in_quotes(name) + ": " + std::strerror(err));
  }
  const std::string& label() const { return label_; }
  const std::string& directory() const { return dir_; }

  /// Puts every staged file in place under its name, or, on any failure, none of them
  /// (the directory is left as it was) and throws io_error.
  void commit() {
    std::vector<detail::journal_entry> entries;
    for (std::size_t i = 0; i < targets_.size(); ++i) {
      struct stat st {};
      if (!detail::lstat_regular(staged_path(i), st)) detail::fail(label_, "output " + in_quotes(targets_[i]) + " was not written");
      struct stat t {};
      if (::lstat((dir_ + "/" + targets_[i]).c_str(), &t) == 0 && !S_ISREG(t.st_mode) && !S_ISLNK(t.st_mode))
        detail::fail(label_, "'" + printable(dir_ + "/" + targets_[i]) + "' exists and is not a regular file");
      entries.push_back({targets_[i], static_cast<std::uint64_t>(st.st_ino)});
    }
    // no signal handler may clear the staging directory while files move: block them here
    // and withdraw the directory from the handlers (another thread could take a signal)
    const sigset_t block = cleanup_signals();
    sigset_t old;
    ::pthread_sigmask(SIG_BLOCK, &block, &old);
    detail::set_slot_kind(slot_, detail::slot_kind::claimed);
    std::string error;
    write_journal(entries, error);
    std::size_t placed = 0;
    for (; error.empty() && placed < entries.size(); ++placed) {
      const std::string target = dir_ + "/" + entries[placed].name, backup = staging_ + "/old." + std::to_string(placed);
      struct stat t {};
      if (::lstat(target.c_str(), &t) == 0 && step("link", target, [&] { return ::link(target.c_str(), backup.c_str()); }) != 0 &&
          step("rename", target, [&] { return ::rename(target.c_str(), backup.c_str()); }) != 0) {
        error = "cannot keep a backup of '" + printable(target) + "' while replacing it: " + std::strerror(errno);
        break;
      }
      if (step("rename", target, [&] { return ::rename(staged_path(placed).c_str(), target.c_str()); }) != 0)
        error = "cannot rename the finished output into place as '" + printable(target) + "': " + std::strerror(errno);
    }
    if (error.empty()) sync_directory(dir_);
    if (error.empty() && step("commit", staging_ + "/journal", [&] { return ::unlink((staging_ + "/journal").c_str()); }) != 0)
      error = std::string("cannot complete the commit: ") + std::strerror(errno);
    const bool restored = error.empty() || detail::roll_back(dir_, staging_, entries);
    if (restored) detail::remove_staging(staging_);  // else the backups stay for the next run to restore
    release();
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    if (!error.empty())
      detail::fail(label_, error + (restored ? " (nothing was changed)"
                                             : " (the old files could not all be put back: they are kept in '" +
                                                   printable(staging_) + "', and the next run on this output restores them)"));
  }

 private:
  std::string staged_path(std::size_t i) const { return staging_ + "/new." + std::to_string(i); }

  // Runs a file-system call, or fails it with an injected errno; returns its result.
  template <class F>
  static int step(const char* name, const std::string& path, F&& call) {
    if (const int injected = detail::injected_fault(name, path)) {
      errno = injected;
      return -1;
    }
    return call();
  }

  // Creates `path` (exclusively) holding `text`, synced; returns 0 or the errno of the failure.
  static int write_synced(const std::string& path, const std::string& text, const char* step_name) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) return errno;
    const int result = step(step_name, path, [&] {
      return ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0 ? 0 : -1;
    });
    const int err = result == 0 ? 0 : errno;
    ::close(fd);
    return err;
  }

  void write_journal(const std::vector<detail::journal_entry>& entries, std::string& error) const {
    std::string text = std::string(detail::journal_magic) + "\n";
    for (const auto& e : entries) text += std::to_string(e.ino) + "\t" + e.name + "\n";
    const std::string tmp = staging_ + "/journal.tmp", path = staging_ + "/journal";
    int err = write_synced(tmp, text, "journal");
    if (err == 0 && ::rename(tmp.c_str(), path.c_str()) != 0) err = errno;
    if (err != 0) {
      error = "cannot write the commit journal: " + std::string(std::strerror(err));
      return;
    }
    sync_directory(staging_);
  }
  static void sync_directory(const std::string& dir) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
      ::fsync(fd);
      ::close(fd);
    }
  }
  void release() noexcept {
    detail::unregister_slot(slot_);
    slot_ = -1;
    if (owner_fd_ >= 0) ::close(owner_fd_);
    owner_fd_ = -1;
    live_ = false;
  }
  void abandon() noexcept {
    if (!live_) return;
    detail::remove_staging(staging_);
    release();
  }

  std::string dir_, set_name_, label_, staging_;
  std::vector<std::string> targets_;
  std::set<std::string> names_;
  int slot_ = -1, owner_fd_ = -1;
  bool live_ = false;  // the staging directory exists and is this object's
};

}  // namespace blockcast::io
