#include <catch2/catch.hpp>

#include <bit>
#include <cmath>

#include "kernels/fingerprint.hpp"
#include "probes/core/check.hpp"

using namespace substrate;

namespace {

// Marsaglia's xorshift64: reproducible test values without the generator under test.
struct XorShift64 {
  std::uint64_t state;
  std::uint64_t operator()() {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  }
};

}  // namespace

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

  CHECK(significant_bits(0xFFFFFFFFu, 1.0, 0.0) == 0xFFFFFFFFu);  // exact mode keeps all
  CHECK(significant_bits(0xFFFFFFFFu, 1.0, 4.0) == 0xFF800000u);  // sign and exponent remain
  CHECK(significant_bits(1u << 4, 1.0, 1e-6) == (1u << 4));       // 2^-19 > 1e-6
  CHECK(significant_bits(1u << 3, 1.0, 1e-6) == 0);               // 2^-20 < 1e-6
  CHECK(significant_bits(1u << 3, 1024.0, 1e-6) == (1u << 3));    // 2^-10 at 1024
}

TEST_CASE("check: the guaranteed bit holds for every healthy value within the bound (issue 18)", "[unit]") {
  CHECK(guaranteed_bit(0.0, 0.0) == 0);             // exact: every flip changes the word
  CHECK(guaranteed_bit(1e-3, 1e-3) == 32);          // a value within its bound of zero: nothing guaranteed
  CHECK(guaranteed_bit(2.5e-3, 1e-3) == 31);        // sign only
  CHECK(guaranteed_bit(1.0, 0x1p-20) == 6);         // low in [2^-1, 1): bit b weighs 2^(b-24) > 2^-19 from b = 6
  CHECK(guaranteed_bit(1.0, 0.75 * 0x1p-20) == 5);  // 2^(5-24) > 1.5 * 2^-20
  CHECK(guaranteed_bit(1.0, 0x1p-60) == 0);         // every mantissa bit outweighs the bound
  CHECK(guaranteed_bit(1.0, 0x1p-3) == 23);         // no mantissa bit does
  // Property: for golden g and bound B, take healthy values x (fp32, |x - g| <= B) at both ends of
  // the interval and inside it; flipping any bit >= guaranteed_bit(g, B) must leave the bound.
  XorShift64 next{88172645463325252ull};
  int checked_pairs = 0;
  for (int trial = 0; trial < 4000; ++trial) {
    const double g =
        std::ldexp(static_cast<double>(next() % 1000000) / 1e6 + 0.001, static_cast<int>(next() % 20) - 10) *
        ((next() & 1) ? -1.0 : 1.0);
    const double bound = std::fabs(g) * std::ldexp(1.0, -static_cast<int>(next() % 26));
    const int bit = guaranteed_bit(g, bound);
    if (bit > 31) continue;
    ++checked_pairs;
    for (int sample = 0; sample < 16; ++sample) {
      const double t = sample == 0 ? -1.0 : sample == 1 ? 1.0 : (static_cast<double>(next() % 2001) / 1000.0 - 1.0);
      float x = static_cast<float>(g + t * bound);
      if (std::fabs(static_cast<double>(x) - g) > bound) x = std::nextafter(x, static_cast<float>(g));
      if (std::fabs(static_cast<double>(x) - g) > bound) continue;
      for (int b = bit; b < 32; ++b) {
        const float flipped = std::bit_cast<float>(bits_of(x) ^ (1u << b));
        INFO("g=" << g << " bound=" << bound << " x=" << x << " bit " << b << " (guaranteed " << bit << ")");
        CHECK_FALSE(std::fabs(static_cast<double>(flipped) - g) <= bound);
      }
    }
  }
  CHECK(checked_pairs > 1000);
}

TEST_CASE("check: the guaranteed bit is the least mantissa bit whose weight exceeds twice the bound", "[unit]") {
  // The definition, bit by bit; guaranteed_bit computes it in closed form.
  const auto by_definition = [](double g, double bound) {
    const double low = std::fabs(g) - bound;
    for (int b = 0; b < 23; ++b) {
      if (std::ldexp(1.0, std::ilogb(low) - 23 + b) > 2.0 * bound) return b;
    }
    return 23;
  };
  XorShift64 next{0x9E3779B97F4A7C15ull};
  int compared = 0;
  for (int trial = 0; trial < 100000; ++trial) {
    const double g = std::ldexp(1.0 + static_cast<double>(next() % 1000000) / 1e6, static_cast<int>(next() % 60) - 30);
    // Bounds from far below the last mantissa bit to near |g|, exact powers of two included.
    const double bound = std::ldexp(g, -static_cast<int>(next() % 40) - 2) * ((next() & 1) ? 1.0 : 0.75);
    if (!(std::fabs(g) > 3.0 * bound) || std::fabs(g) - bound < 0x1p-126) continue;
    INFO("g=" << g << " bound=" << bound);
    REQUIRE(guaranteed_bit(g, bound) == by_definition(g, bound));
    ++compared;
  }
  CHECK(compared > 90000);
}

TEST_CASE("check: bounded checks state their guarantee; exact checks guarantee bit 0", "[unit]") {
  const std::vector<double> golden{1.0, -2.0, 1e-9, 3.0};
  const std::vector<double> bound{1e-6, 1e-6, 1e-6, 1e-6};
  std::vector<std::uint32_t> device{bits_of(1.0f), bits_of(-2.0f), bits_of(0.0f), bits_of(3.0f)};
  const CheckOutcome bounded = check_bounded(device, golden, bound, 2);
  CHECK(bounded.guaranteed_elements == 3);  // 1e-9 is within its bound of zero
  CHECK(bounded.guaranteed_bit ==
        std::max({guaranteed_bit(1.0, 1e-6), guaranteed_bit(-2.0, 1e-6), guaranteed_bit(3.0, 1e-6)}));
  CHECK_FALSE(require_guarantee(bounded, "gemm", "use --mode exact").ok());
  CHECK(require_guarantee(bounded, "gemm", "use --mode exact").error().message.find("use --mode exact") !=
        std::string::npos);
  const CheckOutcome exact = check_exact(device, std::vector<double>{1.0, -2.0, 0.0, 3.0}, 2);
  CHECK(exact.guaranteed_bit == 0);
  CHECK(exact.guaranteed_elements == 4);
  CHECK(require_guarantee(exact, "gemm", "").ok());
}

TEST_CASE("check: a reference carries its guarantee, derived once, and the check reports it unchanged", "[unit]") {
  golden::Reference reference{{1.0, -2.0, 1e-9, 3.0}, {1e-6, 1e-6, 1e-6, 1e-6}};
  const std::vector<std::uint32_t> device{bits_of(1.0f), bits_of(-2.0f), bits_of(0.0f), bits_of(3.5f)};
  const CheckOutcome derived = check_bounded(device, reference.value, reference.bound, 2);
  // Not derived yet: the check derives it as the span form does.
  CHECK(reference.guaranteed_bit < 0);
  std::string print;
  const CheckOutcome underived = check_bounded(device, reference, 2, print);
  CHECK(print == fingerprint(device));
  CHECK(underived.guaranteed_bit == derived.guaranteed_bit);
  CHECK(underived.guaranteed_elements == derived.guaranteed_elements);
  reference = with_guarantee(std::move(reference));
  CHECK(reference.guaranteed_bit == derived.guaranteed_bit);
  CHECK(reference.guaranteed_elements == 3);
  // The comparison itself is unchanged: the 3.5 is caught with its element.
  const CheckOutcome cached = check_bounded(device, reference, 2, print);
  CHECK_FALSE(cached.pass);
  REQUIRE(cached.mismatched == 1);
  CHECK(cached.first_mismatches[0].index == 3);
  CHECK(cached.budget_used == derived.budget_used);
  CHECK(cached.guaranteed_bit == derived.guaranteed_bit);
  CHECK(cached.guaranteed_elements == derived.guaranteed_elements);
  // The stored figures are what the check reports, not derived again from value and bound.
  reference.guaranteed_bit = 5;
  reference.guaranteed_elements = 2;
  const CheckOutcome stored = check_bounded(device, reference, 2, print);
  CHECK(stored.guaranteed_bit == 5);
  CHECK(stored.guaranteed_elements == 2);
}

TEST_CASE("check: the fingerprint hashed alongside a bounded check is fingerprint() of the output", "[unit]") {
  // Long enough to cross several rows, with a mismatch, NaN, infinity and -0 among the words.
  golden::Reference reference;
  std::vector<std::uint32_t> device;
  for (int i = 0; i < 1000; ++i) {
    reference.value.push_back(std::sin(i) * 10.0);
    reference.bound.push_back(1e-5);
    device.push_back(bits_of(static_cast<float>(reference.value.back())));
  }
  device[3] = bits_of(std::nanf(""));
  device[4] = bits_of(INFINITY);
  device[5] = 0x80000000u;
  device[999] ^= 1u << 30;
  reference = with_guarantee(std::move(reference));
  std::string print;
  const CheckOutcome outcome = check_bounded(device, reference, 10, print);
  CHECK(print == fingerprint(device));
  CHECK(outcome.mismatched == 4);
  device[500] ^= 1u;  // a flip within the bound: the check passes it, the fingerprint does not
  std::string flipped;
  CHECK(check_bounded(device, reference, 10, flipped).mismatched == 4);
  CHECK(flipped == fingerprint(device));
  CHECK(flipped != print);
}

TEST_CASE("check: the mismatch map counts every mismatched element by tile, not only the first few", "[unit]") {
  // 100 x 70: tiles of 4 x 3 elements, 25 x 24 of them (at most 32 a side).
  const std::uint64_t rows = 100, cols = 70;
  const std::vector<double> golden(rows * cols, 1.0);
  std::vector<std::uint32_t> device(golden.size(), bits_of(1.0f));
  CHECK(check_exact(device, golden, cols).mismatch_map.rows == 0);                   // nothing mismatched: no map
  for (std::uint64_t col = 0; col < cols; ++col) device[5 * cols + col] ^= 1u << 7;  // all of row 5
  device[99 * cols + 69] ^= 1u << 31;                                                // the last element
  const CheckOutcome outcome = check_exact(device, golden, cols);
  REQUIRE(outcome.mismatched == 71);
  CHECK(outcome.first_mismatches.size() == k_reported_mismatches);
  const MismatchMap& map = outcome.mismatch_map;
  CHECK(map.rows == rows);
  CHECK(map.cols == cols);
  CHECK(map.tile_rows == 4);
  CHECK(map.tile_cols == 3);
  REQUIRE(map.grid_rows() == 25);
  REQUIRE(map.grid_cols() == 24);
  REQUIRE(map.counts.size() == 25 * 24);
  std::uint64_t total = 0;
  for (std::uint64_t tile_row = 0; tile_row < 25; ++tile_row) {
    for (std::uint64_t tile_col = 0; tile_col < 24; ++tile_col) {
      const std::uint64_t count = map.counts[tile_row * 24 + tile_col];
      total += count;
      if (tile_row == 1) {
        CHECK(count == (tile_col < 23 ? 3u : 1u));  // row 5 lies in tile row 1; the last tile is 1 column wide
      } else if (tile_row == 24 && tile_col == 23) {
        CHECK(count == 1);
      } else {
        CHECK(count == 0);
      }
    }
  }
  CHECK(total == outcome.mismatched);
}

TEST_CASE("check: bounded mode fills the mismatch map too; narrow outputs keep one column per tile", "[unit]") {
  const std::vector<double> golden(1000 * 3, 2.0);
  const std::vector<double> bound(golden.size(), 1e-3);
  std::vector<std::uint32_t> device(golden.size(), bits_of(2.0f));
  device[999 * 3 + 1] = bits_of(-2.0f);
  const CheckOutcome outcome = check_bounded(device, golden, bound, 3);
  const MismatchMap& map = outcome.mismatch_map;
  CHECK(map.tile_rows == 32);  // ceil(1000 / 32)
  CHECK(map.tile_cols == 1);
  REQUIRE(map.counts.size() == 32 * 3);
  CHECK(map.counts[31 * 3 + 1] == 1);  // row 999 is in tile row 31
}
