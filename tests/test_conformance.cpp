// SPDX-License-Identifier: MIT
// Golden vectors: every mx_* file in both rounding modes, MXINT8 with the full range, and
// NVFP4, matched bit for bit (scale bytes, element codes, decoded values).
#include <blockcast/blockcast.hpp>

#include <catch2/catch.hpp>

#include "conformance.hpp"

namespace bc = blockcast;

namespace {

struct mismatch_count {
  std::size_t scales = 0, codes = 0, outputs = 0, fake = 0, checked = 0;
  std::string first;
  void note(const std::string& what) {
    if (first.empty()) first = what;
  }
};

std::string hex8(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08x", v);
  return buf;
}

template <class Format>
mismatch_count check_file(const std::string& name, const bc::cast_options& opt) {
  const conformance::vector_file file = conformance::read_vectors(name);
  REQUIRE(file.block_size == Format::block_size);
  REQUIRE(!file.cases.empty());
  mismatch_count m;
  for (const auto& c : file.cases) {
    std::vector<float> in(c.n), out(c.n), fake(c.n);
    for (std::size_t i = 0; i < c.n; ++i) in[i] = bc::detail::bits_float(c.in[i]);
    bc::cast_options o = opt;
    if constexpr (Format::has_tensor_scale)
      if (c.name.find("given_global_amax") != std::string::npos)
        o.tensor_amax = bc::detail::bits_float(c.global_amax);
    const auto p = bc::quantize<Format>(in.data(), c.n, o);
    bc::dequantize(p, out.data());
    bc::fake_quantize<Format>(in.data(), fake.data(), c.n, o);
    std::vector<std::uint8_t> codes(c.n);
    bc::detail::unpack_codes(p.codes().data(), c.n, Format::element_bits, codes.data());

    REQUIRE(p.scales().size() == c.blocks.size());
    if constexpr (Format::has_tensor_scale) {
      if (!conformance::same_float(bc::detail::float_bits(p.tensor_scale()), c.s_dec)) {
        ++m.scales;
        m.note(c.name + ": tensor scale " + hex8(bc::detail::float_bits(p.tensor_scale())) +
               " want " + hex8(c.s_dec));
      }
    }
    for (std::size_t b = 0; b < c.blocks.size(); ++b) {
      if (p.scales()[b] != c.blocks[b].scale) {
        ++m.scales;
        m.note(c.name + " block " + std::to_string(b) + ": scale " + hex8(p.scales()[b]) +
               " want " + hex8(c.blocks[b].scale));
      }
    }
    for (std::size_t i = 0; i < c.n; ++i) {
      ++m.checked;
      const std::string where = c.name + "[" + std::to_string(i) + "] in " + hex8(c.in[i]);
      if (c.code[i] >= 0 && codes[i] != c.code[i]) {
        ++m.codes;
        m.note(where + ": code " + hex8(codes[i]) + " want " + hex8(static_cast<std::uint32_t>(c.code[i])));
      }
      if (!conformance::same_float(bc::detail::float_bits(out[i]), c.out[i])) {
        ++m.outputs;
        m.note(where + ": out " + hex8(bc::detail::float_bits(out[i])) + " want " + hex8(c.out[i]));
      }
      if (!conformance::same_float(bc::detail::float_bits(fake[i]), c.out[i])) {
        ++m.fake;
        m.note(where + ": fake_quantize " + hex8(bc::detail::float_bits(fake[i])) + " want " +
               hex8(c.out[i]));
      }
    }
  }
  return m;
}

template <class Format>
void require_conformance(const std::string& name, bc::cast_options opt = {}) {
  const mismatch_count m = check_file<Format>(name, opt);
  INFO(name << ": first mismatch: " << m.first);
  CHECK(m.checked > 1000);
  CHECK(m.scales == 0);
  CHECK(m.codes == 0);
  CHECK(m.outputs == 0);
  CHECK(m.fake == 0);
}

bc::cast_options with_rounding(bc::rounding r) {
  bc::cast_options o;
  o.round = r;
  return o;
}

}  // namespace

TEST_CASE("MX golden vectors, round to nearest even", "[golden]") {
  const auto even = with_rounding(bc::rounding::nearest_even);
  require_conformance<bc::mxfp8_e4m3>("mx_fp8_e4m3_even.txt", even);
  require_conformance<bc::mxfp8_e5m2>("mx_fp8_e5m2_even.txt", even);
  require_conformance<bc::mxfp6_e3m2>("mx_fp6_e3m2_even.txt", even);
  require_conformance<bc::mxfp6_e2m3>("mx_fp6_e2m3_even.txt", even);
  require_conformance<bc::mxfp4>("mx_fp4_e2m1_even.txt", even);
  require_conformance<bc::mxint8>("mx_int8_even.txt", even);
}

TEST_CASE("MX golden vectors, round to nearest, ties away", "[golden]") {
  const auto away = with_rounding(bc::rounding::nearest_away);
  require_conformance<bc::mxfp8_e4m3>("mx_fp8_e4m3_nearest.txt", away);
  require_conformance<bc::mxfp8_e5m2>("mx_fp8_e5m2_nearest.txt", away);
  require_conformance<bc::mxfp6_e3m2>("mx_fp6_e3m2_nearest.txt", away);
  require_conformance<bc::mxfp6_e2m3>("mx_fp6_e2m3_nearest.txt", away);
  require_conformance<bc::mxfp4>("mx_fp4_e2m1_nearest.txt", away);
  require_conformance<bc::mxint8>("mx_int8_nearest.txt", away);
}

TEST_CASE("MXINT8 golden vectors with the full range (-128 allowed)", "[golden]") {
  bc::cast_options opt;
  opt.int8_full_range = true;
  require_conformance<bc::mxint8>("mx_int8_even_asym.txt", opt);
}

TEST_CASE("NVFP4 golden vectors (TransformerEngine arithmetic order)", "[golden]") {
  const mismatch_count m = check_file<bc::nvfp4>("nvfp4_te.txt", {});
  INFO("first mismatch: " << m.first);
  CHECK(m.checked >= 400);
  CHECK(m.scales == 0);
  CHECK(m.codes == 0);
  CHECK(m.outputs == 0);
  CHECK(m.fake == 0);
}
