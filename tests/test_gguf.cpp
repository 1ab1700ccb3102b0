// SPDX-License-Identifier: MIT
// GGUF (io/gguf.hpp): a file built byte by byte here (not by the writer) reads as built; the
// writer's files read back and write again to the same bytes; every kind of damage is an
// io_error that says what is wrong, and a failed write leaves nothing.
#include <blockcast/io/gguf.hpp>

#include <catch2/catch.hpp>

#include "cli_test_files.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace io = blockcast::io;

using blockcast::test::file_bytes;
using blockcast::test::fresh_dir;

namespace {

std::string write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

// Little-endian pieces of a GGUF file, written out by hand.
struct bytes_builder {
  std::string b;
  template <class T>
  bytes_builder& num(T v) {
    char c[sizeof(T)];
    std::memcpy(c, &v, sizeof v);
    b.append(c, sizeof c);
    return *this;
  }
  bytes_builder& str(const std::string& s) {
    num<std::uint64_t>(s.size());
    b += s;
    return *this;
  }
  bytes_builder& pad(std::size_t alignment) {
    while (b.size() % alignment) b.push_back('\0');
    return *this;
  }
};

// A valid file: 2 metadata entries, an F32 [3 x 2] tensor (24 bytes, padded to 32) and a
// Q8_0 [32] tensor (34 bytes). `tweak` may change any piece.
struct sample {
  std::string magic = "GGUF", key = "general.name";
  std::uint32_t version = 3, value_type = 8, tensor_type = 0, n_dims = 2, alignment = 32;
  std::uint64_t tensor_count = 2, kv_count = 2, dim0 = 3, offset1 = 32;
  std::string second_name = "b";
  std::string build() const {
    bytes_builder f;
    f.b = magic;
    f.num(version).num(tensor_count).num(kv_count);
    f.str(key).num(value_type).str("tiny");
    f.str("general.alignment").num<std::uint32_t>(4).num(alignment);
    f.str("a").num(n_dims).num(dim0).num<std::uint64_t>(2).num(tensor_type).num<std::uint64_t>(0);
    f.str(second_name).num<std::uint32_t>(1).num<std::uint64_t>(32).num<std::uint32_t>(8).num(offset1);
    f.pad(32);
    for (int i = 0; i < 6; ++i) f.num(static_cast<float>(i) + 0.5f);
    f.pad(32);
    f.num<std::uint16_t>(0x3c00);  // Q8_0: an F16 scale of 1, then 32 int8 values
    for (int i = 0; i < 32; ++i) f.num(static_cast<std::int8_t>(i - 16));
    return f.b;
  }
};

}  // namespace

TEST_CASE("gguf: a file built byte by byte reads as built", "[io][gguf]") {
  const std::string dir = fresh_dir();
  const io::gguf_file f(write_file(dir + "/a.gguf", sample{}.build()));
  CHECK(f.version() == 3);
  CHECK(f.alignment() == 32);
  REQUIRE(f.metadata().size() == 2);
  CHECK(f.metadata()[0].first == "general.name");
  CHECK(f.metadata()[0].second.strings == std::vector<std::string>{"tiny"});
  REQUIRE(f.tensors().size() == 2);
  const auto& a = f.find("a");
  CHECK(a.dims == std::vector<std::uint64_t>{3, 2});
  CHECK(a.bytes == 24);
  CHECK(f.data_offset() % 32 == 0);
  float v[6];
  std::memcpy(v, f.bytes(a).data(), sizeof v);
  CHECK(v[5] == 5.5f);
  const auto& b = f.find("b");
  CHECK(b.type == 8);
  CHECK(b.offset == 32);
  CHECK(b.bytes == 34);
  std::int8_t last = 0;
  f.read(b, 33, 1, &last);
  CHECK(last == 15);
  CHECK_THROWS_WITH(f.read(b, 30, 5, &last), Catch::Contains("outside its 34 bytes"));
}

TEST_CASE("gguf: written files read back, and write again to the same bytes", "[io][gguf]") {
  const std::string dir = fresh_dir();
  std::vector<std::uint8_t> f32(4 * 5 * 3), q8(34 * 2 * 2), mxfp4(17), bf16(2);
  for (std::size_t i = 0; i < f32.size(); ++i) f32[i] = static_cast<std::uint8_t>(i * 7);
  for (std::size_t i = 0; i < q8.size(); ++i) q8[i] = static_cast<std::uint8_t>(i * 13);
  for (std::size_t i = 0; i < mxfp4.size(); ++i) mxfp4[i] = static_cast<std::uint8_t>(i + 100);
  bf16 = {0x80, 0x3f};
  io::gguf_value ints;  // [1, 2, -1]
  ints.type = io::gguf_type::array;
  ints.element = io::gguf_type::i32;
  ints.count = 3;
  ints.raw = {1, 0, 0, 0, 2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff};
  {
    io::gguf_stream_writer w(dir + "/w.gguf");
    // every value type, as a scalar and as an array
    w.set_metadata("u8", io::gguf_value::scalar(io::gguf_type::u8, std::uint8_t{200}));
    w.set_metadata("i8", io::gguf_value::scalar(io::gguf_type::i8, std::int8_t{-5}));
    w.set_metadata("u16", io::gguf_value::scalar(io::gguf_type::u16, std::uint16_t{60000}));
    w.set_metadata("i16", io::gguf_value::scalar(io::gguf_type::i16, std::int16_t{-30000}));
    w.set_metadata("u32", io::gguf_value::u32(4000000000u));
    w.set_metadata("i32", io::gguf_value::scalar(io::gguf_type::i32, std::int32_t{-7}));
    w.set_metadata("f32", io::gguf_value::f32(0.25f));
    w.set_metadata("bool", io::gguf_value::scalar(io::gguf_type::boolean, std::uint8_t{1}));
    w.set_metadata("string", io::gguf_value::string("h\xc3\xa9llo"));
    w.set_metadata("u64", io::gguf_value::u64(~std::uint64_t{0}));
    w.set_metadata("i64", io::gguf_value::scalar(io::gguf_type::i64, std::int64_t{-1}));
    w.set_metadata("f64", io::gguf_value::scalar(io::gguf_type::f64, 1e300));
    w.set_metadata("array.i32", ints);
    w.set_metadata("array.string", io::gguf_value::string_array({"a", "", "ccc"}));
    w.set_metadata("general.alignment", io::gguf_value::u32(64));
    w.declare("f32", {5, 3}, 0);
    w.declare("q8_0", {64, 2}, 8);
    w.declare("mxfp4", {32}, 39);
    w.declare("scalar", {}, 30);
    w.write("f32", {f32.data(), f32.size()});
    w.append("q8_0", {q8.data(), 100});
    w.append("q8_0", {q8.data() + 100, q8.size() - 100});
    w.write("mxfp4", {mxfp4.data(), mxfp4.size()});
    w.write("scalar", {bf16.data(), bf16.size()});
    w.commit();
  }
  const io::gguf_file f(dir + "/w.gguf");
  CHECK(f.alignment() == 64);
  CHECK(f.data_offset() % 64 == 0);
  REQUIRE(f.metadata().size() == 15);
  std::uint32_t u32 = 0;
  CHECK(f.find_metadata("u32")->get(io::gguf_type::u32, u32));
  CHECK(u32 == 4000000000u);
  double f64 = 0;
  CHECK(f.find_metadata("f64")->get(io::gguf_type::f64, f64));
  CHECK(f64 == 1e300);
  CHECK(f.find_metadata("string")->strings[0] == "h\xc3\xa9llo");
  CHECK(f.find_metadata("array.string")->strings == std::vector<std::string>{"a", "", "ccc"});
  CHECK(*f.find_metadata("array.i32") == ints);
  for (const auto& [name, data] : {std::pair<const char*, const std::vector<std::uint8_t>*>{"f32", &f32}, {"q8_0", &q8}, {"mxfp4", &mxfp4}, {"scalar", &bf16}}) {
    INFO(name);
    const auto got = f.bytes(f.find(name));
    CHECK(std::vector<std::uint8_t>(got.begin(), got.end()) == *data);
    CHECK(f.find(name).offset % 64 == 0);
  }
  CHECK(f.find("scalar").dims.empty());
  // through the reader into a second writer: the same bytes
  {
    io::gguf_stream_writer w(dir + "/again.gguf");
    for (const auto& [key, value] : f.metadata()) w.set_metadata(key, value);
    for (const auto& t : f.tensors()) w.declare(t.name, t.dims, t.type);
    for (const auto& t : f.tensors()) w.write(t.name, f.bytes(t));
    w.commit();
  }
  CHECK(file_bytes(dir + "/again.gguf") == file_bytes(dir + "/w.gguf"));
}

TEST_CASE("gguf: every kind of damage is an io_error saying what is wrong", "[io][gguf][errors]") {
  const std::string dir = fresh_dir(), path = dir + "/bad.gguf";
  auto rejected = [&](const sample& s, const std::string& why) {
    INFO(why);
    CHECK_THROWS_WITH(io::gguf_file(write_file(path, s.build())), Catch::Contains(why));
  };
  sample s;
  s.magic = "GGML";
  rejected(s, "not a GGUF file");
  s = {};
  s.version = 1;
  rejected(s, "GGUF version 1");
  s = {};
  s.tensor_count = std::uint64_t{1} << 60;
  rejected(s, "tensors cannot fit");
  s = {};
  s.kv_count = 1000;
  rejected(s, "metadata entries cannot fit");
  s = {};
  s.key = "";
  rejected(s, "empty key");
  s = {};
  s.key = "general.alignment";
  rejected(s, "appears twice");
  s = {};
  s.value_type = 13;
  rejected(s, "unknown value type 13");
  s = {};
  s.alignment = 48;
  rejected(s, "not a power of two");
  s = {};
  s.second_name = "a";
  rejected(s, "tensor 'a' appears twice");
  s = {};
  s.second_name = std::string(64, 'x');
  rejected(s, "a name of 64 bytes");
  s = {};
  s.n_dims = 5;
  rejected(s, "5 dimensions");
  s = {};
  s.tensor_type = 4;
  rejected(s, "unknown ggml type 4");
  s = {};
  s.tensor_type = 8;  // Q8_0 rows of 3 values
  rejected(s, "not a whole number of Q8_0 blocks of 32");
  s = {};
  s.dim0 = std::uint64_t{1} << 63;
  rejected(s, "more than 2^63 - 1");
  s = {};
  s.dim0 = std::uint64_t{1} << 62;
  rejected(s, "overflows");
  s = {};
  s.offset1 = 24;
  rejected(s, "has offset 24, expected 32");

  // an array of arrays, and a string array longer than the file
  bytes_builder nested;
  nested.b = "GGUF";
  nested.num<std::uint32_t>(3).num<std::uint64_t>(0).num<std::uint64_t>(1).str("k").num<std::uint32_t>(9).num<std::uint32_t>(9).num<std::uint64_t>(1);
  CHECK_THROWS_WITH(io::gguf_file(write_file(path, nested.b)), Catch::Contains("an array of arrays"));
  bytes_builder long_array;
  long_array.b = "GGUF";
  long_array.num<std::uint32_t>(3).num<std::uint64_t>(0).num<std::uint64_t>(1).str("k").num<std::uint32_t>(9).num<std::uint32_t>(8).num<std::uint64_t>(~std::uint64_t{0});
  CHECK_THROWS_WITH(io::gguf_file(write_file(path, long_array.b)), Catch::Contains("strings cannot fit"));

  // every truncation of a valid file, the data section included
  const std::string whole = sample{}.build();
  for (std::size_t n = 0; n < whole.size(); ++n) {
    INFO("truncated to " << n << " of " << whole.size() << " bytes");
    CHECK_THROWS_AS(io::gguf_file(write_file(path, whole.substr(0, n))), io::io_error);
  }
  CHECK_NOTHROW(io::gguf_file(write_file(path, whole)));
  CHECK_THROWS_WITH(io::gguf_file(dir), Catch::Contains("not a regular file"));
}

TEST_CASE("gguf: a writer used wrongly says so and leaves no file", "[io][gguf][errors]") {
  const std::string dir = fresh_dir(), path = dir + "/out.gguf";
  std::vector<std::uint8_t> data(64);
  {
    io::gguf_stream_writer w(path);
    CHECK_THROWS_WITH(w.declare("q", {33}, 8), Catch::Contains("not a whole number of Q8_0 blocks"));
    CHECK_THROWS_WITH(w.declare("x", {1}, 31), Catch::Contains("unknown ggml type 31"));
    CHECK_THROWS_WITH(w.declare(std::string(64, 'n'), {1}, 0), Catch::Contains("1 to 63 bytes"));
    CHECK_THROWS_WITH(w.set_metadata("general.alignment", io::gguf_value::u32(3)), Catch::Contains("power of two"));
    w.declare("a", {4}, 0);
    w.declare("b", {4}, 0);
    CHECK_THROWS_WITH(w.declare("a", {4}, 0), Catch::Contains("declared twice"));
    CHECK_THROWS_WITH(w.write("b", {data.data(), 16}), Catch::Contains("out of order"));
    CHECK_THROWS_WITH(w.write("a", {data.data(), 15}), Catch::Contains("needs 16 bytes, given 15"));
    w.write("a", {data.data(), 16});
    CHECK_THROWS_WITH(w.commit(), Catch::Contains("1 declared tensors were not written (next: 'b')"));
  }
  CHECK(::access(path.c_str(), F_OK) != 0);
  CHECK(std::rename((dir + "/nothing").c_str(), path.c_str()) != 0);  // the directory holds nothing
  CHECK(::rmdir(dir.c_str()) == 0);
}

TEST_CASE("gguf: a file written by ggml itself reads as ggml wrote it and writes again to the same bytes", "[io][gguf]") {
  // tests/data/gguf/written_by_ggml.c made it with ggml's gguf_write_to_file
  const std::string path = std::string(BLOCKCAST_TEST_DATA_DIR) + "/gguf/written_by_ggml.gguf";
  const io::gguf_file f(path);
  CHECK(f.metadata().size() == 14);
  std::uint64_t u64 = 0;
  CHECK(f.find_metadata("u64")->get(io::gguf_type::u64, u64));
  CHECK(u64 == std::uint64_t{1} << 40);
  CHECK(f.find_metadata("strs")->strings == std::vector<std::string>{"a", "bc"});
  CHECK(f.find_metadata("bool")->raw == std::vector<std::uint8_t>{1});
  REQUIRE(f.tensors().size() == 2);
  CHECK(f.find("a").dims == std::vector<std::uint64_t>{5, 3});
  float a[15];
  f.read(f.find("a"), 0, sizeof a, a);
  for (int i = 0; i < 15; ++i) CHECK(a[i] == 0.5f * static_cast<float>(i));
  CHECK(f.find("b").type == 39);
  CHECK(f.find("b").offset == 64);  // 60 bytes of F32, padded to 32
  const std::string dir = fresh_dir();
  {
    io::gguf_stream_writer w(dir + "/again.gguf");
    for (const auto& [key, value] : f.metadata()) w.set_metadata(key, value);
    for (const auto& t : f.tensors()) w.declare(t.name, t.dims, t.type);
    for (const auto& t : f.tensors()) w.write(t.name, f.bytes(t));
    w.commit();
  }
  CHECK(file_bytes(dir + "/again.gguf") == file_bytes(path));
}
