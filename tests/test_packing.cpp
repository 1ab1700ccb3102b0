// SPDX-License-Identifier: MIT
// Byte layout of packed tensors: the golden FP4 pair layout, the FP6 bit stream, rows that
// start on byte boundaries, and the ggml export.
#include <blockcast/blockcast.hpp>
#include <blockcast/io/ggml_blocks.hpp>

#include <catch2/catch.hpp>

#include <map>
#include <random>

#include "conformance.hpp"

namespace bc = blockcast;

TEST_CASE("MXFP4 packs pairs low nibble first, as the golden file", "[golden][layout]") {
  std::map<std::string, std::vector<std::string>> rows;
  for (auto& t : conformance::read_tokens(conformance::data_path("fp4_packed.txt")))
    rows[t[0]] = std::vector<std::string>(t.begin() + 1, t.end());
  std::vector<float> in;
  for (const auto& h : rows["in"]) in.push_back(bc::detail::bits_float(conformance::hex(h)));
  REQUIRE(in.size() == 128);

  const auto p = bc::quantize<bc::mxfp4>(in.data(), in.size());
  REQUIRE(p.scales().size() == rows["scales"].size());
  for (std::size_t i = 0; i < p.scales().size(); ++i) CHECK(p.scales()[i] == conformance::hex(rows["scales"][i]));
  REQUIRE(p.codes().size() == rows["pairs_lo_first"].size());
  for (std::size_t i = 0; i < p.codes().size(); ++i) {
    INFO("byte " << i);
    CHECK(p.codes()[i] == conformance::hex(rows["pairs_lo_first"][i]));
    CHECK((p.codes()[i] & 0xf) == conformance::hex(rows["codes"][2 * i]));
  }
  // ggml's block_mxfp4 (io/ggml_blocks.hpp): the scale byte, then split nibbles; -0 codes are
  // stored as +0 (what ggml decodes them to) and counted
  std::vector<std::uint8_t> ggml(4 * 17);
  bc::io::layout_report report;
  bc::io::to_ggml_rows<bc::mxfp4>(p.codes().data(), p.scales().data(), 1, 128, ggml.data(), report, "golden");
  std::uint64_t negative_zeros = 0;
  for (std::size_t b = 0; b < 4; ++b) {
    CHECK(ggml[17 * b] == p.scales()[b]);
    for (std::size_t j = 0; j < 16; ++j) {
      std::uint8_t want = static_cast<std::uint8_t>(conformance::hex(rows["ggml_split"][16 * b + j]));
      for (int shift : {0, 4})
        if (((want >> shift) & 0xf) == 8) want = static_cast<std::uint8_t>(want & ~(0xf << shift)), ++negative_zeros;
      INFO("block " << b << " byte " << j);
      CHECK(ggml[17 * b + 1 + j] == want);
    }
  }
  CHECK(report.negative_zeros == negative_zeros);
}

TEST_CASE("FP6 packs 4 codes in 3 bytes, little-endian bit stream", "[layout]") {
  const std::uint8_t codes[4] = {0x3f, 0x01, 0x2a, 0x15};
  std::uint8_t bytes[3];
  bc::detail::pack_codes(codes, 4, 6, bytes);
  CHECK(bytes[0] == (0x3f | (0x01 << 6 & 0xff)));          // c0 | c1 << 6
  CHECK(bytes[1] == ((0x01 >> 2) | (0x2a << 4 & 0xff)));   // c1 >> 2 | c2 << 4
  CHECK(bytes[2] == ((0x2a >> 4) | (0x15 << 2)));          // c2 >> 4 | c3 << 2
}

TEST_CASE("bit streams of every width round-trip and zero their padding", "[layout]") {
  std::mt19937 rng(7);
  for (int bits = 1; bits <= 8; ++bits) {
    for (std::size_t n : {0, 1, 2, 3, 5, 7, 8, 9, 31, 33, 100}) {
      std::vector<std::uint8_t> codes(n), back(n);
      for (auto& c : codes) c = static_cast<std::uint8_t>(rng() & ((1u << bits) - 1));
      std::vector<std::uint8_t> bytes(bc::row_code_bytes(n, bits) + 1, 0xee);
      bc::detail::pack_codes(codes.data(), n, bits, bytes.data());
      bc::detail::unpack_codes(bytes.data(), n, bits, back.data());
      INFO("bits " << bits << " n " << n);
      CHECK(back == codes);
      CHECK(bytes.back() == 0xee);  // wrote exactly row_code_bytes
      if ((n * bits) % 8 != 0) CHECK((bytes[bytes.size() - 2] >> ((n * bits) % 8)) == 0);
    }
  }
}

TEMPLATE_TEST_CASE("a matrix is blocked per row and each row starts on a byte", "[layout]",
                   bc::mxfp4, bc::mxfp6_e3m2, bc::mxfp8_e4m3, bc::mxint8, bc::nvfp4) {
  const std::size_t rows = 3, cols = 37;  // odd: rows of FP4/FP6 codes end mid-byte
  std::vector<float> x(rows * cols);
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  for (auto& v : x) v = normal(rng);
  const auto m = bc::quantize<TestType>(x.data(), rows, cols);
  CHECK(m.rows() == rows);
  CHECK(m.cols() == cols);
  CHECK(m.size() == rows * cols);
  CHECK(m.codes().size() == rows * bc::row_code_bytes<TestType>(cols));
  CHECK(m.scales().size() == rows * bc::blocks_per_row<TestType>(cols));
  // Each row equals that row quantized on its own (MX; NVFP4 shares the tensor scale).
  for (std::size_t r = 0; r < rows; ++r) {
    bc::cast_options opt;
    if constexpr (TestType::has_tensor_scale)
      opt.tensor_amax = bc::reference::finite_amax(x.data(), x.size());
    const auto one = bc::quantize<TestType>(x.data() + r * cols, cols, opt);
    const auto row_bytes = bc::row_code_bytes<TestType>(cols);
    CHECK(std::equal(one.codes().begin(), one.codes().end(), m.codes().begin() + r * row_bytes));
    const auto nb = bc::blocks_per_row<TestType>(cols);
    CHECK(std::equal(one.scales().begin(), one.scales().end(), m.scales().begin() + r * nb));
  }
}
