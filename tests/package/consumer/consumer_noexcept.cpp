// SPDX-License-Identifier: MIT
// blockcast in a program built with -fno-exceptions: calls work, and an error (an unknown
// format name) prints its message and aborts. The error is provoked in a child process so
// this program can check how it ended.
#include <blockcast/blockcast.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>

static_assert(!BLOCKCAST_HAS_EXCEPTIONS, "this consumer must be compiled with -fno-exceptions");

int main() {
  const float x[4] = {1.0f, -2.0f, 3.0f, 0.5f};
  float y[4];
  blockcast::cast_options opt;
  opt.threads = 2;
  blockcast::fake_quantize<blockcast::mxfp4>(x, y, 4, opt);
  for (int i = 0; i < 4; ++i)
    if (x[i] != y[i]) return 1;

  int out[2];
  if (::pipe(out) != 0) return 1;
  const pid_t child = ::fork();
  if (child == 0) {
    ::dup2(out[1], 2);
    blockcast::find_format("mxfp3");  // not a preset: must abort with the message
    _exit(0);
  }
  ::close(out[1]);
  std::string message;
  char buffer[256];
  for (ssize_t n; (n = ::read(out[0], buffer, sizeof buffer)) > 0;) message.append(buffer, static_cast<std::size_t>(n));
  int status = 0;
  ::waitpid(child, &status, 0);
  const bool aborted = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
  const bool said = message.find("unknown format 'mxfp3'") != std::string::npos;
  std::printf("without exceptions: %s, stderr: %s", aborted ? "aborted" : "did not abort", message.c_str());
  return aborted && said ? 0 : 1;
}
