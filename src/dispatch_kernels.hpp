// SPDX-License-Identifier: MIT
// The body of every src/dispatch_<isa>.cpp: the functors' definitions for BLOCKCAST_ARCH and
// their explicit instantiations for the presets. Each including file is compiled for its ISA.
#include "blockcast/dispatch.hpp"
#include "blockcast/kernels/cast.hpp"
#include "blockcast/kernels/dot.hpp"
#include "blockcast/kernels/mx_dot.hpp"

namespace blockcast::runtime {

template <class Format>
template <class Arch>
float quantize_op<Format>::operator()(Arch, const float* in, std::size_t rows, std::size_t cols,
                                      mutable_packed_view<Format> out, const cast_options& opt) const {
  return simd::tensor_casts<Format, Arch>::quantize(in, rows, cols, out, opt);
}
template <class Format>
template <class Arch>
void dequantize_op<Format>::operator()(Arch, packed_view<Format> in, float* out, unsigned threads) const {
  simd::tensor_casts<Format, Arch>::dequantize(in, out, threads);
}
template <class Format>
template <class Arch>
void fake_quantize_op<Format>::operator()(Arch, const float* in, float* out, std::size_t rows,
                                          std::size_t cols, const cast_options& opt) const {
  simd::tensor_casts<Format, Arch>::fake_quantize(in, out, rows, cols, opt);
}

template <class Format>
template <class Arch>
void dequantize_bf16_op<Format>::operator()(Arch, packed_view<Format> in, std::size_t r0, std::size_t r1,
                                            std::uint16_t* out) const {
  simd::tensor_casts<Format, Arch>::dequantize_bf16_rows(in, r0, r1, out);
}
template <class Format>
template <class Arch>
void float_dot_op<Format>::operator()(Arch, packed_view<Format> w, std::size_t r0, std::size_t r1, const float* x,
                                      float* y) const {
  simd::dot_kernels<Format, Arch>::rows(w, r0, r1, x, y);
}
template <class Format>
template <class Arch>
void mx_dot_op<Format>::operator()(Arch, packed_view<Format> w, std::size_t r0, std::size_t r1,
                                   const mx_activations<Format>& x, float* y) const {
  simd::mx_dot_kernels<Format, Arch>::rows(w, r0, r1, x, y);
}

template <class Arch>
void widen_bf16_op::operator()(Arch, const std::uint8_t* src, std::size_t n, float* out) const {
  portable::widen_bf16<Arch>(src, n, out);
}
template <class Arch>
void widen_f16_op::operator()(Arch, const std::uint8_t* src, std::size_t n, float* out) const {
  portable::widen_f16<Arch>(src, n, out);
}
template <class Arch>
error_sums squared_error_sums_op::operator()(Arch, const float* w, const float* q, std::size_t n) const {
  return portable::squared_error_sums<Arch>(w, q, n);
}
template <class Arch>
float max_finite_magnitude_op::operator()(Arch, const std::uint8_t* src, std::size_t n, stored_float type) const {
  return portable::max_finite_magnitude<Arch>(src, n, type);
}
template void widen_bf16_op::operator()<BLOCKCAST_ARCH>(BLOCKCAST_ARCH, const std::uint8_t*, std::size_t, float*) const;
template void widen_f16_op::operator()<BLOCKCAST_ARCH>(BLOCKCAST_ARCH, const std::uint8_t*, std::size_t, float*) const;
template float max_finite_magnitude_op::operator()<BLOCKCAST_ARCH>(BLOCKCAST_ARCH, const std::uint8_t*, std::size_t,
                                                                    stored_float) const;
template error_sums squared_error_sums_op::operator()<BLOCKCAST_ARCH>(BLOCKCAST_ARCH, const float*, const float*,
                                                                       std::size_t) const;

#define BLOCKCAST_INSTANTIATE(F)                                                                       \
  template float quantize_op<F>::operator()<BLOCKCAST_ARCH>(BLOCKCAST_ARCH, const float*, std::size_t, \
                                                            std::size_t, mutable_packed_view<F>,       \
                                                            const cast_options&) const;                \
  template void dequantize_op<F>::operator()<BLOCKCAST_ARCH>(BLOCKCAST_ARCH, packed_view<F>, float*,  \
                                                             unsigned) const;                          \
  template void fake_quantize_op<F>::operator()<BLOCKCAST_ARCH>(BLOCKCAST_ARCH, const float*, float*,  \
                                                                std::size_t, std::size_t,              \
                                                                const cast_options&) const;            \
  template void dequantize_bf16_op<F>::operator()<BLOCKCAST_ARCH>(BLOCKCAST_ARCH, packed_view<F>,      \
                                                                  std::size_t, std::size_t,            \
                                                                  std::uint16_t*) const;               \
  template void float_dot_op<F>::operator()<BLOCKCAST_ARCH>(BLOCKCAST_ARCH, packed_view<F>, std::size_t, \
                                                            std::size_t, const float*, float*) const;  \
  template void mx_dot_op<F>::operator()<BLOCKCAST_ARCH>(BLOCKCAST_ARCH, packed_view<F>, std::size_t,   \
                                                         std::size_t, const mx_activations<F>&,        \
                                                         float*) const;
#define BLOCKCAST_INSTANTIATE_PRESET(alias, ...) BLOCKCAST_INSTANTIATE(alias)
BLOCKCAST_PRESETS(BLOCKCAST_INSTANTIATE_PRESET)
#undef BLOCKCAST_INSTANTIATE_PRESET
#undef BLOCKCAST_INSTANTIATE

}  // namespace blockcast::runtime
