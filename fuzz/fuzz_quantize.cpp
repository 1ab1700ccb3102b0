// SPDX-License-Identifier: MIT
// Quantize and fake-quantize of arbitrary float bit patterns (NaN, Inf, subnormals, any
// shape) with every format, rounding mode and scale rule: the SIMD kernels (and threads)
// must equal the scalar reference bit for bit.
#include <blockcast/blockcast.hpp>

#include <vector>

#include "fuzz_input.hpp"

using namespace blockcast;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::fuzz_input in(data, size);
  const auto& info = preset_formats()[in.take<std::uint8_t>() % preset_formats().size()];
  cast_options opt;
  opt.round = static_cast<rounding>(in.take<std::uint8_t>() % 4);
  opt.scale_rule = static_cast<blockcast::scale_rule>(in.take<std::uint8_t>() % 4);
  const std::uint8_t flags = in.take<std::uint8_t>();
  opt.int8_full_range = flags & 1;
  opt.threads = 1 + ((flags >> 1) & 1);
  opt.seed = in.take<std::uint8_t>();
  if (flags & 4) opt.tensor_amax = in.take<float>();
  std::size_t cols = 1 + in.take<std::uint8_t>() % 130;
  const std::size_t n = in.remaining() / sizeof(float);
  if (n == 0) return 0;
  std::size_t rows = n / cols;
  if (rows == 0) rows = 1, cols = n;
  std::vector<float> x(rows * cols);
  std::memcpy(x.data(), in.rest(), x.size() * sizeof(float));

  visit_format(info.name, [&](auto tag) {
    using F = typename decltype(tag)::type;
    packed_tensor<F> simd;
    try {
      simd = quantize<F>(x.data(), rows, cols, opt);
    } catch (const invalid_argument&) {
      return;  // a tensor_amax that is negative, NaN or Inf: rejected, as documented
    }
    packed_tensor<F> ref(rows, cols);
    ref.set_tensor_scale(reference::quantize<F>(x.data(), rows, cols, ref.mutable_view(), opt));
    if (!std::equal(simd.codes().begin(), simd.codes().end(), ref.codes().begin())) fuzz::found("codes differ");
    if (!std::equal(simd.scales().begin(), simd.scales().end(), ref.scales().begin())) fuzz::found("scales differ");
    if (!fuzz::same_bits(simd.tensor_scale(), ref.tensor_scale())) fuzz::found("tensor scales differ");

    std::vector<float> fake(x.size()), fake_ref(x.size());
    fake_quantize<F>(x.data(), fake.data(), rows, cols, opt);
    reference::fake_quantize<F>(x.data(), fake_ref.data(), rows, cols, opt);
    for (std::size_t i = 0; i < x.size(); ++i)
      if (!fuzz::same_bits(fake[i], fake_ref[i])) fuzz::found("fake_quantize differs");
  });
  return 0;
}
