#include <catch2/catch.hpp>

#include <bit>
#include <cmath>

#include "probes/check.hpp"

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
