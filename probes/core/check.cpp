#include "probes/core/check.hpp"

#include "kernels/fingerprint.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>

namespace substrate {
namespace {

// `elements` is the size of the whole output, for the mismatch map made at the first mismatch (a
// passing check allocates nothing).
void record(CheckOutcome& outcome, std::uint64_t index, std::uint64_t elements, std::uint64_t row_length,
            double expected, std::uint32_t actual_bits, double bound) {
  if (outcome.mismatched == 0) outcome.mismatch_map = make_mismatch_map(elements / row_length, row_length);
  count_mismatch(outcome.mismatch_map, index / row_length, index % row_length);
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
                                                std::bit_cast<float>(actual_bits), expected_bits, actual_bits, flipped,
                                                significant, bound});
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

MismatchMap make_mismatch_map(std::uint64_t rows, std::uint64_t cols) {
  MismatchMap map;
  map.rows = rows;
  map.cols = cols;
  map.tile_rows = std::max<std::uint64_t>(1, (rows + k_mismatch_map_side - 1) / k_mismatch_map_side);
  map.tile_cols = std::max<std::uint64_t>(1, (cols + k_mismatch_map_side - 1) / k_mismatch_map_side);
  map.counts.assign(map.grid_rows() * map.grid_cols(), 0);
  return map;
}

void count_mismatch(MismatchMap& map, std::uint64_t row, std::uint64_t col) {
  if (row >= map.rows || col >= map.cols) return;
  ++map.counts[(row / map.tile_rows) * map.grid_cols() + col / map.tile_cols];
}

CheckOutcome check_exact(std::span<const std::uint32_t> device_bits, std::span<const double> golden,
                         std::uint64_t row_length) {
  CheckOutcome outcome;
  outcome.checked = device_bits.size();
  for (std::uint64_t i = 0; i < device_bits.size(); ++i) {
    const std::uint32_t expected_bits = std::bit_cast<std::uint32_t>(static_cast<float>(golden[i]));
    if (device_bits[i] == expected_bits) continue;
    track_error(outcome, golden[i], std::bit_cast<float>(device_bits[i]));
    record(outcome, i, device_bits.size(), row_length, golden[i], device_bits[i], 0.0);
  }
  outcome.guaranteed_bit = 0;  // bit-exact: every flip of every element is seen
  outcome.guaranteed_elements = outcome.checked;
  return outcome;
}

int guaranteed_bit(double golden, double bound) {
  if (bound == 0.0) return 0;  // bit-exact: any flip changes the word
  if (!(bound > 0.0) || !std::isfinite(bound) || !std::isfinite(golden)) return 32;
  const double magnitude = std::fabs(golden);
  // Every healthy x has the sign of the golden and |x| >= low.
  const double low = magnitude - bound;
  if (!(low > 0.0)) return 32;                // 0 or a near-zero value may be healthy: nothing is guaranteed
  if (!(magnitude > 3.0 * bound)) return 31;  // sign: |-x - g| >= 2|g| - bound > bound
  // Exponent bits move |x| by a factor of at least 2 (or to Inf/NaN, always rejected), so the
  // flipped value is at most (|g| + bound) / 2 or at least 2 (|g| - bound): both more than
  // `bound` from g once |g| > 3 bound. Mantissa bit b of x in [2^E, 2^(E+1)) weighs 2^(E - 23 + b)
  // and the flip is rejected when that weight exceeds 2 bound; the smallest E is that of `low`.
  if (low < 0x1p-126) return 23;  // subnormal values: leave their mantissa unclaimed
  // The least b with 2^(E - 23 + b) > 2 bound: with 2^F <= 2 bound < 2^(F+1), that is
  // E - 23 + b >= F + 1. In closed form: it runs once per checked element, and a loop of ldexp
  // calls here was most of attention's host time (BENCHMARKS.md section 4).
  const int lowest_exponent = std::ilogb(low);
  const int bound_exponent = std::ilogb(2.0 * bound);
  const int bit = std::max(0, bound_exponent + 1 - lowest_exponent + 23);
  return bit < 23 ? bit : 23;
}

void state_guarantee(CheckOutcome& outcome, std::span<const double> golden, std::span<const double> bound) {
  int bit = 0;
  std::uint64_t covered = 0;
  for (std::size_t i = 0; i < golden.size(); ++i) {
    const int b = guaranteed_bit(golden[i], bound[i]);
    if (b > 23) continue;
    ++covered;
    bit = std::max(bit, b);
  }
  outcome.guaranteed_bit = covered > 0 ? bit : 32;
  outcome.guaranteed_elements = covered;
}

Status require_guarantee(const CheckOutcome& outcome, const std::string& probe, const std::string& advice) {
  const double share = outcome.checked > 0 ? static_cast<double>(outcome.guaranteed_elements) / outcome.checked : 1.0;
  if (share >= k_min_guaranteed_share) return ok_status();
  char percent[32];
  std::snprintf(percent, sizeof percent, "%.1f%%", 100.0 * share);
  return Error{ErrorKind::invalid_argument,
               probe +
                   ": random mode cannot see sign and exponent flips at this shape: its error bound hides them at " +
                   std::to_string(outcome.checked - outcome.guaranteed_elements) + " of " +
                   std::to_string(outcome.checked) + " elements (guaranteed at " + percent + ", " +
                   std::to_string(static_cast<int>(k_min_guaranteed_share * 100)) + "% required); " + advice};
}

namespace {

// check_bounded's comparison, without the guarantee. With `hash`, also folds every word into the
// FNV-1a hash *hash (kernels/fingerprint.hpp).
CheckOutcome compare_bounded(std::span<const std::uint32_t> device_bits, std::span<const double> golden,
                             std::span<const double> bound, std::uint64_t row_length, std::uint64_t* hash = nullptr) {
  CheckOutcome outcome;
  outcome.checked = device_bits.size();
  std::uint64_t h = hash ? *hash : 0;
  for (std::uint64_t i = 0; i < device_bits.size(); ++i) {
    if (hash) h = fnv1a64_word(h, device_bits[i]);
    const double actual = std::bit_cast<float>(device_bits[i]);
    track_error(outcome, golden[i], actual);
    const double error = std::fabs(actual - golden[i]);
    const double used = error / bound[i];
    if (!(used <= outcome.budget_used)) outcome.budget_used = std::isnan(used) ? INFINITY : used;
    if (!(error <= bound[i])) record(outcome, i, device_bits.size(), row_length, golden[i], device_bits[i], bound[i]);
  }
  if (hash) *hash = h;
  return outcome;
}

}  // namespace

CheckOutcome check_bounded(std::span<const std::uint32_t> device_bits, std::span<const double> golden,
                           std::span<const double> bound, std::uint64_t row_length) {
  CheckOutcome outcome = compare_bounded(device_bits, golden, bound, row_length);
  state_guarantee(outcome, golden, bound);
  return outcome;
}

CheckOutcome check_bounded(std::span<const std::uint32_t> device_bits, const golden::Reference& reference,
                           std::uint64_t row_length, std::string& fingerprint) {
  std::uint64_t hash = k_fnv1a64_basis;
  CheckOutcome outcome = compare_bounded(device_bits, reference.value, reference.bound, row_length, &hash);
  fingerprint = fingerprint_text(hash);
  if (reference.guaranteed_bit < 0) {
    state_guarantee(outcome, reference.value, reference.bound);
  } else {
    outcome.guaranteed_bit = reference.guaranteed_bit;
    outcome.guaranteed_elements = reference.guaranteed_elements;
  }
  return outcome;
}

golden::Reference with_guarantee(golden::Reference reference) {
  CheckOutcome outcome;
  state_guarantee(outcome, reference.value, reference.bound);
  reference.guaranteed_bit = outcome.guaranteed_bit;
  reference.guaranteed_elements = outcome.guaranteed_elements;
  return reference;
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
