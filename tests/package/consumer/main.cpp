// SPDX-License-Identifier: MIT
#include <blockcast/blockcast.hpp>

#include <cstdio>

int main() {
  const float x[4] = {1.0f, -2.0f, 3.0f, 0.5f};
  float y[4];
  blockcast::fake_quantize<blockcast::mxfp4>(x, y, 4);
  for (int i = 0; i < 4; ++i)
    if (x[i] != y[i]) return 1;  // these values are on the MXFP4 grid
  std::puts("consumer ok");
  return 0;
}
