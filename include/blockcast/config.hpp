// SPDX-License-Identifier: MIT
// Build configuration: assertions and error reporting, overridable by the includer.
#pragma once

#include <cstdio>
#include <cstdlib>

// Exceptions are used for untrusted input (shapes, names, files). Compiled with
// -fno-exceptions, BLOCKCAST_THROW prints the message and aborts instead.
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS) || defined(_CPPUNWIND)
#define BLOCKCAST_HAS_EXCEPTIONS 1
#else
#define BLOCKCAST_HAS_EXCEPTIONS 0
#endif

#ifndef BLOCKCAST_THROW
#if BLOCKCAST_HAS_EXCEPTIONS
#define BLOCKCAST_THROW(exception) throw exception
#else
#define BLOCKCAST_THROW(exception)                                        \
  do {                                                                    \
    std::fprintf(stderr, "blockcast: %s\n", (exception).what());          \
    std::abort();                                                         \
  } while (0)
#endif
#endif

// Internal preconditions (never untrusted input): checked in debug builds only.
#ifndef BLOCKCAST_ASSERT
#ifdef NDEBUG
#define BLOCKCAST_ASSERT(condition) ((void)0)
#else
#define BLOCKCAST_ASSERT(condition)                                                   \
  ((condition) ? (void)0                                                              \
               : (std::fprintf(stderr, "%s:%d: blockcast assertion failed: %s\n",     \
                               __FILE__, __LINE__, #condition),                       \
                  std::abort()))
#endif
#endif

// Small kernel helpers that must inline into their loops (a call would spill every vector
// register: all are caller-saved).
#if defined(__GNUC__) || defined(__clang__)
#define BLOCKCAST_INLINE inline __attribute__((always_inline))
#else
#define BLOCKCAST_INLINE inline
#endif
