// SPDX-License-Identifier: MIT
// The GGUF reader on arbitrary files: it must accept or reject with io_error, never crash,
// leak or read out of bounds. Accepted files are read through (every tensor's bytes, by the
// mapping and by pread) and written again, which must give a file that reads back the same.
#include <blockcast/io/gguf.hpp>

#include <unistd.h>

#include <cstdio>
#include <string>

#include "fuzz_input.hpp"

using namespace blockcast;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = fuzz::scratch_file("input.gguf");
  static const std::string again = path + ".again";
  if (!fuzz::write_file(path.c_str(), data, size)) return 0;
  try {
    const io::gguf_file file(path);
    unsigned sum = 0;
    std::vector<std::uint8_t> copy;
    for (const auto& t : file.tensors()) {
      for (auto b : file.bytes(t)) sum += b;
      copy.resize(static_cast<std::size_t>(t.bytes));
      file.read(t, 0, copy.size(), copy.data());
    }
    io::gguf_stream_writer w(again);
    for (const auto& [key, value] : file.metadata()) w.set_metadata(key, value);
    for (const auto& t : file.tensors()) w.declare(t.name, t.dims, t.type);
    for (const auto& t : file.tensors()) w.write(t.name, file.bytes(t));
    w.commit();
    const io::gguf_file back(again);
    if (back.tensors().size() != file.tensors().size() || back.metadata().size() != file.metadata().size())
      fuzz::found("a GGUF file written again has other tensors or metadata");
    for (std::size_t i = 0; i < back.metadata().size(); ++i)
      if (!(back.metadata()[i].second == file.metadata()[i].second)) fuzz::found("a metadata value changed on writing again");
    std::remove(again.c_str());
    (void)sum;
  } catch (const blockcast::error&) {
    // rejected with a message: the expected outcome for most inputs
  }
  return 0;
}
