// SPDX-License-Identifier: MIT
// safetensors: round trips, atomic writes, and a table of corrupt files rejected with clear
// errors naming the file and the tensor.
#include <blockcast/io/safetensors.hpp>
#include <blockcast/io/staged_file.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>
#include <unistd.h>

#include "scratch_dir.hpp"

namespace io = blockcast::io;

namespace {

std::string temp_dir() {
  static const std::string dir = blockcast::test::scratch_dir("blockcast-test-");
  return dir;
}

/// A file made of an 8-byte length, a header text and `data` bytes.
std::string write_raw(const std::string& name, const std::string& header, std::size_t data_bytes,
                      long long claimed_length = -1) {
  const std::string path = temp_dir() + "/" + name;
  std::ofstream f(path, std::ios::binary);
  const std::uint64_t n = claimed_length >= 0 ? static_cast<std::uint64_t>(claimed_length) : header.size();
  for (int i = 0; i < 8; ++i) f.put(static_cast<char>(n >> (8 * i)));
  f << header;
  for (std::size_t i = 0; i < data_bytes; ++i) f.put('\0');
  return path;
}

}  // namespace

TEST_CASE("safetensors round trip keeps every bit, dtype, shape and metadata", "[io]") {
  const std::string path = temp_dir() + "/roundtrip.safetensors";
  std::vector<float> w = {1.5f, -0.0f, NAN, INFINITY, 1e-40f, 3.0f};
  std::vector<std::uint8_t> codes = {1, 2, 3, 255};
  std::vector<std::uint16_t> bf16 = {0x3f80, 0xc000, 0x7fc0};
  {
    io::safetensors_writer out(path);
    out.add_f32("layer.weight", {2, 3}, w);
    out.add("layer.codes", io::dtype::u8, {4}, codes);
    out.add("layer.bf16", io::dtype::bf16, {3},
            blockcast::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(bf16.data()), 6));
    out.set_metadata("format", "mxfp4");
    out.commit();
  }
  const io::safetensors_file f(path);
  REQUIRE(f.tensors().size() == 3);
  CHECK(f.metadata().at("format") == "mxfp4");
  const auto& t = f.find("layer.weight");
  CHECK(t.type == io::dtype::f32);
  CHECK(t.shape == std::vector<std::uint64_t>{2, 3});
  const auto back = f.to_float(t);
  CHECK(std::memcmp(back.data(), w.data(), w.size() * 4) == 0);
  const auto c = f.bytes(f.find("layer.codes"));
  CHECK(std::vector<std::uint8_t>(c.begin(), c.end()) == codes);
  const auto b = f.to_float(f.find("layer.bf16"));
  CHECK(b[0] == 1.0f);
  CHECK(b[1] == -2.0f);
  CHECK(std::isnan(b[2]));
  CHECK_THROWS_WITH(f.find("missing"), Catch::Contains("roundtrip.safetensors") && Catch::Contains("missing"));
  CHECK_THROWS_WITH(f.to_float(f.find("layer.codes")), Catch::Contains("'layer.codes' is U8"));
}

TEST_CASE("F16 decodes exactly, subnormals and specials included", "[io]") {
  auto half = [](std::uint16_t h) {  // as to_float reads it (every code: tests/test_convert.cpp)
    float f;
    blockcast::widen_f16(reinterpret_cast<const std::uint8_t*>(&h), 1, &f);
    return f;
  };
  CHECK(half(0x3c00) == 1.0f);
  CHECK(half(0xc000) == -2.0f);
  CHECK(half(0x0001) == std::ldexp(1.0f, -24));
  CHECK(half(0x7bff) == 65504.0f);
  CHECK(half(0x7c00) == INFINITY);
  CHECK(std::isnan(half(0x7e00)));
  CHECK(std::signbit(half(0x8000)));
}

TEST_CASE("a failed write leaves nothing behind", "[io]") {
  const std::vector<float> one{1.0f};
  io::safetensors_writer out(temp_dir() + "/no-such-dir/x.safetensors");
  out.add_f32("w", {1}, one);
  CHECK_THROWS_AS(out.commit(), io::io_error);
  CHECK(::access((temp_dir() + "/no-such-dir").c_str(), F_OK) != 0);
  // a writer that is never committed creates no file
  { io::safetensors_writer never(temp_dir() + "/never.safetensors"); never.add_f32("w", {1}, one); }
  CHECK(::access((temp_dir() + "/never.safetensors").c_str(), F_OK) != 0);
  // shape and size that do not match, and duplicate names, are refused at add()
  io::safetensors_writer bad(temp_dir() + "/bad.safetensors");
  CHECK_THROWS_WITH(bad.add_f32("w", {2, 2}, one), Catch::Contains("'w'") && Catch::Contains("16 bytes"));
  bad.add_f32("v", {1}, one);
  CHECK_THROWS_WITH(bad.add_f32("v", {1}, one), Catch::Contains("added twice"));
}

TEST_CASE("a staged file holds exactly the bytes put, written directly or through the page cache", "[io]") {
  // pieces around the 4096-byte blocks, the 1 MiB written unbuffered and the 4 MiB buffer
  const std::vector<std::size_t> pieces{0, 1, 4095, 4096, 4097, (1u << 20) - 1, 1u << 20, 7, (4u << 20) - 3, 4u << 20, 3, (9u << 20) + 5, 100};
  std::string bytes;
  std::uint32_t state = 12345;
  for (std::size_t n : pieces)
    for (std::size_t i = 0; i < n; ++i) bytes.push_back(static_cast<char>((state = state * 1664525u + 1013904223u) >> 24));
  for (const std::string mode : {"as the file system allows", "O_DIRECT refused at open", "O_DIRECT refused at the second write"}) {
    int direct_writes = 0;
    io::testing::fault_hook = [&](const char* step, const std::string&) {
      if (mode == "O_DIRECT refused at open" && std::string(step) == "direct") return EINVAL;
      if (mode == "O_DIRECT refused at the second write" && std::string(step) == "direct write" && ++direct_writes == 2) return EINVAL;
      return 0;
    };
    const std::string path = temp_dir() + "/staged.bin";
    bool direct = false;
    {
      io::detail::staged_file f(path, path);
      f.open();
      direct = f.direct();
      std::size_t at = 0;
      for (std::size_t n : pieces) f.put(bytes.data() + at, n), at += n;
      f.commit();
    }
    io::testing::fault_hook = nullptr;
    INFO(mode << (direct ? " (O_DIRECT set at open)" : " (no O_DIRECT at open)"));
    if (mode == "O_DIRECT refused at open") CHECK_FALSE(direct);
    std::ifstream in(path, std::ios::binary);
    const std::string back((std::istreambuf_iterator<char>(in)), {});
    REQUIRE(back.size() == bytes.size());
    CHECK(back == bytes);
  }
  // a write error other than a refused O_DIRECT fails the file and leaves nothing
  io::testing::fault_hook = [](const char* step, const std::string&) { return std::string(step) == "direct write" ? EIO : 0; };
  const std::string dir = blockcast::test::scratch_dir("blockcast-test-"), path = dir + "/failed.bin";
  {
    io::detail::staged_file f(path, path);
    f.open();
    const bool direct = f.direct();
    std::string block(5u << 20, 'x');
    // the first full buffer's write fails on the writing thread: the next put or commit says so
    if (direct) CHECK_THROWS_WITH((f.put(block.data(), block.size()), f.commit()), Catch::Contains("write failed"));
  }
  io::testing::fault_hook = nullptr;
  CHECK(blockcast::test::files_in(dir).empty());
}

TEST_CASE("corrupt files are rejected with errors naming what is wrong", "[io][errors]") {
  struct bad_file {
    const char* what;
    std::string header;
    std::size_t data;
    long long claimed;
    const char* message;
  };
  const std::string t = R"("t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::vector<bad_file> table = {
      {"empty file", "", 0, -2, "truncated"},
      {"length beyond the file", "{}", 0, 1000, "truncated"},
      {"not JSON", "{\"t\": [1,", 0, -1, "not valid JSON"},
      {"not an object", "[1, 2]", 0, -1, "not a JSON object"},
      {"unknown dtype", R"({"t":{"dtype":"F12","shape":[2],"data_offsets":[0,8]}})", 8, -1, "unknown dtype 'F12'"},
      {"missing dtype", R"({"t":{"shape":[2],"data_offsets":[0,8]}})", 8, -1, "missing dtype"},
      {"negative shape", R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8, -1, "non-negative"},
      {"shape and size differ", R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8, -1, "shape needs 12 bytes, data_offsets hold 8"},
      {"offsets beyond the data", R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4, -1, "outside the data section"},
      {"offsets reversed", R"({"t":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", 8, -1, "outside the data section"},
      {"overlapping tensors", "{" + t + R"(,"u":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8, -1, "overlaps"},
      {"gap", R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8, -1, "gap of 4 bytes"},
      {"trailing bytes", "{" + t + "}", 12, -1, "4 bytes after the last tensor"},
      {"metadata not strings", R"({"__metadata__":{"a":1}})", 0, -1, "'a' is not a string"},
      {"bad data_offsets", R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", 8, -1, "data_offsets must be"},
  };
  int i = 0;
  for (const auto& b : table) {
    const std::string path = write_raw("bad" + std::to_string(i++) + ".safetensors", b.header, b.data, b.claimed);
    if (b.claimed == -2) {  // a file shorter than the length field
      std::ofstream(path, std::ios::binary | std::ios::trunc).put('x');
    }
    INFO(b.what);
    CHECK_THROWS_AS(io::safetensors_file(path), io::io_error);
    CHECK_THROWS_WITH(io::safetensors_file(path), Catch::Contains(b.message) && Catch::Contains(path));
  }
  CHECK_THROWS_WITH(io::safetensors_file(temp_dir() + "/absent.safetensors"), Catch::Contains("cannot open"));
  // a valid file parses
  CHECK_NOTHROW(io::safetensors_file(write_raw("good.safetensors", "{" + t + "}", 8)));
}

#include <blockcast/blockcast.hpp>
#include <blockcast/io/quantized_tensors.hpp>

#include <random>

TEMPLATE_TEST_CASE("a quantized file decodes to exactly what fake_quantize gives", "[io]", blockcast::mxfp4,
                   blockcast::mxfp6_e2m3, blockcast::nvfp4, blockcast::mxint8) {
  namespace bc = blockcast;
  const std::size_t rows = 5, cols = 77;
  std::vector<float> w(rows * cols), fake(w.size()), decoded(w.size());
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  for (auto& v : w) v = normal(rng);
  const std::string path = temp_dir() + "/quantized.safetensors";
  {
    io::safetensors_writer out(path);
    io::add_quantized(out, "layer.weight", bc::quantize<TestType>(w.data(), rows, cols), "rtn");
    out.commit();
  }
  const io::safetensors_file f(path);
  const auto d = io::describe_quantized(f, "layer.weight");
  CHECK(d.rows == rows);
  CHECK(d.cols == cols);
  CHECK(d.method == "rtn");
  const auto p = io::read_quantized<TestType>(f, "layer.weight");
  bc::dequantize(p, decoded.data());
  bc::fake_quantize<TestType>(w.data(), fake.data(), rows, cols);
  CHECK(std::memcmp(decoded.data(), fake.data(), w.size() * 4) == 0);
  CHECK(d.format == bc::preset_name<TestType>());
  CHECK_THROWS_WITH(io::describe_quantized(f, "layer.weight.scales"), Catch::Contains("not a blockcast quantized tensor"));
  using other = std::conditional_t<std::is_same_v<TestType, bc::mxfp4>, bc::mxint8, bc::mxfp4>;
  CHECK_THROWS_WITH(io::read_quantized<other>(f, "layer.weight"), Catch::Contains("not " + std::string(bc::preset_name<other>())));
}
