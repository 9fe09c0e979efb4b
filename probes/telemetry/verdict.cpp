#include "probes/telemetry/verdict.hpp"

#include <algorithm>
#include <cstdio>

#include "probes/telemetry/join.hpp"

namespace substrate::telemetry {

namespace {

struct CriticalXid {
  std::uint32_t xid;
  Severity severity;
  const char* meaning;
};

constexpr CriticalXid kCriticalXids[] = {
    {48, Severity::failed, "double-bit ECC error"},
    {63, Severity::degraded, "ECC page retirement or row remap recorded, reset pending"},
    {64, Severity::failed, "ECC page retirement or row remap failed"},
    {74, Severity::degraded, "NVLink error"},
    {79, Severity::failed, "GPU has fallen off the bus"},
    {92, Severity::degraded, "high single-bit ECC error rate"},
    {94, Severity::degraded, "contained ECC error"},
    {95, Severity::failed, "uncontained ECC error"},
    {119, Severity::failed, "GSP RPC timeout"},
    {120, Severity::failed, "GSP error"},
};

const CriticalXid* critical_xid(std::uint32_t xid) {
  for (const CriticalXid& entry : kCriticalXids) {
    if (entry.xid == xid) return &entry;
  }
  return nullptr;
}

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
    findings.push_back({Severity::failed, "uncorrectable ECC errors rose from " + std::to_string(before->count) +
                                              " to " + std::to_string(now.count) + " (" + now.scope + ", " +
                                              now.location + ", " + current.source + ")"});
    return;
  }
}

void critical_xids(const TelemetryDevice* previous, const TelemetryDevice& current, std::vector<Finding>& findings) {
  for (const XidCount& now : current.readings.xids) {
    const CriticalXid* critical = critical_xid(now.xid);
    if (!critical) continue;
    std::uint64_t before = 0;
    if (previous) {
      for (const XidCount& earlier : previous->readings.xids) {
        if (earlier.xid == now.xid) before = earlier.count;
      }
    }
    if (now.count <= before) continue;
    findings.push_back({critical->severity, "XID " + std::to_string(now.xid) + " (" + critical->meaning + ") x" +
                                                std::to_string(now.count - before) + " since last reading"});
  }
}

void thermal(const TelemetryDevice& current, std::vector<Finding>& findings) {
  const Readings& r = current.readings;
  for (const char* reason : kSlowdownReasons) {
    const auto it = r.clock_event_reasons.find(reason);
    if (it != r.clock_event_reasons.end() && it->second) {
      findings.push_back({Severity::degraded, std::string("clock slowdown active (") + reason + ")"});
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
      findings.push_back({Severity::degraded, temperature.sensor + " temperature " +
                                                  format_celsius(temperature.celsius) + " at or above its " +
                                                  threshold.threshold + " threshold " +
                                                  format_celsius(threshold.celsius)});
      return;
    }
  }
}

}  // namespace

const char* to_string(Severity severity) { return severity == Severity::failed ? "failed" : "degraded"; }

std::optional<Severity> xid_severity(std::uint32_t xid) {
  const CriticalXid* critical = critical_xid(xid);
  if (!critical) return std::nullopt;
  return critical->severity;
}

std::vector<Finding> telemetry_findings(const TelemetryDevice* previous, const TelemetryDevice& current) {
  std::vector<Finding> findings;
  const Readings& r = current.readings;
  if (r.gpu_lost) findings.push_back({Severity::failed, "NVML reports the GPU is lost"});
  if (previous) ecc_rise(*previous, current, findings);
  if (r.remapped_rows_failure.value_or(false)) findings.push_back({Severity::failed, "row remapping failed"});
  if (r.remapped_rows_pending.value_or(false)) {
    findings.push_back({Severity::degraded, "row remap pending: needs a GPU reset"});
  }
  if (r.retired_pages_pending.value_or(false)) {
    findings.push_back({Severity::degraded, "page retirement pending: needs a GPU reset"});
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
