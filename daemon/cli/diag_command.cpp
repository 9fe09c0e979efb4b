#include "daemon/cli/diag_command.hpp"

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "daemon/command_line.hpp"
#include "daemon/control_socket.hpp"
#include "daemon/diag_report.hpp"
#include "daemon/diag_run.hpp"
#include "daemon/exit_code.hpp"
#include "daemon/probe_command.hpp"

namespace substrate {
namespace {

const cli::po::options_description& diag_options() {
  static const cli::po::options_description options = [] {
    cli::po::options_description d;
    d.add_options()("level", cli::takes("L"),
                    "1 quick (the probe set once), 2 medium (~2 min), 3 long (~15 min), 4 extended (~1 h)")(
        "duration", cli::takes("S"), "seconds to repeat the level's specs (overrides the level's duration)")(
        "device", cli::takes("SEL"), "device id (vulkan0), UUID or PCI bus id; default all")(
        "json", "one JSON document (docs/diag.md): the input of the HTML report")(
        "report", cli::takes("FILE"), "also write the HTML report (docs/diag-report.md) to FILE")(
        "force", "run on a device that telemetry shows busy")(
        "inject", cli::takes("SPEC"), "drill in the GEMM specs, as `probe --inject`: the diag must find and locate it")(
        "seed", cli::takes("N"), "generator seed (default 1)")("timeout", cli::takes("S"),
                                                               "seconds before a kernel counts as hung (default 120)")(
        "min-peer-throughput-share", cli::takes("X"),
        "fail a device below this share of the best identical peer's throughput (default 0.9)")(
        "telemetry-period", cli::takes("S"), "seconds between telemetry samples (default 1)")(
        "path.sysfs", cli::takes("DIR"), "replaces /sys for the sysfs telemetry readers")(
        "socket", cli::takes("PATH"),
        "a running daemon's control socket, told each device's result (default $SUBSTRATED_SOCKET or\n"
        "/run/substrated/control.sock)")("help,h", "this text");
    return d;
  }();
  return options;
}

std::string diag_usage() {
  return "usage: substrated diag [--level 1|2|3|4] [--duration S] [--device SEL] [--json] [--report FILE] [--force]\n"
         "                      [--inject SPEC]\n"
         "  runs the level's probes in worker processes, over and over for the duration, checking every\n"
         "  iteration against the CPU golden and the first iteration's fingerprint, sampling telemetry\n"
         "\n" +
         cli::render_options(diag_options(), 32) +
         "\n"
         "exit: 0 every device passed, 1 a device failed, 2 could not run (busy, error, interrupted)\n";
}

int fail(const std::string& message) {
  std::cerr << "substrated: diag: " << message << "\n";
  return k_exit_cannot_run;
}

// A positive finite number of seconds (or a share) from `text`, at most `max`.
std::optional<double> positive(const std::string& text, double max, bool zero_allowed = false) {
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !std::isfinite(value) || value > max || value < 0 ||
      (value == 0 && !zero_allowed)) {
    return std::nullopt;
  }
  return value;
}

// Tells a running daemon each device's result (docs/diag.md, "The daemon knows"): it keeps the
// last diag per device and fails a device whose diag failed. No daemon is no error: the result
// is still printed; a daemon that refuses one is said on stderr.
void tell_daemon(const std::string& socket, const diag::Report& report) {
  for (const diag::Summary& summary : diag::summaries(report)) {
    auto reply = control_request(socket, {{"command", "diag_result"}, {"diag", diag::to_json(summary)}}, 10.0);
    if (!reply) {
      if (reply.error().kind == ErrorKind::unavailable) return;  // no daemon running
      std::cerr << "substrated: diag: the daemon was not told: " << reply.error().message << "\n";
      return;
    }
    if (!reply->value("ok", false)) {
      std::cerr << "substrated: diag: the daemon did not record " << summary.device << ": "
                << reply->value("error", std::string("unknown error")) << "\n";
    }
  }
}

}  // namespace

int diag_command(const std::vector<std::string>& args) {
  auto line = cli::parse_command_line(args, diag_options());
  if (!line) return fail(line.error().message + " (see substrated diag --help)");
  if (line->has("help")) {
    std::cout << diag_usage();
    return k_exit_ok;
  }
  diag::RunOptions options;
  if (auto text = line->last("level")) {
    auto level = diag::parse_level(*text);
    if (!level) return fail(level.error().message);
    options.level = *level;
  }
  options.duration_seconds = diag::default_duration_seconds(options.level);
  if (auto text = line->last("duration")) {
    auto seconds = positive(*text, 7 * 86400.0, /*zero_allowed=*/true);
    if (!seconds) return fail("--duration needs seconds >= 0 and at most a week, got '" + *text + "'");
    options.duration_seconds = *seconds;
  }
  // The probe request's parser for the options the two commands share.
  std::vector<std::string> shared;
  for (const char* name : {"device", "inject", "seed", "timeout"}) {
    if (auto value = line->last(name)) {
      shared.push_back(std::string("--") + name);
      shared.push_back(*value);
    }
  }
  auto request = parse_probe_request(shared);
  if (!request) return fail(request.error().message);
  options.device = request->device;
  options.inject = request->inject;
  options.seed = request->seed;
  options.timeout_seconds = request->timeout_seconds;
  options.force = line->has("force");
  if (auto text = line->last("min-peer-throughput-share")) {
    auto share = positive(*text, 1.0, /*zero_allowed=*/true);
    if (!share) return fail("--min-peer-throughput-share needs a number in [0, 1], got '" + *text + "'");
    options.min_peer_share = *share;
  }
  if (auto text = line->last("telemetry-period")) {
    auto period = positive(*text, 3600.0);
    if (!period) return fail("--telemetry-period needs seconds > 0 and at most 3600, got '" + *text + "'");
    options.telemetry_period_seconds = *period;
  }
  const std::optional<std::string> report_path = line->last("report");
  if (report_path) {
    // Refused before a run that may last an hour, not after it.
    const std::filesystem::path parent = std::filesystem::absolute(*report_path).parent_path();
    std::error_code error;
    if (!std::filesystem::is_directory(parent, error))
      return fail("--report " + *report_path + ": " + parent.string() + " is not a directory");
  }
  options.sysfs_root = line->last("path.sysfs").value_or("/sys");
  options.progress = &std::cerr;
  options.progress_redraw = ::isatty(STDERR_FILENO) == 1;
  auto report = diag::run(options);
  if (!report) return fail(report.error().message);
  const char* env = std::getenv("SUBSTRATED_SOCKET");
  tell_daemon(line->last("socket").value_or(env && *env ? env : "/run/substrated/control.sock"), *report);
  int code = diag::exit_code_of(report->devices);
  if (report_path) {
    if (auto written = write_diag_report(diag::to_json(*report), *report_path); !written) {
      std::cerr << "substrated: diag: --report: " << written.error().message << "\n";
      if (code == k_exit_ok) code = k_exit_cannot_run;  // a fault found stays exit 1
    } else {
      std::cerr << "report: " << *report_path << "\n";
    }
  }
  if (line->has("json")) {
    std::cout << diag::to_json(*report).dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else {
    std::cout << diag::render_text(*report);
  }
  return code;
}

}  // namespace substrate
