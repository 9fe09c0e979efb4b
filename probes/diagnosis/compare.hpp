#pragma once
// The comparator behind `substrated compare`: two tensors (or a dump's output against its
// golden) compared globally, per row (token) and per column, with the first diverging element
// and the spatial pattern of the mismatches, which points at where a fault lives.
//
// Tensors are viewed as a matrix: rows = product of every dimension but the last, columns = the
// last dimension (a 1-D tensor is one row). For attention dumps (heads, seq, dim) a row is one
// (head, token); for canary layers (tokens, features) a row is a token.
//
// An element mismatches when
//   - a tolerance applies (a dump's bound.npy, the sum of two dumps' bounds, or --atol/--rtol):
//     NOT |a - b| <= tolerance (NaN always mismatches);
//   - otherwise (bit-exact): the float32 bits differ (float64 values are rounded to float32 when
//     a device output is checked against a float64 golden; two float64 tensors compare as
//     float64 bits).
//
// Pattern rules (R rows, C columns, n mismatched elements), first match wins:
//   none            n == 0
//   single_element  n == 1                                    -> one cell
//   widespread      n >= half of all elements                 -> inputs, driver, kernel build
//   warp_aligned    the mismatches lie in aligned blocks of 32 consecutive elements (flat
//                   index / 32), each at least three quarters wrong, at most half of the blocks touched,
//                   and they do not fill whole rows
//                                                             -> one warp (32 lanes) or its stores
//   row             C > 1, every mismatch lies in a row with at least half of its elements
//                   mismatched, and those rows are at most half of the rows
//                                                             -> one workgroup / compute unit, or a token
//   periodic        n >= 4, the flat indices are first + k*S for one step S >= 2 (the gcd of
//                   their distances), S not the row length (that is a column stripe), at least
//                   half of the slots first, first + S, ... last mismatched
//                                                             -> the same lane of every warp (S a
//                                                                multiple of 32), a position in every tile
//   column_stripe   R > 1, the same with columns              -> a lane, a memory channel, a weight column
//   tile            the mismatches' bounding box covers at least 2 elements, at most half of all
//                   elements, and at least half of the box mismatches
//                                                             -> one workgroup tile, a memory page
//   scattered       anything else                             -> isolated cells: bit flips, marginal silicon
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/expected.hpp"
#include "probes/diagnosis/npy.hpp"

namespace substrate {

enum class MismatchPattern {
  none,
  single_element,
  widespread,
  warp_aligned,
  row,
  periodic,
  column_stripe,
  tile,
  scattered
};
// Outputs per warp on the devices the patterns name: NVIDIA's warp (AMD's wave64 is two of them).
inline constexpr std::uint64_t k_warp_elements = 32;
const char* to_string(MismatchPattern pattern);
const char* pattern_hint(MismatchPattern pattern);

struct PatternReport {
  MismatchPattern kind = MismatchPattern::none;
  std::vector<std::uint64_t> rows;       // row: the rows; others: empty
  std::vector<std::uint64_t> columns;    // column_stripe: the columns
  std::vector<std::uint64_t> warps;      // warp_aligned: flat index / 32
  std::uint64_t period = 0, offset = 0;  // periodic: every `period` elements from flat index `offset`
  std::uint64_t box_row0 = 0, box_row1 = 0, box_col0 = 0, box_col1 = 0;  // bounding box, inclusive
};

// Classifies a row-major mismatch mask of `rows` x `cols` by the rules above.
PatternReport classify_mismatches(const std::vector<bool>& mask, std::uint64_t rows, std::uint64_t cols);

struct Divergence {
  std::uint64_t index = 0;              // flat
  std::vector<std::uint64_t> position;  // one index per dimension
  std::uint64_t row = 0, col = 0;
  double a = 0.0, b = 0.0;
};

struct TensorComparison {
  std::string name;  // "output vs golden", a layer name, a file name
  std::vector<std::uint64_t> shape;
  std::uint64_t rows = 0, cols = 0;
  std::string tolerance;  // "bit-exact", "bound.npy", "bound sum", "atol=..., rtol=..."
  std::uint64_t elements = 0, mismatched = 0;
  double cosine = 1.0;
  double max_abs_diff = 0.0, mean_abs_diff = 0.0;
  double relative_error = 0.0;      // ||a - b||_2 / ||b||_2 (0 when both are zero)
  double max_relative_error = 0.0;  // max |a - b| / |b| over b != 0
  std::vector<double> row_cosine, column_cosine;
  std::uint64_t min_cosine_row = 0, min_cosine_column = 0;
  std::uint64_t argmax_agreeing_rows = 0;
  std::vector<std::uint64_t> argmax_disagreeing_rows;  // the first 16
  std::optional<Divergence> first_divergence;
  PatternReport pattern;
  std::array<std::uint64_t, 32> flipped_bits{};  // float32 view, over mismatched elements
};

struct Tolerance {
  enum class Kind { exact, per_element, relative } kind = Kind::exact;
  std::vector<double> per_element;  // per_element: |a - b| <= per_element[i]
  double atol = 0.0, rtol = 0.0;    // relative: |a - b| <= atol + rtol * |b|
  std::string label = "bit-exact";
};

// Compares two arrays of equal shape. invalid_argument on a shape mismatch, or a dtype mismatch
// unless `allow_f32_vs_f64` (a float32 device output `a` against a float64 golden `b`).
Expected<TensorComparison> compare_arrays(const std::string& name, const npy::Array& a, const npy::Array& b,
                                          const Tolerance& tolerance, bool allow_f32_vs_f64 = false);

struct CompareOptions {
  std::optional<double> atol, rtol;  // either given: relative tolerance instead of bounds/bit-exact
};

struct CompareReport {
  std::string a, b;                            // what was compared
  std::vector<TensorComparison> tensors;       // in order (layers in order for layered dumps)
  std::optional<std::size_t> first_diverging;  // index into tensors
};

// `a` and `b`: dump directories or .npy files; `b` empty: a dump directory's output against its
// golden. Two dump directories compare output.npy with output.npy, and every layer listed in
// their manifests in order. invalid_argument / corrupt / io_error describe bad inputs.
Expected<CompareReport> compare_paths(const std::string& a, const std::string& b, const CompareOptions& options);

std::string render_compare(const CompareReport& report);
void to_json(nlohmann::json& out, const CompareReport& report);

}  // namespace substrate
