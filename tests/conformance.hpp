// SPDX-License-Identifier: MIT
// Readers of the golden-vector files in tests/data/conformance (grammar in its README.md).
#pragma once

#include <cmath>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "blockcast/element/bits.hpp"

namespace conformance {

inline std::string data_path(const std::string& name) {
  return std::string(BLOCKCAST_TEST_DATA_DIR) + "/conformance/" + name;
}

/// Lines of a file with comments stripped, split into tokens; empty lines dropped.
inline std::vector<std::vector<std::string>> read_tokens(const std::string& path) {
  std::ifstream file(path);
  if (!file) throw std::runtime_error("cannot open " + path);
  std::vector<std::vector<std::string>> lines;
  std::string line;
  while (std::getline(file, line)) {
    if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    std::istringstream words(line);
    std::vector<std::string> tokens;
    for (std::string w; words >> w;) tokens.push_back(w);
    if (!tokens.empty()) lines.push_back(std::move(tokens));
  }
  return lines;
}

inline std::uint32_t hex(const std::string& s) { return static_cast<std::uint32_t>(std::stoul(s, nullptr, 16)); }

/// Equal bits, or both NaN.
inline bool same_float(std::uint32_t a, std::uint32_t b) {
  const float fa = blockcast::detail::bits_float(a), fb = blockcast::detail::bits_float(b);
  return a == b || (std::isnan(fa) && std::isnan(fb));
}

struct block_ref {
  std::size_t start = 0, len = 0;
  std::uint32_t scale = 0;  // scale_ref byte
};

struct case_ref {
  std::string name;
  std::size_t n = 0;
  std::vector<block_ref> blocks;
  std::vector<std::uint32_t> in, out;  // fp32 bits: input and out_ref
  std::vector<int> code;               // code_ref, -1 where undefined ("-")
  std::uint32_t global_amax = 0, s_enc = 0, s_dec = 0;  // nvfp4 only
};

struct vector_file {
  std::string format, rounding;
  std::size_t block_size = 0;
  std::vector<case_ref> cases;
};

/// Reads mx_<format>_<rounding>.txt (columns in out_mx out_ref code_ref) and nvfp4_te.txt
/// (columns in out_ref code_ref).
inline vector_file read_vectors(const std::string& name) {
  vector_file f;
  bool nvfp4 = false;
  case_ref* c = nullptr;
  for (const auto& t : read_tokens(data_path(name))) {
    const std::string& key = t[0];
    if (key == "format") {
      f.format = t[1];
      nvfp4 = t[1] == "nvfp4";
    } else if (key == "block_size") {
      f.block_size = std::stoul(t[1]);
    } else if (key == "rounding") {
      f.rounding = t[1];
    } else if (key == "scale_bits" || key == "scale" || key == "columns") {
    } else if (key == "case") {
      f.cases.emplace_back();
      c = &f.cases.back();
      c->name = t[1];
      c->n = std::stoul(t[2]);
    } else if (key == "global") {
      c->global_amax = hex(t[1]);
      c->s_enc = hex(t[2]);
      c->s_dec = hex(t[3]);
    } else if (key == "block") {
      c->blocks.push_back({std::stoul(t[2]), std::stoul(t[3]), hex(t[4])});
    } else if (key == "end") {
      if (c->in.size() != c->n) throw std::runtime_error(name + ": case " + c->name + " is short");
      c = nullptr;
    } else {
      c->in.push_back(hex(t[0]));
      const std::string& out = nvfp4 ? t[1] : t[2];
      const std::string& code = nvfp4 ? t[2] : t[3];
      c->out.push_back(hex(out));
      c->code.push_back(code == "-" ? -1 : static_cast<int>(hex(code)));
    }
  }
  return f;
}

}  // namespace conformance
