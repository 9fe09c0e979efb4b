#include "kernels/golden/golden.hpp"

#include <algorithm>
#include <cmath>

#include "kernels/generator.hpp"

namespace substrate::golden {

std::vector<float> generate(std::uint64_t seed, std::uint32_t stream, std::uint64_t count, Dtype dtype, Mode mode,
                            std::uint32_t exact_radius) {
  std::vector<float> values(count);
  const std::uint32_t mantissa = mantissa_bits(dtype);
  for (std::uint64_t i = 0; i < count; ++i) {
    const std::uint32_t bits = gen::random_bits(seed, stream, i);
    values[i] = mode == Mode::exact ? gen::exact_value(bits, exact_radius) : gen::random_value(bits, mantissa);
  }
  return values;
}

double gamma(std::uint64_t n, double unit_roundoff) {
  const double nu = static_cast<double>(n) * unit_roundoff;
  return nu / (1.0 - nu);
}

Reference gemm(const GemmShape& shape, Dtype dtype, Mode mode, std::uint64_t seed, std::uint32_t exact_radius) {
  const std::uint64_t m = shape.m, n = shape.n, k = shape.k;
  const std::vector<float> a = generate(seed, gen::stream_gemm_a, m * k, dtype, mode, exact_radius);
  const std::vector<float> b = generate(seed, gen::stream_gemm_b, k * n, dtype, mode, exact_radius);
  Reference out;
  out.value.assign(m * n, 0.0);
  const bool bounded = mode == Mode::random;
  if (bounded) out.bound.assign(m * n, 0.0);
  // i-k-j order: the inner loop runs over contiguous rows of B and C and vectorises.
  for (std::uint64_t i = 0; i < m; ++i) {
    double* c_row = &out.value[i * n];
    double* abs_row = bounded ? &out.bound[i * n] : nullptr;
    for (std::uint64_t p = 0; p < k; ++p) {
      const double a_ip = a[i * k + p];
      const float* b_row = &b[p * n];
      for (std::uint64_t j = 0; j < n; ++j) c_row[j] += a_ip * static_cast<double>(b_row[j]);
      if (bounded) {
        const double abs_a = std::fabs(a_ip);
        for (std::uint64_t j = 0; j < n; ++j) abs_row[j] += abs_a * std::fabs(static_cast<double>(b_row[j]));
      }
    }
  }
  if (bounded) {
    // Device error (fp32, any order) plus the golden's own (fp64) error, twice for the rounding
    // in computing |A||B| itself.
    const double factor = gamma(k, k_unit_roundoff_f32) + 2.0 * gamma(k, k_unit_roundoff_f64);
    for (double& bound : out.bound) bound *= factor;
  }
  return out;
}

float attention_scale(std::uint32_t head_dim) {
  return static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim)));
}

Reference attention(const AttentionShape& shape, Dtype dtype, std::uint64_t seed) {
  const std::uint64_t L = shape.seq_len, H = shape.heads, D = shape.head_dim;
  const std::uint64_t elements = H * L * D;
  const std::vector<float> q = generate(seed, gen::stream_attention_q, elements, dtype, Mode::random, 0);
  const std::vector<float> k = generate(seed, gen::stream_attention_k, elements, dtype, Mode::random, 0);
  const std::vector<float> v = generate(seed, gen::stream_attention_v, elements, dtype, Mode::random, 0);
  const double scale = attention_scale(shape.head_dim);
  const double u = k_unit_roundoff_f32;
  const double gamma_dot = gamma(D + 1, u);  // D products and sums, then the scale multiply

  Reference out;
  out.value.assign(elements, 0.0);
  out.bound.assign(elements, 0.0);
  std::vector<double> s(L), w(L), eta(L);
  for (std::uint64_t h = 0; h < H; ++h) {
    for (std::uint64_t i = 0; i < L; ++i) {
      const std::uint64_t keys = shape.causal ? i + 1 : L;
      const float* q_row = &q[(h * L + i) * D];
      double max_s = -INFINITY;
      std::vector<double> score_error(keys);
      for (std::uint64_t j = 0; j < keys; ++j) {
        const float* k_row = &k[(h * L + j) * D];
        double dot = 0.0, abs_dot = 0.0;
        for (std::uint64_t d = 0; d < D; ++d) {
          const double product = static_cast<double>(q_row[d]) * k_row[d];
          dot += product;
          abs_dot += std::fabs(product);
        }
        s[j] = dot * scale;
        score_error[j] = gamma_dot * abs_dot * scale;
        max_s = std::max(max_s, s[j]);
      }
      double weight_sum = 0.0, weighted_eta = 0.0;
      for (std::uint64_t j = 0; j < keys; ++j) {
        const double x = s[j] - max_s;
        w[j] = std::exp(x);
        // Score error, rounding of the max subtraction, and exp's allowed 3 + 2|x| ULP (<= 2u each).
        eta[j] = score_error[j] + u * std::fabs(x) + 2.0 * u * (3.0 + 2.0 * std::fabs(x));
        weight_sum += w[j];
        weighted_eta += w[j] * eta[j];
      }
      const double gamma_sum = gamma(keys, u), gamma_products = gamma(keys + 1, u);
      const double denominator_error = (weighted_eta + weight_sum * gamma_sum) / weight_sum;
      for (std::uint64_t d = 0; d < D; ++d) {
        double numerator = 0.0, numerator_error = 0.0;
        for (std::uint64_t j = 0; j < keys; ++j) {
          const double vj = v[(h * L + j) * D + d];
          numerator += w[j] * vj;
          numerator_error += w[j] * std::fabs(vj) * (eta[j] + gamma_products);
        }
        const double o = numerator / weight_sum;
        const std::uint64_t index = (h * L + i) * D + d;
        out.value[index] = o;
        // First-order terms; 1% headroom covers the second-order ones (eta stays below 1e-3 at the probe shapes).
        out.bound[index] = 1.01 * (numerator_error / weight_sum + std::fabs(o) * (denominator_error + u));
      }
    }
  }
  return out;
}

}  // namespace substrate::golden
