#include "kernels/golden/golden.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "kernels/generator.hpp"

namespace substrate::golden {

std::vector<float> generate(std::uint64_t seed, std::uint32_t stream, std::uint64_t count, Dtype dtype, Mode mode,
                            std::uint32_t exact_radius) {
  std::vector<float> values(count);
  const std::uint32_t mantissa = mantissa_bits(dtype);
  // One generator call per four elements (gen::random_quad), as the device's fill does.
  gen::Philox4 quad{};
  for (std::uint64_t i = 0; i < count; ++i) {
    if (i % 4 == 0) quad = gen::random_quad(seed, stream, i / 4);
    const std::uint32_t bits = quad.v[i % 4];
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

Status attention_bound_applies(const AttentionShape& shape, double unit_roundoff) {
  // n*u <= 1/2  <=>  n <= 1/(2u).
  const auto largest = static_cast<std::uint64_t>(0.5 / unit_roundoff);
  const auto refuse = [&](const char* what, std::uint64_t value) {
    return Error{ErrorKind::invalid_argument, std::string("attention: ") + what + " " + std::to_string(value) +
                                                  " is outside the error bound's derivation (it needs (" + what +
                                                  " + 1)·u <= 1/2, " + what + " <= " + std::to_string(largest - 1) +
                                                  " at u = 2^" + std::to_string(std::ilogb(unit_roundoff)) +
                                                  "; docs/error-bounds.md)"};
  };
  if (std::uint64_t{shape.head_dim} + 1 > largest) return refuse("head_dim", shape.head_dim);
  if (std::uint64_t{shape.seq_len} + 1 > largest) return refuse("seq_len", shape.seq_len);
  return ok_status();
}

Reference attention(const AttentionShape& shape, Dtype dtype, std::uint64_t seed, double unit_roundoff) {
  const std::uint64_t L = shape.seq_len, H = shape.heads, D = shape.head_dim;
  const std::uint64_t elements = H * L * D;
  const std::vector<float> q = generate(seed, gen::stream_attention_q, elements, dtype, Mode::random, 0);
  const std::vector<float> k = generate(seed, gen::stream_attention_k, elements, dtype, Mode::random, 0);
  const std::vector<float> v = generate(seed, gen::stream_attention_v, elements, dtype, Mode::random, 0);
  const double scale = attention_scale(shape.head_dim);
  const double u = unit_roundoff;
  // One ULP of a normal fp32 value y is at most 2^-23 |y|, whatever the rounding mode.
  constexpr double ulp = 0x1p-23;
  // Vulkan's OpFDiv: 2.5 ULP (SPIR-V precision rules); CUDA's __fdiv_rn (u) is within it.
  constexpr double division = 2.5 * ulp;
  // Largest result an fp32 operation may flush to zero (or round in the subnormal range), absolute.
  constexpr double flush = 0x1p-126;
  const double gamma_dot = gamma(D + 1, u);  // D products and sums, then the scale multiply

  Reference out;
  out.value.assign(elements, 0.0);
  out.bound.assign(elements, 0.0);
  std::vector<double> s(L), w(L), score_error(L), r(L);
  for (std::uint64_t h = 0; h < H; ++h) {
    for (std::uint64_t i = 0; i < L; ++i) {
      const std::uint64_t keys = shape.causal ? i + 1 : L;
      const float* q_row = &q[(h * L + i) * D];
      double max_s = -INFINITY, max_error = 0.0;
      for (std::uint64_t j = 0; j < keys; ++j) {
        const float* k_row = &k[(h * L + j) * D];
        double dot = 0.0, abs_dot = 0.0;
        for (std::uint64_t d = 0; d < D; ++d) {
          const double product = static_cast<double>(q_row[d]) * k_row[d];
          dot += product;
          abs_dot += std::fabs(product);
        }
        s[j] = dot * scale;
        // |ŝ_j − s_j|: rounding of the dot product and the scale, plus a flush per operation.
        score_error[j] = gamma_dot * abs_dot * scale + static_cast<double>(D + 1) * flush;
        max_s = std::max(max_s, s[j]);
        max_error = std::max(max_error, score_error[j]);
      }
      // The device's weight is ê_j = exp(ŝ_j − m̂)(1 + ε_j) with m̂ its own max, within max_error of
      // max_s; relative to w'_j = exp(s_j − m̂) (the same softmax: it is shift-invariant) it is off by
      // ρ_j, |ρ_j| <= r_j = e^θ (1 + ε) − 1 with θ = |ŝ_j − s_j| + u·X_j + flush (the subtraction's
      // rounding) and ε = ULP·(3 + 2(1 + u)X_j) (exp's allowance), X_j bounding |ŝ_j − m̂|.
      const double gamma_sum = gamma(keys, u), gamma_products = gamma(keys + 1, u);
      double weight_sum = 0.0, weighted_a = 0.0;
      for (std::uint64_t j = 0; j < keys; ++j) {
        const double x_bound = (max_s - s[j]) + score_error[j] + max_error;
        const double theta = score_error[j] + u * x_bound + flush;
        r[j] = std::expm1(theta) + std::exp(theta) * ulp * (3.0 + 2.0 * (1.0 + u) * x_bound);
        w[j] = std::exp(s[j] - max_s);
        weight_sum += w[j];
        weighted_a += w[j] * ((1.0 + r[j]) * (1.0 + gamma_sum) - 1.0);
      }
      // Results flushed to zero or rounded in the subnormal range: at most 4 per key (exp, the sum,
      // the product and the sum of the numerator), each below `flush` times |v| <= 4, against a
      // denominator W' >= exp(−max_error) (the device's max key has weight >= that).
      const double underflow = 16.0 * static_cast<double>(keys) * flush * std::exp(max_error);
      // a: relative error of the computed denominator; the derivation needs a < 1.
      const double a = weighted_a / weight_sum + underflow;
      for (std::uint64_t d = 0; d < D; ++d) {
        double numerator = 0.0, numerator_error = 0.0;
        for (std::uint64_t j = 0; j < keys; ++j) {
          const double vj = v[(h * L + j) * D + d];
          numerator += w[j] * vj;
          numerator_error += w[j] * std::fabs(vj) * ((1.0 + r[j]) * (1.0 + gamma_products) - 1.0);
        }
        const double o = numerator / weight_sum;
        const std::uint64_t index = (h * L + i) * D + d;
        out.value[index] = o;
        // |ô − o| <= [e/W (1 + φ) + |o| (φ + a)] / (1 − a) + flush (docs/error-bounds.md), widened by
        // 2^-20 of itself for the golden's own double rounding.
        const double e = numerator_error / weight_sum + underflow;
        out.bound[index] =
            a < 1.0 ? (1.0 + 0x1p-20) * ((e * (1.0 + division) + std::fabs(o) * (division + a)) / (1.0 - a) + flush)
                    : INFINITY;
      }
    }
  }
  return out;
}

}  // namespace substrate::golden
