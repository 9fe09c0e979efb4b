#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>

#include "kernels/generator.hpp"
#include "kernels/golden/golden.hpp"

using namespace substrate;

TEST_CASE("golden: gemm equals a hand-computed product of the generated inputs", "[unit]") {
  const GemmShape shape{2, 3, 2};
  const std::uint32_t radius = 4;
  const auto a = golden::generate(9, gen::stream_gemm_a, 4, Dtype::f32, Mode::exact, radius);
  const auto b = golden::generate(9, gen::stream_gemm_b, 6, Dtype::f32, Mode::exact, radius);
  // The generated values themselves, written out: element e = exact_value(random_bits(seed, stream, e)).
  for (int e = 0; e < 4; ++e) CHECK(a[e] == gen::exact_value(gen::random_bits(9, gen::stream_gemm_a, e), radius));
  const auto reference = golden::gemm(shape, Dtype::f32, Mode::exact, 9, radius);
  REQUIRE(reference.value.size() == 6);
  CHECK(reference.bound.empty());
  CHECK(reference.value[0] == a[0] * b[0] + a[1] * b[3]);
  CHECK(reference.value[1] == a[0] * b[1] + a[1] * b[4]);
  CHECK(reference.value[5] == a[2] * b[2] + a[3] * b[5]);
}

TEST_CASE("golden: random-mode bound is gamma_K times |A||B|", "[unit]") {
  const GemmShape shape{1, 1, 3};
  const auto reference = golden::gemm(shape, Dtype::f32, Mode::random, 3, 0);
  const auto a = golden::generate(3, gen::stream_gemm_a, 3, Dtype::f32, Mode::random, 0);
  const auto b = golden::generate(3, gen::stream_gemm_b, 3, Dtype::f32, Mode::random, 0);
  double abs_sum = 0;
  for (int i = 0; i < 3; ++i) abs_sum += std::fabs(double(a[i]) * b[i]);
  const double gamma3 = 3.0 * 0x1p-24 / (1.0 - 3.0 * 0x1p-24);
  CHECK(reference.bound[0] == Approx(gamma3 * abs_sum).epsilon(1e-6));
  CHECK(golden::gamma(3, golden::k_unit_roundoff_f32) == Approx(gamma3));
}

TEST_CASE("golden: attention of one key is that key's value row", "[unit]") {
  // With a causal mask, query 0 sees only key 0: softmax weight 1, output = v[0].
  const AttentionShape shape{3, 1, 4, true};
  const auto reference = golden::attention(shape, Dtype::f32, 5);
  const auto v = golden::generate(5, gen::stream_attention_v, 12, Dtype::f32, Mode::random, 0);
  for (int d = 0; d < 4; ++d) {
    CHECK(reference.value[d] == Approx(v[d]).epsilon(1e-15));
    CHECK(reference.bound[d] > 0.0);
  }
}

namespace {

// The worst device the attention bound's model allows (docs/error-bounds.md, "Attention"), pushing
// output element (row, d) in direction `up`: every score off by its full allowance Δ_j, the max
// subtraction by u, exp by 3 + 2|x| ULP and the division by 2.5 ULP, the sums by their gamma, each
// in the direction that moves the output the same way. Computed in double, independently of the
// golden's bound code (it only reuses the golden's inputs and gamma).
double adversarial_output(const AttentionShape& shape, std::uint64_t seed, std::uint64_t head, std::uint64_t query,
                          std::uint64_t d, double o, bool up, double u) {
  const std::uint64_t L = shape.seq_len, D = shape.head_dim, count = shape.heads * L * D;
  const auto q = golden::generate(seed, gen::stream_attention_q, count, Dtype::f32, Mode::random, 0);
  const auto k = golden::generate(seed, gen::stream_attention_k, count, Dtype::f32, Mode::random, 0);
  const auto v = golden::generate(seed, gen::stream_attention_v, count, Dtype::f32, Mode::random, 0);
  const double scale = golden::attention_scale(shape.head_dim), ulp = 0x1p-23, sign = up ? 1.0 : -1.0;
  const std::uint64_t keys = shape.causal ? query + 1 : L;
  std::vector<double> s(keys), push(keys);
  double max_s = -INFINITY;
  for (std::uint64_t j = 0; j < keys; ++j) {
    double dot = 0.0, abs_dot = 0.0;
    for (std::uint64_t i = 0; i < D; ++i) {
      const double p = double{q[(head * L + query) * D + i]} * k[(head * L + j) * D + i];
      dot += p;
      abs_dot += std::fabs(p);
    }
    const double vj = v[(head * L + j) * D + d];
    // A weight moves the output towards its value: raise it when that is the direction wanted.
    push[j] = (vj - o) * sign >= 0.0 ? 1.0 : -1.0;
    s[j] = dot * scale + push[j] * golden::gamma(D + 1, u) * abs_dot * scale;
    max_s = std::max(max_s, s[j]);
  }
  double weight_sum = 0.0, numerator = 0.0;
  for (std::uint64_t j = 0; j < keys; ++j) {
    const double x = (s[j] - max_s) * (1.0 - push[j] * u);  // x <= 0: (1 - u) raises exp(x)
    const double weight = std::exp(x) * (1.0 + push[j] * ulp * (3.0 + 2.0 * std::fabs(x)));
    const double vj = v[(head * L + j) * D + d];
    weight_sum += weight;
    numerator += weight * vj * (1.0 + sign * (vj >= 0.0 ? 1.0 : -1.0) * golden::gamma(keys + 1, u));
  }
  weight_sum *= 1.0 - sign * (numerator >= 0.0 ? 1.0 : -1.0) * golden::gamma(keys, u);
  const double quotient = numerator / weight_sum;
  return quotient * (1.0 + sign * (quotient >= 0.0 ? 1.0 : -1.0) * 2.5 * ulp);
}

}  // namespace

// Issue 18, finding 5: the bound charged the division u (Vulkan allows 2.5 ULP) and rested on a
// first-order expansion with 1% headroom, which stops covering the second-order terms once score
// errors reach about 1% (head_dim near 4,096). The derivation is now exact in those terms: the
// worst device of the model stays within it at every element, from head_dim 1 to head_dims where
// the weights' error is tens of percent, at both unit roundoffs a backend reports.
TEST_CASE("golden: the attention bound covers the worst device its model allows, at every head_dim", "[unit]") {
  struct Case {
    AttentionShape shape;
    double u;
  };
  const Case cases[] = {{{4, 1, 1, true}, 0x1p-24},     {{4, 1, 1, false}, 0x1p-23},   {{3, 2, 64, true}, 0x1p-24},
                        {{6, 1, 4096, false}, 0x1p-24}, {{6, 1, 4096, true}, 0x1p-23}, {{5, 1, 16384, false}, 0x1p-24},
                        {{4, 1, 12288, true}, 0x1p-24}};
  for (const Case& c : cases) {
    const auto reference = golden::attention(c.shape, Dtype::f32, 3, c.u);
    const std::uint64_t L = c.shape.seq_len, D = c.shape.head_dim;
    double worst_share = 0.0;
    for (std::uint64_t h = 0; h < c.shape.heads; ++h) {
      for (std::uint64_t i = 0; i < L; ++i) {
        for (std::uint64_t d = 0; d < D; d += std::max<std::uint64_t>(1, D / 16)) {
          const std::uint64_t index = (h * L + i) * D + d;
          const double o = reference.value[index], bound = reference.bound[index];
          if (!std::isfinite(bound)) continue;  // nothing claimed: the probe refuses such rows
          for (bool up : {true, false}) {
            const double error = std::fabs(adversarial_output(c.shape, 3, h, i, d, o, up, c.u) - o);
            worst_share = std::max(worst_share, error / bound);
          }
        }
      }
    }
    INFO("head_dim " << D << " seq_len " << L << " u 2^" << std::ilogb(c.u) << ": worst error / bound " << worst_share);
    CHECK(worst_share <= 1.0);
    CHECK(worst_share > 0.3);  // the adversary is real: it uses a good part of the bound
  }
}

TEST_CASE("golden: the attention bound refuses shapes outside its derivation", "[unit]") {
  CHECK(golden::attention_bound_applies({2048, 8, 4194303, true}, 0x1p-23));
  const auto refused = golden::attention_bound_applies({1, 1, 4194304, true}, 0x1p-23);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().kind == ErrorKind::invalid_argument);
  CHECK_THAT(refused.error().message, Catch::Contains("head_dim 4194304 is outside the error bound's derivation"));
  CHECK(golden::attention_bound_applies({1, 1, 8388607, true}, 0x1p-24));
  CHECK_FALSE(golden::attention_bound_applies({8388608, 1, 1, false}, 0x1p-24));
  // Where score errors swamp the softmax (a >= 1) a row claims nothing: its bound is infinite.
  const auto huge = golden::attention({2, 1, 131072, false}, Dtype::f32, 1);
  CHECK(std::isinf(huge.bound[0]));
  const auto modest = golden::attention({2, 1, 4096, false}, Dtype::f32, 1);
  CHECK(std::isfinite(modest.bound[0]));
}
