// SPDX-License-Identifier: MIT
// Export of MXFP4 tensors to ggml's block_mxfp4 layout (ggml's own quantizer rounds
// differently; this only repacks blockcast's OCP-exact codes and scales).
//   struct block_mxfp4 { uint8_t e; uint8_t qs[16]; }: e is the E8M0 scale byte and
//   qs[j] = c[j] | c[j + 16] << 4 within each block of 32 ("split" nibble order).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "blockcast/block/packed.hpp"

namespace blockcast {

struct ggml_block_mxfp4 {
  std::uint8_t e;
  std::uint8_t qs[16];
};
static_assert(sizeof(ggml_block_mxfp4) == 17, "ggml block_mxfp4 is 17 bytes");

/// Repacks an MXFP4 tensor (cols a multiple of 32, as ggml requires) into ggml blocks.
inline std::vector<ggml_block_mxfp4> to_ggml_mxfp4(packed_view<mxfp4> p) {
  if (p.cols() % 32 != 0)
    detail::fail<shape_error>("to_ggml_mxfp4: ggml needs rows of whole 32-blocks, got " +
                              detail::shape_string(p.rows(), p.cols()));
  std::vector<ggml_block_mxfp4> out;
  out.reserve(p.rows() * p.cols() / 32);
  for (std::size_t r = 0; r < p.rows(); ++r) {
    const std::uint8_t* codes = p.row_codes(r);  // byte i = c[2i] | c[2i+1] << 4
    for (std::size_t b = 0; b < p.cols() / 32; ++b) {
      const std::uint8_t* block = codes + 16 * b;
      auto code = [&](int i) { return (block[i / 2] >> (4 * (i % 2))) & 0xf; };
      ggml_block_mxfp4 g{};
      g.e = p.row_scales(r)[b];
      for (int j = 0; j < 16; ++j) g.qs[j] = static_cast<std::uint8_t>(code(j) | code(j + 16) << 4);
      out.push_back(g);
    }
  }
  return out;
}

}  // namespace blockcast
