// SPDX-License-Identifier: MIT
// Engine layouts (io/hf_layouts.hpp, io/ggml_blocks.hpp): for every layout and every preset it
// holds, a weight written and read back has the same codes, scales and tensor scale, and the
// file decodes, by decoders written here from each engine's own formula (not blockcast's), to
// exactly blockcast's dequantize floats. Small golden files per layout pin the bytes. What a
// layout cannot hold is a layout_error, or (ggml's -0) converted and counted.
#include <blockcast/blockcast.hpp>
#include <blockcast/io/ggml_blocks.hpp>
#include <blockcast/io/gguf.hpp>
#include <blockcast/io/hf_layouts.hpp>

#include <catch2/catch.hpp>

#include "cli_test_files.hpp"

#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace io = blockcast::io;
using blockcast::mxfp4;
using blockcast::nvfp4;

using blockcast::test::file_bytes;
using blockcast::test::fresh_dir;

namespace {


// ---- the engines' decoders, from their sources (docs/layouts.md), not from blockcast ----

// E2M1 magnitudes (OCP, torch float4_e2m1fn_x2, compressed-tensors, ModelOpt, transformers)
float e2m1(unsigned code) {
  static const float mag[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
  return (code & 8) ? -mag[code & 7] : mag[code & 7];
}
// torch.float8_e4m3fn -> float32
float e4m3fn(std::uint8_t b) {
  const int exp = (b >> 3) & 15, man = b & 7;
  float v;
  if (exp == 15 && man == 7) v = NAN;
  else if (exp == 0) v = std::ldexp(static_cast<float>(man), -9);
  else v = std::ldexp(1.0f + static_cast<float>(man) / 8.0f, exp - 7);
  return (b & 0x80) ? -v : v;
}
// compressed-tensors / transformers MXFP4 scale: 2 ** (byte - 127) in float32 (0xFF: 2^128 = inf)
float e8m0_pow(std::uint8_t b) { return static_cast<float>(std::ldexp(1.0, b - 127)); }
// ggml: doubled E2M1 as int8, E8M0 halved, UE4M3 halved (0 and 0x7F decode as 0)
const std::int8_t kvalues[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
float ggml_e8m0_half(std::uint8_t e) { return std::ldexp(1.0f, e - 128); }
float ggml_ue4m3_half(std::uint8_t x) {
  if (x == 0 || x == 0x7F) return 0.0f;
  const int exp = (x >> 3) & 0xF, man = x & 7;
  const float raw = exp == 0 ? std::ldexp(static_cast<float>(man), -9) : std::ldexp(1.0f + static_cast<float>(man) / 8.0f, exp - 7);
  return raw * 0.5f;
}

// compressed-tensors and ModelOpt NVFP4: (e2m1 * block scale) * S, S = weight_scale_2 or the
// GEMM's alpha 1 / weight_global_scale; MXFP4: e2m1 * 2^(byte - 127). Row-major floats.
std::vector<float> engine_decode(const io::safetensors_file& f, const io::engine_weight& w) {
  const auto codes = f.bytes(f.find(w.entries[0]));
  const auto scales = f.bytes(f.find(w.entries[1]));
  const std::size_t group = w.format == "nvfp4" ? 16 : 32;
  float s = 1.0f;
  if (w.format == "nvfp4") {
    const float stored = f.to_float(f.find(w.entries[2]))[0];
    s = w.where == io::layout::compressed_tensors ? 1.0f / stored : stored;
  }
  std::vector<float> out(w.rows * w.cols);
  for (std::size_t r = 0; r < w.rows; ++r)
    for (std::size_t c = 0; c < w.cols; ++c) {
      const unsigned code = (codes[r * w.cols / 2 + c / 2] >> (4 * (c % 2))) & 0xF;
      const std::uint8_t sb = scales[r * (w.cols / group) + c / group];
      out[r * w.cols + c] = w.format == "nvfp4" ? (e2m1(code) * e4m3fn(sb)) * s : e2m1(code) * e8m0_pow(sb);
    }
  return out;
}

// ggml's dequantize_row_mxfp4 / dequantize_row_nvfp4, then llama.cpp's "<x>.scale" multiply
std::vector<float> ggml_decode(const io::gguf_file& g, const std::string& name, float tensor_scale) {
  const auto& t = g.find(name);
  const auto bytes = g.bytes(t);
  const std::size_t cols = t.dims[0], rows = t.elements() / cols;
  const bool nv = t.type == 40;
  const std::size_t bv = nv ? 64 : 32, bb = nv ? 36 : 17;
  std::vector<float> y(rows * cols);
  for (std::size_t b = 0; b < rows * cols / bv; ++b) {
    const std::uint8_t* x = bytes.data() + b * bb;
    float* yb = y.data() + b * bv;
    if (!nv) {
      const float d = ggml_e8m0_half(x[0]);
      for (int j = 0; j < 16; ++j) {
        yb[j] = kvalues[x[1 + j] & 0x0F] * d;
        yb[j + 16] = kvalues[x[1 + j] >> 4] * d;
      }
    } else {
      for (int s = 0; s < 4; ++s) {
        const float d = ggml_ue4m3_half(x[s]);
        for (int j = 0; j < 8; ++j) {
          yb[16 * s + j] = kvalues[x[4 + 8 * s + j] & 0x0F] * d;
          yb[16 * s + j + 8] = kvalues[x[4 + 8 * s + j] >> 4] * d;
        }
      }
    }
  }
  for (auto& v : y) v *= tensor_scale;
  return y;
}

// ---- inputs ----

// rows x cols normal values with small ones (that round to -0 and +0) and, when asked, a
// NaN in one block
std::vector<float> weights(std::size_t rows, std::size_t cols, unsigned seed, bool with_nan) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::vector<float> w(rows * cols);
  for (auto& v : w) v = normal(rng);
  for (std::size_t i = 5; i < w.size(); i += 37) w[i] = -1e-9f;  // -0 codes beside a large value
  w[3] = 0.9f;
  if (with_nan) w[cols + 1] = NAN;
  return w;
}

template <class Format>
std::vector<float> dequantized(const blockcast::packed_tensor<Format>& p) {
  std::vector<float> v(p.rows() * p.cols());
  blockcast::dequantize(p, v.data());
  return v;
}

// bit-for-bit equality (every NaN equal to every NaN); `plus_zero`: the engine decodes -0 as +0
void require_same_floats(const std::vector<float>& want, const std::vector<float>& got, const std::string& what, bool plus_zero = false) {
  REQUIRE(want.size() == got.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    float w = want[i];
    if (plus_zero && w == 0.0f) w = 0.0f;
    std::uint32_t a, b;
    std::memcpy(&a, &w, 4);
    std::memcpy(&b, &got[i], 4);
    if (a != b && !(std::isnan(w) && std::isnan(got[i])))
      FAIL(what << ": value " << i << " wanted " << want[i] << " (0x" << std::hex << a << "), the engine's decoder gives " << got[i]
                << " (0x" << b << ")");
  }
}

template <class Format>
bool same_packed(const blockcast::packed_tensor<Format>& a, const blockcast::packed_tensor<Format>& b) {
  std::uint32_t sa, sb;
  const float ta = a.tensor_scale(), tb = b.tensor_scale();
  std::memcpy(&sa, &ta, 4);
  std::memcpy(&sb, &tb, 4);
  return a.rows() == b.rows() && a.cols() == b.cols() && sa == sb &&
         std::equal(a.codes().begin(), a.codes().end(), b.codes().begin()) &&
         std::equal(a.scales().begin(), a.scales().end(), b.scales().begin());
}

// Compares a written file with its committed golden copy (BLOCKCAST_WRITE_GOLDEN=1 rewrites them).
void check_golden(const std::string& written, const std::string& golden_name) {
  const std::string golden = std::string(BLOCKCAST_TEST_DATA_DIR) + "/layouts/" + golden_name;
  if (std::getenv("BLOCKCAST_WRITE_GOLDEN")) std::ofstream(golden, std::ios::binary) << file_bytes(written);
  const std::string want = file_bytes(golden);
  INFO("golden file " << golden);
  REQUIRE(!want.empty());
  CHECK(file_bytes(written) == want);
}

template <class Format>
void check_engine_layout(io::layout l) {
  const std::string dir = fresh_dir(), name = std::string(io::info(l).name) + "_" + std::string(blockcast::preset_name<Format>());
  const std::size_t rows = 6, cols = 96;
  const bool nan_ok = Format::has_tensor_scale;  // MXFP4's NaN scale has no compressed-tensors encoding
  const auto w = weights(rows, cols, 7, nan_ok);
  const auto p = blockcast::quantize<Format>(w.data(), rows, cols);
  const std::string path = dir + "/" + name + ".safetensors";
  {
    io::safetensors_writer out(path);
    io::add_engine_weight(out, l, "model.layers.0.mlp.up_proj.weight", p);
    out.commit();
  }
  const io::safetensors_file f(path);
  const auto found = io::engine_weights(f);
  REQUIRE(found.size() == 1);
  const io::engine_weight& e = found.begin()->second;
  CHECK(e.name == "model.layers.0.mlp.up_proj.weight");
  CHECK(e.where == l);
  CHECK(e.format == blockcast::preset_name<Format>());
  CHECK((e.rows == rows && e.cols == cols));
  const auto back = io::read_engine_weight<Format>(f, e);
  CHECK(same_packed(p, back));
  const blockcast::packed_view<Format> view = io::view_engine_weight<Format>(f, e);  // over the file's bytes
  CHECK(view.codes().data() == f.bytes(f.find(e.entries[0])).data());
  CHECK(view.tensor_scale() == back.tensor_scale());
  require_same_floats(dequantized(p), engine_decode(f, e), name);

  // the golden file: a 2 x 32 weight
  const auto small = weights(2, 32, 11, false);
  const std::string golden_path = dir + "/golden.safetensors";
  io::safetensors_writer out(golden_path);
  io::add_engine_weight(out, l, "w.weight", blockcast::quantize<Format>(small.data(), 2, 32));
  out.commit();
  check_golden(golden_path, name + ".safetensors");
}

template <class Format>
void check_gguf_layout() {
  const std::string dir = fresh_dir(), format(blockcast::preset_name<Format>());
  const std::size_t rows = 5, cols = 128;
  const auto w = weights(rows, cols, 3, false);
  const auto p = blockcast::quantize<Format>(w.data(), rows, cols);
  std::uint64_t negative_zero_codes = 0;
  for (std::size_t i = 0; i < p.rows() * p.cols(); ++i) negative_zero_codes += ((p.codes()[i / 2] >> (4 * (i % 2))) & 0xF) == 8;
  REQUIRE(negative_zero_codes > 0);  // the input makes some, so the conversion is exercised

  std::vector<std::uint8_t> blocks(rows * io::ggml_row_bytes<Format>(cols));
  io::layout_report report;
  io::to_ggml_rows<Format>(p.codes().data(), p.scales().data(), rows, cols, blocks.data(), report, "blk.0.ffn_up.weight");
  CHECK(report.negative_zeros == negative_zero_codes);

  const std::string path = dir + "/" + format + ".gguf";
  {
    io::gguf_stream_writer out(path);
    out.set_metadata("general.architecture", io::gguf_value::string("llama"));
    out.declare("blk.0.ffn_up.weight", {cols, rows}, io::ggml_type_of<Format>());
    if (Format::has_tensor_scale) out.declare(io::ggml_scale_tensor_name("blk.0.ffn_up.weight"), {1}, 0);
    out.write("blk.0.ffn_up.weight", blockcast::span<const std::uint8_t>(blocks.data(), blocks.size()));
    if (Format::has_tensor_scale) {
      const float s = p.tensor_scale();
      out.write("blk.0.ffn_up.scale", blockcast::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(&s), 4));
    }
    out.commit();
  }
  const io::gguf_file g(path);
  float tensor_scale = 1.0f;
  if (Format::has_tensor_scale) std::memcpy(&tensor_scale, g.bytes(g.find("blk.0.ffn_up.scale")).data(), 4);
  require_same_floats(dequantized(p), ggml_decode(g, "blk.0.ffn_up.weight", tensor_scale), "gguf " + format, true);

  // read back: the codes ggml decodes (-0 as +0), the same scales
  blockcast::packed_tensor<Format> back(rows, cols);
  const auto stored = g.bytes(g.find("blk.0.ffn_up.weight"));
  io::from_ggml_rows<Format>(stored.data(), rows, cols, back.codes().data(), back.scales().data(), "blk.0.ffn_up.weight");
  back.set_tensor_scale(tensor_scale);
  auto want = p;
  for (auto& byte : want.codes()) {
    if ((byte & 0x0F) == 8) byte = static_cast<std::uint8_t>(byte & 0xF0);
    if ((byte >> 4) == 8) byte = static_cast<std::uint8_t>(byte & 0x0F);
  }
  CHECK(same_packed(want, back));

  // golden: one row of two ggml blocks
  const auto small = weights(1, 2 * io::ggml_block_values<Format>(), 13, false);
  const auto q = blockcast::quantize<Format>(small.data(), 1, small.size());
  std::vector<std::uint8_t> golden(io::ggml_row_bytes<Format>(small.size()));
  io::layout_report ignored;
  io::to_ggml_rows<Format>(q.codes().data(), q.scales().data(), 1, small.size(), golden.data(), ignored, "w");
  const std::string golden_path = dir + "/golden.bin";
  std::ofstream(golden_path, std::ios::binary).write(reinterpret_cast<const char*>(golden.data()), static_cast<std::streamsize>(golden.size()));
  check_golden(golden_path, "gguf_" + format + ".bin");
}

}  // namespace

TEST_CASE("compressed-tensors NVFP4 and MXFP4, ModelOpt NVFP4: written, read back and decoded as the engines do", "[layouts]") {
  SECTION("compressed-tensors nvfp4") { check_engine_layout<nvfp4>(io::layout::compressed_tensors); }
  SECTION("compressed-tensors mxfp4") { check_engine_layout<mxfp4>(io::layout::compressed_tensors); }
  SECTION("modelopt nvfp4") { check_engine_layout<nvfp4>(io::layout::modelopt); }
}

TEST_CASE("GGUF MXFP4 and NVFP4 blocks decode as ggml decodes them, -0 codes counted", "[layouts]") {
  SECTION("mxfp4") { check_gguf_layout<mxfp4>(); }
  SECTION("nvfp4") { check_gguf_layout<nvfp4>(); }
}

TEST_CASE("compressed-tensors' global scale has blockcast's decode scale as its FP32 reciprocal", "[layouts]") {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> exponent(-40.0f, 40.0f);
  for (int i = 0; i < 20000; ++i) {
    const float amax = std::exp2(exponent(rng));
    const float decode = blockcast::detail::two_level_tensor_scales<nvfp4>(amax).decode;
    const float g = io::global_scale_for(decode, "w");
    if (1.0f / g != decode) FAIL("amax " << amax << ": decode scale " << decode << ", global scale " << g << " has reciprocal " << 1.0f / g);
  }
  CHECK_THROWS_AS(io::global_scale_for(0.0f, "w"), io::layout_error);
  CHECK_THROWS_AS(io::global_scale_for(NAN, "w"), io::layout_error);
}

TEST_CASE("gpt-oss MXFP4 (_blocks, _scales) reads as the MXFP4 codes and scales it holds", "[layouts]") {
  const std::string dir = fresh_dir();
  const std::size_t experts = 2, rows = 3, cols = 64;
  const auto w = weights(experts * rows, cols, 17, true);
  const auto p = blockcast::quantize<mxfp4>(w.data(), experts * rows, cols);
  const std::string path = dir + "/gpt-oss.safetensors";
  {
    io::safetensors_writer out(path);
    out.add("model.layers.0.mlp.experts.down_proj_blocks", io::dtype::u8, {experts, rows, cols / 32, 16}, p.codes());
    out.add("model.layers.0.mlp.experts.down_proj_scales", io::dtype::u8, {experts, rows, cols / 32}, p.scales());
    out.commit();
  }
  const io::safetensors_file f(path);
  const auto found = io::engine_weights(f);
  REQUIRE(found.size() == 1);
  const auto& e = found.at("model.layers.0.mlp.experts.down_proj");
  CHECK(e.where == io::layout::gpt_oss);
  CHECK(e.shape == std::vector<std::uint64_t>{experts, rows, cols});
  CHECK(same_packed(p, io::read_engine_weight<mxfp4>(f, e)));
  // transformers' convert_moe_packed_tensors: lut[nibble], low nibble first, ldexp(scale - 127);
  // 0xFF (NaN) becomes 2^128 = inf there, so compare the finite blocks only
  std::vector<float> want = dequantized(p), got = engine_decode(f, e);
  for (std::size_t i = 0; i < want.size(); ++i)
    if (p.scales()[i / 32] == 0xFF) want[i] = got[i] = 0.0f;
  require_same_floats(want, got, "gpt-oss");
}

TEST_CASE("What a layout cannot hold is a layout_error naming the tensor", "[layouts]") {
  const auto nan_weights = weights(2, 64, 1, true);
  const auto mx = blockcast::quantize<mxfp4>(nan_weights.data(), 2, 64);
  const auto nv = blockcast::quantize<nvfp4>(nan_weights.data(), 2, 64);
  const std::string dir = fresh_dir();
  io::safetensors_writer out(dir + "/x.safetensors");
  auto message = [](auto&& f) {
    try {
      f();
    } catch (const io::layout_error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  // a NaN block: compressed-tensors MXFP4 would decode it as infinity, ggml refuses or zeroes it
  CHECK_THAT(message([&] { io::add_engine_weight(out, io::layout::compressed_tensors, "a.weight", mx); }),
             Catch::Contains("'a.weight'") && Catch::Contains("NaN scale"));
  std::vector<std::uint8_t> blocks(2 * 64);
  io::layout_report report;
  CHECK_THAT(message([&] { io::to_ggml_rows<mxfp4>(mx.codes().data(), mx.scales().data(), 2, 64, blocks.data(), report, "b"); }),
             Catch::Contains("'b'") && Catch::Contains("row 1, block 0") && Catch::Contains("NaN scale"));
  CHECK_THAT(message([&] { io::to_ggml_rows<nvfp4>(nv.codes().data(), nv.scales().data(), 2, 64, blocks.data(), report, "c"); }),
             Catch::Contains("'c'") && Catch::Contains("NaN scale"));
  // rows that are not whole blocks of the target's type, names that are not Linear weights
  const auto ok = weights(2, 48, 2, false);
  const auto nv48 = blockcast::quantize<nvfp4>(ok.data(), 2, 48);
  CHECK_THAT(message([&] { io::to_ggml_rows<nvfp4>(nv48.codes().data(), nv48.scales().data(), 2, 48, blocks.data(), report, "d"); }),
             Catch::Contains("whole 64-value blocks"));
  const auto nv40 = blockcast::quantize<nvfp4>(ok.data(), 1, 40);
  CHECK_THAT(message([&] { io::add_engine_weight(out, io::layout::modelopt, "e.weight", nv40); }), Catch::Contains("groups of 16"));
  CHECK_THAT(message([&] { io::add_engine_weight(out, io::layout::modelopt, "e.bias", nv48); }), Catch::Contains("'<module>.weight'"));
  CHECK_THAT(message([&] { io::add_engine_weight(out, io::layout::modelopt, "f.weight", mx); }), Catch::Contains("has no mxfp4"));
  // reading: ggml's 0xFF scales
  std::vector<std::uint8_t> row(17, 0);
  row[0] = 0xFF;
  blockcast::packed_tensor<mxfp4> back(1, 32);
  CHECK_THAT(message([&] { io::from_ggml_rows<mxfp4>(row.data(), 1, 32, back.codes().data(), back.scales().data(), "g"); }),
             Catch::Contains("0xFF"));
}

TEST_CASE("A file that mixes layouts, or whose layout entries disagree, is refused with the reason", "[layouts]") {
  const std::string dir = fresh_dir();
  const auto w = weights(2, 32, 4, false);
  const auto nv = blockcast::quantize<nvfp4>(w.data(), 2, 32);
  auto refusal = [&](const std::function<void(io::safetensors_writer&)>& build) {
    const std::string path = dir + "/case.safetensors";
    ::unlink(path.c_str());
    io::safetensors_writer out(path);
    build(out);
    out.commit();
    try {
      io::engine_weights(io::safetensors_file(path));
    } catch (const io::io_error& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  CHECK_THAT(refusal([&](auto& out) {
               io::add_engine_weight(out, io::layout::modelopt, "a.weight", nv);
               io::add_engine_weight(out, io::layout::compressed_tensors, "b.weight", nv);
             }),
             Catch::Contains("mixes checkpoint layouts"));
  CHECK_THAT(refusal([&](auto& out) {  // NVFP4 without its global scale
               out.add("a.weight_packed", io::dtype::u8, {2, 16}, nv.codes());
               out.add("a.weight_scale", io::dtype::f8_e4m3, {2, 2}, nv.scales());
             }),
             Catch::Contains("weight_global_scale"));
  CHECK_THAT(refusal([&](auto& out) {  // block scales of the wrong shape
               out.add("a.weight_packed", io::dtype::u8, {2, 16}, nv.codes());
               out.add("a.weight_scale", io::dtype::f8_e4m3, {4, 1}, nv.scales());
               const float g = 1.0f;
               out.add_f32("a.weight_global_scale", {1}, blockcast::span<const float>(&g, 1));
             }),
             Catch::Contains("[2, 2]"));
  CHECK_THAT(refusal([&](auto& out) {  // a weight_scale_2 without its weight
               const float g = 1.0f;
               out.add_f32("a.weight_scale_2", {}, blockcast::span<const float>(&g, 1));
             }),
             Catch::Contains("needs 'a.weight'"));
}

TEST_CASE("The layout table: names parse, unknown names list the known ones", "[layouts]") {
  for (const auto& l : io::layouts) CHECK(io::parse_layout(std::string(l.name)) == l.id);
  CHECK_THAT([] {
    try {
      io::parse_layout("awq");
    } catch (const blockcast::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string();
  }(), Catch::Contains("compressed-tensors") && Catch::Contains("gguf"));
  CHECK(io::holds(io::layout::blockcast, "mxfp6_e2m3"));
  CHECK(io::holds(io::layout::compressed_tensors, "nvfp4"));
  CHECK_FALSE(io::holds(io::layout::modelopt, "mxfp4"));
  CHECK(io::ggml_scale_tensor_name("blk.3.attn_q.weight") == "blk.3.attn_q.scale");
  CHECK(io::ggml_scale_tensor_name("token_embd") == "");
}
