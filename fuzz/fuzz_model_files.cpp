// SPDX-License-Identifier: MIT
// The command-line tool's file-level paths on arbitrary files: the input is split at the
// first NUL byte into a sharded model's index (JSON) and the bytes of its shard
// "a.safetensors". Every command (inspect, quantize, dequantize; through the index and on the
// shard alone) must succeed or throw blockcast::error, never crash, hang or leave a file
// behind; the input files are never changed.
#include <dirent.h>
#include <unistd.h>

#include <cstdio>
#include <sstream>
#include <string>

#include "cli/commands.hpp"
#include "fuzz_input.hpp"

namespace {

std::size_t entries(const std::string& dir) {
  std::size_t n = 0;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d)) n += std::string(e->d_name) != "." && std::string(e->d_name) != "..";
    ::closedir(d);
  }
  return n;
}

template <class F>
void expect_error_or_success(F&& f) {
  try {
    f();
  } catch (const blockcast::error&) {
    // rejected with a message
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace cli = blockcast::cli;
  static const std::string in = blockcast::test::scratch_dir("blockcast-fuzz-model-");
  static const std::string out = blockcast::test::scratch_dir("blockcast-fuzz-out-");
  const char* bytes = reinterpret_cast<const char*>(data);
  const char* nul = static_cast<const char*>(std::memchr(bytes, 0, size));
  const std::size_t index_size = nul ? static_cast<std::size_t>(nul - bytes) : size;
  blockcast::fuzz::write_file((in + "/m.index.json").c_str(), bytes, index_size);
  blockcast::fuzz::write_file((in + "/a.safetensors").c_str(), nul ? nul + 1 : bytes, nul ? size - index_size - 1 : 0);

  std::ostringstream listing;
  expect_error_or_success([&] { cli::inspect_model(in + "/m.index.json", listing); });
  expect_error_or_success([&] { cli::inspect_model(in + "/a.safetensors", listing); });
  for (const char* format : {"mxfp4", "nvfp4"}) {
    cli::quantize_request q;
    q.format = format;
    q.input = in + "/m.index.json";
    q.output = out + "/q.index.json";
    expect_error_or_success([&] { cli::quantize_model(q); });
    q.input = in + "/a.safetensors";
    q.output = out + "/q.safetensors";
    q.include = "weight";
    expect_error_or_success([&] { cli::quantize_model(q); });
  }
  expect_error_or_success([&] { cli::dequantize_model({in + "/a.safetensors", out + "/d.safetensors", cli::out_dtype::bf16, 1}); });
  expect_error_or_success([&] { cli::dequantize_model({in + "/m.index.json", out + "/d.index.json", cli::out_dtype::f32, 1}); });
  if (entries(in) != 2) blockcast::fuzz::found("a file appeared next to the inputs");
  // every run committed or left nothing: clear the committed outputs so each input starts alike
  if (DIR* d = ::opendir(out.c_str())) {
    while (const dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') ::unlink((out + "/" + e->d_name).c_str());
      else if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") blockcast::fuzz::found("a staging directory was left");
    ::closedir(d);
  }
  return 0;
}
