// SPDX-License-Identifier: MIT
// A Hugging Face model directory and the names and configuration engines expect in one:
//   config.json                      the model's configuration; a quantized checkpoint's
//                                    "quantization_config" tells transformers/vLLM/SGLang how
//                                    to load it (compressed-tensors, or ModelOpt's short form)
//   hf_quant_config.json             ModelOpt's own description of its quantization
//   model.safetensors, or model.safetensors.index.json and the shards it lists
//   everything else (tokenizer, generation config, license, ...) copied byte for byte.
// Which tensors stay unquantized by default follows the engines' own quantizers
// (llm-compressor's ignore=["lm_head"], ModelOpt's exclusions, llama-quantize): see
// kept_by_default. docs/layouts.md has the sources.
#pragma once

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "blockcast/io/io_error.hpp"
#include "blockcast/io/json.hpp"
#include "blockcast/io/layout.hpp"
#include "blockcast/io/model_files.hpp"
#include "blockcast/io/names.hpp"

namespace blockcast::io {

inline constexpr const char* config_file_name = "config.json";
inline constexpr const char* modelopt_config_file_name = "hf_quant_config.json";
inline constexpr const char* single_weights_name = "model.safetensors";
inline constexpr const char* weights_index_name = "model.safetensors.index.json";
inline constexpr const char* gguf_suffix = ".gguf";

inline bool is_gguf_path(const std::string& path) { return ends_with(path, gguf_suffix); }

/// Whether `path` names a directory (following symlinks).
inline bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

/// A model directory as read: its weights (an index or one safetensors file), its config and
/// the other regular files, which a conversion copies as they are.
struct model_directory {
  std::string dir;
  std::string weights;                 // the index or the single file: a path in dir
  bool has_config = false;
  nlohmann::ordered_json config;       // config.json, key order kept
  std::vector<std::string> other_files;  // file names in dir, sorted
  std::vector<std::string> skipped;      // entries that are not regular files (subdirectories, ...)
};

/// Opens model directory `dir`: model.safetensors.index.json if there is one, else
/// model.safetensors; config.json parsed (bounded, like an index). Throws io_error naming the
/// directory when there are no weights, or config.json is not a JSON object.
inline model_directory open_model_directory(const std::string& dir) {
  model_directory m;
  m.dir = dir;
  DIR* d = ::opendir(dir.c_str());
  if (!d) detail::fail(dir, std::string("cannot read the directory: ") + std::strerror(errno));
  std::vector<std::string> names;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  const bool sharded = std::find(names.begin(), names.end(), weights_index_name) != names.end();
  const bool single = std::find(names.begin(), names.end(), single_weights_name) != names.end();
  if (!sharded && !single)
    detail::fail(dir, std::string("no ") + weights_index_name + " or " + single_weights_name + " (not a Hugging Face model directory)");
  m.weights = dir + "/" + (sharded ? weights_index_name : single_weights_name);
  std::vector<std::string> weight_files{sharded ? weights_index_name : single_weights_name};
  if (sharded)
    for (const auto& shard : open_model(m.weights).shards) weight_files.push_back(shard);
  for (const auto& name : names) {
    if (std::find(weight_files.begin(), weight_files.end(), name) != weight_files.end()) continue;
    struct stat st {};
    if (::stat((dir + "/" + name).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      m.skipped.push_back(name);
      continue;
    }
    if (name == config_file_name) {
      m.has_config = true;
      try {
        m.config = nlohmann::ordered_json::parse(read_regular_file(dir + "/" + name, std::uint64_t{16} << 20));
      } catch (const nlohmann::json::exception& e) {
        detail::fail(dir + "/" + name, std::string("not valid JSON: ") + e.what());
      }
      if (!m.config.is_object()) detail::fail(dir + "/" + name, "not a JSON object");
    }
    m.other_files.push_back(name);
  }
  return m;
}

/// The layout a model directory's configuration says its weights are in: config.json's
/// quantization_config.quant_method ("compressed-tensors", "modelopt", gpt-oss's "mxfp4"),
/// or ModelOpt's hf_quant_config.json; layout::blockcast when neither says anything (blockcast's
/// own layout describes itself in the weights). Throws io_error for a quant_method blockcast
/// does not read.
inline layout configured_layout(const model_directory& m) {
  const bool modelopt_file = std::find(m.other_files.begin(), m.other_files.end(), modelopt_config_file_name) != m.other_files.end();
  if (!m.has_config || !m.config.contains("quantization_config")) return modelopt_file ? layout::modelopt : layout::blockcast;
  const auto& q = m.config["quantization_config"];
  const std::string method = q.is_object() && q.contains("quant_method") && q["quant_method"].is_string() ? q["quant_method"].get<std::string>() : "";
  if (method == "compressed-tensors") return layout::compressed_tensors;
  if (method == "modelopt") return layout::modelopt;
  if (method == "mxfp4") return layout::gpt_oss;
  detail::fail(m.dir + "/" + config_file_name, "quantization_config.quant_method " + in_quotes(method) +
                                                   " is not a layout blockcast reads (compressed-tensors, modelopt, mxfp4)");
}

/// Why tensor `name` stays unquantized by default when writing for an engine (`l`: an engine
/// layout or gguf), or "" when it is quantized: the engines' quantizers leave embeddings, the
/// output head, norms and MoE routers in high precision, and quantize Linear weights.
inline std::string kept_by_default(layout l, const std::string& name) {
  const auto last_component = [&](const std::string& suffix) {
    const std::string base = name.substr(0, name.size() - suffix.size());
    const auto dot = base.rfind('.');
    return dot == std::string::npos ? base : base.substr(dot + 1);
  };
  if (l == layout::gguf) {  // llama.cpp's tensor names
    if (!ends_with(name, ".weight")) return "not a '.weight'";
    const std::string module = last_component(".weight");
    if (module == "token_embd" || module == "output") return module == "output" ? "output head" : "token embeddings";
    if (module == "ffn_gate_inp") return "MoE router";
    if (module.find("norm") != std::string::npos) return "norm";
    if (module == "pos_embd" || module == "token_types") return "embeddings";
    return {};
  }
  if (!ends_with(name, ".weight")) return "not a '<module>.weight'";
  const std::string module = last_component(".weight");
  if (module == "lm_head") return "output head";
  if (module.find("embed") != std::string::npos || module == "wte" || module == "wpe") return "embeddings";
  if (module.find("norm") != std::string::npos) return "norm";
  if (module == "gate" || module == "router") return "MoE router";
  return {};
}

/// compressed-tensors' quantization_config for weight-only `format` ("nvfp4" or "mxfp4"), as
/// llm-compressor writes it for the NVFP4A16 / MXFP4A16 presets; `ignore`: the modules left
/// unquantized.
inline nlohmann::ordered_json compressed_tensors_config(const std::string& format, const std::vector<std::string>& ignore) {
  const bool nv = format == "nvfp4";
  const std::string name = nv ? "nvfp4-pack-quantized" : "mxfp4-pack-quantized";
  nlohmann::ordered_json weights = {{"num_bits", 4},
                                    {"type", "float"},
                                    {"symmetric", true},
                                    {"group_size", nv ? 16 : 32},
                                    {"strategy", nv ? "tensor_group" : "group"},
                                    {"block_structure", nullptr},
                                    {"dynamic", false},
                                    {"actorder", nullptr},
                                    {"scale_dtype", nv ? "torch.float8_e4m3fn" : "torch.uint8"},
                                    {"zp_dtype", nullptr},
                                    {"observer", "memoryless_minmax"},
                                    {"observer_kwargs", nlohmann::ordered_json::object()}};
  nlohmann::ordered_json group = {{"targets", {"Linear"}},
                                  {"weights", weights},
                                  {"input_activations", nullptr},
                                  {"output_activations", nullptr},
                                  {"format", name}};
  return {{"quant_method", "compressed-tensors"},
          {"format", name},
          {"quantization_status", "compressed"},
          {"config_groups", {{"group_0", group}}},
          {"ignore", ignore},
          {"kv_cache_scheme", nullptr},
          {"global_compression_ratio", nullptr},
          {"sparsity_config", nlohmann::ordered_json::object()}};
}

/// ModelOpt's weight-only NVFP4 ("W4A16_NVFP4": the activations stay BF16/FP16, so there are no
/// input scales): hf_quant_config.json, and the short form vLLM also reads from config.json.
inline nlohmann::ordered_json modelopt_quant_config(const std::vector<std::string>& exclude, const std::string& producer_version) {
  return {{"producer", {{"name", "blockcast"}, {"version", producer_version}}},
          {"quantization", {{"quant_algo", "W4A16_NVFP4"}, {"group_size", 16}, {"kv_cache_quant_algo", nullptr}, {"exclude_modules", exclude}}}};
}
inline nlohmann::ordered_json modelopt_config(const std::vector<std::string>& exclude) {
  return {{"quant_method", "modelopt"}, {"quant_algo", "W4A16_NVFP4"}, {"group_size", 16}, {"ignore", exclude}};
}

}  // namespace blockcast::io
