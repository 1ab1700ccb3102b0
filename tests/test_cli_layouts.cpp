// SPDX-License-Identifier: MIT
// The command-line tool writing and reading engine layouts: a Hugging Face model directory
// converted to compressed-tensors / ModelOpt / blockcast keeps every other file byte for byte
// and its config otherwise unchanged, leaves the input untouched, and decodes back (through
// every layout) to exactly the floats the library's quantize gives; GGUF in and out keeps
// every metadata entry, sets llama.cpp's file type, and decodes as ggml decodes.
#include "cli/commands.hpp"
#include "cli/gguf_model.hpp"
#include "cli_test_files.hpp"

#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <fstream>
#include <map>
#include <sstream>
#include <tuple>

namespace cli = blockcast::cli;
namespace io = blockcast::io;
namespace ptq = blockcast::ptq;
using blockcast::test::file_bytes;
using blockcast::test::fresh_dir;
using blockcast::test::files_in;
using blockcast::test::random_matrix;

namespace {

void write_text(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

// name -> CRC-32 and size of every file of a directory: its state, compared before and after
std::map<std::string, std::string> checksums(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& name : files_in(dir)) {
    const std::string bytes = file_bytes(dir + "/" + name);
    out[name] = std::to_string(::crc32(0, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(bytes.size()))) + "/" +
                std::to_string(bytes.size());
  }
  return out;
}

// A small LLaMA-shaped model directory: embeddings, attention and MLP projections, a norm, an
// lm_head, a projection whose rows are not whole 16-blocks; config, tokenizer, license; in
// two shards with an index when `sharded`.
struct toy_llm {
  std::map<std::string, ptq::matrix> weights{
      {"model.embed_tokens.weight", random_matrix(64, 32, 1)},
      {"model.layers.0.self_attn.q_proj.weight", random_matrix(32, 32, 2)},
      {"model.layers.0.mlp.up_proj.weight", random_matrix(64, 32, 3)},
      {"model.layers.0.mlp.down_proj.weight", random_matrix(32, 64, 4)},
      {"model.layers.0.input_layernorm.weight", random_matrix(1, 32, 5)},
      {"model.layers.0.mlp.odd_proj.weight", random_matrix(8, 24, 6)},
      {"lm_head.weight", random_matrix(64, 32, 7)},
  };
  const std::string config = R"({
  "architectures": ["LlamaForCausalLM"],
  "hidden_size": 32,
  "model_type": "llama",
  "torch_dtype": "float32"
})";
  void write(const std::string& dir, bool sharded) const {
    write_text(dir + "/config.json", config);
    write_text(dir + "/tokenizer.json", R"({"model": {"type": "BPE"}})");
    write_text(dir + "/LICENSE", "license text\n");
    auto add = [](io::safetensors_writer& out, const std::string& name, const ptq::matrix& m) {
      std::vector<std::uint64_t> shape{static_cast<std::uint64_t>(m.rows()), static_cast<std::uint64_t>(m.cols())};
      if (name.find("norm") != std::string::npos) shape = {static_cast<std::uint64_t>(m.cols())};
      out.add_f32(name, shape, blockcast::span<const float>(m.data(), static_cast<std::size_t>(m.size())));
    };
    if (!sharded) {
      io::safetensors_writer out(dir + "/model.safetensors");
      for (const auto& [name, m] : weights) add(out, name, m);
      out.commit();
      return;
    }
    io::safetensors_writer a(dir + "/model-00001-of-00002.safetensors"), b(dir + "/model-00002-of-00002.safetensors");
    nlohmann::json map;
    int i = 0;
    for (const auto& [name, m] : weights) {
      add(i % 2 ? b : a, name, m);
      map[name] = i++ % 2 ? "model-00002-of-00002.safetensors" : "model-00001-of-00002.safetensors";
    }
    a.commit();
    b.commit();
    write_text(dir + "/model.safetensors.index.json", nlohmann::json{{"metadata", {{"total_size", 0}}}, {"weight_map", map}}.dump());
  }
};

// The F32 tensors of a dequantized model (file or index), by name.
std::map<std::string, std::vector<float>> decoded_tensors(const std::string& weights) {
  std::map<std::string, std::vector<float>> out;
  const io::model_files m = io::open_model(weights);
  for (std::size_t i = 0; i < m.shards.size(); ++i) {
    const io::safetensors_file f(m.shard_path(i));
    for (const auto& t : f.tensors()) out[t.name] = f.to_float(t);
  }
  return out;
}

template <class Format>
std::vector<float> rtn_floats(const ptq::matrix& w) {
  const auto p = blockcast::quantize<Format>(w.data(), static_cast<std::size_t>(w.rows()), static_cast<std::size_t>(w.cols()));
  std::vector<float> v(p.rows() * p.cols());
  blockcast::dequantize(p, v.data());
  return v;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

}  // namespace

TEST_CASE("A model directory converts to every engine layout and back, other files and the input untouched", "[cli][layouts]") {
  const toy_llm model;
  for (const bool sharded : {false, true}) {
    const std::string dir = fresh_dir(), in = dir + "/in";
    REQUIRE(::mkdir(in.c_str(), 0755) == 0);
    model.write(in, sharded);
    const auto before = checksums(in);
    struct target {
      const char* layout;
      const char* format;
    };
    for (const target& t : {target{"compressed-tensors", "nvfp4"}, target{"compressed-tensors", "mxfp4"}, target{"modelopt", "nvfp4"},
                            target{"blockcast", "nvfp4"}}) {
      INFO((sharded ? "sharded, " : "single file, ") << t.layout << " " << t.format);
      cli::quantize_request req;
      req.input = in;
      req.output = dir + "/" + t.layout + "-" + t.format;
      req.format = t.format;
      req.layout = io::parse_layout(t.layout);
      req.threads = 2;
      const auto reports = cli::quantize_model(req);
      const io::layout l = *req.layout;
      // every other file byte for byte; the config gains exactly a quantization_config
      for (const char* name : {"tokenizer.json", "LICENSE"}) CHECK(file_bytes(req.output + "/" + name) == file_bytes(in + "/" + name));
      nlohmann::json config = nlohmann::json::parse(file_bytes(req.output + "/config.json"));
      if (l == io::layout::blockcast) {
        CHECK(file_bytes(req.output + "/config.json") == file_bytes(in + "/config.json"));
      } else {
        REQUIRE(config.contains("quantization_config"));
        const auto q = config["quantization_config"];
        if (l == io::layout::compressed_tensors) {
          CHECK(q["quant_method"] == "compressed-tensors");
          CHECK(q["format"] == std::string(t.format) + "-pack-quantized");
          CHECK(q["quantization_status"] == "compressed");
          CHECK(q["config_groups"]["group_0"]["weights"]["group_size"] == (std::string(t.format) == "nvfp4" ? 16 : 32));
        } else {
          CHECK(q["quant_method"] == "modelopt");
          const auto hf = nlohmann::json::parse(file_bytes(req.output + "/hf_quant_config.json"));
          CHECK(hf["quantization"]["quant_algo"] == "W4A16_NVFP4");
          CHECK(hf["quantization"]["exclude_modules"] == q["ignore"]);
        }
        const std::vector<std::string> ignore = q.contains("ignore") ? q["ignore"].get<std::vector<std::string>>() : std::vector<std::string>{};
        CHECK(ignore == std::vector<std::string>{"lm_head", "model.embed_tokens", "model.layers.0.mlp.odd_proj"});
        config.erase("quantization_config");
        CHECK(config == nlohmann::json::parse(model.config));
      }
      // what was quantized: the projections whose rows are whole groups (all 2-D weights for blockcast's own layout)
      for (const auto& r : reports) {
        const bool projection = r.tensor.find("_proj") != std::string::npos && r.tensor.find("odd") == std::string::npos;
        const bool matrix = r.tensor.find("norm") == std::string::npos;
        CHECK(r.quantized == (l == io::layout::blockcast ? matrix : projection));
      }
      // read back through blockcast's reader of that layout: the library's own RTN floats
      cli::dequantize_request d{req.output, req.output + "-decoded", cli::out_dtype::f32, 1};
      cli::dequantize_model(d);
      const std::string weights = d.output + "/" + (sharded ? "model.safetensors.index.json" : "model.safetensors");
      const auto decoded = decoded_tensors(weights);
      CHECK(decoded.size() == model.weights.size());
      for (const auto& entry : model.weights) {
        const std::string& name = entry.first;
        const ptq::matrix& w = entry.second;
        INFO(name);
        REQUIRE(decoded.count(name));
        const bool quantized = std::any_of(reports.begin(), reports.end(), [&](const auto& r) { return r.tensor == name && r.quantized; });
        const std::vector<float> want = !quantized ? std::vector<float>(w.data(), w.data() + w.size())
                                        : std::string(t.format) == "nvfp4" ? rtn_floats<blockcast::nvfp4>(w)
                                                                           : rtn_floats<blockcast::mxfp4>(w);
        CHECK(same_bits(decoded.at(name), want));
      }
      CHECK(nlohmann::json::parse(file_bytes(d.output + "/config.json")) == nlohmann::json::parse(model.config));
      CHECK(files_in(d.output) == files_in(in));
      std::ostringstream listing;
      cli::inspect_model(req.output, listing);
      CHECK_THAT(listing.str(), Catch::Contains(std::string("(") + (l == io::layout::blockcast ? "blockcast" : t.layout) + " layout)"));
    }
    CHECK(checksums(in) == before);
  }
}

TEST_CASE("Model directory conversions refuse what would write into the input or mix layouts", "[cli][layouts]") {
  const toy_llm model;
  const std::string dir = fresh_dir(), in = dir + "/in";
  REQUIRE(::mkdir(in.c_str(), 0755) == 0);
  model.write(in, false);
  const auto before = checksums(in);
  cli::quantize_request req;
  req.input = in;
  req.format = "nvfp4";
  req.layout = io::layout::compressed_tensors;
  auto refused = [&](const std::string& output, const std::string& message) {
    req.output = output;
    CHECK_THROWS_WITH(cli::quantize_model(req), Catch::Contains(message));
  };
  refused(in, "is the input directory or inside it");
  refused(in + "/sub", "is the input directory or inside it");
  refused(in + "/.", "is the input directory or inside it");
  CHECK(::symlink(in.c_str(), (dir + "/link").c_str()) == 0);
  refused(dir + "/link", "is the input directory or inside it");
  write_text(dir + "/file", "x");
  refused(dir + "/file", "exists and is not a directory");
  refused(dir + "/no/such/place", "does not exist");
  req.layout = io::layout::modelopt;
  req.format = "mxfp4";
  refused(dir + "/out", "holds nvfp4, not mxfp4");
  req.layout = io::layout::gpt_oss;
  refused(dir + "/out", "read only");
  // a quantized model is not quantized again
  req.layout = io::layout::compressed_tensors;
  req.format = "nvfp4";
  req.output = dir + "/q";
  cli::quantize_model(req);
  req.input = dir + "/q";
  refused(dir + "/qq", "quantized already");
  CHECK(checksums(in) == before);
  CHECK(files_in(dir) == std::vector<std::string>{"file", "in", "link", "q"});  // nothing else was created or left behind
  // a config that names another layout than the weights' is inconsistent: refused, not guessed
  nlohmann::ordered_json config = nlohmann::ordered_json::parse(file_bytes(dir + "/q/config.json"));
  config["quantization_config"] = {{"quant_method", "modelopt"}, {"quant_algo", "W4A16_NVFP4"}};
  write_text(dir + "/q/config.json", config.dump());
  std::ostringstream listing;
  CHECK_THROWS_WITH(cli::inspect_model(dir + "/q", listing), Catch::Contains("config") && Catch::Contains("inconsistent"));
  CHECK_THROWS_WITH(cli::dequantize_model({dir + "/q", dir + "/d", cli::out_dtype::f32, 1}), Catch::Contains("inconsistent"));
  config["quantization_config"] = {{"quant_method", "awq"}};
  write_text(dir + "/q/config.json", config.dump());
  CHECK_THROWS_WITH(cli::inspect_model(dir + "/q", listing), Catch::Contains("'awq' is not a layout blockcast reads"));
  CHECK(files_in(dir) == std::vector<std::string>{"file", "in", "link", "q"});
}

TEST_CASE("GGUF in, GGUF out: metadata kept, llama.cpp's file type, weights decode as ggml decodes them", "[cli][layouts]") {
  const std::string dir = fresh_dir();
  // a llama.cpp-shaped file: F16 and F32 weights, a norm, token embeddings, a 3-D expert tensor
  const ptq::matrix q = random_matrix(64, 64, 11), up = random_matrix(128, 64, 12), experts = random_matrix(2 * 32, 64, 13),
                    norm = random_matrix(1, 64, 14), embd = random_matrix(100, 64, 15);
  std::vector<std::uint8_t> q8_0(2 * 2 * 34);
  for (std::size_t i = 0; i < q8_0.size(); ++i) q8_0[i] = static_cast<std::uint8_t>(i * 37 % 251);
  for (std::size_t b = 0; b < 4; ++b) q8_0[34 * b] = 0, q8_0[34 * b + 1] = 0x3c;  // each block's F16 scale: 1.0
  {
    io::gguf_stream_writer out(dir + "/in.gguf");
    out.set_metadata("general.architecture", io::gguf_value::string("llama"));
    out.set_metadata("general.file_type", io::gguf_value::u32(0));
    out.set_metadata("llama.block_count", io::gguf_value::u32(1));
    out.set_metadata("tokenizer.ggml.tokens", io::gguf_value::string_array({"a", "b"}));
    const std::vector<std::tuple<std::string, const ptq::matrix*, std::vector<std::uint64_t>>> tensors{
        {"token_embd.weight", &embd, {64, 100}},    {"blk.0.attn_q.weight", &q, {64, 64}},
        {"blk.0.attn_norm.weight", &norm, {64}},    {"blk.0.ffn_up.weight", &up, {64, 128}},
        {"blk.0.ffn_up_exps.weight", &experts, {64, 32, 2}}};
    for (const auto& [name, m, dims] : tensors) out.declare(name, dims, io::ggml_f32);
    out.declare("blk.0.ffn_down.weight", {64, 2}, 8);  // Q8_0, a type blockcast does not decode: passed through
    for (const auto& [name, m, dims] : tensors)
      out.write(name, blockcast::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(m->data()), static_cast<std::size_t>(m->size()) * 4));
    out.write("blk.0.ffn_down.weight", blockcast::span<const std::uint8_t>(q8_0.data(), q8_0.size()));
    out.commit();
  }
  const std::string input_bytes = file_bytes(dir + "/in.gguf");
  for (const std::string format : {"mxfp4", "nvfp4"}) {
    INFO(format);
    cli::quantize_request req;
    req.input = dir + "/in.gguf";
    req.output = dir + "/" + format + ".gguf";
    req.format = format;
    req.threads = 2;
    req.sizes = {1000, 100};  // several slices per tensor
    const auto reports = cli::quantize_model(req);
    const io::gguf_file out(req.output);
    const io::gguf_file in(req.input);
    for (const auto& [key, value] : in.metadata()) {
      INFO(key);
      REQUIRE(out.find_metadata(key) != nullptr);
      if (key != "general.file_type") CHECK(*out.find_metadata(key) == value);
    }
    std::uint32_t file_type = 0, version = 0;
    CHECK(out.find_metadata("general.file_type")->get(io::gguf_type::u32, file_type));
    CHECK(file_type == (format == "nvfp4" ? 39u : 38u));
    CHECK(out.find_metadata("general.quantization_version")->get(io::gguf_type::u32, version));
    CHECK(version == 2u);
    CHECK(out.find("token_embd.weight").type == io::ggml_f32);
    CHECK(out.find("blk.0.attn_norm.weight").type == io::ggml_f32);
    CHECK(out.bytes(out.find("token_embd.weight")).size() == static_cast<std::size_t>(embd.size()) * 4);
    CHECK(out.find("blk.0.ffn_down.weight").type == 8u);
    const auto passed = out.bytes(out.find("blk.0.ffn_down.weight"));
    CHECK(std::vector<std::uint8_t>(passed.begin(), passed.end()) == q8_0);
    const std::uint32_t type = format == "nvfp4" ? 40u : 39u;
    for (const auto& [name, m] : std::map<std::string, const ptq::matrix*>{{"blk.0.attn_q.weight", &q}, {"blk.0.ffn_up.weight", &up},
                                                                            {"blk.0.ffn_up_exps.weight", &experts}}) {
      INFO(name);
      CHECK(out.find(name).type == type);
      // decoded by ggml's rule (the test decoders of test_layouts.cpp are the engine-formula ones;
      // here: blockcast's reader of the file equals the library's quantize, -0 as +0)
      std::vector<float> want = format == "nvfp4" ? rtn_floats<blockcast::nvfp4>(*m) : rtn_floats<blockcast::mxfp4>(*m);
      for (auto& v : want) v = v == 0.0f ? 0.0f : v;
      std::vector<float> got(want.size());
      if (format == "nvfp4") blockcast::dequantize(cli::detail::read_gguf_weight<blockcast::nvfp4>(out, out.find(name)), got.data());
      else blockcast::dequantize(cli::detail::read_gguf_weight<blockcast::mxfp4>(out, out.find(name)), got.data());
      CHECK(same_bits(got, want));
      CHECK(out.contains(io::ggml_scale_tensor_name(name)) == (format == "nvfp4"));
    }
    // dequantize: F32 tensors again, scales folded in and gone, file type F32
    cli::dequantize_model({req.output, dir + "/" + format + "-f32.gguf", cli::out_dtype::f32, 1});
    const io::gguf_file back(dir + "/" + format + "-f32.gguf");
    CHECK(back.tensors().size() == in.tensors().size());
    for (const auto& t : back.tensors()) CHECK(t.type == (t.name == "blk.0.ffn_down.weight" ? 8u : io::ggml_f32));
    std::ostringstream listing;
    cli::inspect_model(req.output, listing);
    CHECK_THAT(listing.str(), Catch::Contains("6 tensors (3 MXFP4/NVFP4)"));
  }
  CHECK(file_bytes(dir + "/in.gguf") == input_bytes);
  cli::quantize_request wrong;
  wrong.input = dir + "/in.gguf";
  wrong.output = dir + "/x.safetensors";
  CHECK_THROWS_WITH(cli::quantize_model(wrong), Catch::Contains("output is a .gguf file"));
  wrong.output = dir + "/in.gguf";
  wrong.format = "mxfp8_e4m3";
  CHECK_THROWS_WITH(cli::quantize_model(wrong), Catch::Contains("holds mxfp4 nvfp4"));
  CHECK(file_bytes(dir + "/in.gguf") == input_bytes);
}
