#pragma once
// Telemetry -> verdict: findings that mark a device degraded or failed, from the previous and the
// current reading of the same telemetry device. The daemon merges them with the probe results.
//
// Rules (each yields at most one finding per device and rule); each finding's severity comes from
// the finding table in probes/telemetry/findings.hpp (shown in docs/findings.md):
//   an uncorrectable ECC count rose since the previous reading (no previous: no finding; a count
//   that went down, e.g. volatile after a driver reload, is not a rise); row remapping failed; a
//   row remap or a page retirement waits for a GPU reset; an XID with an effect arrived since the
//   previous reading; a thermal or hardware slowdown clock-event reason is active, or a temperature
//   is at or above its slowdown or crit threshold; NVML answered GPU_IS_LOST; NVML's GPU recovery
//   action is not none.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "probes/backends/compute_device.hpp"
#include "probes/telemetry/model.hpp"

namespace substrate::telemetry {

enum class Severity { degraded, failed };
const char* to_string(Severity severity);

struct Finding {
  Severity severity;
  std::string reason;  // one line, e.g. "XID 79 (GPU has fallen off the bus) x1 since last reading"
};

// The severity of an XID with an effect in xid_table() (findings.hpp); nullopt for every other XID
// (13, 31, 43, 45 and the like are usually the application's fault, not the device's).
std::optional<Severity> xid_severity(std::uint32_t xid);

// Findings for one telemetry device; `previous` is its reading from the last snapshot (same
// source and local id), or null on the first.
std::vector<Finding> telemetry_findings(const TelemetryDevice* previous, const TelemetryDevice& current);

// Findings for every telemetry device of `current` joined to `compute` (same device label after
// join_devices(), or same PCI bus id / UUID), each compared with its counterpart in `previous`.
std::vector<Finding> findings_for(const DeviceInfo& compute, const Snapshot* previous, const Snapshot& current);

}  // namespace substrate::telemetry
