#pragma once
// Diagnosis options of `substrated probe`: --dump DIR (write tensors and results), --replay
// RESULT.json (re-run a stored spec and seed exactly, on its device or another), --no-inject.
// These always run in this process (never through the daemon): they read and write the
// caller's files.
#include <optional>
#include <string>
#include <vector>

#include "common/expected.hpp"
#include "daemon/probe_command.hpp"

namespace substrate {

struct DiagnosticOptions {
  std::optional<std::string> dump_dir;
  std::optional<std::string> replay_file;
  bool no_inject = false;
  bool active() const { return dump_dir || replay_file; }
};

// The diagnosis options (--dump DIR, --replay FILE, --no-inject) with their help text.
const cli::po::options_description& diagnostic_options();

// The diagnosis options a parsed `probe` command line gives; invalid_argument when --no-inject
// comes without --replay.
Expected<DiagnosticOptions> diagnostic_options_from(const cli::CommandLine& line);

// One stored run to replay: the spec (with seed and injection) and what it produced.
struct ReplayEntry {
  ProbeSpec spec;
  std::string fingerprint;  // empty when the stored run had none
  std::string device_id, device_uuid, device_pci_bus_id, device_name;
};

// Reads a result.json (one result), a `probe --json` document ({"results": [...]}) or a bare
// spec. invalid_argument names the problem.
Expected<std::vector<ReplayEntry>> read_replay_file(const std::string& path);

// Runs the probe command with diagnosis options. `line` is the parsed command line (for
// rejecting spec options under --replay), `request` its probe request. Returns the exit code.
int diagnostic_probe_command(const cli::CommandLine& line, const ProbeRequest& request, bool json,
                             const DiagnosticOptions& options);

// `substrated compare A [B] [--json] [--atol X] [--rtol X]` (daemon/cli/compare_command.cpp).
int compare_command(const std::vector<std::string>& args);

}  // namespace substrate
