// SPDX-License-Identifier: MIT
// The command line of `blockcast` on arbitrary arguments (the input split at NUL bytes): the
// parser must answer with a command, help, or a usage error (exit code 2 and one line).
#include <string>
#include <vector>

#include "cli/arguments.hpp"
#include "fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::string> args{"blockcast"};
  std::string current;
  for (std::size_t i = 0; i < size && args.size() < 32; ++i) {
    if (data[i] == 0) {
      args.push_back(current);
      current.clear();
    } else {
      current.push_back(static_cast<char>(data[i]));
    }
  }
  if (!current.empty()) args.push_back(current);
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  const auto r = blockcast::cli::parse_arguments(static_cast<int>(argv.size()), argv.data());
  using command = blockcast::cli::invocation::command;
  if (r.what == command::none) {
    if (r.exit_code != 0 && r.exit_code != 2) blockcast::fuzz::found("unexpected exit code");
    if (r.exit_code == 2 && r.text.find('\n') != std::string::npos) blockcast::fuzz::found("a usage error of more than one line");
  }
  return 0;
}
