#pragma once
// The one comparison path for every probe: device output words against a golden, either
// bit-exact or within a per-element bound, producing the same mismatch report.
#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace substrate {

struct Mismatch {
  std::uint64_t index = 0;  // flat element index
  std::uint64_t row = 0, col = 0;
  double expected = 0.0;    // golden value
  double actual = 0.0;      // device value
  std::uint32_t expected_bits = 0;  // fp32 of the golden (rounded to nearest)
  std::uint32_t actual_bits = 0;
  std::uint32_t xor_bits = 0;      // actual_bits ^ expected_bits
  // xor_bits without the mantissa bits whose weight is within the element's bound: those can be
  // the device's legitimate rounding. Equal to xor_bits in exact mode.
  std::uint32_t significant_xor_bits = 0;
  double bound = 0.0;       // 0 in exact mode
};

struct CheckOutcome {
  bool pass = true;
  std::uint64_t checked = 0;
  std::uint64_t mismatched = 0;
  double max_abs_error = 0.0;
  double max_rel_error = 0.0;
  double budget_used = 0.0;  // max over elements of |error| / bound (0 when exact)
  std::vector<Mismatch> first_mismatches;
  std::array<std::uint64_t, 32> flipped_bits{};  // histogram of significant_xor_bits over mismatched elements
};

inline constexpr std::size_t k_reported_mismatches = 8;

// Exact mode: every output word must equal the fp32 rounding of the golden bit for bit.
CheckOutcome check_exact(std::span<const std::uint32_t> device_bits, std::span<const double> golden,
                         std::uint64_t row_length);

// Random mode: |device - golden| <= bound per element; NaN or Inf always mismatches.
CheckOutcome check_bounded(std::span<const std::uint32_t> device_bits, std::span<const double> golden,
                           std::span<const double> bound, std::uint64_t row_length);

// The bits of `xor_bits` that a deviation of at most `bound` from `expected` cannot explain:
// sign, exponent, and the mantissa bits of `expected`'s binade whose weight exceeds `bound`.
std::uint32_t significant_bits(std::uint32_t xor_bits, double expected, double bound);


}  // namespace substrate
