// SPDX-License-Identifier: MIT
// The defaults the PTQ methods share, named once (docs/error_diffusion.md, "The options").
#pragma once

#include <cstddef>

namespace blockcast::ptq {

/// Damping added to H's diagonal as a fraction of its mean, by GPTQ and ED alike (GPTQ's
/// reference value): it keeps H invertible and the greedy updates bounded.
inline constexpr double default_damp = 0.01;

/// ED's rank r on sketched statistics when none is asked for (at most K and N / 4): the number
/// of principal directions of the inputs the model keeps beside its diagonal. On exact
/// statistics (K <= input_stats::exact_channels by default) it is min(K, 64 x 4096 / K) and
/// N / 4: input_stats::default_model_rank().
inline constexpr std::size_t default_rank = 64;

}  // namespace blockcast::ptq
