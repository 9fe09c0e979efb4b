#include "probes/telemetry/verdict.hpp"

#include <algorithm>
#include <cstdio>

#include "probes/telemetry/findings.hpp"
#include "probes/telemetry/join.hpp"

namespace substrate::telemetry {

namespace {

// The verdict severity of a finding kind or XID with an effect (Effect::none never reaches here).
Severity severity_of(Effect effect) { return effect == Effect::failed ? Severity::failed : Severity::degraded; }
Severity severity_of(Kind kind) { return severity_of(finding_kind(kind).effect); }

// Reasons whose activity means the clocks are cut for heat or by a hardware slowdown signal.
constexpr const char* kSlowdownReasons[] = {"sw_thermal_slowdown", "hw_thermal_slowdown", "hw_slowdown"};
constexpr const char* kTemperatureLimits[] = {"slowdown", "crit"};

std::string format_celsius(double celsius) {
  char text[32];
  std::snprintf(text, sizeof text, "%g C", celsius);
  return text;
}

void ecc_rise(const TelemetryDevice& previous, const TelemetryDevice& current, std::vector<Finding>& findings) {
  for (const EccCount& now : current.readings.ecc) {
    if (now.kind != "uncorrected") continue;
    const auto& before_list = previous.readings.ecc;
    const auto before = std::find_if(before_list.begin(), before_list.end(), [&](const EccCount& e) {
      return e.kind == now.kind && e.scope == now.scope && e.location == now.location;
    });
    if (before == before_list.end() || now.count <= before->count) continue;
    findings.push_back({severity_of(Kind::ecc_uncorrected_rise),
                        "uncorrectable ECC errors rose from " + std::to_string(before->count) + " to " +
                            std::to_string(now.count) + " (" + now.scope + ", " + now.location + ", " + current.source +
                            ")"});
    return;
  }
}

void critical_xids(const TelemetryDevice* previous, const TelemetryDevice& current, std::vector<Finding>& findings) {
  for (const XidCount& now : current.readings.xids) {
    const XidEntry* critical = find_xid(now.xid);
    if (!critical || critical->effect == Effect::none) continue;
    std::uint64_t before = 0;
    if (previous) {
      for (const XidCount& earlier : previous->readings.xids) {
        if (earlier.xid == now.xid) before = earlier.count;
      }
    }
    if (now.count <= before) continue;
    findings.push_back({severity_of(critical->effect), "XID " + std::to_string(now.xid) + " (" + critical->meaning +
                                                           ") x" + std::to_string(now.count - before) +
                                                           " since last reading"});
  }
}

void thermal(const TelemetryDevice& current, std::vector<Finding>& findings) {
  const Readings& r = current.readings;
  for (const char* reason : kSlowdownReasons) {
    const auto it = r.clock_event_reasons.find(reason);
    if (it != r.clock_event_reasons.end() && it->second) {
      findings.push_back({severity_of(Kind::clock_slowdown), std::string("clock slowdown active (") + reason + ")"});
      return;
    }
  }
  for (const TemperatureReading& temperature : r.temperatures) {
    for (const ThresholdReading& threshold : r.temperature_thresholds) {
      const bool is_limit =
          std::find_if(std::begin(kTemperatureLimits), std::end(kTemperatureLimits),
                       [&](const char* l) { return threshold.threshold == l; }) != std::end(kTemperatureLimits);
      if (!is_limit || threshold.sensor != temperature.sensor || threshold.celsius <= 0 ||
          temperature.celsius < threshold.celsius) {
        continue;
      }
      findings.push_back({severity_of(Kind::temperature_threshold),
                          temperature.sensor + " temperature " + format_celsius(temperature.celsius) +
                              " at or above its " + threshold.threshold + " threshold " +
                              format_celsius(threshold.celsius)});
      return;
    }
  }
}

}  // namespace

const char* to_string(Severity severity) { return severity == Severity::failed ? "failed" : "degraded"; }

std::optional<Severity> xid_severity(std::uint32_t xid) {
  const XidEntry* entry = find_xid(xid);
  if (!entry || entry->effect == Effect::none) return std::nullopt;
  return severity_of(entry->effect);
}

std::vector<Finding> telemetry_findings(const TelemetryDevice* previous, const TelemetryDevice& current) {
  std::vector<Finding> findings;
  const Readings& r = current.readings;
  if (r.gpu_lost) findings.push_back({severity_of(Kind::gpu_lost), "NVML reports the GPU is lost"});
  if (previous) ecc_rise(*previous, current, findings);
  if (r.remapped_rows_failure.value_or(false)) {
    findings.push_back({severity_of(Kind::row_remap_failed), "row remapping failed"});
  }
  if (r.remapped_rows_pending.value_or(false)) {
    findings.push_back({severity_of(Kind::row_remap_pending), "row remap pending: needs a GPU reset"});
  }
  if (r.retired_pages_pending.value_or(false)) {
    findings.push_back({severity_of(Kind::page_retirement_pending), "page retirement pending: needs a GPU reset"});
  }
  if (r.recovery_action && *r.recovery_action != "none") {
    const Kind kind = *r.recovery_action == "drain_p2p" ? Kind::recovery_drain : Kind::recovery_reset;
    findings.push_back({severity_of(kind), "the driver asks for a recovery action: " + *r.recovery_action});
  }
  critical_xids(previous, current, findings);
  thermal(current, findings);
  return findings;
}

std::vector<Finding> findings_for(const DeviceInfo& compute, const Snapshot* previous, const Snapshot& current) {
  std::vector<Finding> findings;
  for (const TelemetryDevice& device : current.devices) {
    if (device.device != compute.id && !same_device(device, compute)) continue;
    const TelemetryDevice* before = nullptr;
    if (previous) {
      for (const TelemetryDevice& candidate : previous->devices) {
        if (candidate.source == device.source && candidate.local_id == device.local_id) before = &candidate;
      }
    }
    for (Finding& finding : telemetry_findings(before, device)) findings.push_back(std::move(finding));
  }
  return findings;
}

}  // namespace substrate::telemetry
