// SPDX-License-Identifier: MIT
// tiny_lm (examples/tiny_lm/train.py) in C++ with Eigen: the forward pass of a LLaMA-
// architecture decoder read from a Hugging Face model directory (config.json,
// model.safetensors with the standard tensor names), and its held-out perplexity.
//
//   bytes -> embed_tokens -> per block: x += o_proj(attention(rope(q), rope(k), v) of
//   input_layernorm(x)); x += down_proj(silu(gate_proj(h)) * up_proj(h)) of
//   h = post_attention_layernorm(x) -> norm -> lm_head -> logits over 256 bytes
//
// Every weight is the out x in row-major matrix blockcast quantizes (the stored layout), so a
// quantized model is the same model with some matrices replaced (model::linear). A directory
// written by `blockcast quantize` loads too: its quantized weights are dequantized to float.
#pragma once

#include <Eigen/Dense>

#include <algorithm>
#include <array>
#include <cmath>
#include <fstream>
#include <functional>
#include <iterator>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "blockcast/io/json.hpp"
#include "blockcast/api.hpp"
#include "blockcast/io/quantized_weights.hpp"
#include "blockcast/io/safetensors.hpp"
#include "blockcast/ptq/matrix.hpp"

namespace tiny_lm {

using matrix = blockcast::ptq::matrix;  // row-major float

/// The fields of config.json the forward pass needs.
struct config {
  int vocab = 0, hidden = 0, intermediate = 0, layers = 0, heads = 0, context = 0;
  float rms_norm_eps = 0, rope_theta = 0;
  bool tied = false;

  int head_dim() const { return hidden / heads; }

  static config load(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error(path + ": cannot open");
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto j = blockcast::io::parse_json(text);
    config c;
    c.vocab = j.at("vocab_size").get<int>();
    c.hidden = j.at("hidden_size").get<int>();
    c.intermediate = j.at("intermediate_size").get<int>();
    c.layers = j.at("num_hidden_layers").get<int>();
    c.heads = j.at("num_attention_heads").get<int>();
    c.context = j.at("max_position_embeddings").get<int>();
    c.rms_norm_eps = j.at("rms_norm_eps").get<float>();
    c.rope_theta = j.value("rope_theta", 10000.0f);
    c.tied = j.value("tie_word_embeddings", false);
    if (j.value("num_key_value_heads", c.heads) != c.heads)
      throw std::runtime_error(path + ": grouped-query attention is not implemented here");
    if (c.vocab != 256) throw std::runtime_error(path + ": tiny_lm reads bytes, so vocab_size must be 256");
    if (c.heads <= 0 || c.hidden % c.heads != 0 || c.head_dim() % 2 != 0)
      throw std::runtime_error(path + ": hidden_size must split into heads of even size");
    return c;
  }
};

/// The seven linear layers of a block, in the order a block uses them.
enum class proj { q, k, v, o, gate, up, down };
inline constexpr std::array<proj, 7> projections{proj::q, proj::k, proj::v, proj::o, proj::gate, proj::up, proj::down};
inline const char* name_of(proj p) {
  switch (p) {
    case proj::q: return "self_attn.q_proj";
    case proj::k: return "self_attn.k_proj";
    case proj::v: return "self_attn.v_proj";
    case proj::o: return "self_attn.o_proj";
    case proj::gate: return "mlp.gate_proj";
    case proj::up: return "mlp.up_proj";
    case proj::down: return "mlp.down_proj";
  }
  return "?";
}

/// What a linear layer multiplies (its calibration samples): q, k and v share the normed
/// block input, gate and up the normed attention output.
enum class linear_input { attention, attention_output, mlp, mlp_hidden };
inline linear_input input_of(proj p) {
  switch (p) {
    case proj::q: case proj::k: case proj::v: return linear_input::attention;
    case proj::o: return linear_input::attention_output;
    case proj::gate: case proj::up: return linear_input::mlp;
    case proj::down: return linear_input::mlp_hidden;
  }
  return linear_input::attention;
}

struct block {
  Eigen::RowVectorXf attention_norm, mlp_norm;
  std::array<matrix, 7> linear;  // by proj
  matrix& operator[](proj p) { return linear[static_cast<std::size_t>(p)]; }
  const matrix& operator[](proj p) const { return linear[static_cast<std::size_t>(p)]; }
};

/// Rotary embedding tables: cos and sin of position t times frequency i (context x head_dim,
/// both halves equal), computed in FP32 as train.py does.
struct rope_tables {
  matrix cos, sin;
  rope_tables() = default;
  explicit rope_tables(const config& c) : cos(c.context, c.head_dim()), sin(c.context, c.head_dim()) {
    const int half = c.head_dim() / 2;
    for (int i = 0; i < half; ++i) {
      const float exponent = static_cast<float>(2 * i) / static_cast<float>(c.head_dim());
      const float inv_freq = 1.0f / std::pow(c.rope_theta, exponent);
      for (int t = 0; t < c.context; ++t) {
        const float angle = static_cast<float>(t) * inv_freq;
        cos(t, i) = cos(t, i + half) = std::cos(angle);
        sin(t, i) = sin(t, i + half) = std::sin(angle);
      }
    }
  }
};

struct model {
  config cfg;
  matrix embed, head;  // vocab x hidden
  Eigen::RowVectorXf final_norm;
  std::vector<block> blocks;
  rope_tables rope;

  static model load(const std::string& dir) {
    model m;
    m.cfg = config::load(dir + "/config.json");
    const blockcast::io::safetensors_file f(dir + "/model.safetensors");
    auto shape_text = [](const std::vector<std::uint64_t>& shape) {
      std::string s = "[";
      for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
      return s + "]";
    };
    auto read = [&](const std::string& name, Eigen::Index rows, Eigen::Index cols) {
      const auto& t = f.find(name);
      const bool vector = rows == 1;
      if ((vector && (t.shape.size() != 1 || t.shape[0] != static_cast<std::uint64_t>(cols))) ||
          (!vector && (t.shape.size() != 2 || t.shape[0] != static_cast<std::uint64_t>(rows) ||
                       t.shape[1] != static_cast<std::uint64_t>(cols))))
        throw std::runtime_error(dir + ": " + name + " has shape " + shape_text(t.shape) + ", the config wants " +
                                 (vector ? shape_text({static_cast<std::uint64_t>(cols)})
                                         : shape_text({static_cast<std::uint64_t>(rows), static_cast<std::uint64_t>(cols)})));
      const auto values = f.to_float(t);
      return matrix(Eigen::Map<const matrix>(values.data(), rows, cols));
    };
    const auto quantized = blockcast::io::quantized_weights(f);
    auto read_weight = [&](const std::string& name, Eigen::Index rows, Eigen::Index cols) {
      const auto q = quantized.find(name);
      if (q == quantized.end()) return read(name, rows, cols);
      const auto& w = q->second;
      if (w.rows != static_cast<std::size_t>(rows) || w.cols != static_cast<std::size_t>(cols))
        throw std::runtime_error(dir + ": " + name + " is a quantized " + std::to_string(w.rows) + " x " +
                                 std::to_string(w.cols) + " weight, the config wants " + std::to_string(rows) + " x " +
                                 std::to_string(cols));
      matrix out(rows, cols);
      blockcast::visit_format(w.format, [&](auto tag) {
        using format = typename decltype(tag)::type;
        blockcast::dequantize(blockcast::io::read_quantized_weight<format>(f, w), out.data());
      });
      return out;
    };
    const config& c = m.cfg;
    m.embed = read_weight("model.embed_tokens.weight", c.vocab, c.hidden);
    m.head = c.tied ? m.embed : read_weight("lm_head.weight", c.vocab, c.hidden);
    m.final_norm = read("model.norm.weight", 1, c.hidden);
    for (int l = 0; l < c.layers; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      block b;
      b.attention_norm = read(p + "input_layernorm.weight", 1, c.hidden);
      b.mlp_norm = read(p + "post_attention_layernorm.weight", 1, c.hidden);
      for (proj j : projections) {
        const bool down = j == proj::down, widen = j == proj::gate || j == proj::up;
        b[j] = read_weight(p + name_of(j) + ".weight", widen ? c.intermediate : c.hidden, down ? c.intermediate : c.hidden);
      }
      m.blocks.push_back(std::move(b));
    }
    m.rope = rope_tables(c);
    return m;
  }

  /// The stored name of block l's projection p.
  static std::string tensor_name(int l, proj p) { return "model.layers." + std::to_string(l) + "." + name_of(p) + ".weight"; }

  /// The bytes as the first block's input (T x hidden).
  matrix embed_bytes(const std::uint8_t* bytes, int count) const {
    matrix x(count, cfg.hidden);
    for (int t = 0; t < count; ++t) x.row(t) = embed.row(bytes[t]);
    return x;
  }

  matrix rms_norm(const matrix& x, const Eigen::RowVectorXf& weight) const {
    matrix y(x.rows(), x.cols());
    for (Eigen::Index t = 0; t < x.rows(); ++t) {
      const float mean_square = x.row(t).squaredNorm() / static_cast<float>(x.cols());
      y.row(t) = x.row(t) * (1.0f / std::sqrt(mean_square + cfg.rms_norm_eps));
      y.row(t).array() *= weight.array();
    }
    return y;
  }

  /// Rotates each head's columns of q or k (T x hidden) by position (the rotate-half layout).
  void apply_rope(matrix& x) const {
    const int hd = cfg.head_dim(), half = hd / 2;
    for (Eigen::Index t = 0; t < x.rows(); ++t)
      for (int h = 0; h < cfg.heads; ++h) {
        float* v = x.row(t).data() + h * hd;
        for (int i = 0; i < half; ++i) {
          const float a = v[i], b = v[i + half];
          v[i] = a * rope.cos(t, i) - b * rope.sin(t, i);
          v[i + half] = b * rope.cos(t, i + half) + a * rope.sin(t, i + half);
        }
      }
  }

  /// Causal multi-head attention of normed inputs h (T x hidden) before o_proj.
  matrix attention(const block& b, const matrix& h) const {
    matrix q = h * b[proj::q].transpose(), k = h * b[proj::k].transpose();
    const matrix v = h * b[proj::v].transpose();
    apply_rope(q);
    apply_rope(k);
    const int hd = cfg.head_dim();
    const Eigen::Index T = h.rows();
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    matrix out(T, cfg.hidden);
    for (int head = 0; head < cfg.heads; ++head) {
      matrix scores = (q.middleCols(head * hd, hd) * k.middleCols(head * hd, hd).transpose()) * scale;
      for (Eigen::Index t = 0; t < T; ++t) {
        auto row = scores.row(t).head(t + 1);
        const float top = row.maxCoeff();
        row = (row.array() - top).exp().matrix();
        row /= row.sum();
        scores.row(t).tail(T - t - 1).setZero();
      }
      out.middleCols(head * hd, hd) = scores * v.middleCols(head * hd, hd);
    }
    return out;
  }

  /// SiLU(gate) * up of the normed MLP input g: what down_proj multiplies.
  static matrix mlp_hidden(const block& b, const matrix& g) {
    const matrix gate = g * b[proj::gate].transpose();
    const matrix up = g * b[proj::up].transpose();
    return (gate.array() / (1.0f + (-gate.array()).exp()) * up.array()).matrix();
  }

  /// What the linear layers of `kind` multiply in block b, whose input is x: the block's
  /// forward pass up to there (with b's weights as they are, quantized or not).
  matrix linear_inputs(const block& b, const matrix& x, linear_input kind) const {
    const matrix h = rms_norm(x, b.attention_norm);
    if (kind == linear_input::attention) return h;
    const matrix a = attention(b, h);
    if (kind == linear_input::attention_output) return a;
    const matrix g = rms_norm(x + a * b[proj::o].transpose(), b.mlp_norm);
    if (kind == linear_input::mlp) return g;
    return mlp_hidden(b, g);
  }

  /// One block on its input x (T x hidden).
  matrix block_forward(const block& b, matrix x) const {
    x += attention(b, rms_norm(x, b.attention_norm)) * b[proj::o].transpose();
    x += mlp_hidden(b, rms_norm(x, b.mlp_norm)) * b[proj::down].transpose();
    return x;
  }

  /// Sum of -log p(next byte) over bytes 1..count-1 of a window, each predicted from the
  /// bytes before it, with the blocks `with` (this model's, or quantized ones).
  double window_nll(const std::uint8_t* bytes, int count, const std::vector<block>& with) const {
    matrix x = embed_bytes(bytes, count - 1);
    for (const block& b : with) x = block_forward(b, std::move(x));
    const matrix logits = rms_norm(x, final_norm) * head.transpose();
    double nll = 0;
    for (int t = 0; t + 1 < count; ++t) {
      const float top = logits.row(t).maxCoeff();
      const double log_sum = std::log(static_cast<double>((logits.row(t).array() - top).exp().sum())) + top;
      nll += log_sum - static_cast<double>(logits(t, bytes[t + 1]));
    }
    return nll;
  }
};

/// Runs fn(w) for w in [0, n) on `threads` threads, in contiguous parts.
template <class Fn>
void for_each_window(std::size_t n, unsigned threads, Fn&& fn) {
  const std::size_t parts = std::max<std::size_t>(1, std::min<std::size_t>(threads, n));
  auto run = [&](std::size_t a, std::size_t b) {
    for (std::size_t w = a; w < b; ++w) fn(w);
  };
  std::vector<std::thread> pool;
  for (std::size_t p = 1; p < parts; ++p) pool.emplace_back(run, n * p / parts, n * (p + 1) / parts);
  run(0, n / parts);
  for (auto& t : pool) t.join();
}

/// Held-out perplexity: the text cut into windows of the context length, each byte after a
/// window's first predicted from the ones before it (as train.py measures it).
struct perplexity_result {
  double perplexity = 0, nll_per_byte = 0;
  std::size_t predicted = 0;
};
inline perplexity_result perplexity(const model& m, const std::vector<block>& with, const std::string& text,
                                    unsigned threads = 2) {
  const std::size_t window = static_cast<std::size_t>(m.cfg.context), windows = text.size() / window;
  if (windows == 0) throw std::runtime_error("perplexity: the text is shorter than one window");
  std::vector<double> nll(windows);
  for_each_window(windows, threads, [&](std::size_t w) {
    nll[w] = m.window_nll(reinterpret_cast<const std::uint8_t*>(text.data()) + w * window, static_cast<int>(window), with);
  });
  perplexity_result r;
  double total = 0;
  for (double v : nll) total += v;  // in window order: the same sum for every thread count
  r.predicted = windows * (window - 1);
  r.nll_per_byte = total / static_cast<double>(r.predicted);
  r.perplexity = std::exp(r.nll_per_byte);
  return r;
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open");
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace tiny_lm
