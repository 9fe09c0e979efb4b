#include <catch2/catch.hpp>

#include <unistd.h>
#include <bit>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "common/file_io.hpp"
#include "probes/diagnosis/compare.hpp"

using namespace substrate;
namespace fs = std::filesystem;

namespace {

constexpr std::uint64_t R = 32, C = 48;

// A deterministic reference matrix with distinct values and a unique argmax per row.
npy::Array reference(npy::ElementType type = npy::ElementType::f32) {
  npy::Array a;
  a.type = type;
  a.shape = {R, C};
  a.values.resize(R * C);
  for (std::uint64_t i = 0; i < R * C; ++i) {
    a.values[i] =
        static_cast<float>(std::sin(0.37 * static_cast<double>(i)) * 3.0 + 0.001 * static_cast<double>(i % 7));
  }
  return a;
}

void flip(npy::Array& a, std::uint64_t r, std::uint64_t c, int bit = 22) {
  auto& v = a.values[r * C + c];
  v = std::bit_cast<float>(std::bit_cast<std::uint32_t>(static_cast<float>(v)) ^ (1u << bit));
}

TensorComparison compare(const npy::Array& a, const npy::Array& b) {
  auto result = compare_arrays("t", a, b, Tolerance{});
  REQUIRE(result.ok());
  return *result;
}

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("substrate-cmp-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void write(const fs::path& path, const npy::Array& a) {
  Expected<std::string> bytes = a.type == npy::ElementType::f32
                                    ? npy::encode_f32(a.shape, std::vector<float>(a.values.begin(), a.values.end()))
                                    : npy::encode_f64(a.shape, a.values);
  REQUIRE(bytes.ok());
  REQUIRE(write_file(path.string(), *bytes).ok());
}

}  // namespace

TEST_CASE("compare: identical tensors agree everywhere", "[unit]") {
  const auto t = compare(reference(), reference());
  CHECK(t.mismatched == 0);
  CHECK(t.pattern.kind == MismatchPattern::none);
  CHECK(t.cosine == Approx(1.0));
  CHECK(t.max_abs_diff == 0.0);
  CHECK(t.argmax_agreeing_rows == R);
  CHECK_FALSE(t.first_divergence);
}

TEST_CASE("compare: a corrupted row is classified as a row", "[unit]") {
  auto b = reference();
  for (std::uint64_t c = 0; c < C; ++c) b.values[5 * C + c] *= -2.0;
  const auto t = compare(b, reference());
  CHECK(t.mismatched == C);
  CHECK(t.pattern.kind == MismatchPattern::row);
  CHECK(t.pattern.rows == std::vector<std::uint64_t>{5});
  REQUIRE(t.first_divergence);
  CHECK(t.first_divergence->index == 5 * C);
  CHECK(t.first_divergence->row == 5);
  CHECK(t.first_divergence->col == 0);
  CHECK(t.min_cosine_row == 5);
  CHECK(t.row_cosine[5] == Approx(-1.0));
  CHECK(t.row_cosine[4] == Approx(1.0));
  CHECK(t.argmax_agreeing_rows == R - 1);
  CHECK(t.argmax_disagreeing_rows == std::vector<std::uint64_t>{5});
}

TEST_CASE("compare: a corrupted column is classified as a column stripe", "[unit]") {
  auto b = reference();
  for (std::uint64_t r = 0; r < R; ++r) flip(b, r, 17, 30);
  // Two more columns, each only partly wrong but over half: still a stripe.
  for (std::uint64_t r = 0; r < R; r += 1) {
    if (r % 4 != 0) flip(b, r, 40);
  }
  const auto t = compare(b, reference());
  CHECK(t.pattern.kind == MismatchPattern::column_stripe);
  CHECK(t.pattern.columns == std::vector<std::uint64_t>{17, 40});
  CHECK((t.min_cosine_column == 17 || t.min_cosine_column == 40));
  CHECK(t.flipped_bits[30] == R);
}

TEST_CASE("compare: a corrupted block is classified as a tile", "[unit]") {
  auto b = reference();
  for (std::uint64_t r = 8; r < 16; ++r) {
    for (std::uint64_t c = 16; c < 32; ++c) flip(b, r, c, 3);
  }
  const auto t = compare(b, reference());
  CHECK(t.mismatched == 8 * 16);
  CHECK(t.pattern.kind == MismatchPattern::tile);
  CHECK(t.pattern.box_row0 == 8);
  CHECK(t.pattern.box_row1 == 15);
  CHECK(t.pattern.box_col0 == 16);
  CHECK(t.pattern.box_col1 == 31);
  CHECK(t.first_divergence->row == 8);
  CHECK(t.first_divergence->col == 16);
}

TEST_CASE("compare: isolated flips are scattered, one flip a single element, most a widespread fault", "[unit]") {
  auto b = reference();
  flip(b, 1, 2);
  flip(b, 20, 40);
  flip(b, 30, 7);
  flip(b, 9, 33);
  auto t = compare(b, reference());
  CHECK(t.mismatched == 4);
  CHECK(t.pattern.kind == MismatchPattern::scattered);
  CHECK(t.first_divergence->index == 1 * C + 2);
  CHECK(t.flipped_bits[22] == 4);

  auto single = reference();
  flip(single, 3, 4, 0);
  t = compare(single, reference());
  CHECK(t.pattern.kind == MismatchPattern::single_element);
  CHECK(t.first_divergence->position == std::vector<std::uint64_t>{3, 4});
  CHECK(t.flipped_bits[0] == 1);

  auto most = reference();
  for (std::uint64_t i = 0; i < R * C; i += 1) {
    if (i % 3 != 0) most.values[i] += 1.0;
  }
  t = compare(most, reference());
  CHECK(t.pattern.kind == MismatchPattern::widespread);
}

// Issue 18: GPU faults are warp-aligned and periodic (arXiv 2605.04213); compare names both.
TEST_CASE("compare: a whole warp is warp-aligned, the same lane of every warp periodic", "[unit]") {
  // Elements 64..95: one aligned warp of 32, two thirds of row 1 (was named a row).
  auto warp = reference();
  for (std::uint64_t i = 64; i < 96; ++i) flip(warp, i / C, i % C, 30);
  auto t = compare(warp, reference());
  CHECK(t.pattern.kind == MismatchPattern::warp_aligned);
  CHECK(t.pattern.warps == std::vector<std::uint64_t>{2});
  // A warp run that is not aligned (48..79) straddles two warps, each half wrong: not one warp.
  auto straddling = reference();
  for (std::uint64_t i = 48; i < 80; ++i) flip(straddling, i / C, i % C, 30);
  CHECK(compare(straddling, reference()).pattern.kind != MismatchPattern::warp_aligned);

  // A stuck lane: element 5 of every warp (was scattered: lane 5 falls in columns 5, 21 and 37).
  auto lane = reference();
  for (std::uint64_t i = 5; i < R * C; i += 32) flip(lane, i / C, i % C, 29);
  t = compare(lane, reference());
  CHECK(t.pattern.kind == MismatchPattern::periodic);
  CHECK(t.pattern.period == 32);
  CHECK(t.pattern.offset == 5);
  CompareReport report;
  report.tensors.push_back(t);
  CHECK_THAT(render_compare(report),
             Catch::Contains("periodic (every 32 elements from element 5: lane 5 of every warp)"));

  // A stripe across tiles with one element missed (a value too close to zero to show): still periodic.
  auto stripe = reference();
  for (std::uint64_t i = 7; i < R * C; i += 256) {
    if (i != 7 + 2 * 256) flip(stripe, i / C, i % C, 25);
  }
  t = compare(stripe, reference());
  CHECK(t.pattern.kind == MismatchPattern::periodic);
  CHECK(t.pattern.period == 256);

  // One whole column is still a column stripe (its period is the row length).
  auto column = reference();
  for (std::uint64_t r = 0; r < R; ++r) flip(column, r, 3, 30);
  CHECK(compare(column, reference()).pattern.kind == MismatchPattern::column_stripe);
}

TEST_CASE("compare: the classification rules at their edges", "[unit]") {
  // 4 x 4: half of row 0 wrong is a row; a quarter is not.
  std::vector<bool> mask(16, false);
  mask[0] = mask[1] = true;
  CHECK(classify_mismatches(mask, 4, 4).kind == MismatchPattern::row);
  std::vector<bool> diagonal(16, false);
  diagonal[0] = diagonal[5] = diagonal[10] = true;
  CHECK(classify_mismatches(diagonal, 4, 4).kind == MismatchPattern::scattered);
  // A 1-D tensor (one row) cannot be a row fault; a dense run is a tile.
  std::vector<bool> run(64, false);
  for (int i = 10; i < 20; ++i) run[i] = true;
  CHECK(classify_mismatches(run, 1, 64).kind == MismatchPattern::tile);
}

TEST_CASE("compare: tolerances: bounds, atol/rtol, and float32 output against a float64 golden", "[unit]") {
  auto golden = reference(npy::ElementType::f64);
  for (double& v : golden.values) v += v * 1e-10;  // not representable in float32, rounds back to it
  auto output = reference();
  // Bit-exact: the golden rounds to the output's float32 values.
  auto exact = compare_arrays("o", output, golden, Tolerance{}, true);
  REQUIRE(exact.ok());
  CHECK(exact->mismatched == 0);
  // Without permission a float32/float64 pair is a dtype mismatch.
  auto refused = compare_arrays("o", output, golden, Tolerance{}, false);
  REQUIRE_FALSE(refused.ok());
  CHECK_THAT(refused.error().message, Catch::Contains("dtype mismatch <f4 vs <f8"));
  // A per-element bound decides.
  Tolerance bound;
  bound.kind = Tolerance::Kind::per_element;
  bound.per_element.assign(R * C, 1e-6);
  output.values[7] += 1e-3;
  auto bounded = compare_arrays("o", output, golden, bound, true);
  REQUIRE(bounded.ok());
  CHECK(bounded->mismatched == 1);
  CHECK(bounded->first_divergence->index == 7);
  Tolerance loose;
  loose.kind = Tolerance::Kind::relative;
  loose.atol = 1e-2;
  auto relaxed = compare_arrays("o", output, golden, loose, true);
  REQUIRE(relaxed.ok());
  CHECK(relaxed->mismatched == 0);
  // NaN always mismatches.
  output.values[9] = NAN;
  auto nan = compare_arrays("o", output, golden, loose, true);
  REQUIRE(nan.ok());
  CHECK(nan->mismatched == 1);
  CHECK(std::isinf(nan->max_abs_diff));
}

TEST_CASE("compare: files and dump directories, with shape, dtype and broken-file errors", "[unit]") {
  const fs::path root = fresh_dir("files");
  const auto ref = reference();
  auto row = reference();
  for (std::uint64_t c = 0; c < C; ++c) row.values[2 * C + c] += 10.0;
  write(root / "a.npy", ref);
  write(root / "b.npy", row);
  auto report = compare_paths((root / "a.npy").string(), (root / "b.npy").string(), {});
  REQUIRE(report.ok());
  REQUIRE(report->tensors.size() == 1);
  CHECK(report->tensors[0].pattern.kind == MismatchPattern::row);
  CHECK(report->first_diverging == std::optional<std::size_t>{0});
  const nlohmann::json doc = *report;
  CHECK(doc.at("tensors").at(0).at("pattern").at("kind") == "row");
  CHECK(doc.at("tensors").at(0).at("first_divergence").at("row") == 2);
  CHECK_THAT(render_compare(*report), Catch::Contains("pattern: row (rows 2)"));

  // A dump directory alone: output (float32) against golden (float64) within bound.npy.
  fs::create_directories(root / "dump");
  write(root / "dump" / "output.npy", row);
  auto golden = reference(npy::ElementType::f64);
  write(root / "dump" / "golden.npy", golden);
  npy::Array bound = golden;
  for (double& v : bound.values) v = 1e-6;
  write(root / "dump" / "bound.npy", bound);
  auto alone = compare_paths((root / "dump").string(), "", {});
  REQUIRE(alone.ok());
  CHECK(alone->tensors[0].tolerance == "bound.npy");
  CHECK(alone->tensors[0].mismatched == C);
  // Two dump directories: output against output.
  fs::create_directories(root / "dump2");
  write(root / "dump2" / "output.npy", ref);
  auto both = compare_paths((root / "dump").string(), (root / "dump2").string(), {});
  REQUIRE(both.ok());
  CHECK(both->tensors.back().pattern.kind == MismatchPattern::row);

  auto error_of = [&](const std::string& a, const std::string& b) {
    auto r = compare_paths(a, b, {});
    REQUIRE_FALSE(r.ok());
    return r.error().message;
  };
  npy::Array wide = ref;
  wide.shape = {C, R};
  write(root / "wide.npy", wide);
  CHECK_THAT(error_of((root / "a.npy").string(), (root / "wide.npy").string()),
             Catch::Contains("shape mismatch (32, 48) vs (48, 32)"));
  write(root / "f64.npy", reference(npy::ElementType::f64));
  CHECK_THAT(error_of((root / "a.npy").string(), (root / "f64.npy").string()), Catch::Contains("dtype mismatch"));
  auto bytes = read_file((root / "a.npy").string());
  REQUIRE(bytes.ok());
  std::ofstream(root / "truncated.npy", std::ios::binary) << bytes->substr(0, bytes->size() / 2);
  CHECK_THAT(error_of((root / "a.npy").string(), (root / "truncated.npy").string()),
             Catch::Contains("truncated payload"));
  std::ofstream(root / "garbage.npy") << "this is not numpy";
  CHECK_THAT(error_of((root / "garbage.npy").string(), (root / "a.npy").string()), Catch::Contains("magic"));
  CHECK_THAT(error_of((root / "missing.npy").string(), (root / "a.npy").string()), Catch::Contains("no such file"));
  CHECK_THAT(error_of((root / "a.npy").string(), ""), Catch::Contains("must be a dump directory"));
  fs::create_directories(root / "empty");
  CHECK_THAT(error_of((root / "empty").string(), ""), Catch::Contains("not a tensor dump"));
  fs::remove_all(root);
}
