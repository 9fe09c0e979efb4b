#pragma once
// Human-readable rendering of probe results and device lists (the JSON path is probe_result.hpp).
#include <map>
#include <string>
#include <vector>

#include "probes/core/probe_result.hpp"

namespace substrate {

// A table with one row per result, then the evidence of every failure (mismatches, bits, seed
// and the replay command) and the reason of every run that errored or was skipped.
std::string render_results(const std::vector<ProbeResult>& results);
// Devices with the telemetry sources joined to each (by device id), then the notes.
std::string render_devices(const std::vector<DeviceInfo>& devices,
                           const std::map<std::string, std::vector<std::string>>& telemetry_sources,
                           const std::vector<std::string>& notes);

}  // namespace substrate
