// SPDX-License-Identifier: MIT
// The checkpoint layouts blockcast reads and writes: how an engine stores a block-scaled
// weight. One table (`layouts`) is the source of every layout name the library, the tool and
// its messages use; docs/layouts.md says what each one is and where it was checked.
#pragma once

#include <string>
#include <string_view>

#include <cstdint>

#include "blockcast/error.hpp"
#include "blockcast/io/names.hpp"

namespace blockcast::io {

enum class layout {
  blockcast,           // codes + "<name>.scales" (+ ".tensor_scale"), described in __metadata__
  compressed_tensors,  // vLLM/SGLang: "<module>.weight_packed", ".weight_scale", ".weight_global_scale"
  modelopt,            // NVIDIA ModelOpt/TensorRT-LLM: "<module>.weight" U8, ".weight_scale", ".weight_scale_2"
  gpt_oss,             // gpt-oss / transformers MXFP4: "<name>_blocks", "<name>_scales" (read only)
  gguf,                // llama.cpp: ggml block types MXFP4 (39) and NVFP4 (40)
};

struct layout_info {
  layout id;
  std::string_view name;     // as on the command line
  std::string_view formats;  // the presets it holds, space separated; "*": every preset
  bool writable;             // blockcast writes it (gpt-oss is read only)
  std::string_view engines;  // who loads it
};

inline constexpr layout_info layouts[] = {
    {layout::blockcast, "blockcast", "*", true, "blockcast"},
    {layout::compressed_tensors, "compressed-tensors", "nvfp4 mxfp4", true, "vLLM, SGLang, transformers"},
    {layout::modelopt, "modelopt", "nvfp4", true, "vLLM, SGLang, TensorRT-LLM"},
    {layout::gpt_oss, "gpt-oss", "mxfp4", false, "transformers, vLLM (gpt-oss models)"},
    {layout::gguf, "gguf", "mxfp4 nvfp4", true, "llama.cpp, ggml"},
};

inline const layout_info& info(layout l) {
  for (const auto& i : layouts)
    if (i.id == l) return i;
  return layouts[0];  // unreachable: every enumerator is in the table
}

/// A tensor that a layout cannot hold exactly (a NaN block scale where the engine has none, a
/// row that is not whole blocks of the engine's type, ...): reported, never stored changed.
class layout_error : public blockcast::error {
 public:
  using blockcast::error::error;
};

[[noreturn]] inline void fail_layout(const std::string& tensor, const std::string& what) {
  blockcast::detail::fail<layout_error>("tensor " + in_quotes(tensor) + ": " + what);
}

/// What a conversion to a layout changed in how values are encoded, though not in what the
/// engine decodes: reported to the user.
struct layout_report {
  std::uint64_t negative_zeros = 0;  // -0 codes stored as +0 (the engine decodes both as +0)
};

/// The layout called `name`; throws invalid_argument listing the known names.
inline layout parse_layout(const std::string& name) {
  std::string known;
  for (const auto& i : layouts) {
    if (i.name == name) return i.id;
    known += (known.empty() ? "" : ", ") + std::string(i.name);
  }
  blockcast::detail::fail<invalid_argument>("unknown layout '" + name + "' (known: " + known + ")");
}

/// Whether layout `l` can hold preset `format` (by preset name).
inline bool holds(layout l, std::string_view format) {
  std::string_view list = info(l).formats;
  if (list == "*") return true;
  while (!list.empty()) {
    const auto space = list.find(' ');
    if (list.substr(0, space) == format) return true;
    if (space == std::string_view::npos) break;
    list.remove_prefix(space + 1);
  }
  return false;
}

}  // namespace blockcast::io
