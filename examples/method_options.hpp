// SPDX-License-Identifier: MIT
// The ED and GPTQ options both demos take from their command lines (what
// docs/error_diffusion.md, "The options", describes), so the demos measure what each does.
#pragma once

#include <CLI/CLI.hpp>

#include "blockcast/ptq.hpp"

namespace demo {

struct method_options {
  std::size_t sketch = blockcast::ptq::input_stats::auto_sketch;  // ED's statistics
  blockcast::ptq::ed_options ed;                                 // without cast: the demo's
  blockcast::ptq::gptq_options gptq;

  void add_to(CLI::App& app) {
    app.add_option("--sketch", sketch, "ED's statistics: sketch size (K or more: exact H; 0: exact while K <= 1024, else 128)")->capture_default_str();
    app.add_option("--rank", ed.rank, "ED's rank (0: min(K, 64 x 4096 / K) on exact H, else min(64, K); both at most N / 4 and the sketch size)")->capture_default_str();
    app.add_option("--sweeps", ed.sweeps, "ED's refinement sweeps after the greedy pass")->capture_default_str();
    app.add_flag_callback("--no-scale-search", [this] { ed.scale_search = false; },
                          "ED takes each block's amax scale (default: the best of it and its neighbouring codes)");
    app.add_flag_callback("--gptq-scale-search", [this] { gptq.scale_search = true; },
                          "GPTQ chooses each block's scale among its neighbouring codes, as ED does");
    app.add_flag_callback("--scale-from-optimum", [this] { ed.scale_from = blockcast::ptq::ed_scale_source::block_optimum; },
                          "ED chooses block scales from the block's optimum, as GPTQ does (default: from the adjusted values)");
  }

  blockcast::ptq::ed_options ed_with(const blockcast::cast_options& cast) const {
    auto opt = ed;
    opt.cast = cast;
    return opt;
  }
  blockcast::ptq::gptq_options gptq_with(const blockcast::cast_options& cast) const {
    auto opt = gptq;
    opt.cast = cast;
    return opt;
  }
};

}  // namespace demo
