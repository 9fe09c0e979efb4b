// kernels/cuda/generator.cuh (compiled here by the host C++ compiler, the same source nvcc
// compiles into the kernels) against kernels/generator.hpp, bit for bit.
#include <catch2/catch.hpp>

#include <cstring>

#include "kernels/cuda/generator.cuh"
#include "kernels/generator.hpp"

using namespace substrate;

namespace {
std::uint32_t bits_of(float value) {
  std::uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}
}  // namespace

TEST_CASE("cuda: generator constants equal kernels/generator.hpp", "[cuda]") {
  CHECK(cuda_gen::k_philox_m0 == gen::k_philox_m0);
  CHECK(cuda_gen::k_philox_m1 == gen::k_philox_m1);
  CHECK(cuda_gen::k_philox_w0 == gen::k_philox_w0);
  CHECK(cuda_gen::k_philox_w1 == gen::k_philox_w1);
  CHECK(cuda_gen::k_stream_gemm_a == gen::stream_gemm_a);
  CHECK(cuda_gen::k_stream_gemm_b == gen::stream_gemm_b);
  CHECK(cuda_gen::k_stream_attention_q == gen::stream_attention_q);
  CHECK(cuda_gen::k_stream_attention_k == gen::stream_attention_k);
  CHECK(cuda_gen::k_stream_attention_v == gen::stream_attention_v);
  CHECK(cuda_gen::k_stream_memory_random == gen::stream_memory_random);
  CHECK(cuda_gen::k_stream_memory_retention == gen::stream_memory_retention);
  CHECK(cuda_gen::k_mantissa_bits_f32 == gen::k_mantissa_bits_f32);
  CHECK(cuda_gen::k_mantissa_bits_f16 == gen::k_mantissa_bits_f16);
  CHECK(cuda_gen::k_mantissa_bits_bf16 == gen::k_mantissa_bits_bf16);
}

TEST_CASE("cuda: Philox known-answer vectors (Random123) through the CUDA generator", "[cuda]") {
  const auto zero = cuda_gen::philox4x32_10(0, 0, 0, 0, 0, 0);
  CHECK(zero.v[0] == 0x6627e8d5u);
  CHECK(zero.v[1] == 0xe169c58du);
  CHECK(zero.v[2] == 0xbc57ac4cu);
  CHECK(zero.v[3] == 0x9b00dbd8u);
  const auto ones =
      cuda_gen::philox4x32_10(0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu);
  CHECK(ones.v[0] == 0x408f276du);
  CHECK(ones.v[3] == 0x6d5451fdu);
  const auto pi = cuda_gen::philox4x32_10(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u);
  CHECK(pi.v[0] == 0xd16cfe09u);
  CHECK(pi.v[1] == 0x94fdccebu);
  CHECK(pi.v[2] == 0x5001e420u);
  CHECK(pi.v[3] == 0x24126ea1u);
}

TEST_CASE("cuda: random_bits equals gen::random_bits over seeds and streams and indices", "[cuda]") {
  const std::uint64_t seeds[] = {0, 1, 42, 0xFFFFFFFFull, 0x100000000ull, 0xDEADBEEFCAFEF00Dull, ~0ull};
  const std::uint32_t streams[] = {1, 2, 3, 4, 5, 6, 7, 100, 0xFFFFFFFFu};
  const std::uint64_t bases[] = {0, 0xFFFFFF00ull, 0x100000000ull - 128, 1ull << 40, ~0ull - 256};
  std::uint64_t compared = 0;
  for (auto seed : seeds)
    for (auto stream : streams)
      for (auto base : bases)
        for (std::uint64_t i = 0; i < 256; ++i) {
          const std::uint64_t index = base + i;
          REQUIRE(cuda_gen::random_bits(seed, stream, index) == gen::random_bits(seed, stream, index));
          REQUIRE(cuda_gen::random_quad(seed, stream, index).v[index % 4] ==
                  gen::random_quad(seed, stream, index).v[index % 4]);
          ++compared;
        }
  for (std::uint64_t i = 0; i < 200000; ++i) {
    REQUIRE(cuda_gen::random_bits(12345, gen::stream_gemm_a, i) == gen::random_bits(12345, gen::stream_gemm_a, i));
    ++compared;
  }
  CHECK(compared > 250000);
}

TEST_CASE("cuda: value mapping and 16-bit encodings equal kernels/generator.hpp", "[cuda]") {
  for (std::uint32_t i = 0; i < 100000; ++i) {
    const std::uint32_t bits = gen::random_bits(99, 3, i);
    for (std::uint32_t radius : {1u, 5u, 16u, 64u}) {
      const float exact = cuda_gen::exact_value(bits, radius);
      REQUIRE(bits_of(exact) == bits_of(gen::exact_value(bits, radius)));
      REQUIRE(cuda_gen::to_half_bits_exact(exact) == gen::to_half_bits_exact(exact));
      REQUIRE(cuda_gen::to_bf16_bits_exact(exact) == gen::to_bf16_bits_exact(exact));
    }
    for (std::uint32_t mbits : {gen::k_mantissa_bits_f32, gen::k_mantissa_bits_f16, gen::k_mantissa_bits_bf16}) {
      const float value = cuda_gen::random_value(bits, mbits);
      REQUIRE(bits_of(value) == bits_of(gen::random_value(bits, mbits)));
    }
    const float half_value = cuda_gen::random_value(bits, gen::k_mantissa_bits_f16);
    const std::uint16_t half = cuda_gen::to_half_bits_exact(half_value);
    REQUIRE(half == gen::to_half_bits_exact(half_value));
    REQUIRE(bits_of(cuda_gen::from_half_bits_normal(half)) == bits_of(gen::from_half_bits(half)));
    const float bf_value = cuda_gen::random_value(bits, gen::k_mantissa_bits_bf16);
    const std::uint16_t bf = cuda_gen::to_bf16_bits_exact(bf_value);
    REQUIRE(bf == gen::to_bf16_bits_exact(bf_value));
    REQUIRE(bits_of(cuda_gen::from_bf16_bits(bf)) == bits_of(gen::from_bf16_bits(bf)));
  }
  // Every finite fp16 bit pattern (normal, subnormal, both zeros) widens identically.
  for (std::uint32_t h = 0; h < 0x10000; ++h) {
    if (((h >> 10) & 0x1F) == 0x1F) continue;  // inf/NaN never occur in the inputs
    const auto half = static_cast<std::uint16_t>(h);
    REQUIRE(bits_of(cuda_gen::from_half_bits_normal(half)) == bits_of(gen::from_half_bits(half)));
  }
}
