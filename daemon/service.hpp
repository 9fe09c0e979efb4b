#pragma once
// `substrated serve`: the event loop, the schedule, verdicts, state, telemetry, /metrics and the
// control socket. Everything mutable is owned by the loop thread. Device discovery and every
// probe run happen in worker processes (daemon/supervisor.hpp, daemon/worker_main.hpp): the
// daemon itself never loads a GPU driver.
#include <string>

#include "daemon/config.hpp"
#include "daemon/logging.hpp"
#include "daemon/web_config.hpp"

namespace substrate {

struct ServeOptions {
  std::string config_path;
  WebFlags web;                             // --web.config.file, --web.listen-address
  LogFormat log_format = LogFormat::human;  // --log.format
};

// Runs until SIGTERM/SIGINT; returns the process exit code (0 after a clean stop, 78 on an invalid
// configuration or web configuration, 2 when the daemon cannot start, e.g. another daemon holds the state directory's
// lock). Workers are started from /proc/self/exe, so a binary embedding serve() must dispatch
// `__worker` to worker::worker_main.
int serve(ServeOptions options);

}  // namespace substrate
