// SPDX-License-Identifier: MIT
// The demo's Fashion-MNIST CNN (examples/fashion_mnist/train.py) in C++ with Eigen:
// convolutions as im2col + GEMM. Every weight is kept as the m x K row-major matrix blockcast
// quantizes: a convolution's [out, in, 3, 3] as out x (in * 9), columns in (in, ky, kx) order,
// the order of the stored tensor, so blocks run along the same values as in the file.
//
//   conv1 1->16, conv2 16->32, conv3 32->64 (3x3, padding 1, ReLU, 2x2 max-pool)
//   fc1 576->128 (ReLU), fc2 128->10; flattening is (C, H, W) as in PyTorch.
#pragma once

#include <Eigen/Dense>

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include "blockcast/io/safetensors.hpp"
#include "blockcast/ptq/matrix.hpp"

namespace fashion {

using matrix = blockcast::ptq::matrix;  // row-major float

inline constexpr int image_side = 28, classes = 10;

/// Activations of a batch, NHWC: rows are (image, y, x), columns channels. Linear layers'
/// activations have h = w = 1.
struct activation {
  int n = 0, h = 0, w = 0, c = 0;
  matrix x;
};

struct layer {
  std::string name;                    // the weight tensor's name, e.g. "conv2.weight"
  std::vector<std::uint64_t> shape;    // as stored
  matrix weight;                       // out x K
  Eigen::RowVectorXf bias;
  bool conv = false;                   // 3x3 convolution + ReLU + max-pool; else linear
  bool relu = true;                    // false for the last layer (logits)
};

/// The network: its layers and the input normalisation the training used.
struct cnn {
  std::vector<layer> layers;
  float mean = 0, stddev = 1;

  static cnn load(const std::string& path) {
    const blockcast::io::safetensors_file f(path);
    cnn net;
    net.mean = std::stof(f.metadata().at("input_mean"));
    net.stddev = std::stof(f.metadata().at("input_std"));
    for (const char* name : {"conv1", "conv2", "conv3", "fc1", "fc2"}) {
      layer l;
      l.name = std::string(name) + ".weight";
      const auto& w = f.find(l.name);
      l.shape = w.shape;
      l.conv = w.shape.size() == 4;
      const auto rows = static_cast<Eigen::Index>(w.shape[0]);
      const auto values = f.to_float(w);
      l.weight = Eigen::Map<const matrix>(values.data(), rows, static_cast<Eigen::Index>(values.size()) / rows);
      const auto bias = f.to_float(f.find(std::string(name) + ".bias"));
      if (static_cast<Eigen::Index>(bias.size()) != rows) throw std::runtime_error(path + ": " + name + ".bias has the wrong size");
      l.bias = Eigen::Map<const Eigen::RowVectorXf>(bias.data(), rows);
      l.relu = std::string(name) != "fc2";
      net.layers.push_back(std::move(l));
    }
    return net;
  }

  /// Images (n x 784 bytes, 0..255) as the first layer's activation.
  activation input(const std::uint8_t* pixels, int n) const {
    activation a{n, image_side, image_side, 1, matrix(n * image_side * image_side, 1)};
    for (Eigen::Index i = 0; i < a.x.rows(); ++i) a.x(i, 0) = (static_cast<float>(pixels[i]) / 255.0f - mean) / stddev;
    return a;
  }

  /// What layer l multiplies by its weights: im2col patches (one row per output pixel,
  /// columns (channel, ky, kx)) for a convolution, the (C, H, W)-flattened activation for a
  /// linear layer. These rows are the layer's calibration samples.
  matrix layer_input(std::size_t l, const activation& a) const {
    if (layers[l].conv) {
      matrix p = matrix::Zero(a.x.rows(), a.c * 9);
      for (int img = 0; img < a.n; ++img)
        for (int y = 0; y < a.h; ++y)
          for (int x = 0; x < a.w; ++x) {
            const Eigen::Index row = (static_cast<Eigen::Index>(img) * a.h + y) * a.w + x;
            for (int ky = 0; ky < 3; ++ky)
              for (int kx = 0; kx < 3; ++kx) {
                const int sy = y + ky - 1, sx = x + kx - 1;
                if (sy < 0 || sy >= a.h || sx < 0 || sx >= a.w) continue;
                const Eigen::Index src = (static_cast<Eigen::Index>(img) * a.h + sy) * a.w + sx;
                for (int c = 0; c < a.c; ++c) p(row, c * 9 + ky * 3 + kx) = a.x(src, c);
              }
          }
      return p;
    }
    if (a.h == 1 && a.w == 1) return a.x;
    matrix flat(a.n, a.c * a.h * a.w);
    for (int img = 0; img < a.n; ++img)
      for (int y = 0; y < a.h; ++y)
        for (int x = 0; x < a.w; ++x)
          for (int c = 0; c < a.c; ++c)
            flat(img, (c * a.h + y) * a.w + x) = a.x((static_cast<Eigen::Index>(img) * a.h + y) * a.w + x, c);
    return flat;
  }

  /// Layer l's output activation from its input (layer_input) and a weight matrix (the
  /// float one, or a quantized one of the same shape).
  activation layer_output(std::size_t l, const activation& in, const matrix& input, const matrix& weight) const {
    const layer& L = layers[l];
    matrix y = input * weight.transpose();
    y.rowwise() += L.bias;
    if (L.relu) y = y.cwiseMax(0.0f);
    if (!L.conv) return {in.n, 1, 1, static_cast<int>(y.cols()), std::move(y)};
    activation out{in.n, in.h / 2, in.w / 2, static_cast<int>(y.cols()), matrix()};
    out.x.resize(static_cast<Eigen::Index>(out.n) * out.h * out.w, out.c);
    for (int img = 0; img < out.n; ++img)
      for (int oy = 0; oy < out.h; ++oy)
        for (int ox = 0; ox < out.w; ++ox) {
          auto at = [&](int y0, int x0) { return y.row((static_cast<Eigen::Index>(img) * in.h + y0) * in.w + x0); };
          out.x.row((static_cast<Eigen::Index>(img) * out.h + oy) * out.w + ox) =
              at(2 * oy, 2 * ox).cwiseMax(at(2 * oy, 2 * ox + 1)).cwiseMax(at(2 * oy + 1, 2 * ox)).cwiseMax(at(2 * oy + 1, 2 * ox + 1));
        }
    return out;
  }

  /// Logits (n x 10) of n images with the given weights (one matrix per layer), computed in
  /// batches on `threads` threads.
  matrix logits(const std::uint8_t* pixels, int n, const std::vector<matrix>& weights, unsigned threads = 2) const {
    constexpr int batch = 250;
    matrix out(n, classes);
    const int batches = (n + batch - 1) / batch;
    auto run = [&](int b0, int b1) {
      for (int b = b0; b < b1; ++b) {
        const int first = b * batch, count = std::min(batch, n - first);
        activation a = input(pixels + static_cast<std::size_t>(first) * image_side * image_side, count);
        for (std::size_t l = 0; l < layers.size(); ++l) a = layer_output(l, a, layer_input(l, a), weights[l]);
        out.middleRows(first, count) = a.x;
      }
    };
    std::vector<std::thread> pool;
    const int parts = static_cast<int>(std::max(1u, std::min<unsigned>(threads, static_cast<unsigned>(batches))));
    for (int t = 1; t < parts; ++t) pool.emplace_back(run, batches * t / parts, batches * (t + 1) / parts);
    run(0, batches / parts);
    for (auto& t : pool) t.join();
    return out;
  }

  std::vector<matrix> float_weights() const {
    std::vector<matrix> w;
    for (const auto& l : layers) w.push_back(l.weight);
    return w;
  }
};

/// Top-1 correct predictions of logits against labels.
inline int correct(const matrix& logits, const std::uint8_t* labels) {
  int hits = 0;
  for (Eigen::Index i = 0; i < logits.rows(); ++i) {
    Eigen::Index best = 0;
    logits.row(i).maxCoeff(&best);
    hits += best == labels[i];
  }
  return hits;
}

}  // namespace fashion
