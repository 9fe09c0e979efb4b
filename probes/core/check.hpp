#pragma once
// The one comparison path for every probe: device output words against a golden, either
// bit-exact or within a per-element bound, producing the same mismatch report.
#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/expected.hpp"
#include "kernels/golden/golden.hpp"

namespace substrate {

struct Mismatch {
  std::uint64_t index = 0;  // flat element index
  std::uint64_t row = 0, col = 0;
  double expected = 0.0;            // golden value
  double actual = 0.0;              // device value
  std::uint32_t expected_bits = 0;  // fp32 of the golden (rounded to nearest)
  std::uint32_t actual_bits = 0;
  std::uint32_t xor_bits = 0;  // actual_bits ^ expected_bits
  // xor_bits without the mantissa bits whose weight is within the element's bound: those can be
  // the device's legitimate rounding. Equal to xor_bits in exact mode.
  std::uint32_t significant_xor_bits = 0;
  double bound = 0.0;  // 0 in exact mode
};

// Where on the output the mismatches sit, at a bounded resolution: the rows x cols output (rows =
// all dimensions but the last: GEMM m x n; attention heads*seq_len x head_dim; canary the first
// diverging layer) cut into tiles of tile_rows x tile_cols elements, at most
// k_mismatch_map_side tiles a side; counts holds the mismatched elements per tile, row-major
// (grid_rows() x grid_cols() entries), over every mismatched element, not only the first few.
// Empty (rows == 0) when nothing mismatched. Drawn as the heatmap of the diag report.
struct MismatchMap {
  std::uint64_t rows = 0, cols = 0;
  std::uint64_t tile_rows = 0, tile_cols = 0;
  std::vector<std::uint64_t> counts;
  std::uint64_t grid_rows() const { return tile_rows ? (rows + tile_rows - 1) / tile_rows : 0; }
  std::uint64_t grid_cols() const { return tile_cols ? (cols + tile_cols - 1) / tile_cols : 0; }
};

// Tiles a side of a MismatchMap: 32 x 32 = 1,024 counts bounds a result's JSON and still shows a
// row, a column stripe or a tile of a 4096 x 4096 output (a tile is then 128 x 128 elements).
inline constexpr std::uint64_t k_mismatch_map_side = 32;

// An empty map for a rows x cols output: the smallest tiles that fit k_mismatch_map_side a side.
MismatchMap make_mismatch_map(std::uint64_t rows, std::uint64_t cols);
// Counts one mismatched element at (row, col); outside the map is ignored.
void count_mismatch(MismatchMap& map, std::uint64_t row, std::uint64_t col);

struct CheckOutcome {
  bool pass = true;
  std::uint64_t checked = 0;
  std::uint64_t mismatched = 0;
  double max_abs_error = 0.0;
  double max_rel_error = 0.0;
  double budget_used = 0.0;  // max over elements of |error| / bound (0 when exact)
  std::vector<Mismatch> first_mismatches;
  std::array<std::uint64_t, 32> flipped_bits{};  // histogram of significant_xor_bits over mismatched elements
  MismatchMap mismatch_map;                      // every mismatched element by tile; empty when none
  // What the check can see (docs/error-bounds.md, "What a check guarantees"): a flip of bit
  // `guaranteed_bit` or of any higher bit is detected at each of `guaranteed_elements` elements,
  // whatever healthy value the device wrote there. Exact mode: bit 0 at every element. Random
  // mode: the elements whose golden lies at least 3 bounds from zero (sign and exponent flips
  // guaranteed); the rest, values indistinguishable from zero at the bound, only the fingerprint
  // sees. 32 when no element is covered.
  int guaranteed_bit = 0;
  std::uint64_t guaranteed_elements = 0;
};

// Share of a random-mode output whose sign and exponent flips must be guaranteed visible for the
// check to be accepted at a shape: a policy, not a derived figure. GEMM (expected share from the
// shape, gemm_probe.cpp) crosses it near K = 2,300; attention counts its output (require_guarantee).
inline constexpr double k_min_guaranteed_share = 0.99;

// The lowest bit b such that flipping bit b or any higher bit of any fp32 value x with
// |x - golden| <= bound yields a value that check_bounded rejects; 32 when even the sign flip
// can stay within the bound (|golden| <= bound). 0 when bound is 0 (exact). The criterion and
// its derivation: docs/error-bounds.md.
int guaranteed_bit(double golden, double bound);

// Fills outcome.guaranteed_bit and guaranteed_elements from the golden and its bounds.
void state_guarantee(CheckOutcome& outcome, std::span<const double> golden, std::span<const double> bound);

// ok when sign and exponent flips are guaranteed visible at k_min_guaranteed_share of the
// elements; otherwise invalid_argument (exit 2) "<probe>: random mode cannot see sign and exponent
// flips at this shape ... <advice>", so a blind check never passes.
Status require_guarantee(const CheckOutcome& outcome, const std::string& probe, const std::string& advice);

inline constexpr std::size_t k_reported_mismatches = 8;

// Exact mode: every output word must equal the fp32 rounding of the golden bit for bit.
CheckOutcome check_exact(std::span<const std::uint32_t> device_bits, std::span<const double> golden,
                         std::uint64_t row_length);

// Random mode: |device - golden| <= bound per element; NaN or Inf always mismatches.
CheckOutcome check_bounded(std::span<const std::uint32_t> device_bits, std::span<const double> golden,
                           std::span<const double> bound, std::uint64_t row_length);

// The same check against a random-mode reference: the guarantee is the one with_guarantee stored
// in it (derived here when it has none), so a cached golden does not derive it again every run.
// Sets `fingerprint` to fingerprint(device_bits) (kernels/fingerprint.hpp), hashed in the same pass
// over the words: the hash is a serial chain of multiplies that leaves the comparison's
// arithmetic room to run alongside it (issue 19: apart, 0.07 + 0.04 ms per 16k words on lavapipe's
// host, attention's largest host costs per run).
CheckOutcome check_bounded(std::span<const std::uint32_t> device_bits, const golden::Reference& reference,
                           std::uint64_t row_length, std::string& fingerprint);

// `reference` with guaranteed_bit and guaranteed_elements set as state_guarantee derives them from
// its value and bound; for the compute function of a GoldenCache entry (a probe's golden).
golden::Reference with_guarantee(golden::Reference reference);

// The bits of `xor_bits` that a deviation of at most `bound` from `expected` cannot explain:
// sign, exponent, and the mantissa bits of `expected`'s binade whose weight exceeds `bound`.
std::uint32_t significant_bits(std::uint32_t xor_bits, double expected, double bound);

}  // namespace substrate
