#include "kernels/golden/canary_golden.hpp"

#include <cmath>

#include "kernels/generator.hpp"

namespace substrate::canary {

std::vector<LayerShape> layers(const CanaryShape& shape) {
  std::vector<LayerShape> out{{"embedding", shape.tokens, shape.d_model}};
  for (std::uint32_t b = 0; b < shape.layers; ++b) {
    out.push_back({"block" + std::to_string(b) + ".attention", shape.tokens, shape.d_model});
    out.push_back({"block" + std::to_string(b) + ".mlp", shape.tokens, shape.d_model});
  }
  out.push_back({"logits", shape.tokens, shape.vocab});
  return out;
}

std::string validate(const CanaryShape& s) {
  if (s.tokens == 0 || s.d_model == 0 || s.heads == 0 || s.ffn == 0 || s.layers == 0 || s.vocab == 0) {
    return "canary: every dimension must be positive";
  }
  if (s.tokens > 256) return "canary: at most 256 tokens (the kernel's score row)";
  if (s.d_model % s.heads != 0) return "canary: d_model must be a multiple of heads";
  if (s.layers > 16 || s.d_model > 1024 || s.ffn > 4096 || s.vocab > 65536) {
    return "canary: at most 16 layers, d_model 1024, ffn 4096, vocab 65536";
  }
  return "";
}

float weight_scale(std::uint32_t k) {
  // Generator values have rms ~1.76; a k-long dot product of unit inputs then has rms ~1.76*sqrt(k).
  return std::ldexp(1.0f, -static_cast<int>(std::lround(std::log2(std::sqrt(static_cast<double>(k)) * 1.76))));
}

float attention_scale(std::uint32_t head_dim) {
  return static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim)));
}

std::uint32_t token(std::uint64_t seed, std::uint32_t position, std::uint32_t vocab) {
  return gen::random_bits(seed, k_token_stream, position) % vocab;
}

}  // namespace substrate::canary

namespace substrate::golden {
namespace {

double weight(std::uint64_t seed, std::uint32_t stream, std::uint64_t index, float scale) {
  return static_cast<double>(gen::random_value(gen::random_bits(seed, stream, index), 23) * scale);
}

std::vector<double> rmsnorm(const std::vector<double>& x, std::uint32_t rows, std::uint32_t cols) {
  std::vector<double> y(x.size());
  for (std::uint32_t t = 0; t < rows; ++t) {
    double sum = 0.0;
    for (std::uint32_t d = 0; d < cols; ++d) sum += x[t * cols + d] * x[t * cols + d];
    const double inv = 1.0 / std::sqrt(sum / cols + static_cast<double>(canary::k_rms_eps));
    for (std::uint32_t d = 0; d < cols; ++d) y[t * cols + d] = x[t * cols + d] * inv;
  }
  return y;
}

// y[t, j] = residual[t, j] + act(sum_k x[t, k] W[k, j]); W generated from (seed, stream).
std::vector<double> matmul(const std::vector<double>& x, std::uint32_t rows, std::uint32_t k, std::uint32_t n,
                           std::uint64_t seed, std::uint32_t stream, bool silu, const std::vector<double>* residual) {
  const float scale = canary::weight_scale(k);
  std::vector<double> w(std::uint64_t{k} * n);
  for (std::uint64_t i = 0; i < w.size(); ++i) w[i] = weight(seed, stream, i, scale);
  std::vector<double> y(std::uint64_t{rows} * n, 0.0);
  for (std::uint32_t t = 0; t < rows; ++t) {
    for (std::uint32_t kk = 0; kk < k; ++kk) {
      const double a = x[t * k + kk];
      for (std::uint32_t j = 0; j < n; ++j) y[t * n + j] += a * w[kk * n + j];
    }
    for (std::uint32_t j = 0; j < n; ++j) {
      double v = y[t * n + j];
      if (silu) v = v / (1.0 + std::exp(-v));
      if (residual) v += (*residual)[t * n + j];
      y[t * n + j] = v;
    }
  }
  return y;
}

std::vector<double> attention(const std::vector<double>& qkv, const CanaryShape& s) {
  const std::uint32_t D = s.d_model, hd = D / s.heads, row = 3 * D;
  const double scale = canary::attention_scale(hd);
  std::vector<double> out(std::uint64_t{s.tokens} * D, 0.0), e(s.tokens);
  for (std::uint32_t t = 0; t < s.tokens; ++t) {
    for (std::uint32_t h = 0; h < s.heads; ++h) {
      double top = -INFINITY, sum = 0.0;
      for (std::uint32_t j = 0; j <= t; ++j) {
        double dot = 0.0;
        for (std::uint32_t d = 0; d < hd; ++d) dot += qkv[t * row + h * hd + d] * qkv[j * row + D + h * hd + d];
        e[j] = dot * scale;
        top = std::max(top, e[j]);
      }
      for (std::uint32_t j = 0; j <= t; ++j) {
        e[j] = std::exp(e[j] - top);
        sum += e[j];
      }
      for (std::uint32_t d = 0; d < hd; ++d) {
        double acc = 0.0;
        for (std::uint32_t j = 0; j <= t; ++j) acc += e[j] * qkv[j * row + 2 * D + h * hd + d];
        out[t * D + h * hd + d] = acc / sum;
      }
    }
  }
  return out;
}

CanaryLayer checkpoint(const std::string& name, std::uint32_t rows, std::uint32_t cols, const std::vector<double>& v) {
  CanaryLayer layer{name, rows, cols, v, std::vector<double>(v.size())};
  double sum_sq = 0.0;
  for (double x : v) sum_sq += x * x;
  const double rms = v.empty() ? 0.0 : std::sqrt(sum_sq / static_cast<double>(v.size()));
  for (std::size_t i = 0; i < v.size(); ++i) layer.bound[i] = canary::k_bound_factor * (std::fabs(v[i]) + rms);
  return layer;
}

}  // namespace

CanaryReference canary(const CanaryShape& s, std::uint64_t seed) {
  CanaryReference ref;
  const std::uint32_t T = s.tokens, D = s.d_model;
  std::vector<double> x(std::uint64_t{T} * D);
  for (std::uint32_t t = 0; t < T; ++t) {
    const std::uint32_t tok = canary::token(seed, t, s.vocab);
    ref.tokens.push_back(tok);
    for (std::uint32_t d = 0; d < D; ++d)
      x[t * D + d] = weight(seed, canary::k_embedding_stream, std::uint64_t{tok} * D + d, 1.0f);
  }
  ref.layers.push_back(checkpoint("embedding", T, D, x));
  for (std::uint32_t b = 0; b < s.layers; ++b) {
    const std::vector<double> qkv =
        matmul(rmsnorm(x, T, D), T, D, 3 * D, seed, canary::block_stream(b, 0), false, nullptr);
    const std::vector<double> a = attention(qkv, s);
    x = matmul(a, T, D, D, seed, canary::block_stream(b, 1), false, &x);
    ref.layers.push_back(checkpoint("block" + std::to_string(b) + ".attention", T, D, x));
    const std::vector<double> u =
        matmul(rmsnorm(x, T, D), T, D, s.ffn, seed, canary::block_stream(b, 2), true, nullptr);
    x = matmul(u, T, s.ffn, D, seed, canary::block_stream(b, 3), false, &x);
    ref.layers.push_back(checkpoint("block" + std::to_string(b) + ".mlp", T, D, x));
  }
  ref.layers.push_back(
      checkpoint("logits", T, s.vocab,
                 matmul(rmsnorm(x, T, D), T, D, s.vocab, seed, canary::output_stream(s.layers), false, nullptr)));
  return ref;
}

}  // namespace substrate::golden
