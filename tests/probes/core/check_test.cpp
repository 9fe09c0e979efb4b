#include <catch2/catch.hpp>

#include <bit>
#include <cmath>

#include "kernels/fingerprint.hpp"
#include "probes/core/check.hpp"

using namespace substrate;

static std::uint32_t bits_of(float f) { return std::bit_cast<std::uint32_t>(f); }

TEST_CASE("check: exact mode passes identical bits and reports a flipped bit with its element", "[unit]") {
  const std::vector<double> golden{1.0, -2.0, 3.0, 0.0};
  std::vector<std::uint32_t> device{bits_of(1.0f), bits_of(-2.0f), bits_of(3.0f), bits_of(0.0f)};
  CHECK(check_exact(device, golden, 2).pass);
  device[3] ^= 1u << 3;
  const CheckOutcome outcome = check_exact(device, golden, 2);
  CHECK_FALSE(outcome.pass);
  REQUIRE(outcome.mismatched == 1);
  CHECK(outcome.first_mismatches[0].row == 1);
  CHECK(outcome.first_mismatches[0].col == 1);
  CHECK(outcome.first_mismatches[0].xor_bits == (1u << 3));
  CHECK(outcome.flipped_bits[3] == 1);
}

TEST_CASE("check: exact mode treats -0 as a mismatch of the sign bit", "[unit]") {
  const std::vector<double> golden{0.0};
  const std::vector<std::uint32_t> device{0x80000000u};
  CHECK(check_exact(device, golden, 1).first_mismatches.at(0).xor_bits == 0x80000000u);
}

TEST_CASE("check: bounded mode reports budget used, and NaN always fails", "[unit]") {
  const std::vector<double> golden{1.0, 2.0};
  const std::vector<double> bound{1e-3, 1e-3};
  std::vector<std::uint32_t> device{bits_of(1.0005f), bits_of(2.0f)};
  CheckOutcome outcome = check_bounded(device, golden, bound, 2);
  CHECK(outcome.pass);
  CHECK(outcome.budget_used == Approx(0.5).epsilon(1e-3));
  device[1] = bits_of(std::nanf(""));
  outcome = check_bounded(device, golden, bound, 2);
  CHECK_FALSE(outcome.pass);
  CHECK(outcome.mismatched == 1);
  CHECK(std::isinf(outcome.budget_used));
}

TEST_CASE("check: fingerprints differ for any single flipped bit", "[unit]") {
  std::vector<std::uint32_t> words(64, 0x12345678u);
  const std::string base = fingerprint(words);
  CHECK(base.size() == 16);
  CHECK(fingerprint(words) == base);
  for (int bit = 0; bit < 32; ++bit) {
    words[17] ^= 1u << bit;
    CHECK(fingerprint(words) != base);
    words[17] ^= 1u << bit;
  }
}

TEST_CASE("check: in random mode the significant xor drops the bits a deviation within the bound explains", "[unit]") {
  // 1.0 (exponent 0) with bound 1e-6: mantissa bits 0..3 weigh at most 2^-20 < 1e-6.
  const std::uint32_t one = 0x3F800000u;
  const std::vector<std::uint32_t> device{one ^ (1u << 20) ^ (1u << 1)};
  const std::vector<double> golden{1.0}, bound{1e-6};
  const CheckOutcome outcome = check_bounded(device, golden, bound, 1);
  REQUIRE(outcome.first_mismatches.size() == 1);
  CHECK(outcome.first_mismatches[0].xor_bits == ((1u << 20) | (1u << 1)));
  CHECK(outcome.first_mismatches[0].significant_xor_bits == (1u << 20));
  CHECK(outcome.flipped_bits[20] == 1);
  CHECK(outcome.flipped_bits[1] == 0);

  CHECK(significant_bits(0xFFFFFFFFu, 1.0, 0.0) == 0xFFFFFFFFu);           // exact mode keeps all
  CHECK(significant_bits(0xFFFFFFFFu, 1.0, 4.0) == 0xFF800000u);           // sign and exponent remain
  CHECK(significant_bits(1u << 4, 1.0, 1e-6) == (1u << 4));                 // 2^-19 > 1e-6
  CHECK(significant_bits(1u << 3, 1.0, 1e-6) == 0);                         // 2^-20 < 1e-6
  CHECK(significant_bits(1u << 3, 1024.0, 1e-6) == (1u << 3));              // 2^-10 at 1024
}
