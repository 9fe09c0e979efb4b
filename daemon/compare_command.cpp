// `substrated compare A [B] [--json] [--atol X] [--rtol X]`: the comparator from the command line.
#include <cstdlib>
#include <iostream>

#include <nlohmann/json.hpp>

#include "daemon/cli.hpp"
#include "daemon/diagnose_command.hpp"
#include "probes/compare.hpp"

namespace substrate {
namespace {

constexpr const char* k_compare_usage =
    "usage: substrated compare A [B] [--json] [--atol X] [--rtol X]\n"
    "\n"
    "  A, B      dump directories (from `substrated probe --dump DIR`) or .npy files (float32/float64)\n"
    "  A alone   a dump directory: its output.npy against its golden.npy (within bound.npy when present)\n"
    "  A B dirs  output.npy against output.npy (within the sum of both bound.npy when present), and every\n"
    "            layer their manifests list, in order\n"
    "  --atol X, --rtol X  mismatch when |A - B| > atol + rtol*|B| (instead of bounds or bit-exact)\n"
    "  --json    one JSON document\n"
    "\n"
    "Reports cosine similarity (global, per row/token, per column), max/mean absolute difference,\n"
    "relative error, argmax agreement per row, the first diverging element and layer, and the\n"
    "pattern of mismatches: single_element, row, column_stripe, tile, scattered or widespread.\n"
    "\n"
    "exit: 0 no mismatch, 1 mismatches found, 2 invalid input (missing/broken file, shape or dtype mismatch)\n";

int fail(const std::string& message) {
  std::cerr << "substrated: compare: " << message << "\n";
  return cli::k_exit_cannot_run;
}

}  // namespace

int compare_command(const std::vector<std::string>& args) {
  std::vector<std::string> paths;
  CompareOptions options;
  bool json = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << k_compare_usage;
      return cli::k_exit_ok;
    }
    if (arg == "--json") {
      json = true;
    } else if (arg == "--atol" || arg == "--rtol") {
      if (i + 1 >= args.size()) return fail(arg + " needs a value");
      const std::string& text = args[++i];
      char* end = nullptr;
      const double value = std::strtod(text.c_str(), &end);
      if (text.empty() || *end != '\0' || !(value >= 0)) return fail(arg + " needs a non-negative number, got '" + text + "'");
      (arg == "--atol" ? options.atol : options.rtol) = value;
    } else if (arg.rfind("--", 0) == 0) {
      return fail("unknown option '" + arg + "'\n" + k_compare_usage);
    } else {
      paths.push_back(arg);
    }
  }
  if (paths.empty() || paths.size() > 2) return fail(std::string("expected A [B]\n") + k_compare_usage);
  auto report = compare_paths(paths[0], paths.size() == 2 ? paths[1] : std::string(), options);
  if (!report) return fail(report.error().message);
  if (json) {
    std::cout << nlohmann::json(*report).dump(2) << "\n";
  } else {
    std::cout << render_compare(*report);
  }
  return report->first_diverging ? cli::k_exit_fault : cli::k_exit_ok;
}

}  // namespace substrate
