#include "daemon/telemetry_history.hpp"

#include <algorithm>

#include "probes/telemetry/verdict.hpp"

namespace substrate {

void remember_telemetry(telemetry::Snapshot& history, const telemetry::Snapshot& reading) {
  for (const telemetry::TelemetryDevice& device : reading.devices) {
    auto known = std::find_if(history.devices.begin(), history.devices.end(), [&](const telemetry::TelemetryDevice& d) {
      return d.source == device.source && d.local_id == device.local_id;
    });
    if (known == history.devices.end()) {
      history.devices.push_back(device);
      continue;
    }
    telemetry::TelemetryDevice merged = device;
    for (const telemetry::XidCount& xid : known->readings.xids) {
      const bool present = std::any_of(merged.readings.xids.begin(), merged.readings.xids.end(),
                                       [&](const telemetry::XidCount& x) { return x.xid == xid.xid; });
      if (!present) merged.readings.xids.push_back(xid);
    }
    for (const telemetry::EccCount& ecc : known->readings.ecc) {
      const bool present =
          std::any_of(merged.readings.ecc.begin(), merged.readings.ecc.end(), [&](const telemetry::EccCount& e) {
            return e.kind == ecc.kind && e.scope == ecc.scope && e.location == ecc.location;
          });
      if (!present) merged.readings.ecc.push_back(ecc);
    }
    *known = std::move(merged);
  }
}

std::vector<TelemetryFinding> classify_telemetry(const DeviceInfo& compute, const telemetry::Snapshot* history,
                                                 const telemetry::Snapshot& reading) {
  const auto findings = telemetry::findings_for(compute, history, reading);
  // The reading compared with itself has no count rises: what remains are its conditions.
  const auto standing = telemetry::findings_for(compute, &reading, reading);
  std::vector<TelemetryFinding> out;
  for (const telemetry::Finding& f : findings) {
    const bool condition = std::any_of(standing.begin(), standing.end(), [&](const telemetry::Finding& c) {
      return c.severity == f.severity && c.reason == f.reason;
    });
    out.push_back({f.severity == telemetry::Severity::failed, f.reason, !condition});
  }
  return out;
}

std::vector<TelemetryCounterRecord> durable_counters(const telemetry::Snapshot& history) {
  std::vector<TelemetryCounterRecord> records;
  for (const telemetry::TelemetryDevice& device : history.devices) {
    if (device.readings.ecc.empty()) continue;
    TelemetryCounterRecord record{device.source, device.local_id, device.pci_bus_id, device.uuid, {}};
    for (const telemetry::EccCount& e : device.readings.ecc)
      record.ecc.push_back({e.kind, e.scope, e.location, e.count});
    records.push_back(std::move(record));
  }
  return records;
}

telemetry::Snapshot restore_counters(const std::vector<TelemetryCounterRecord>& records) {
  telemetry::Snapshot history;
  for (const TelemetryCounterRecord& record : records) {
    telemetry::TelemetryDevice device;
    device.source = record.source;
    device.local_id = record.local_id;
    device.pci_bus_id = record.pci_bus_id;
    device.uuid = record.uuid;
    for (const auto& e : record.ecc) device.readings.ecc.push_back({e.kind, e.scope, e.location, e.count});
    history.devices.push_back(std::move(device));
  }
  return history;
}

std::optional<TelemetryVerdictRecord> durable_verdict(const VerdictState& verdict) {
  if (verdict.telemetry_events.empty()) return std::nullopt;
  TelemetryVerdictRecord record{to_string(verdict.health), verdict.reasons, verdict.consecutive_passes, {}};
  for (const auto& [kind, event] : verdict.telemetry_events) record.events[kind] = {event.count, event.reason};
  return record;
}

VerdictState restore_verdict(const TelemetryVerdictRecord& record) {
  VerdictState verdict;
  for (Health h : k_all_health) {
    if (record.health == to_string(h)) verdict.health = h;
  }
  verdict.reasons = record.reasons;
  while (verdict.reasons.size() > k_max_reasons) verdict.reasons.erase(verdict.reasons.begin());
  verdict.consecutive_passes = record.consecutive_passes;
  for (const auto& [kind, event] : record.events) verdict.telemetry_events[kind] = {event.first, event.second};
  return verdict;
}

}  // namespace substrate
