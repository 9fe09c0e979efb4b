#include "probes/diagnosis/compare.hpp"

#include "common/file_io.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>

namespace substrate {
namespace fs = std::filesystem;
namespace {

constexpr std::size_t k_listed = 16;

Error bad(const std::string& message) { return Error{ErrorKind::invalid_argument, message}; }

bool is_nan(double v) { return std::isnan(v); }

double cosine_of(double dot, double aa, double bb) {
  if (aa == 0.0 && bb == 0.0) return 1.0;
  if (aa == 0.0 || bb == 0.0) return 0.0;
  return dot / (std::sqrt(aa) * std::sqrt(bb));
}

// NaN-aware argmax: the first maximal finite element; a NaN anywhere makes the row's argmax
// the first NaN (so NaN rows agree only with NaN rows at the same place).
std::uint64_t argmax(const double* v, std::uint64_t n) {
  std::uint64_t best = 0;
  for (std::uint64_t j = 0; j < n; ++j) {
    if (is_nan(v[j])) return j;
    if (v[j] > v[best]) best = j;
  }
  return best;
}

std::string number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.6g", value);
  return text;
}

nlohmann::json json_number(double value) {
  if (std::isfinite(value)) return value;
  return std::isnan(value) ? "nan" : (value > 0 ? "inf" : "-inf");
}

std::string list(const std::vector<std::uint64_t>& values, std::uint64_t total) {
  std::string out;
  for (std::size_t i = 0; i < values.size() && i < 8; ++i) out += (i ? "," : "") + std::to_string(values[i]);
  if (total > 8) out += ",... (" + std::to_string(total) + ")";
  return out;
}

struct Side {
  std::string label;
  bool is_dir = false;
  fs::path path;
  nlohmann::json manifest;  // dump directories
};

Expected<Side> open_side(const std::string& path) {
  Side side;
  side.label = path;
  side.path = path;
  std::error_code ec;
  if (!fs::exists(side.path, ec)) return Error{ErrorKind::io_error, path + ": no such file or directory"};
  side.is_dir = fs::is_directory(side.path, ec);
  if (!side.is_dir) return side;
  const fs::path output = side.path / "output.npy";
  if (!fs::exists(output, ec)) {
    return bad(path + ": not a tensor dump (no output.npy; memory-probe and failed runs dump no tensors)");
  }
  if (fs::exists(side.path / "manifest.json", ec)) {
    auto text = read_file((side.path / "manifest.json").string());
    if (!text) return text.error().to_error();
    try {
      side.manifest = nlohmann::json::parse(*text);
    } catch (const nlohmann::json::exception& e) {
      return Error{ErrorKind::corrupt, (side.path / "manifest.json").string() + ": not valid JSON: " + e.what()};
    }
  }
  return side;
}

struct Layer {
  std::string name, output, golden, bound;
};

Expected<std::vector<Layer>> layers_of(const Side& side) {
  std::vector<Layer> layers;
  if (!side.manifest.is_object() || !side.manifest.contains("layers")) return layers;
  try {
    for (const auto& l : side.manifest.at("layers")) {
      layers.push_back({l.at("name").get<std::string>(), l.at("output").get<std::string>(),
                        l.at("golden").get<std::string>(), l.value("bound", std::string())});
    }
  } catch (const nlohmann::json::exception& e) {
    return Error{ErrorKind::corrupt, (side.path / "manifest.json").string() + ": bad 'layers': " + e.what()};
  }
  return layers;
}

Expected<npy::Array> load(const fs::path& path) { return npy::read_file(path.string()); }

Tolerance relative(const CompareOptions& options) {
  Tolerance t;
  t.kind = Tolerance::Kind::relative;
  t.atol = options.atol.value_or(0.0);
  t.rtol = options.rtol.value_or(0.0);
  t.label = "atol=" + number(t.atol) + ", rtol=" + number(t.rtol);
  return t;
}

// Output against golden within one dump directory (the layer files or the final output).
Expected<TensorComparison> against_golden(const fs::path& dir, const std::string& name, const std::string& output_file,
                                          const std::string& golden_file, const std::string& bound_file,
                                          const CompareOptions& options) {
  TRY_ASSIGN(auto output, load(dir / output_file));
  TRY_ASSIGN(auto golden, load(dir / golden_file));
  Tolerance tolerance;
  std::error_code ec;
  if (options.atol || options.rtol) {
    tolerance = relative(options);
  } else if (!bound_file.empty() && fs::exists(dir / bound_file, ec)) {
    TRY_ASSIGN(auto bound, load(dir / bound_file));
    if (bound.shape != golden.shape) {
      return bad((dir / bound_file).string() + ": shape " + npy::shape_text(bound.shape) + " does not match " +
                 npy::shape_text(golden.shape));
    }
    tolerance.kind = Tolerance::Kind::per_element;
    tolerance.per_element = std::move(bound.values);
    tolerance.label = bound_file;
  }
  return compare_arrays(name, output, golden, tolerance, true);
}

// Output against output of two dump directories: within the sum of their bounds when both
// have bounds (each is within its bound of the same golden), bit-exact otherwise.
Expected<TensorComparison> between_dumps(const Side& a, const Side& b, const std::string& name,
                                         const std::string& output_file, const std::string& bound_file,
                                         const CompareOptions& options) {
  TRY_ASSIGN(auto left, load(a.path / output_file));
  TRY_ASSIGN(auto right, load(b.path / output_file));
  Tolerance tolerance;
  std::error_code ec;
  if (options.atol || options.rtol) {
    tolerance = relative(options);
  } else if (!bound_file.empty() && fs::exists(a.path / bound_file, ec) && fs::exists(b.path / bound_file, ec)) {
    TRY_ASSIGN(auto ba, load(a.path / bound_file));
    TRY_ASSIGN(auto bb, load(b.path / bound_file));
    if (ba.shape != left.shape || bb.shape != left.shape) {
      return bad("bound.npy shapes do not match the outputs of " + a.label + " and " + b.label);
    }
    tolerance.kind = Tolerance::Kind::per_element;
    tolerance.per_element.resize(ba.values.size());
    for (std::size_t i = 0; i < ba.values.size(); ++i) tolerance.per_element[i] = ba.values[i] + bb.values[i];
    tolerance.label = "sum of both bound.npy";
  }
  return compare_arrays(name, left, right, tolerance, false);
}

}  // namespace

namespace {

// Whether the mismatches lie in aligned runs of k_warp_elements (each at least three quarters
// wrong: a half-filled run is as likely a tile's edge; at most half of the runs touched); fills
// `warps` with the touched runs (flat index / 32).
bool warp_blocks(const std::vector<bool>& mask, std::vector<std::uint64_t>& warps) {
  const std::uint64_t blocks = (mask.size() + k_warp_elements - 1) / k_warp_elements;
  if (blocks < 2) return false;
  for (std::uint64_t b = 0; b < blocks; ++b) {
    const std::uint64_t begin = b * k_warp_elements,
                        end = std::min<std::uint64_t>(begin + k_warp_elements, mask.size());
    const auto wrong = static_cast<std::uint64_t>(std::count(mask.begin() + begin, mask.begin() + end, true));
    if (wrong == 0) continue;
    if (4 * wrong < 3 * k_warp_elements) return false;
    warps.push_back(b);
  }
  return !warps.empty() && 2 * warps.size() <= blocks;
}

// The step and first flat index when the `n` >= 4 mismatches sit on one arithmetic progression
// of step >= 2 (the gcd of their distances from the first) filling at least half of its slots.
// Three points are too few to call a period (a 3x3 diagonal would be one).
std::optional<std::pair<std::uint64_t, std::uint64_t>> period_of(const std::vector<bool>& mask, std::uint64_t n) {
  if (n < 4) return std::nullopt;
  std::uint64_t first = 0, last = 0, step = 0;
  bool seen = false;
  for (std::uint64_t i = 0; i < mask.size(); ++i) {
    if (!mask[i]) continue;
    if (!seen) {
      first = i;
      seen = true;
    } else {
      step = std::gcd(step, i - first);
    }
    last = i;
  }
  if (step < 2 || 2 * n < (last - first) / step + 1) return std::nullopt;
  return std::pair{step, first};
}

}  // namespace

const char* to_string(MismatchPattern pattern) {
  switch (pattern) {
    case MismatchPattern::none:
      return "none";
    case MismatchPattern::single_element:
      return "single_element";
    case MismatchPattern::widespread:
      return "widespread";
    case MismatchPattern::warp_aligned:
      return "warp_aligned";
    case MismatchPattern::periodic:
      return "periodic";
    case MismatchPattern::row:
      return "row";
    case MismatchPattern::column_stripe:
      return "column_stripe";
    case MismatchPattern::tile:
      return "tile";
    case MismatchPattern::scattered:
      return "scattered";
  }
  return "?";
}

const char* pattern_hint(MismatchPattern pattern) {
  switch (pattern) {
    case MismatchPattern::none:
      return "the tensors agree";
    case MismatchPattern::single_element:
      return "one cell: a single bit flip in a register, cache line or memory word";
    case MismatchPattern::widespread:
      return "most elements differ: suspect inputs, driver or kernel build before silicon; compare with another device";
    case MismatchPattern::warp_aligned:
      return "whole warps (aligned runs of 32 outputs): one warp's lanes, registers or stores are bad";
    case MismatchPattern::periodic:
      return "a periodic stripe: the same lane of every warp (a period that is a multiple of 32) or the same "
             "position in every tile";
    case MismatchPattern::row:
      return "whole rows (tokens): one workgroup or compute unit produced them, or one input row is bad";
    case MismatchPattern::column_stripe:
      return "a column stripe: one lane, memory channel or weight column is bad";
    case MismatchPattern::tile:
      return "a dense block: one workgroup tile (compute unit) or one memory page";
    case MismatchPattern::scattered:
      return "isolated cells: scattered bit flips (memory cells, marginal silicon)";
  }
  return "";
}

PatternReport classify_mismatches(const std::vector<bool>& mask, std::uint64_t rows, std::uint64_t cols) {
  PatternReport report;
  std::vector<std::uint64_t> per_row(rows, 0), per_col(cols, 0);
  std::uint64_t n = 0;
  std::uint64_t r0 = rows, r1 = 0, c0 = cols, c1 = 0;
  for (std::uint64_t r = 0; r < rows; ++r) {
    for (std::uint64_t c = 0; c < cols; ++c) {
      if (!mask[r * cols + c]) continue;
      ++n;
      ++per_row[r];
      ++per_col[c];
      r0 = std::min(r0, r);
      r1 = std::max(r1, r);
      c0 = std::min(c0, c);
      c1 = std::max(c1, c);
    }
  }
  if (n == 0) return report;
  report.box_row0 = r0;
  report.box_row1 = r1;
  report.box_col0 = c0;
  report.box_col1 = c1;
  const std::uint64_t total = rows * cols;
  if (n == 1) {
    report.kind = MismatchPattern::single_element;
    return report;
  }
  if (2 * n >= total) {
    report.kind = MismatchPattern::widespread;
    return report;
  }
  // Rows: every mismatch in a row at least half wrong, and at most half of the rows touched.
  auto lines = [](const std::vector<std::uint64_t>& counts, std::uint64_t length, std::vector<std::uint64_t>& out) {
    std::uint64_t touched = 0;
    for (std::uint64_t i = 0; i < counts.size(); ++i) {
      if (counts[i] == 0) continue;
      ++touched;
      if (2 * counts[i] < length) return false;
      out.push_back(i);
    }
    return 2 * touched <= counts.size();
  };
  std::vector<std::uint64_t> full_rows, full_cols;
  const bool whole_rows = cols > 1 && std::all_of(per_row.begin(), per_row.end(),
                                                  [&](std::uint64_t count) { return count == 0 || count == cols; });
  if (!whole_rows && warp_blocks(mask, report.warps)) {
    report.kind = MismatchPattern::warp_aligned;
    return report;
  }
  report.warps.clear();
  if (cols > 1 && lines(per_row, cols, full_rows)) {
    report.kind = MismatchPattern::row;
    report.rows = std::move(full_rows);
    return report;
  }
  if (const auto step = period_of(mask, n); step && step->first != cols) {
    report.kind = MismatchPattern::periodic;
    report.period = step->first;
    report.offset = step->second;
    return report;
  }
  if (rows > 1 && lines(per_col, rows, full_cols)) {
    report.kind = MismatchPattern::column_stripe;
    report.columns = std::move(full_cols);
    return report;
  }
  const std::uint64_t box = (r1 - r0 + 1) * (c1 - c0 + 1);
  if (box >= 2 && 2 * box <= total && 2 * n >= box) {
    report.kind = MismatchPattern::tile;
    return report;
  }
  report.kind = MismatchPattern::scattered;
  return report;
}

Expected<TensorComparison> compare_arrays(const std::string& name, const npy::Array& a, const npy::Array& b,
                                          const Tolerance& tolerance, bool allow_f32_vs_f64) {
  if (a.shape != b.shape) {
    return bad(name + ": shape mismatch " + npy::shape_text(a.shape) + " vs " + npy::shape_text(b.shape));
  }
  const bool golden_pair = a.type == npy::ElementType::f32 && b.type == npy::ElementType::f64 && allow_f32_vs_f64;
  if (a.type != b.type && !golden_pair) {
    return bad(name + ": dtype mismatch " + npy::descr(a.type) + " vs " + npy::descr(b.type) +
               " (give a dump directory alone to check its float32 output against its float64 golden)");
  }
  const std::uint64_t count = a.count();
  if (a.values.size() != count || b.values.size() != count) return bad(name + ": value count does not match the shape");
  if (tolerance.kind == Tolerance::Kind::per_element && tolerance.per_element.size() != count) {
    return bad(name + ": tolerance has " + std::to_string(tolerance.per_element.size()) + " elements, tensor " +
               std::to_string(count));
  }
  TensorComparison out;
  out.name = name;
  out.shape = a.shape;
  out.cols = a.shape.empty() ? 1 : a.shape.back();
  out.rows = out.cols == 0 ? 0 : count / out.cols;
  out.elements = count;
  out.tolerance = tolerance.label;
  const bool f32_bits = a.type == npy::ElementType::f32;
  std::vector<bool> mask(count, false);
  double dot = 0, aa = 0, bb = 0, sum_abs = 0, diff_sq = 0;
  std::vector<double> col_dot(out.cols, 0.0), col_aa(out.cols, 0.0), col_bb(out.cols, 0.0);
  out.row_cosine.resize(out.rows);
  for (std::uint64_t r = 0; r < out.rows; ++r) {
    double r_dot = 0, r_aa = 0, r_bb = 0;
    for (std::uint64_t c = 0; c < out.cols; ++c) {
      const std::uint64_t i = r * out.cols + c;
      const double x = a.values[i], y = b.values[i];
      const double diff = std::fabs(x - y);
      bool mismatch = false;
      switch (tolerance.kind) {
        case Tolerance::Kind::exact:
          mismatch = f32_bits ? std::bit_cast<std::uint32_t>(static_cast<float>(x)) !=
                                    std::bit_cast<std::uint32_t>(static_cast<float>(y))
                              : std::bit_cast<std::uint64_t>(x) != std::bit_cast<std::uint64_t>(y);
          break;
        case Tolerance::Kind::per_element:
          mismatch = !(diff <= tolerance.per_element[i]);
          break;
        case Tolerance::Kind::relative:
          mismatch = !(diff <= tolerance.atol + tolerance.rtol * std::fabs(y));
          break;
      }
      if (mismatch) {
        mask[i] = true;
        ++out.mismatched;
        const std::uint32_t flipped =
            std::bit_cast<std::uint32_t>(static_cast<float>(x)) ^ std::bit_cast<std::uint32_t>(static_cast<float>(y));
        for (int bit = 0; bit < 32; ++bit) {
          if (flipped & (1u << bit)) ++out.flipped_bits[bit];
        }
        if (!out.first_divergence) {
          Divergence d;
          d.index = i;
          d.row = r;
          d.col = c;
          d.a = x;
          d.b = y;
          std::uint64_t rest = i;
          d.position.assign(a.shape.size(), 0);
          for (std::size_t k = a.shape.size(); k-- > 0;) {
            d.position[k] = a.shape[k] ? rest % a.shape[k] : 0;
            rest = a.shape[k] ? rest / a.shape[k] : 0;
          }
          out.first_divergence = d;
        }
      }
      const double shown = (is_nan(x) || is_nan(y)) ? INFINITY : diff;
      if (!(shown <= out.max_abs_diff)) out.max_abs_diff = shown;
      sum_abs += shown;
      if (y != 0.0) {
        const double rel = shown / std::fabs(y);
        if (!(rel <= out.max_relative_error)) out.max_relative_error = rel;
      }
      diff_sq += shown * shown;
      dot += x * y;
      aa += x * x;
      bb += y * y;
      r_dot += x * y;
      r_aa += x * x;
      r_bb += y * y;
      col_dot[c] += x * y;
      col_aa[c] += x * x;
      col_bb[c] += y * y;
    }
    out.row_cosine[r] = cosine_of(r_dot, r_aa, r_bb);
    if (!(out.row_cosine[r] >= out.row_cosine[out.min_cosine_row])) out.min_cosine_row = r;
    const std::uint64_t arg_a = argmax(&a.values[r * out.cols], out.cols),
                        arg_b = argmax(&b.values[r * out.cols], out.cols);
    if (arg_a == arg_b) {
      ++out.argmax_agreeing_rows;
    } else if (out.argmax_disagreeing_rows.size() < k_listed) {
      out.argmax_disagreeing_rows.push_back(r);
    }
  }
  out.column_cosine.resize(out.cols);
  for (std::uint64_t c = 0; c < out.cols; ++c) {
    out.column_cosine[c] = cosine_of(col_dot[c], col_aa[c], col_bb[c]);
    if (!(out.column_cosine[c] >= out.column_cosine[out.min_cosine_column])) out.min_cosine_column = c;
  }
  out.cosine = cosine_of(dot, aa, bb);
  out.mean_abs_diff = count ? sum_abs / static_cast<double>(count) : 0.0;
  out.relative_error = bb == 0.0 ? (diff_sq == 0.0 ? 0.0 : INFINITY) : std::sqrt(diff_sq / bb);
  out.pattern = classify_mismatches(mask, out.rows, out.cols);
  return out;
}

Expected<CompareReport> compare_paths(const std::string& a_path, const std::string& b_path,
                                      const CompareOptions& options) {
  if ((options.atol && !(*options.atol >= 0)) || (options.rtol && !(*options.rtol >= 0))) {
    return bad("--atol and --rtol must be non-negative numbers");
  }
  TRY_ASSIGN(auto a, open_side(a_path));
  CompareReport report;
  report.a = a_path;
  if (b_path.empty()) {
    if (!a.is_dir) return bad(a_path + ": a single argument must be a dump directory (output against its golden)");
    report.b = "golden";
    TRY_ASSIGN(auto layers, layers_of(a));
    for (const Layer& l : layers) {
      TRY_ASSIGN(auto c, against_golden(a.path, l.name, l.output, l.golden, l.bound, options));
      report.tensors.push_back(std::move(c));
    }
    TRY_ASSIGN(auto c, against_golden(a.path, "output vs golden", "output.npy", "golden.npy", "bound.npy", options));
    report.tensors.push_back(std::move(c));
  } else {
    TRY_ASSIGN(auto b, open_side(b_path));
    report.b = b_path;
    if (a.is_dir && b.is_dir) {
      TRY_ASSIGN(auto la, layers_of(a));
      TRY_ASSIGN(auto lb, layers_of(b));
      if (la.size() != lb.size()) {
        return bad("the dumps have different layer lists (" + std::to_string(la.size()) + " vs " +
                   std::to_string(lb.size()) + " layers)");
      }
      for (std::size_t i = 0; i < la.size(); ++i) {
        if (la[i].name != lb[i].name || la[i].output != lb[i].output) {
          return bad("layer " + std::to_string(i) + " differs: '" + la[i].name + "' vs '" + lb[i].name + "'");
        }
        TRY_ASSIGN(auto c, between_dumps(a, b, la[i].name, la[i].output, la[i].bound, options));
        report.tensors.push_back(std::move(c));
      }
      TRY_ASSIGN(auto c, between_dumps(a, b, "output", "output.npy", "bound.npy", options));
      report.tensors.push_back(std::move(c));
    } else {
      TRY_ASSIGN(auto left, load(a.is_dir ? a.path / "output.npy" : a.path));
      TRY_ASSIGN(auto right, load(b.is_dir ? b.path / "output.npy" : b.path));
      const Tolerance tolerance = options.atol || options.rtol ? relative(options) : Tolerance{};
      TRY_ASSIGN(auto c,
                 compare_arrays(fs::path(a_path).filename().string() + " vs " + fs::path(b_path).filename().string(),
                                left, right, tolerance, false));
      report.tensors.push_back(std::move(c));
    }
  }
  for (std::size_t i = 0; i < report.tensors.size(); ++i) {
    if (report.tensors[i].mismatched > 0) {
      report.first_diverging = i;
      break;
    }
  }
  return report;
}

std::string render_compare(const CompareReport& report) {
  std::ostringstream out;
  out << "A: " << report.a << "\nB: " << report.b << "\n\n";
  char line[512];
  std::snprintf(line, sizeof line, "%-24s %-14s %-9s %-10s %-10s %-10s %-10s %-10s %-8s %s\n", "TENSOR", "SHAPE",
                "MISMATCH", "COSINE", "MIN_ROWCOS", "MAX_ABS", "MEAN_ABS", "REL_ERR", "ARGMAX", "PATTERN");
  out << line;
  for (const TensorComparison& t : report.tensors) {
    const double min_row = t.row_cosine.empty() ? 1.0 : t.row_cosine[t.min_cosine_row];
    const std::string argmax = std::to_string(t.argmax_agreeing_rows) + "/" + std::to_string(t.rows);
    std::snprintf(line, sizeof line, "%-24s %-14s %-9llu %-10.7f %-10.7f %-10.3g %-10.3g %-10.3g %-8s %s\n",
                  t.name.c_str(), npy::shape_text(t.shape).c_str(), static_cast<unsigned long long>(t.mismatched),
                  t.cosine, min_row, t.max_abs_diff, t.mean_abs_diff, t.relative_error, argmax.c_str(),
                  to_string(t.pattern.kind));
    out << line;
  }
  for (const TensorComparison& t : report.tensors) {
    out << "\n"
        << t.name << " (" << t.elements << " elements as " << t.rows << " rows x " << t.cols
        << " columns; mismatch = " << t.tolerance << ")\n";
    if (t.mismatched == 0) {
      out << "  no mismatches\n";
      continue;
    }
    const Divergence& d = *t.first_divergence;
    std::string position;
    for (std::size_t k = 0; k < d.position.size(); ++k) position += (k ? ", " : "") + std::to_string(d.position[k]);
    std::snprintf(line, sizeof line, "  first divergence: element %llu [%s] (row %llu, col %llu): A %.9g  B %.9g\n",
                  static_cast<unsigned long long>(d.index), position.c_str(), static_cast<unsigned long long>(d.row),
                  static_cast<unsigned long long>(d.col), d.a, d.b);
    out << line;
    out << "  pattern: " << to_string(t.pattern.kind);
    if (t.pattern.kind == MismatchPattern::row) out << " (rows " << list(t.pattern.rows, t.pattern.rows.size()) << ")";
    if (t.pattern.kind == MismatchPattern::warp_aligned) {
      out << " (warps of 32 elements: " << list(t.pattern.warps, t.pattern.warps.size()) << ")";
    }
    if (t.pattern.kind == MismatchPattern::periodic) {
      out << " (every " << t.pattern.period << " elements from element " << t.pattern.offset;
      if (t.pattern.period % k_warp_elements == 0)
        out << ": lane " << t.pattern.offset % k_warp_elements << " of every warp";
      out << ")";
    }
    if (t.pattern.kind == MismatchPattern::column_stripe) {
      out << " (columns " << list(t.pattern.columns, t.pattern.columns.size()) << ")";
    }
    out << ", bounding box rows " << t.pattern.box_row0 << ".." << t.pattern.box_row1 << " cols " << t.pattern.box_col0
        << ".." << t.pattern.box_col1 << "\n  -> " << pattern_hint(t.pattern.kind) << "\n";
    out << "  worst row cosine " << number(t.row_cosine[t.min_cosine_row]) << " at row " << t.min_cosine_row
        << ", worst column cosine " << number(t.column_cosine[t.min_cosine_column]) << " at column "
        << t.min_cosine_column << ", max relative error " << number(t.max_relative_error) << "\n";
    if (!t.argmax_disagreeing_rows.empty()) {
      out << "  argmax differs in rows " << list(t.argmax_disagreeing_rows, t.rows - t.argmax_agreeing_rows) << "\n";
    }
    out << "  flipped bits (float32):";
    for (int bit = 31; bit >= 0; --bit) {
      if (t.flipped_bits[bit]) out << " " << bit << "x" << t.flipped_bits[bit];
    }
    out << "\n";
  }
  out << "\n";
  if (report.first_diverging) {
    out << "first diverging: " << report.tensors[*report.first_diverging].name << "\n";
  } else {
    out << "no divergence\n";
  }
  return out.str();
}

void to_json(nlohmann::json& out, const CompareReport& report) {
  nlohmann::json tensors = nlohmann::json::array();
  for (const TensorComparison& t : report.tensors) {
    nlohmann::json row_cos = nlohmann::json::array(), col_cos = nlohmann::json::array();
    for (double v : t.row_cosine) row_cos.push_back(json_number(v));
    for (double v : t.column_cosine) col_cos.push_back(json_number(v));
    nlohmann::json bits = nlohmann::json::object();
    for (int bit = 0; bit < 32; ++bit) {
      if (t.flipped_bits[bit]) bits[std::to_string(bit)] = t.flipped_bits[bit];
    }
    nlohmann::json entry = {{"name", t.name},
                            {"shape", t.shape},
                            {"rows", t.rows},
                            {"cols", t.cols},
                            {"tolerance", t.tolerance},
                            {"elements", t.elements},
                            {"mismatched", t.mismatched},
                            {"cosine", json_number(t.cosine)},
                            {"max_abs_diff", json_number(t.max_abs_diff)},
                            {"mean_abs_diff", json_number(t.mean_abs_diff)},
                            {"relative_error", json_number(t.relative_error)},
                            {"max_relative_error", json_number(t.max_relative_error)},
                            {"row_cosine", row_cos},
                            {"column_cosine", col_cos},
                            {"min_cosine_row", t.min_cosine_row},
                            {"min_cosine_column", t.min_cosine_column},
                            {"argmax_agreeing_rows", t.argmax_agreeing_rows},
                            {"argmax_disagreeing_rows", t.argmax_disagreeing_rows},
                            {"pattern",
                             {{"kind", to_string(t.pattern.kind)},
                              {"hint", pattern_hint(t.pattern.kind)},
                              {"rows", t.pattern.rows},
                              {"columns", t.pattern.columns},
                              {"warps", t.pattern.warps},
                              {"period", t.pattern.period},
                              {"offset", t.pattern.offset},
                              {"box",
                               {{"row0", t.pattern.box_row0},
                                {"row1", t.pattern.box_row1},
                                {"col0", t.pattern.box_col0},
                                {"col1", t.pattern.box_col1}}}}},
                            {"flipped_bit_histogram", bits}};
    if (t.first_divergence) {
      const Divergence& d = *t.first_divergence;
      entry["first_divergence"] = {{"index", d.index}, {"position", d.position}, {"row", d.row},
                                   {"col", d.col},     {"a", json_number(d.a)},  {"b", json_number(d.b)}};
    } else {
      entry["first_divergence"] = nullptr;
    }
    tensors.push_back(std::move(entry));
  }
  out = {{"a", report.a}, {"b", report.b}, {"tensors", tensors}};
  out["first_diverging"] =
      report.first_diverging ? nlohmann::json(report.tensors[*report.first_diverging].name) : nlohmann::json(nullptr);
}

}  // namespace substrate
