// `substrated report INPUT -o FILE`: the diag report from the command line.
#include "daemon/cli/report_command.hpp"

#include <iostream>

#include <nlohmann/json.hpp>

#include "daemon/command_line.hpp"
#include "daemon/diag_report.hpp"
#include "daemon/exit_code.hpp"

namespace substrate {
namespace {

const cli::po::options_description& report_options() {
  static const cli::po::options_description options = [] {
    cli::po::options_description d;
    d.add_options()("output,o", cli::takes("FILE"), "where to write the HTML report (required)")("help,h", "this text");
    return d;
  }();
  return options;
}

std::string report_usage() {
  return "usage: substrated report INPUT -o FILE\n"
         "\n"
         "  INPUT     the JSON of `substrated diag --json`, or of `substrated probe --json` (one device entry per\n"
         "            device, one timeline point per result)\n" +
         cli::render_options(report_options(), 12) +
         "\n"
         "Writes one self-contained HTML file (inline SVG, no scripts, no external resources): a summary per\n"
         "device, timelines of throughput, temperature, clocks and power, and for every failing run the\n"
         "heatmap of mismatch positions, the flipped-bit histogram and the replay command.\n"
         "\n"
         "exit: 0 written, 2 invalid input or FILE not writable\n";
}

int fail(const std::string& message) {
  std::cerr << "substrated: report: " << message << "\n";
  return k_exit_cannot_run;
}

}  // namespace

int report_command(const std::vector<std::string>& args) {
  auto line = cli::parse_command_line(args, report_options(), /*positional_allowed=*/true);
  if (!line) return fail(line.error().message + " (see substrated report --help)");
  if (line->has("help")) {
    std::cout << report_usage();
    return k_exit_ok;
  }
  if (line->positional.size() != 1) return fail("expected one INPUT file (see substrated report --help)");
  const auto output = line->last("output");
  if (!output || output->empty()) return fail("-o FILE is required (see substrated report --help)");
  auto document = read_report_input(line->positional[0]);
  if (!document) return fail(document.error().message);
  auto written = write_diag_report(*document, *output);
  if (!written) return fail(line->positional[0] + ": " + written.error().message);
  return k_exit_ok;
}

}  // namespace substrate
