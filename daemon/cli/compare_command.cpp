// `substrated compare A [B] [--json] [--atol X] [--rtol X]`: the comparator from the command line.
#include <cstdlib>
#include <iostream>

#include <nlohmann/json.hpp>

#include "daemon/cli/diagnose_command.hpp"
#include "daemon/command_line.hpp"
#include "daemon/exit_code.hpp"
#include "probes/diagnosis/compare.hpp"

namespace substrate {
namespace {

const cli::po::options_description& compare_options() {
  static const cli::po::options_description options = [] {
    cli::po::options_description d;
    d.add_options()("atol", cli::takes("X"),
                    "mismatch when |A - B| > atol + rtol*|B| (instead of bounds or bit-exact)")(
        "rtol", cli::takes("X"), "see --atol")("json", "one JSON document")("help,h", "this text");
    return d;
  }();
  return options;
}

std::string compare_usage() {
  return "usage: substrated compare A [B] [--json] [--atol X] [--rtol X]\n"
         "\n"
         "  A, B      dump directories (from `substrated probe --dump DIR`) or .npy files (float32/float64)\n"
         "  A alone   a dump directory: its output.npy against its golden.npy (within bound.npy when present)\n"
         "  A B dirs  output.npy against output.npy (within the sum of both bound.npy when present), and every\n"
         "            layer their manifests list, in order\n" +
         cli::render_options(compare_options(), 12) +
         "\n"
         "Reports cosine similarity (global, per row/token, per column), max/mean absolute difference,\n"
         "relative error, argmax agreement per row, the first diverging element and layer, and the\n"
         "pattern of mismatches: single_element, row, column_stripe, tile, scattered or widespread.\n"
         "\n"
         "A/B of the software stack: on an NVIDIA host the PyTorch external worker (torch0, cuBLAS) is a\n"
         "second path beside the CUDA backend (cuda0) on the same GPU; dumps of the same spec and seed\n"
         "from both compare here (docs/external-workers.md).\n"
         "\n"
         "exit: 0 no mismatch, 1 mismatches found, 2 invalid input (missing/broken file, shape or dtype mismatch)\n";
}

int fail(const std::string& message) {
  std::cerr << "substrated: compare: " << message << "\n";
  return k_exit_cannot_run;
}

}  // namespace

int compare_command(const std::vector<std::string>& args) {
  auto line = cli::parse_command_line(args, compare_options(), /*positional_allowed=*/true);
  if (!line) return fail(line.error().message + " (see substrated compare --help)");
  if (line->has("help")) {
    std::cout << compare_usage();
    return k_exit_ok;
  }
  CompareOptions options;
  for (const char* name : {"atol", "rtol"}) {
    const auto text = line->last(name);
    if (!text) continue;
    char* end = nullptr;
    const double value = std::strtod(text->c_str(), &end);
    if (*end != '\0' || !(value >= 0))
      return fail(std::string("--") + name + " needs a non-negative number, got '" + *text + "'");
    (name == std::string("atol") ? options.atol : options.rtol) = value;
  }
  const std::vector<std::string>& paths = line->positional;
  if (paths.empty() || paths.size() > 2) return fail("expected A [B] (see substrated compare --help)");
  auto report = compare_paths(paths[0], paths.size() == 2 ? paths[1] : std::string(), options);
  if (!report) return fail(report.error().message);
  if (line->has("json")) {
    std::cout << nlohmann::json(*report).dump(2) << "\n";
  } else {
    std::cout << render_compare(*report);
  }
  return fold_exit_code({report->first_diverging ? Outcome::fault : Outcome::pass});
}

}  // namespace substrate
