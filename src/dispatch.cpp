// SPDX-License-Identifier: MIT
// Runtime dispatch: xsimd picks the best compiled architecture the CPU has, once per call.
#include "blockcast/dispatch.hpp"

namespace blockcast::runtime {

// The per-ISA instantiations live in other translation units.
#define BLOCKCAST_EXTERN_ARCH(F, A)                                                                  \
  extern template float quantize_op<F>::operator()<A>(A, const float*, std::size_t, std::size_t,     \
                                                      mutable_packed_view<F>, const cast_options&) const; \
  extern template void dequantize_op<F>::operator()<A>(A, packed_view<F>, float*, unsigned) const;   \
  extern template void fake_quantize_op<F>::operator()<A>(A, const float*, float*, std::size_t,      \
                                                          std::size_t, const cast_options&) const;
#define BLOCKCAST_DISPATCHED(F)                                                                      \
  BLOCKCAST_EXTERN_ARCH(F, xsimd::avx512bw)                                                          \
  BLOCKCAST_EXTERN_ARCH(F, xsimd::avx2)                                                              \
  BLOCKCAST_EXTERN_ARCH(F, xsimd::sse4_2)                                                            \
  BLOCKCAST_EXTERN_ARCH(F, xsimd::sse2)                                                              \
  template <>                                                                                        \
  float quantize<F>(const float* in, std::size_t rows, std::size_t cols, mutable_packed_view<F> out, \
                    const cast_options& opt) {                                                       \
    return xsimd::dispatch<arch_list>(quantize_op<F>{})(in, rows, cols, out, opt);                  \
  }                                                                                                  \
  template <>                                                                                        \
  void dequantize<F>(packed_view<F> in, float* out, unsigned threads) {                              \
    xsimd::dispatch<arch_list>(dequantize_op<F>{})(in, out, threads);                               \
  }                                                                                                  \
  template <>                                                                                        \
  void fake_quantize<F>(const float* in, float* out, std::size_t rows, std::size_t cols,             \
                        const cast_options& opt) {                                                   \
    xsimd::dispatch<arch_list>(fake_quantize_op<F>{})(in, out, rows, cols, opt);                    \
  }

#define BLOCKCAST_DISPATCHED_PRESET(alias, ...) BLOCKCAST_DISPATCHED(alias)
BLOCKCAST_PRESETS(BLOCKCAST_DISPATCHED_PRESET)
#undef BLOCKCAST_DISPATCHED_PRESET

#define BLOCKCAST_EXTERN_CONVERT(A)                                                                     \
  extern template void widen_bf16_op::operator()<A>(A, const std::uint8_t*, std::size_t, float*) const; \
  extern template void widen_f16_op::operator()<A>(A, const std::uint8_t*, std::size_t, float*) const;  \
  extern template error_sums squared_error_sums_op::operator()<A>(A, const float*, const float*, std::size_t) const;
BLOCKCAST_EXTERN_CONVERT(xsimd::avx512bw)
BLOCKCAST_EXTERN_CONVERT(xsimd::avx2)
BLOCKCAST_EXTERN_CONVERT(xsimd::sse4_2)
BLOCKCAST_EXTERN_CONVERT(xsimd::sse2)
#undef BLOCKCAST_EXTERN_CONVERT

void widen_bf16(const std::uint8_t* src, std::size_t n, float* out) { xsimd::dispatch<arch_list>(widen_bf16_op{})(src, n, out); }
void widen_f16(const std::uint8_t* src, std::size_t n, float* out) { xsimd::dispatch<arch_list>(widen_f16_op{})(src, n, out); }
error_sums squared_error_sums(const float* w, const float* q, std::size_t n) {
  return xsimd::dispatch<arch_list>(squared_error_sums_op{})(w, q, n);
}

namespace {
struct name_op {
  template <class Arch>
  const char* operator()(Arch) const {
    return Arch::name();
  }
};
}  // namespace

const char* selected_arch_name() { return xsimd::dispatch<arch_list>(name_op{})(); }

}  // namespace blockcast::runtime
