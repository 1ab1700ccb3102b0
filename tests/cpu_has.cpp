// SPDX-License-Identifier: MIT
// cpu_has <isa>: exit 0 if this CPU runs <isa> (xsimd names), 77 (ctest's skip code) if not.
// Built for baseline x86-64 so that it runs anywhere.
#include <xsimd/xsimd.hpp>

#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const auto a = xsimd::available_architectures();
  const char* isa = argv[1];
  bool has = false;
  if (!std::strcmp(isa, "sse2")) has = a.sse2;
  else if (!std::strcmp(isa, "sse4.2")) has = a.sse4_2;
  else if (!std::strcmp(isa, "avx2")) has = a.avx2 && a.fma3_avx2;
  else if (!std::strcmp(isa, "avx512bw")) has = a.avx512bw && a.avx512dq && a.avx512cd;
  else if (!std::strcmp(isa, "avx512vbmi")) {
#if defined(__x86_64__) || defined(__i386__)
    // xsimd 8.1 knows neither VBMI nor VNNI: the compiler's CPU model does
    __builtin_cpu_init();
    has = a.avx512bw && a.avx512dq && a.avx512cd && __builtin_cpu_supports("avx512vbmi") &&
          __builtin_cpu_supports("avx512vnni");
#endif
  }
  else if (!std::strcmp(isa, "neon")) has = a.neon;
  if (!has) std::printf("this CPU lacks %s: skipped\n", isa);
  return has ? 0 : 77;
}
