// SPDX-License-Identifier: MIT
// Runtime instruction-set dispatch (opt-in). Header-only blockcast runs the kernels of the
// best instruction set the including file is compiled for. Linking the `blockcast::dispatch`
// CMake target instead compiles the preset kernels once per x86 instruction set (SSE2,
// SSE4.2, AVX2, AVX-512BW, AVX-512 with VBMI and VNNI) and picks the best the CPU has at each
// call, so a binary built for baseline x86-64 uses AVX-512 where the machine has it. The
// target defines BLOCKCAST_RUNTIME_DISPATCH, which routes the stable entry points here for
// presets: casts, BF16 decoding, dot products, gemv and matmul.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "blockcast/block/block_format.hpp"
#include "blockcast/block/packed.hpp"
#include "blockcast/kernels/convert.hpp"
#include "blockcast/kernels/mx_dot.hpp"
#include "blockcast/kernels/simd_arch.hpp"  // xsimd
#include "blockcast/policy.hpp"

namespace blockcast::runtime {

#if defined(__x86_64__) || defined(_M_X64)
/// The instruction sets xsimd::dispatch chooses among; simd::avx512vbmi, which xsimd does not
/// know, is chosen before them where the CPU has VBMI and VNNI (src/dispatch.cpp).
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

/// Rows r0..r1 of packed weights decoded to BF16 (out: the whole tensor's).
template <class Format>
struct dequantize_bf16_op {
  template <class Arch>
  void operator()(Arch, packed_view<Format> in, std::size_t r0, std::size_t r1, std::uint16_t* out) const;
};
/// y[r - r0] for rows r0..r1: dot products with float activations.
template <class Format>
struct float_dot_op {
  template <class Arch>
  void operator()(Arch, packed_view<Format> w, std::size_t r0, std::size_t r1, const float* x, float* y) const;
};
/// y[r - r0] for rows r0..r1: MX dot products with prepared MXINT8 activations.
template <class Format>
struct mx_dot_op {
  template <class Arch>
  void operator()(Arch, packed_view<Format> w, std::size_t r0, std::size_t r1, const mx_activations<Format>& x,
                  float* y) const;
};

/// The dispatched entry points (src/dispatch.cpp).
template <class Format>
void dequantize_bf16_rows(packed_view<Format> in, std::size_t r0, std::size_t r1, std::uint16_t* out);
template <class Format>
void float_dot_rows(packed_view<Format> w, std::size_t r0, std::size_t r1, const float* x, float* y);
template <class Format>
void mx_dot_rows(packed_view<Format> w, std::size_t r0, std::size_t r1, const mx_activations<Format>& x, float* y);
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
  void fake_quantize<F>(const float*, float*, std::size_t, std::size_t, const cast_options&);      \
  template <>                                                                                      \
  void dequantize_bf16_rows<F>(packed_view<F>, std::size_t, std::size_t, std::uint16_t*);          \
  template <>                                                                                      \
  void float_dot_rows<F>(packed_view<F>, std::size_t, std::size_t, const float*, float*);          \
  template <>                                                                                      \
  void mx_dot_rows<F>(packed_view<F>, std::size_t, std::size_t, const mx_activations<F>&, float*);
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
struct max_finite_magnitude_op {
  template <class Arch>
  float operator()(Arch, const std::uint8_t* src, std::size_t n, stored_float type) const;
};
void widen_bf16(const std::uint8_t* src, std::size_t n, float* out);
void widen_f16(const std::uint8_t* src, std::size_t n, float* out);
error_sums squared_error_sums(const float* w, const float* q, std::size_t n);
float max_finite_magnitude(const std::uint8_t* src, std::size_t n, stored_float type);

/// Name of the instruction set the dispatched kernels run on here ("avx512vbmi", ...).
const char* selected_arch_name();

}  // namespace blockcast::runtime
