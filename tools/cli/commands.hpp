// SPDX-License-Identifier: MIT
// The command-line tool's work, separate from its argument parsing (main.cpp) so the tests
// can call it (compiled once, in commands.cpp): quantize / dequantize whole models (one safetensors file, a sharded model
// through its model.safetensors.index.json, a Hugging Face model directory, or a GGUF file)
// in blockcast's own layout or an engine's (io/layout.hpp), inspect files, list formats.
//
// Streaming: a tensor is read from the memory-mapped input in slices of rows, converted and
// written (pipeline.hpp), so peak memory is a few slices plus the calibration inputs, not the
// tensor or the model. Outputs are all or nothing (io/output_set.hpp): every file is staged
// and all of them (every shard, then the index) are renamed into place together, or none.
// No output may be one of the run's input files (compared by inode, not by name), except a
// single file replaced by its own quantized version.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "options.hpp"
#include "parts.hpp"
#include "run.hpp"

namespace blockcast::cli {

/// Quantizes a model (a safetensors file, a sharded model's index, a model directory or a GGUF
/// file); returns one report per tensor.
std::vector<tensor_report> quantize_model(const quantize_request& req, const progress_fn& progress = {});

/// Decodes every quantized weight of a model (a safetensors file or index in any layout, a
/// model directory, a GGUF file) back to BF16 or F32, in the shapes the model has; other
/// tensors are copied. A directory's config loses its quantization_config.
void dequantize_model(const dequantize_request& req);

/// The `inspect` listing of a model (file, index, directory or GGUF file). Quantized weights
/// are checked against their bytes as dequantize checks them; names are printed escaped.
void inspect_model(const std::string& path, std::ostream& os);

/// The `formats` table.
void list_formats(std::ostream& os);

}  // namespace blockcast::cli
