// SPDX-License-Identifier: MIT
// Conversion policies: how element values round, how a block's shared scale is chosen, and
// the options every cast takes.
#pragma once

#include <cstdint>
#include <optional>

namespace blockcast {

/// How a value between two grid points is rounded.
enum class rounding : std::uint8_t {
  nearest_even,  ///< round to nearest, ties to even: the OCP MX rule (default)
  nearest_away,  ///< round to nearest, ties away from zero (microxcaling's default)
  toward_zero,   ///< truncate
  stochastic,    ///< up with probability equal to the remainder; counter-based, seeded
};

/// How the shared E8M0 exponent of a block is chosen from the block's largest magnitude
/// amax (element emax, its maximum normal max_normal, mantissa bits m). Every rule clamps the
/// exponent to [-127, 127]; all are exact (computed from the float's bits).
enum class scale_rule : std::uint8_t {
  ocp_floor,  ///< floor(log2 amax) - emax: OCP MX v1.0; the largest values may saturate
  ceil,       ///< ceil(log2 amax) - emax: never saturates, may lose small values
  even,       ///< floor(log2 r) - emax, r = amax rounded half-up to m mantissa bits
  rceil,      ///< smallest e with amax <= max_normal * 2^e (cuBLAS "RCEIL"); never saturates
};

/// Options of every cast. The defaults are the OCP MX rules.
struct cast_options {
  blockcast::rounding round = rounding::nearest_even;
  blockcast::scale_rule scale_rule = scale_rule::ocp_floor;
  /// Seed of the counter-based generator used by rounding::stochastic. The random bits of an
  /// element depend only on (seed, element index in the tensor), so results do not depend on
  /// vector width or thread count.
  std::uint64_t seed = 0;
  /// MXINT8 only: allow the code -128 (value -2); the default range is symmetric +-127.
  bool int8_full_range = false;
  /// NVFP4 (two-level formats) only: the tensor amax to derive the FP32 tensor scale from,
  /// for a tensor quantized in chunks. Unset: the amax of the finite values being cast.
  std::optional<float> tensor_amax;
  /// Worker threads for large tensors; 1 (default) runs on the calling thread. The result is
  /// bit-identical for every thread count.
  unsigned threads = 1;
};

}  // namespace blockcast
