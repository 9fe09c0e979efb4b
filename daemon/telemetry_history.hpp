#pragma once
// Telemetry findings judged against durable per-device history rather than one snapshot: the
// daemon keeps, per telemetry device (source and local id), its newest reading with every
// counter (XIDs, ECC counts) it ever read, so a failed or missing read in between neither hides a
// rise nor replays an old event; and it tells events (a count that rose) from conditions (what a
// reading shows on its own), which daemon/verdict.hpp keeps for different lengths of time.
#include <optional>
#include <vector>

#include "daemon/state_store.hpp"
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

// The part of `history` that must survive a restart: each telemetry device's ECC counters (hardware
// counts, so a rise while the daemon was down is a rise). XID counts are left out: NVML delivers
// an XID only to a process listening at the time, and counts from zero in each process.
std::vector<TelemetryCounterRecord> durable_counters(const telemetry::Snapshot& history);
// The history a restarted daemon judges its first reading against; empty devices when none.
telemetry::Snapshot restore_counters(const std::vector<TelemetryCounterRecord>& records);

// The verdict to keep across a restart: nullopt unless telemetry events stand in it (they stay
// until passes_to_recover clean runs, which a restart must not cut short).
std::optional<TelemetryVerdictRecord> durable_verdict(const VerdictState& verdict);
// A verdict from a record written by durable_verdict; an unknown health text reads as unknown.
VerdictState restore_verdict(const TelemetryVerdictRecord& record);

}  // namespace substrate
