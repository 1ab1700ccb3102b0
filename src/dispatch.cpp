// SPDX-License-Identifier: MIT
// Runtime dispatch: avx512vbmi where the CPU has VBMI and VNNI, else the best architecture of
// arch_list the CPU has (xsimd::dispatch).
#include "blockcast/dispatch.hpp"

namespace blockcast::runtime {

namespace {
/// Whether the CPU runs avx512vbmi's kernels (xsimd 8.1 does not detect VBMI or VNNI).
bool has_avx512vbmi() {
  static const bool has = [] {
    const auto a = xsimd::available_architectures();
    __builtin_cpu_init();
    return a.avx512bw && a.avx512dq && a.avx512cd && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512vnni");
  }();
  return has;
}

/// op(Arch{}, args...) on the best architecture the CPU has.
template <class Op, class... Args>
decltype(auto) run(Op op, Args&&... args) {
  if (has_avx512vbmi()) return op(simd::avx512vbmi{}, std::forward<Args>(args)...);
  return xsimd::dispatch<arch_list>(op)(std::forward<Args>(args)...);
}
}  // namespace

// The per-ISA instantiations live in other translation units.
#define BLOCKCAST_EXTERN_ARCH(F, A)                                                                  \
  extern template float quantize_op<F>::operator()<A>(A, const float*, std::size_t, std::size_t,     \
                                                      mutable_packed_view<F>, const cast_options&) const; \
  extern template void dequantize_op<F>::operator()<A>(A, packed_view<F>, float*, unsigned) const;   \
  extern template void fake_quantize_op<F>::operator()<A>(A, const float*, float*, std::size_t,      \
                                                          std::size_t, const cast_options&) const;   \
  extern template void dequantize_bf16_op<F>::operator()<A>(A, packed_view<F>, std::size_t,          \
                                                            std::size_t, std::uint16_t*) const;      \
  extern template void float_dot_op<F>::operator()<A>(A, packed_view<F>, std::size_t, std::size_t,   \
                                                      const float*, float*) const;                   \
  extern template void mx_dot_op<F>::operator()<A>(A, packed_view<F>, std::size_t, std::size_t,      \
                                                   const mx_activations<F>&, float*) const;
#define BLOCKCAST_DISPATCHED(F)                                                                      \
  BLOCKCAST_EXTERN_ARCH(F, simd::avx512vbmi)                                                         \
  BLOCKCAST_EXTERN_ARCH(F, xsimd::avx512bw)                                                          \
  BLOCKCAST_EXTERN_ARCH(F, xsimd::avx2)                                                              \
  BLOCKCAST_EXTERN_ARCH(F, xsimd::sse4_2)                                                            \
  BLOCKCAST_EXTERN_ARCH(F, xsimd::sse2)                                                              \
  template <>                                                                                        \
  float quantize<F>(const float* in, std::size_t rows, std::size_t cols, mutable_packed_view<F> out, \
                    const cast_options& opt) {                                                       \
    return run(quantize_op<F>{}, in, rows, cols, out, opt);                                          \
  }                                                                                                  \
  template <>                                                                                        \
  void dequantize<F>(packed_view<F> in, float* out, unsigned threads) {                              \
    run(dequantize_op<F>{}, in, out, threads);                                                       \
  }                                                                                                  \
  template <>                                                                                        \
  void fake_quantize<F>(const float* in, float* out, std::size_t rows, std::size_t cols,             \
                        const cast_options& opt) {                                                   \
    run(fake_quantize_op<F>{}, in, out, rows, cols, opt);                                            \
  }                                                                                                  \
  template <>                                                                                        \
  void dequantize_bf16_rows<F>(packed_view<F> in, std::size_t r0, std::size_t r1, std::uint16_t* out) { \
    run(dequantize_bf16_op<F>{}, in, r0, r1, out);                                                   \
  }                                                                                                  \
  template <>                                                                                        \
  void float_dot_rows<F>(packed_view<F> w, std::size_t r0, std::size_t r1, const float* x, float* y) { \
    run(float_dot_op<F>{}, w, r0, r1, x, y);                                                         \
  }                                                                                                  \
  template <>                                                                                        \
  void mx_dot_rows<F>(packed_view<F> w, std::size_t r0, std::size_t r1, const mx_activations<F>& x,  \
                      float* y) {                                                                    \
    run(mx_dot_op<F>{}, w, r0, r1, x, y);                                                            \
  }

#define BLOCKCAST_DISPATCHED_PRESET(alias, ...) BLOCKCAST_DISPATCHED(alias)
BLOCKCAST_PRESETS(BLOCKCAST_DISPATCHED_PRESET)
#undef BLOCKCAST_DISPATCHED_PRESET

#define BLOCKCAST_EXTERN_CONVERT(A)                                                                     \
  extern template void widen_bf16_op::operator()<A>(A, const std::uint8_t*, std::size_t, float*) const; \
  extern template void widen_f16_op::operator()<A>(A, const std::uint8_t*, std::size_t, float*) const;  \
  extern template error_sums squared_error_sums_op::operator()<A>(A, const float*, const float*, std::size_t) const; \
  extern template float max_finite_magnitude_op::operator()<A>(A, const std::uint8_t*, std::size_t, stored_float) const;
BLOCKCAST_EXTERN_CONVERT(simd::avx512vbmi)
BLOCKCAST_EXTERN_CONVERT(xsimd::avx512bw)
BLOCKCAST_EXTERN_CONVERT(xsimd::avx2)
BLOCKCAST_EXTERN_CONVERT(xsimd::sse4_2)
BLOCKCAST_EXTERN_CONVERT(xsimd::sse2)
#undef BLOCKCAST_EXTERN_CONVERT

void widen_bf16(const std::uint8_t* src, std::size_t n, float* out) { run(widen_bf16_op{}, src, n, out); }
void widen_f16(const std::uint8_t* src, std::size_t n, float* out) { run(widen_f16_op{}, src, n, out); }
error_sums squared_error_sums(const float* w, const float* q, std::size_t n) {
  return run(squared_error_sums_op{}, w, q, n);
}
float max_finite_magnitude(const std::uint8_t* src, std::size_t n, stored_float type) {
  return run(max_finite_magnitude_op{}, src, n, type);
}

namespace {
struct name_op {
  template <class Arch>
  const char* operator()(Arch) const {
    return Arch::name();
  }
};
}  // namespace

const char* selected_arch_name() { return run(name_op{}); }

}  // namespace blockcast::runtime
