#include "probes/core/check.hpp"

#include <bit>
#include <cmath>
#include <cstdio>

namespace substrate {
namespace {

void record(CheckOutcome& outcome, std::uint64_t index, std::uint64_t row_length, double expected,
            std::uint32_t actual_bits, double bound) {
  ++outcome.mismatched;
  outcome.pass = false;
  const std::uint32_t expected_bits = std::bit_cast<std::uint32_t>(static_cast<float>(expected));
  const std::uint32_t flipped = expected_bits ^ actual_bits;
  const std::uint32_t significant = significant_bits(flipped, expected, bound);
  for (int bit = 0; bit < 32; ++bit) {
    if (significant & (1u << bit)) ++outcome.flipped_bits[bit];
  }
  if (outcome.first_mismatches.size() < k_reported_mismatches) {
    outcome.first_mismatches.push_back(Mismatch{index, index / row_length, index % row_length, expected,
                                                std::bit_cast<float>(actual_bits), expected_bits, actual_bits,
                                                flipped, significant, bound});
  }
}

void track_error(CheckOutcome& outcome, double expected, double actual) {
  const double abs_error = std::fabs(actual - expected);
  if (!(abs_error <= outcome.max_abs_error)) outcome.max_abs_error = abs_error;
  if (expected != 0.0) {
    const double rel_error = abs_error / std::fabs(expected);
    if (!(rel_error <= outcome.max_rel_error)) outcome.max_rel_error = rel_error;
  }
}

}  // namespace

CheckOutcome check_exact(std::span<const std::uint32_t> device_bits, std::span<const double> golden,
                         std::uint64_t row_length) {
  CheckOutcome outcome;
  outcome.checked = device_bits.size();
  for (std::uint64_t i = 0; i < device_bits.size(); ++i) {
    const std::uint32_t expected_bits = std::bit_cast<std::uint32_t>(static_cast<float>(golden[i]));
    if (device_bits[i] == expected_bits) continue;
    track_error(outcome, golden[i], std::bit_cast<float>(device_bits[i]));
    record(outcome, i, row_length, golden[i], device_bits[i], 0.0);
  }
  return outcome;
}

CheckOutcome check_bounded(std::span<const std::uint32_t> device_bits, std::span<const double> golden,
                           std::span<const double> bound, std::uint64_t row_length) {
  CheckOutcome outcome;
  outcome.checked = device_bits.size();
  for (std::uint64_t i = 0; i < device_bits.size(); ++i) {
    const double actual = std::bit_cast<float>(device_bits[i]);
    track_error(outcome, golden[i], actual);
    const double error = std::fabs(actual - golden[i]);
    const double used = error / bound[i];
    if (!(used <= outcome.budget_used)) outcome.budget_used = std::isnan(used) ? INFINITY : used;
    if (!(error <= bound[i])) record(outcome, i, row_length, golden[i], device_bits[i], bound[i]);
  }
  return outcome;
}

std::uint32_t significant_bits(std::uint32_t xor_bits, double expected, double bound) {
  if (!(bound > 0.0) || !std::isfinite(bound) || expected == 0.0 || !std::isfinite(expected)) return xor_bits;
  // Mantissa bit b of a value in [2^e, 2^(e+1)) weighs 2^(e - 23 + b).
  const int exponent = std::ilogb(static_cast<float>(expected));
  const int lowest_significant = static_cast<int>(std::floor(std::log2(bound))) - exponent + 23 + 1;
  if (lowest_significant <= 0) return xor_bits;
  const std::uint32_t within_bound = lowest_significant >= 23 ? 0x7FFFFFu : (1u << lowest_significant) - 1u;
  return xor_bits & ~within_bound;
}

}  // namespace substrate
