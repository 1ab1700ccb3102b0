// SPDX-License-Identifier: MIT
// Runtime instruction-set dispatch (opt-in). Header-only blockcast runs the kernels of the
// best instruction set the including file is compiled for. Linking the `blockcast::dispatch`
// CMake target instead compiles the preset kernels once per x86 instruction set (SSE2,
// SSE4.2, AVX2, AVX-512BW) and picks the best the CPU has at the first call (xsimd::dispatch),
// so a binary built for baseline x86-64 uses AVX-512 where the machine has it. The target
// defines BLOCKCAST_RUNTIME_DISPATCH, which routes the stable entry points here for presets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "blockcast/block/block_format.hpp"
#include "blockcast/block/packed.hpp"
#include "blockcast/kernels/convert.hpp"
#include "blockcast/kernels/simd_arch.hpp"  // xsimd
#include "blockcast/policy.hpp"

namespace blockcast::runtime {

#if defined(__x86_64__) || defined(_M_X64)
using arch_list = xsimd::arch_list<xsimd::avx512bw, xsimd::avx2, xsimd::sse4_2, xsimd::sse2>;
#define BLOCKCAST_DISPATCH_AVAILABLE 1
#else
#define BLOCKCAST_DISPATCH_AVAILABLE 0
#endif

/// The kernels of one architecture, as functors for xsimd::dispatch; defined and explicitly
/// instantiated for the presets in src/dispatch_<isa>.cpp, each compiled for its ISA.
template <class Format>
struct quantize_op {
  template <class Arch>
  float operator()(Arch, const float* in, std::size_t rows, std::size_t cols,
                   mutable_packed_view<Format> out, const cast_options& opt) const;
};
template <class Format>
struct dequantize_op {
  template <class Arch>
  void operator()(Arch, packed_view<Format> in, float* out, unsigned threads) const;
};
template <class Format>
struct fake_quantize_op {
  template <class Arch>
  void operator()(Arch, const float* in, float* out, std::size_t rows, std::size_t cols,
                  const cast_options& opt) const;
};

/// The dispatched entry points (src/dispatch.cpp).
template <class Format>
float quantize(const float* in, std::size_t rows, std::size_t cols, mutable_packed_view<Format> out,
               const cast_options& opt);
template <class Format>
void dequantize(packed_view<Format> in, float* out, unsigned threads);
template <class Format>
void fake_quantize(const float* in, float* out, std::size_t rows, std::size_t cols,
                   const cast_options& opt);

#define BLOCKCAST_DECLARE_DISPATCHED(F)                                                            \
  template <>                                                                                      \
  float quantize<F>(const float*, std::size_t, std::size_t, mutable_packed_view<F>, const cast_options&); \
  template <>                                                                                      \
  void dequantize<F>(packed_view<F>, float*, unsigned);                                           \
  template <>                                                                                      \
  void fake_quantize<F>(const float*, float*, std::size_t, std::size_t, const cast_options&);
#define BLOCKCAST_DECLARE_PRESET(alias, ...) BLOCKCAST_DECLARE_DISPATCHED(alias)
BLOCKCAST_PRESETS(BLOCKCAST_DECLARE_PRESET)
#undef BLOCKCAST_DECLARE_PRESET
#undef BLOCKCAST_DECLARE_DISPATCHED

/// Widening and error sums (kernels/convert.hpp), compiled per ISA so the loops vectorize.
struct widen_bf16_op {
  template <class Arch>
  void operator()(Arch, const std::uint8_t* src, std::size_t n, float* out) const;
};
struct widen_f16_op {
  template <class Arch>
  void operator()(Arch, const std::uint8_t* src, std::size_t n, float* out) const;
};
struct squared_error_sums_op {
  template <class Arch>
  error_sums operator()(Arch, const float* w, const float* q, std::size_t n) const;
};
void widen_bf16(const std::uint8_t* src, std::size_t n, float* out);
void widen_f16(const std::uint8_t* src, std::size_t n, float* out);
error_sums squared_error_sums(const float* w, const float* q, std::size_t n);

/// Name of the instruction set the dispatched kernels run on here ("avx512bw", ...).
const char* selected_arch_name();

}  // namespace blockcast::runtime
