#include <catch2/catch.hpp>

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
