// SPDX-License-Identifier: MIT
// Writes a synthetic BF16 model for the conversion benchmark: a Hugging Face style sharded
// safetensors model (model-0000i-of-0000n.safetensors + model.safetensors.index.json) of
// LLaMA-like layers, each with seven projection weights and an RMSNorm vector, values drawn
// from a seeded Gaussian (sigma 0.02) so every run writes the same bytes.
//
//   blockcast_make_model OUT_DIR [--layers L] [--dim D] [--ffn F] [--shards S]
//
// Defaults (L = 6, D = 4096, F = 11008 as in LLaMA-7B, S = 3) give 2.4 GB: 1.2 G values.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "blockcast/io/safetensors.hpp"

namespace {

struct tensor_spec {
  std::string name;
  std::vector<std::uint64_t> shape;
  std::uint64_t seed;
};

// A BF16 of x, rounded to nearest even (x is finite here).
std::uint16_t to_bf16(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, 4);
  return static_cast<std::uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// splitmix64: a fixed, portable generator, so the model is the same bytes everywhere
std::uint64_t next(std::uint64_t& s) {
  std::uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void fill(std::vector<std::uint16_t>& out, std::uint64_t seed, bool norm) {
  std::uint64_t s = seed;
  for (std::size_t i = 0; i < out.size(); i += 2) {  // Box-Muller: two normals per pair of uniforms
    const double u1 = (static_cast<double>(next(s) >> 11) + 1.0) * 0x1p-53, u2 = static_cast<double>(next(s) >> 11) * 0x1p-53;
    const double r = std::sqrt(-2.0 * std::log(u1)), a = 6.283185307179586 * u2;
    out[i] = to_bf16(norm ? static_cast<float>(1.0 + 0.1 * r * std::cos(a)) : static_cast<float>(0.02 * r * std::cos(a)));
    if (i + 1 < out.size())
      out[i + 1] = to_bf16(norm ? static_cast<float>(1.0 + 0.1 * r * std::sin(a)) : static_cast<float>(0.02 * r * std::sin(a)));
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR [--layers L] [--dim D] [--ffn F] [--shards S]\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  std::uint64_t layers = 6, dim = 4096, ffn = 11008, shards = 3;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string key = argv[i];
    const std::uint64_t v = std::strtoull(argv[i + 1], nullptr, 10);
    if (v == 0) {
      std::fprintf(stderr, "%s: %s must be a positive integer\n", argv[0], key.c_str());
      return 2;
    }
    if (key == "--layers") layers = v;
    else if (key == "--dim") dim = v;
    else if (key == "--ffn") ffn = v;
    else if (key == "--shards") shards = v;
    else {
      std::fprintf(stderr, "%s: unknown option %s\n", argv[0], key.c_str());
      return 2;
    }
  }
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    std::perror(dir.c_str());
    return 1;
  }
  std::vector<tensor_spec> specs;
  for (std::uint64_t l = 0; l < layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    specs.push_back({p + "input_layernorm.weight", {dim}, 0});
    for (const char* n : {"q_proj", "k_proj", "v_proj", "o_proj"}) specs.push_back({p + "self_attn." + n + ".weight", {dim, dim}, 0});
    specs.push_back({p + "mlp.gate_proj.weight", {ffn, dim}, 0});
    specs.push_back({p + "mlp.up_proj.weight", {ffn, dim}, 0});
    specs.push_back({p + "mlp.down_proj.weight", {dim, ffn}, 0});
  }
  for (std::size_t i = 0; i < specs.size(); ++i) specs[i].seed = 1000 + i;
  const std::size_t per_shard = (specs.size() + shards - 1) / shards;
  nlohmann::json weight_map = nlohmann::json::object();
  std::uint64_t total = 0;
  char name[64];
  try {
    for (std::uint64_t s = 0; s < shards; ++s) {
      std::snprintf(name, sizeof name, "model-%05llu-of-%05llu.safetensors", static_cast<unsigned long long>(s + 1),
                    static_cast<unsigned long long>(shards));
      blockcast::io::safetensors_stream_writer out(dir + "/" + name);
      out.set_metadata("format", "pt");
      const std::size_t b = s * per_shard, e = std::min(specs.size(), b + per_shard);
      for (std::size_t i = b; i < e; ++i) out.declare(specs[i].name, blockcast::io::dtype::bf16, specs[i].shape);
      std::vector<std::uint16_t> values;
      for (std::size_t i = b; i < e; ++i) {
        std::uint64_t n = 1;
        for (auto d : specs[i].shape) n *= d;
        values.resize(n);
        fill(values, specs[i].seed, specs[i].shape.size() == 1);
        out.write(specs[i].name, {reinterpret_cast<const std::uint8_t*>(values.data()), n * 2});
        weight_map[specs[i].name] = name;
        total += n * 2;
      }
      out.commit();
      std::fprintf(stderr, "wrote %s/%s\n", dir.c_str(), name);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", argv[0], e.what());
    return 1;
  }
  const nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  const std::string path = dir + "/model.safetensors.index.json";
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (!f || std::fputs((index.dump(2) + "\n").c_str(), f) < 0 || std::fclose(f) != 0) {
    std::perror(path.c_str());
    return 1;
  }
  std::printf("%s: %llu tensors, %llu bytes of BF16 in %llu shards\n", dir.c_str(), static_cast<unsigned long long>(specs.size()),
              static_cast<unsigned long long>(total), static_cast<unsigned long long>(shards));
  return 0;
}
