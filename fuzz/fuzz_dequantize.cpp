// SPDX-License-Identifier: MIT
// Dequantize of arbitrary packed bytes and scales (every code, every scale byte, any tensor
// scale) with every format: SIMD equals the scalar reference bit for bit, BF16 output is the
// reference rounded to nearest even, and nothing reads or writes out of bounds.
#include <blockcast/blockcast.hpp>

#include <vector>

#include "fuzz_input.hpp"

using namespace blockcast;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::fuzz_input in(data, size);
  const auto& info = preset_formats()[in.take<std::uint8_t>() % preset_formats().size()];
  const std::size_t rows = 1 + in.take<std::uint8_t>() % 4, cols = 1 + in.take<std::uint8_t>() % 130;
  const float tensor_scale = in.take<float>();
  cast_options opt;
  opt.threads = 1 + (in.take<std::uint8_t>() & 1);

  visit_format(info.name, [&](auto tag) {
    using F = typename decltype(tag)::type;
    packed_tensor<F> p(rows, cols);
    if constexpr (F::has_tensor_scale) p.set_tensor_scale(tensor_scale);
    for (auto& b : p.codes()) b = in.take<std::uint8_t>();
    for (auto& b : p.scales()) b = in.take<std::uint8_t>();
    std::vector<float> simd(rows * cols), ref(rows * cols);
    std::vector<std::uint16_t> bf16(rows * cols);
    dequantize(p, simd.data(), opt);
    reference::dequantize<F>(p.view(), ref.data());
    dequantize_bf16(p, bf16.data(), opt);
    for (std::size_t i = 0; i < ref.size(); ++i) {
      if (!fuzz::same_bits(simd[i], ref[i])) fuzz::found("dequantize differs from the reference");
      if (bf16[i] != detail::to_bf16(ref[i])) fuzz::found("dequantize_bf16 differs from the reference rounded to BF16");
    }
  });
  return 0;
}
