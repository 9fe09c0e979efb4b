#include <catch2/catch.hpp>

#include "kernels/generator.hpp"

using namespace substrate;

TEST_CASE("generator: Philox4x32-10 matches the Random123 known-answer vectors", "[unit]") {
  const auto zero = gen::philox4x32_10({{0, 0, 0, 0}}, 0, 0);
  CHECK(zero.v[0] == 0x6627e8d5u);
  CHECK(zero.v[1] == 0xe169c58du);
  CHECK(zero.v[2] == 0xbc57ac4cu);
  CHECK(zero.v[3] == 0x9b00dbd8u);
  const auto ones =
      gen::philox4x32_10({{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}}, 0xffffffffu, 0xffffffffu);
  CHECK(ones.v[0] == 0x408f276du);
  CHECK(ones.v[1] == 0x41c83b0eu);
  CHECK(ones.v[2] == 0xa20bc7c6u);
  CHECK(ones.v[3] == 0x6d5451fdu);
  const auto pi = gen::philox4x32_10({{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}}, 0xa4093822u, 0x299f31d0u);
  CHECK(pi.v[0] == 0xd16cfe09u);
  CHECK(pi.v[1] == 0x94fdccebu);
  CHECK(pi.v[2] == 0x5001e420u);
  CHECK(pi.v[3] == 0x24126ea1u);
}

TEST_CASE("generator: streams, seeds and indices give independent words", "[unit]") {
  CHECK(gen::random_bits(1, 1, 0) != gen::random_bits(1, 2, 0));
  CHECK(gen::random_bits(1, 1, 0) != gen::random_bits(2, 1, 0));
  CHECK(gen::random_bits(1, 1, 0) != gen::random_bits(1, 1, 1));
  CHECK(gen::random_bits(1, 1, 1ull << 32) != gen::random_bits(1, 1, 0));
}

TEST_CASE("generator: exact values stay in [-R, R] and random values keep their storage mantissa", "[unit]") {
  for (std::uint32_t i = 0; i < 10000; ++i) {
    const std::uint32_t bits = gen::random_bits(7, 1, i);
    const float exact = gen::exact_value(bits, 5);
    REQUIRE(exact >= -5.0f);
    REQUIRE(exact <= 5.0f);
    REQUIRE(exact == static_cast<float>(static_cast<int>(exact)));
    const float half = gen::random_value(bits, gen::k_mantissa_bits_f16);
    REQUIRE(gen::from_half_bits(gen::to_half_bits_exact(half)) == half);
    REQUIRE(std::fabs(half) >= 0.25f);
    REQUIRE(std::fabs(half) < 4.0f);
    const float brain = gen::random_value(bits, gen::k_mantissa_bits_bf16);
    REQUIRE(gen::from_bf16_bits(gen::to_bf16_bits_exact(brain)) == brain);
  }
}

TEST_CASE("generator: the exact-mode radius keeps K*R^2 within 2^24", "[unit]") {
  CHECK(gen::exact_radius(256) == 64);
  CHECK(gen::exact_radius(4096) == 64);
  CHECK(gen::exact_radius(8192) == 45);
  CHECK(gen::exact_radius(1u << 22) == 2);
  CHECK(gen::exact_radius(1u << 25) == 0);
  for (std::uint64_t k : {1000u, 5000u, 70000u}) {
    const std::uint64_t r = gen::exact_radius(k);
    CHECK(k * r * r <= (1u << 24));
  }
}
