#pragma once
// /status and the systemd status line, rendered from a DaemonView (daemon/daemon_view.hpp).
#include <string>

#include <nlohmann/json.hpp>

#include "daemon/daemon_view.hpp"

namespace substrate {

// "2 healthy, 1 hung": the count of each effective verdict (telemetry conditions included), in
// the order of k_all_health, zero counts left out; "no devices" when there are none. Sent to
// systemd as STATUS= (shown by `systemctl status`).
std::string status_line(const DaemonView& view);

// The /status document (docs/operations.md): version, config source and reload state, per device
// its DeviceInfo, effective health and reasons, telemetry sources, recorded device changes,
// worker state (running, pid, exits by outcome) and each probe's last scheduled results; then
// discovery's backend notes and telemetry's notes.
nlohmann::json status_json(const DaemonView& view);

}  // namespace substrate
