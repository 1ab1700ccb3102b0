// SPDX-License-Identifier: MIT
// The I/O layer's error: a file that cannot be read or written, or whose content is not what
// its format allows. Messages start with the file's path (escaped: io/names.hpp).
#pragma once

#include <string>

#include "blockcast/error.hpp"
#include "blockcast/io/names.hpp"

namespace blockcast::io {

/// A file that cannot be read or written, or whose content is not valid.
class io_error : public blockcast::error {
 public:
  using blockcast::error::error;
};

/// An io_error about `file`, for `throw`: "<file>: <what>" (the path made printable).
inline io_error file_error(const std::string& file, const std::string& what) { return io_error(printable(file, 1024) + ": " + what); }

namespace detail {
[[noreturn]] inline void fail(const std::string& file, const std::string& what) {
  blockcast::detail::fail<io_error>(printable(file, 1024) + ": " + what);
}
}  // namespace detail

}  // namespace blockcast::io
