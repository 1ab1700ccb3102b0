// SPDX-License-Identifier: MIT
// A hook through which tests make a file-system step fail, to prove that every failure
// leaves the files as they were. Unset (the default) it costs one test of a std::function.
#pragma once

#include <functional>
#include <string>

namespace blockcast::io::testing {

/// Called before each step the I/O layer takes on the file system (step names: "mkdir",
/// "owner", "write", "fsync", "rename", "journal", "link", "commit", "restore"; "direct" and
/// "direct write": setting O_DIRECT on a staged file and each write with it, which fall back
/// to the page cache when refused); a non-zero return is an errno value the step then fails
/// with. Not thread-safe: set it only in tests.
inline std::function<int(const char* step, const std::string& path)> fault_hook;

}  // namespace blockcast::io::testing

namespace blockcast::io::detail {
/// errno for an injected failure of `step` on `path`, or 0.
inline int injected_fault(const char* step, const std::string& path) {
  return testing::fault_hook ? testing::fault_hook(step, path) : 0;
}
}  // namespace blockcast::io::detail
