#pragma once
// Runs `substrated diag` (docs/diag.md): finds the devices in a discovery worker, refuses busy
// ones, runs each device's level specs in a worker of its own with the protocol's repeat loop
// (docs/worker-protocol.md), samples telemetry on a thread at a fixed period, prints progress,
// and stops cleanly on SIGINT/SIGTERM (workers killed and reaped, the partial report marked
// interrupted). The calling process loads no GPU driver, as the daemon.
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "common/expected.hpp"
#include "daemon/diag.hpp"

namespace substrate::diag {

struct RunOptions {
  int level = 1;
  double duration_seconds = 0.0;      // how long the workers repeat the specs (0: one pass)
  std::string device = "all";         // selector as `probe --device`
  std::optional<std::string> inject;  // a drill for the GEMM specs (`probe --inject` syntax)
  std::uint64_t seed = 1;
  double timeout_seconds = 120.0;  // per kernel run, as `probe --timeout`
  bool force = false;              // run on a busy device
  double busy_utilization = 0.5;   // above this utilisation a device is busy (the daemon's default)
  double min_peer_share = k_default_min_peer_share;
  double telemetry_period_seconds = 1.0;
  std::string sysfs_root = "/sys";
  std::vector<std::string> backend_preference;  // empty: the default
  std::string executable = "/proc/self/exe";    // the worker binary
  std::ostream* progress = nullptr;             // progress lines go here (null: none)
  bool progress_redraw = false;                 // a terminal: one line per device, redrawn in place
};

// The whole run. invalid_argument: no device matches, or a drill does not fit the GEMM specs;
// everything a device meets after that (busy, a worker error, a hang) is in its record.
Expected<Report> run(const RunOptions& options);

}  // namespace substrate::diag
