// SPDX-License-Identifier: MIT
// The command line of `blockcast`, parsed with CLI11 into what to do, without doing it (so
// the parser can be tested and fuzzed on its own).
#pragma once

#include <CLI/CLI.hpp>

#include <sstream>
#include <string>
#include <vector>

#include "commands.hpp"
#include "options.hpp"

namespace blockcast::cli {

/// Text from the command line or a file made printable on one line (an argument may hold a
/// newline, a tensor name an escape sequence).
inline std::string one_line(const std::string& text) { return io::printable(text, 4096); }

struct invocation {
  enum class command { none, formats, quantize, inspect, dequantize, merge };
  command what = command::none;
  quantize_request quantize;
  dequantize_request dequantize;
  std::string inspect_path, merge_output;
  int exit_code = 0;   // with command::none: 0 after --help, 2 for a usage error
  std::string text;    // with command::none: the help text, or the one-line error
};

inline invocation parse_arguments(int argc, const char* const* argv) {
  invocation r;
  CLI::App app{"blockcast: block-scaled quantization of models (safetensors, Hugging Face directories, GGUF; MX and NVFP4 "
               "formats; RTN, ED, GPTQ) into checkpoints vLLM, SGLang, transformers and llama.cpp load",
               "blockcast"};
  app.require_subcommand(1);
  std::vector<std::string> format_names;
  for (const auto& f : preset_formats()) format_names.emplace_back(f.name);

  auto* formats = app.add_subcommand("formats", "list the preset formats: bits per value, range, block size");

  auto& q = r.quantize;
  auto* quantize = app.add_subcommand("quantize", "quantize a model's weight tensors (2-D or more; others are copied)");
  quantize->add_option("input", q.input, "a Hugging Face model directory, model.safetensors, a sharded model's "
                                         "model.safetensors.index.json, or a .gguf file")
      ->required()->check(CLI::ExistingPath);
  quantize->add_option("-o,--output", q.output, "output: a directory for a model directory, a file (an index.json for a sharded "
                                                "model: shards go next to it), a .gguf for a GGUF input")->required();
  quantize->add_option("--format", q.format, "element format")->check(CLI::IsMember(format_names))->capture_default_str();
  std::string method_name(name_of(q.method)), layout_name;
  quantize->add_option("--method", method_name, "rtn, ed (error diffusion) or gptq")
      ->check(CLI::IsMember(names_of(methods)))->capture_default_str();
  quantize->add_option("--layout", layout_name, "how weights are stored: " + joined(layout_names(true)) +
                                                    " (default: gguf for a .gguf input, else blockcast)")
      ->check(CLI::IsMember(layout_names(true)));
  quantize->add_option("--calibration", q.calibration, "safetensors file with '<weight>.inputs' (N x K layer inputs) or their statistics (docs/calibration_stats.md), for ed and gptq; or a llama.cpp importance matrix (.gguf, .dat), for ed")
      ->check(CLI::ExistingFile);
  quantize->add_option("--include", q.include, "quantize only tensors whose name matches this regex")->capture_default_str();
  quantize->add_option("--exclude", q.exclude, "copy tensors whose name matches this regex unchanged");
  quantize->add_option("--part", q.part, "I/N: convert only part I of N of a sharded model (its shards and a manifest); "
                                         "then `blockcast merge` writes the index")->check([](const std::string& v) {
    try {
      parse_part(v);
      return std::string();
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
  });
  quantize->add_option("--threads", q.threads, "threads (default: the CPUs this process may use)")->check(CLI::Range(1u, 1024u))->capture_default_str();

  auto* inspect = app.add_subcommand("inspect", "list a file's tensors, formats, sizes and compression ratio");
  inspect->add_option("model", r.inspect_path, "a model directory, .safetensors file, sharded model's index.json or .gguf file")
      ->required()->check(CLI::ExistingPath);

  auto& d = r.dequantize;
  auto* dequantize = app.add_subcommand("dequantize", "decode quantized tensors back to BF16 or F32");
  dequantize->add_option("input", d.input, "a quantized model: directory, .safetensors, index.json or .gguf (any layout)")
      ->required()->check(CLI::ExistingPath);
  dequantize->add_option("-o,--output", d.output, "output: a directory, a file (an index.json for a sharded model) or a .gguf")->required();
  std::string dtype_name(name_of(d.dtype));
  dequantize->add_option("--dtype", dtype_name, "bf16 or f32")->check(CLI::IsMember(names_of(out_dtypes)))->capture_default_str();
  dequantize->add_option("--threads", d.threads, "threads (default: the CPUs this process may use)")->check(CLI::Range(1u, 1024u))->capture_default_str();

  auto* merge = app.add_subcommand("merge", "check the parts of a split conversion (--part) and write their index");
  merge->add_option("output", r.merge_output, "the index the parts were written for (OUT_DIR/model.safetensors.index.json)")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help
    std::ostringstream out, err;
    r.exit_code = app.exit(e, out, err);
    r.text = out.str() + err.str();
    return r;
  } catch (const CLI::ParseError& e) {
    r.exit_code = 2;
    r.text = "blockcast: error: " + one_line(e.what()) + " (see blockcast --help)";
    return r;
  }
  q.method = parse_choice(methods, method_name, "method");
  if (!layout_name.empty()) q.layout = io::parse_layout(layout_name);
  d.dtype = parse_choice(out_dtypes, dtype_name, "dtype");
  using c = invocation::command;
  r.what = *formats      ? c::formats
           : *quantize   ? c::quantize
           : *inspect    ? c::inspect
           : *dequantize ? c::dequantize
           : *merge      ? c::merge
                         : c::none;
  return r;
}

}  // namespace blockcast::cli
