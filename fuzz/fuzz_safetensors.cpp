// SPDX-License-Identifier: MIT
// The safetensors reader on arbitrary files: it must accept or reject with io_error (or
// another blockcast::error), never crash, leak or read out of bounds. Accepted files are
// read through: every float tensor, every quantized tensor decoded, in blockcast's layout and
// in the engine layouts (compressed-tensors, ModelOpt, gpt-oss) detected from the tensors.
#include <blockcast/blockcast.hpp>
#include <blockcast/io/quantized_tensors.hpp>
#include <blockcast/io/quantized_weights.hpp>

#include <unistd.h>

#include <cstdio>
#include <string>

#include "fuzz_input.hpp"

using namespace blockcast;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = fuzz::scratch_file("input.safetensors");
  if (!fuzz::write_file(path.c_str(), data, size)) return 0;
  try {
    const io::safetensors_file file(path);
    for (const auto& t : file.tensors()) {
      if (t.type == io::dtype::f32 || t.type == io::dtype::f16 || t.type == io::dtype::bf16) file.to_float(t);
      if (!io::is_quantized(file, t.name)) continue;
      const auto d = io::describe_quantized(file, t.name);
      visit_format(d.format, [&](auto tag) {
        using F = typename decltype(tag)::type;
        const auto p = io::read_quantized<F>(file, t.name);
        std::vector<float> out(p.size());
        dequantize(p, out.data());
      });
    }
  } catch (const blockcast::error&) {
    // rejected with a message: the expected outcome for most inputs
  }
  try {  // the layouts of every quantized weight, read from the tensors' names and dtypes
    const io::safetensors_file file(path);
    for (const auto& entry : io::quantized_weights(file)) {
      const io::quantized_weight& w = entry.second;
      visit_format(w.format, [&](auto tag) {
        using F = typename decltype(tag)::type;
        const auto p = io::read_quantized_weight<F>(file, w);
        std::vector<float> out(p.size());
        dequantize(p, out.data());
      });
    }
  } catch (const blockcast::error&) {
  }
  return 0;
}
