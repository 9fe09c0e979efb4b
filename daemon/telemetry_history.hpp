#pragma once
// Telemetry findings judged against durable per-device history rather than one snapshot: the
// daemon keeps, per telemetry device (source and local id), its newest reading with every
// counter (XIDs, ECC counts) it ever read, so a failed or missing read in between neither hides a
// rise nor replays an old event; and it tells events (a count that rose) from conditions (what a
// reading shows on its own), which daemon/verdict.hpp keeps for different lengths of time.
#include <vector>

#include "daemon/verdict.hpp"
#include "probes/backends/compute_device.hpp"
#include "probes/telemetry/model.hpp"

namespace substrate {

// Folds `reading` into `history`: each of its telemetry devices replaces its entry (appended
// when new), keeping the XID and ECC counters this reading lacks from the entry it replaces.
// Devices missing from `reading` keep their entry.
void remember_telemetry(telemetry::Snapshot& history, const telemetry::Snapshot& reading);

// The telemetry findings for `compute` in `reading`, judged against `history` (null: the first
// reading, no history yet), each marked event (a rise since the history) or not (a condition the
// reading shows on its own), with failed for severity failed.
std::vector<TelemetryFinding> classify_telemetry(const DeviceInfo& compute, const telemetry::Snapshot* history,
                                                 const telemetry::Snapshot& reading);

}  // namespace substrate
