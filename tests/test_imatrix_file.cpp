// SPDX-License-Identifier: MIT
// llama.cpp importance matrices (io/imatrix_file.hpp): both files round trip, Hugging Face
// names find llama.cpp's entries, and every truncation or corruption of a file is refused
// with the file and the problem named, never read as something else.
#include <blockcast/io/imatrix_file.hpp>

#include "cli_test_files.hpp"

#include <catch2/catch.hpp>

#include <fstream>
#include <random>
#include <string>

namespace io = blockcast::io;

namespace {

std::map<std::string, io::importance> sample_weights() {
  std::mt19937 rng(5);
  std::lognormal_distribution<double> value(0.0, 1.0);
  std::map<std::string, io::importance> w;
  for (const char* name : {"blk.0.attn_q.weight", "blk.0.ffn_down.weight", "output.weight"}) {
    io::importance imp{std::vector<double>(name[6] == 'f' ? 96 : 32), 4096};
    // values exact in float after * samples and / samples: multiples of 1/64 below 2^10
    for (auto& v : imp.mean_square) v = std::round(value(rng) * 64) / 64;
    w.emplace(name, std::move(imp));
  }
  return w;
}

void write_bytes(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

void require_refused(const std::string& path, const std::string& what) {
  blockcast::test::require_refused([&] { (void)io::read_imatrix(path); }, path, what);
}

}  // namespace

TEST_CASE("importance matrices round trip in both of llama.cpp's files", "[io][imatrix]") {
  const auto weights = sample_weights();
  const std::string dir = blockcast::test::fresh_dir();
  io::write_imatrix_gguf(dir + "/m.gguf", weights);
  io::write_imatrix_dat(dir + "/m.dat", weights, 16);
  for (const std::string file : {"m.gguf", "m.dat"}) {
    INFO(file);
    REQUIRE(io::is_imatrix_file(dir + "/" + file));
    const io::importance_matrix m = io::read_imatrix(dir + "/" + file);
    REQUIRE(m.weights.size() == weights.size());
    for (const auto& [name, imp] : weights) {
      INFO(name);
      const io::importance* got = m.find(name);
      REQUIRE(got != nullptr);
      CHECK(got->mean_square == imp.mean_square);
      CHECK(got->samples == (file == "m.dat" ? 16.0 : 4096.0));  // the legacy file stores chunks
    }
    // a Hugging Face name finds llama.cpp's entry
    REQUIRE(m.find("model.layers.0.self_attn.q_proj.weight") == m.find("blk.0.attn_q.weight"));
    REQUIRE(m.find("model.layers.0.mlp.down_proj.weight") == m.find("blk.0.ffn_down.weight"));
    REQUIRE(m.find("lm_head.weight") == m.find("output.weight"));
    CHECK(m.find("model.layers.1.self_attn.q_proj.weight") == nullptr);
  }
  CHECK(io::gguf_weight_name("model.layers.12.self_attn.o_proj.weight") == "blk.12.attn_output.weight");
  CHECK(io::gguf_weight_name("model.layers.3.mlp.gate_proj.weight") == "blk.3.ffn_gate.weight");
  CHECK(io::gguf_weight_name("model.norm.weight") == "model.norm.weight");
}

TEST_CASE("every truncation of a legacy importance matrix is refused", "[io][imatrix][errors]") {
  const std::string dir = blockcast::test::fresh_dir();
  const std::vector<std::uint8_t> bytes = io::imatrix_dat_bytes(sample_weights(), 16);
  // the entries end 4 bytes before the end (the chunk count, an optional trailer)
  for (std::size_t n = 0; n + 4 < bytes.size(); ++n) {
    const std::string path = dir + "/cut.dat";
    write_bytes(path, std::vector<std::uint8_t>(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n)));
    INFO("cut to " << n << " of " << bytes.size() << " bytes");
    REQUIRE_THROWS_AS(io::read_imatrix(path), io::io_error);
  }
  const std::string path = dir + "/cut.dat";
  write_bytes(path, std::vector<std::uint8_t>(bytes.begin(), bytes.end() - 10));  // in the last entry's values
  require_refused(path, "truncated: the 32 values of entry 'output.weight': 128 bytes needed");
  write_bytes(path, std::vector<std::uint8_t>(bytes.begin(), bytes.end() - 4));  // no trailer at all: fine
  CHECK(io::read_imatrix(path).weights.size() == 3);
}

TEST_CASE("corrupt or foreign importance matrices are refused, naming the file and the problem", "[io][imatrix][errors]") {
  const std::string dir = blockcast::test::fresh_dir();
  const std::vector<std::uint8_t> good = io::imatrix_dat_bytes(sample_weights(), 16);
  auto edited = [&](const std::string& name, std::size_t at, std::vector<std::uint8_t> patch) {
    std::vector<std::uint8_t> b = good;
    std::copy(patch.begin(), patch.end(), b.begin() + static_cast<std::ptrdiff_t>(at));
    write_bytes(dir + "/" + name, b);
    return dir + "/" + name;
  };
  // the first entry (names sorted): "blk.0.attn_q.weight", 19 bytes, at offset 4
  require_refused(edited("count.dat", 0, {0xff, 0xff, 0xff, 0x7f}), "entry count 2147483647 is impossible");
  require_refused(edited("zero.dat", 0, {0, 0, 0, 0}), "entry count 0");
  require_refused(edited("name.dat", 4, {0, 0, 0, 0}), "entry 0: name length 0");
  require_refused(edited("calls.dat", 4 + 4 + 19, {0, 0, 0, 0}), "call count 0");
  require_refused(edited("values.dat", 4 + 4 + 19 + 4, {0xff, 0xff, 0xff, 0x0f}), "truncated");
  require_refused(edited("negative.dat", 4 + 4 + 19 + 8, {0, 0, 0x80, 0xbf}), "value 0 is -0.0625");  // -1 / 16 calls
  require_refused(edited("nan.dat", 4 + 4 + 19 + 8, {0, 0, 0xc0, 0x7f}), "mean squares are finite");
  // a dataset-name trailer whose length does not match
  std::vector<std::uint8_t> trailer = good;
  for (std::uint8_t c : std::vector<std::uint8_t>{5, 0, 0, 0, 'a', 'b'}) trailer.push_back(c);
  write_bytes(dir + "/trailer.dat", trailer);
  require_refused(dir + "/trailer.dat", "dataset name's length 5 does not match the 2 bytes left");
  // a GGUF file that is not an importance matrix
  {
    io::gguf_stream_writer out(dir + "/model.gguf");
    const std::vector<float> v(8, 1.0f);
    out.declare("blk.0.attn_q.weight", {8}, io::ggml_f32);
    out.write("blk.0.attn_q.weight", blockcast::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(v.data()), 32));
    out.commit();
  }
  require_refused(dir + "/model.gguf", "not a llama.cpp importance matrix");
  // a GGUF importance matrix with a zero count, and one holding expert matrices
  {
    io::gguf_stream_writer out(dir + "/experts.gguf");
    const std::vector<float> sums(16, 1.0f), counts(2, 8.0f);
    out.declare("blk.0.ffn_up_exps.weight.in_sum2", {8, 2}, io::ggml_f32);
    out.declare("blk.0.ffn_up_exps.weight.counts", {1, 2}, io::ggml_f32);
    out.write("blk.0.ffn_up_exps.weight.in_sum2", blockcast::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(sums.data()), 64));
    out.write("blk.0.ffn_up_exps.weight.counts", blockcast::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(counts.data()), 8));
    out.commit();
  }
  require_refused(dir + "/experts.gguf", "holds 2 matrices (experts)");
  auto m = sample_weights();
  m.begin()->second.samples = 0;
  io::write_imatrix_gguf(dir + "/zero-count.gguf", m);
  require_refused(dir + "/zero-count.gguf", "count 0.0");
  // the legacy file is read by its name; anything else unreadable is not an importance matrix
  std::ofstream(dir + "/stats.safetensors", std::ios::binary) << blockcast::test::file_bytes(dir + "/count.dat");
  CHECK_FALSE(io::is_imatrix_file(dir + "/stats.safetensors"));
}
