// SPDX-License-Identifier: MIT
// Typed errors for untrusted input. Kernels never throw on data: NaN and Inf are encoded
// per the specification.
#pragma once

#include <stdexcept>
#include <string>

#include "blockcast/config.hpp"

namespace blockcast {

/// Base of every error blockcast reports.
class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Sizes or shapes that do not match (n vs a view, an output too small, K of weights vs
/// statistics, empty matrices).
class shape_error : public error {
 public:
  using error::error;
};

/// A format name that is not in the table of presets.
class unknown_format : public error {
 public:
  using error::error;
};

/// An option value outside its domain (a negative tensor amax, zero threads, ...).
class invalid_argument : public error {
 public:
  using error::error;
};

namespace detail {
template <class Error>
[[noreturn]] inline void fail(const std::string& message) {
  BLOCKCAST_THROW(Error(message));
#if !BLOCKCAST_HAS_EXCEPTIONS
  std::abort();
#endif
}
}  // namespace detail

}  // namespace blockcast
