#pragma once
// /metrics: the daemon's Prometheus text (substrate_* families, then telemetry's), rendered from
// a DaemonView at scrape time. Nothing is measured here: every value comes from the last
// scheduled run or telemetry read (HELP says so).
#include <string>

#include "daemon/daemon_view.hpp"

namespace substrate {

// The exposition text (Prometheus text format 0.0.4). Families a healthy host has no series for
// still appear with HELP and TYPE, so dashboards and rules see every name; labels are bounded
// (device ids, probe ids, the Reason/SkipKind/outcome vocabularies).
std::string render_metrics(const DaemonView& view);

}  // namespace substrate
