#pragma once
// `substrated serve`: the event loop, the per-device workers and schedule, verdicts, state,
// telemetry, /metrics and the control socket. Everything mutable is owned by the loop thread;
// workers only run probes and post their results back.
#include <memory>
#include <string>

#include "daemon/config.hpp"
#include "probes/compute_device.hpp"

namespace substrate {

struct ServeOptions {
  std::string config_path;
  // Tests inject devices (e.g. one that hangs) instead of discovering them.
  std::unique_ptr<Discovery> devices;
};

// Runs until SIGTERM/SIGINT; returns the process exit code (0 after a clean stop, 78 on an invalid
// configuration, 2 when the daemon cannot start).
int serve(ServeOptions options);

}  // namespace substrate
