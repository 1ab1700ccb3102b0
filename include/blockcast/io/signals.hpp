// SPDX-License-Identifier: MIT
// What a process must undo when a signal ends it, kept where a signal handler can reach it:
// the temporary files and staging directories it is writing, and the input files it has
// mapped. The I/O classes register them as they go; a program that wants them cleaned up
// calls install_signal_cleanup() once (the library never installs handlers by itself):
//
//   * SIGINT, SIGTERM, SIGHUP: remove every temporary file this process registered, and the
//     files in every staging directory it registered and the directory, then die of the same
//     signal. A child of fork() leaves its parent's alone.
//   * SIGBUS inside a registered mapping (the file was truncated by another process while it
//     was mapped): print "<program>: error: <file>: ..." on stderr, clean up as above, and
//     exit with status 1, like any other error. A SIGBUS anywhere else is left to the default.
//
// Everything here is async-signal-safe: fixed slots with atomic states, plain syscalls.
// Linux (getdents64 lists a staging directory inside the handler).
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace blockcast::io {

namespace detail {

enum class slot_kind : int { free = 0, claimed = 1, temp_file = 2, staging_dir = 3, mapping = 4 };

struct signal_slot {
  std::atomic<int> kind{0};
  std::atomic<int> owner{0};  // the pid that registered it: a child of fork() removes none of its parent's files
  std::atomic<std::uintptr_t> begin{0};
  std::atomic<std::size_t> size{0};
  char path[4096] = {};
};

struct signal_registry {
  static constexpr int capacity = 64;
  signal_slot slots[capacity];
  char program[64] = "blockcast";
};

// Constant-initialized: safe to read from a handler at any time.
inline signal_registry registry;

/// Sets what a slot holds (a staging directory is withdrawn while its commit runs).
inline void set_slot_kind(int slot, slot_kind kind) {
  if (slot >= 0) registry.slots[slot].kind.store(static_cast<int>(kind));
}

/// Registers a path or mapping; returns the slot, or -1 when every slot is taken (the object
/// then simply is not cleaned up by a signal).
inline int register_slot(slot_kind kind, const std::string& path, const void* begin = nullptr, std::size_t size = 0) {
  if (path.size() >= sizeof(signal_slot::path)) return -1;
  for (int i = 0; i < signal_registry::capacity; ++i) {
    signal_slot& s = registry.slots[i];
    int expected = static_cast<int>(slot_kind::free);
    if (!s.kind.compare_exchange_strong(expected, static_cast<int>(slot_kind::claimed))) continue;
    std::memcpy(s.path, path.c_str(), path.size() + 1);
    s.owner.store(static_cast<int>(::getpid()));
    s.begin.store(reinterpret_cast<std::uintptr_t>(begin));
    s.size.store(size);
    s.kind.store(static_cast<int>(kind));  // published: the handler may use it from now on
    return i;
  }
  return -1;
}
inline void unregister_slot(int slot) {
  if (slot >= 0) registry.slots[slot].kind.store(static_cast<int>(slot_kind::free));
}

inline void write_stderr(const char* text) {
  std::size_t n = std::strlen(text);
  while (n > 0) {
    const ssize_t w = ::write(2, text, n);
    if (w <= 0) return;
    text += w;
    n -= static_cast<std::size_t>(w);
  }
}

// Removes the regular files of a staging directory (never following links) and the directory.
inline void remove_staging_dir(const char* dir) {
  const int fd = ::open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return;
  alignas(8) char buffer[4096];
  for (;;) {
    const long n = ::syscall(SYS_getdents64, fd, buffer, sizeof buffer);
    if (n <= 0) break;
    for (long at = 0; at < n;) {
      struct entry {
        std::uint64_t ino;
        std::int64_t off;
        unsigned short reclen;
        unsigned char type;
        char name[1];
      };
      const auto* e = reinterpret_cast<const entry*>(buffer + at);
      if (e->type == DT_REG) ::unlinkat(fd, e->name, 0);
      at += e->reclen;
    }
  }
  ::close(fd);
  ::rmdir(dir);
}

// The handler's cleanup: temporaries first, then staging directories. A staging directory
// whose commit is renaming files into place is not registered then (see output_set): a
// signal that ends the process halfway leaves its journal for the next run to roll back.
// Only this process's own: a child of fork() inherits the registry, and a signal that ends
// the child must not remove what its parent is still writing.
inline void remove_registered_temporaries() {
  const int self = static_cast<int>(::getpid());
  for (auto& s : registry.slots)
    if (s.kind.load() == static_cast<int>(slot_kind::temp_file) && s.owner.load() == self) ::unlink(s.path);
  for (auto& s : registry.slots)
    if (s.kind.load() == static_cast<int>(slot_kind::staging_dir) && s.owner.load() == self) remove_staging_dir(s.path);
}

inline void blockcast_signal_handler(int sig, siginfo_t* info, void*) {
  if (sig == SIGBUS) {
    const auto at = reinterpret_cast<std::uintptr_t>(info ? info->si_addr : nullptr);
    const signal_slot* hit = nullptr;
    for (const auto& s : registry.slots)
      if (s.kind.load() == static_cast<int>(slot_kind::mapping) && at - s.begin.load() < s.size.load()) hit = &s;
    if (hit) {
      write_stderr(registry.program);
      write_stderr(": error: ");
      write_stderr(hit->path);
      write_stderr(": the file was truncated or replaced by another process while it was being read\n");
      remove_registered_temporaries();
      ::_exit(1);
    }
  } else {
    remove_registered_temporaries();
  }
  // die of the same signal, as if there had been no handler
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  ::sigaction(sig, &dfl, nullptr);
  sigset_t only;
  sigemptyset(&only);
  sigaddset(&only, sig);
  ::pthread_sigmask(SIG_UNBLOCK, &only, nullptr);
  ::raise(sig);
  ::_exit(128 + sig);
}

}  // namespace detail

/// Installs the cleanup handlers for SIGINT, SIGTERM, SIGHUP and SIGBUS (see the top of
/// this file). `program` prefixes the SIGBUS error message.
inline void install_signal_cleanup(const char* program = "blockcast") {
  std::strncpy(detail::registry.program, program, sizeof detail::registry.program - 1);
  for (const int sig : {SIGINT, SIGTERM, SIGHUP, SIGBUS}) {
    struct sigaction sa {};
    sa.sa_sigaction = detail::blockcast_signal_handler;
    sa.sa_flags = SA_SIGINFO;
    sigfillset(&sa.sa_mask);  // one handler at a time
    ::sigaction(sig, &sa, nullptr);
  }
}

/// The signals whose handlers clean up: blocked while an output set renames its files into
/// place, so that a signal never interrupts a commit halfway (it is handled right after).
inline sigset_t cleanup_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (const int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&set, sig);
  return set;
}

}  // namespace blockcast::io
