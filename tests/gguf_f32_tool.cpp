// SPDX-License-Identifier: MIT
// A test tool: a safetensors file of F32 tensors as a GGUF file of F32 tensors (dims reversed,
// as ggml orders them; the safetensors metadata as GGUF strings "safetensors.<key>") and back,
// so the GGUF paths of `blockcast` can run on the demo's CNN (tests/cnn_layouts.sh).
// Usage: gguf_f32_tool to-gguf IN.safetensors OUT.gguf | to-safetensors IN.gguf OUT.safetensors
#include <cstdio>
#include <string>
#include <vector>

#include "blockcast/io/gguf.hpp"
#include "blockcast/io/safetensors.hpp"

namespace io = blockcast::io;

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s to-gguf IN.safetensors OUT.gguf | to-safetensors IN.gguf OUT.safetensors\n", argv[0]);
    return 2;
  }
  const std::string mode = argv[1], prefix = "safetensors.";
  try {
    if (mode == "to-gguf") {
      const io::safetensors_file in(argv[2]);
      io::gguf_stream_writer out(argv[3]);
      out.set_metadata("general.architecture", io::gguf_value::string("fashion-cnn"));
      for (const auto& [key, value] : in.metadata()) out.set_metadata(prefix + key, io::gguf_value::string(value));
      for (const auto& t : in.tensors()) {
        if (t.type != io::dtype::f32) throw std::runtime_error(t.name + " is not F32");
        out.declare(t.name, std::vector<std::uint64_t>(t.shape.rbegin(), t.shape.rend()), io::ggml_f32);
      }
      for (const auto& t : in.tensors()) out.write(t.name, in.bytes(t));
      out.commit();
    } else if (mode == "to-safetensors") {
      const io::gguf_file in(argv[2]);
      io::safetensors_writer out(argv[3]);
      for (const auto& [key, value] : in.metadata()) {
        if (key.rfind(prefix, 0) == 0 && value.type == io::gguf_type::string && value.strings.size() == 1)
          out.set_metadata(key.substr(prefix.size()), value.strings[0]);
      }
      for (const auto& t : in.tensors()) {
        if (t.type != io::ggml_f32) throw std::runtime_error(t.name + " is not F32");
        out.add(t.name, io::dtype::f32, std::vector<std::uint64_t>(t.dims.rbegin(), t.dims.rend()), in.bytes(t));
      }
      out.commit();
    } else {
      throw std::runtime_error("unknown mode " + mode);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gguf_f32_tool: %s\n", e.what());
    return 1;
  }
  return 0;
}
