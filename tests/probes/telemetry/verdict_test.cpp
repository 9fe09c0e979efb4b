// Telemetry faults turned into findings: one test per fault kind, plus the quiet cases.
#include <catch2/catch.hpp>

#include "probes/telemetry/verdict.hpp"

using namespace substrate;
using namespace substrate::telemetry;

namespace {

TelemetryDevice healthy_nvml_device() {
  TelemetryDevice device;
  device.source = kSourceNvml;
  device.local_id = "nvml0";
  device.pci_bus_id = "0000:65:00.0";
  device.device = "cuda0";
  Readings& r = device.readings;
  r.ecc = {{"corrected", "volatile", "total", 4},
           {"uncorrected", "volatile", "total", 0},
           {"uncorrected", "aggregate", "total", 1}};
  r.remapped_rows = {{"correctable", 1}, {"uncorrectable", 0}};
  r.remapped_rows_pending = false;
  r.remapped_rows_failure = false;
  r.retired_pages_pending = false;
  r.clock_event_reasons = {{"gpu_idle", true}, {"sw_thermal_slowdown", false}, {"hw_slowdown", false}};
  r.temperatures = {{"gpu", 60.0}};
  r.temperature_thresholds = {{"gpu", "slowdown", 90.0}, {"gpu", "shutdown", 95.0}};
  return device;
}

bool has(const std::vector<Finding>& findings, Severity severity, const std::string& text) {
  for (const Finding& finding : findings) {
    if (finding.severity == severity && finding.reason.find(text) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("telemetry: a healthy device has no findings, first reading or not", "[unit]") {
  const TelemetryDevice device = healthy_nvml_device();
  CHECK(telemetry_findings(nullptr, device).empty());
  CHECK(telemetry_findings(&device, device).empty());
}

TEST_CASE("telemetry: an uncorrectable ECC increase fails the device", "[unit]") {
  const TelemetryDevice before = healthy_nvml_device();
  TelemetryDevice after = before;
  after.readings.ecc[1].count = 2;
  const auto findings = telemetry_findings(&before, after);
  REQUIRE(findings.size() == 1);
  CHECK(has(findings, Severity::failed, "uncorrectable ECC errors rose from 0 to 2 (volatile, total, nvml)"));
  // The count alone, without a previous reading, is not an increase.
  CHECK(telemetry_findings(nullptr, after).empty());
  // A volatile count that drops (driver reload) is not an increase either.
  CHECK(telemetry_findings(&after, before).empty());
  // Corrected errors never fail a device by themselves.
  TelemetryDevice corrected = before;
  corrected.readings.ecc[0].count = 400;
  CHECK(telemetry_findings(&before, corrected).empty());
}

TEST_CASE("telemetry: an amdgpu RAS uncorrectable increase fails the device", "[unit]") {
  TelemetryDevice before;
  before.source = kSourceAmdgpu;
  before.local_id = "drm-card1";
  before.readings.ecc = {{"uncorrected", "volatile", "umc", 2}};
  TelemetryDevice after = before;
  after.readings.ecc[0].count = 3;
  CHECK(has(telemetry_findings(&before, after), Severity::failed, "(volatile, umc, amdgpu)"));
}

TEST_CASE("telemetry: row remapping failure fails, pending remap or retirement degrades", "[unit]") {
  TelemetryDevice failed = healthy_nvml_device();
  failed.readings.remapped_rows_failure = true;
  CHECK(has(telemetry_findings(nullptr, failed), Severity::failed, "row remapping failed"));

  TelemetryDevice pending = healthy_nvml_device();
  pending.readings.remapped_rows_pending = true;
  const auto remap = telemetry_findings(nullptr, pending);
  REQUIRE(remap.size() == 1);
  CHECK(has(remap, Severity::degraded, "row remap pending"));

  TelemetryDevice retirement = healthy_nvml_device();
  retirement.readings.retired_pages_pending = true;
  CHECK(has(telemetry_findings(nullptr, retirement), Severity::degraded, "page retirement pending"));
}

TEST_CASE("telemetry: critical XIDs since the last reading degrade or fail the device", "[unit]") {
  TelemetryDevice before = healthy_nvml_device();
  before.readings.xids = {{79, 1, 1700000000.0}, {13, 4, 1700000000.0}};
  TelemetryDevice after = before;
  after.readings.xids = {{79, 3, 1700000100.0}, {13, 9, 1700000100.0}, {94, 1, 1700000100.0}};
  const auto findings = telemetry_findings(&before, after);
  CHECK(has(findings, Severity::failed, "XID 79 (GPU has fallen off the bus) x2 since last reading"));
  CHECK(has(findings, Severity::degraded, "XID 94"));
  CHECK_FALSE(has(findings, Severity::failed, "XID 13"));
  CHECK_FALSE(has(findings, Severity::degraded, "XID 13"));
  CHECK(telemetry_findings(&after, after).empty());                             // nothing new
  CHECK(has(telemetry_findings(nullptr, before), Severity::failed, "XID 79"));  // counted since start

  for (std::uint32_t xid : {48u, 64u, 79u, 95u, 119u, 120u}) CHECK(xid_severity(xid) == Severity::failed);
  for (std::uint32_t xid : {63u, 74u, 92u, 94u}) CHECK(xid_severity(xid) == Severity::degraded);
  for (std::uint32_t xid : {13u, 31u, 43u, 45u}) CHECK_FALSE(xid_severity(xid).has_value());
}

TEST_CASE("telemetry: thermal slowdown degrades the device", "[unit]") {
  TelemetryDevice throttled = healthy_nvml_device();
  throttled.readings.clock_event_reasons["sw_thermal_slowdown"] = true;
  const auto findings = telemetry_findings(nullptr, throttled);
  REQUIRE(findings.size() == 1);
  CHECK(has(findings, Severity::degraded, "clock slowdown active (sw_thermal_slowdown)"));

  TelemetryDevice hot_amd;
  hot_amd.source = kSourceHwmon;
  hot_amd.readings.temperatures = {{"junction", 111.0}};
  hot_amd.readings.temperature_thresholds = {{"junction", "crit", 110.0}, {"junction", "emergency", 115.0}};
  CHECK(has(telemetry_findings(nullptr, hot_amd), Severity::degraded,
            "junction temperature 111 C at or above its crit threshold 110 C"));
}

TEST_CASE("telemetry: a lost GPU fails the device", "[unit]") {
  TelemetryDevice lost = healthy_nvml_device();
  lost.readings.gpu_lost = true;
  CHECK(has(telemetry_findings(nullptr, lost), Severity::failed, "GPU is lost"));
}

TEST_CASE("telemetry: findings_for gathers every source joined to a compute device", "[unit]") {
  Snapshot previous, current;
  previous.devices.push_back(healthy_nvml_device());
  current.devices.push_back(healthy_nvml_device());
  current.devices[0].readings.ecc[1].count = 1;
  TelemetryDevice hwmon;
  hwmon.source = kSourceHwmon;
  hwmon.local_id = "hwmon2";
  hwmon.device = "cuda0";
  hwmon.readings.clock_event_reasons["hw_slowdown"] = true;
  current.devices.push_back(hwmon);
  TelemetryDevice other = healthy_nvml_device();
  other.local_id = "nvml1";
  other.device = "cuda1";
  other.pci_bus_id = "0000:66:00.0";
  other.readings.remapped_rows_failure = true;
  current.devices.push_back(other);

  DeviceInfo cuda0;
  cuda0.id = "cuda0";
  cuda0.pci_bus_id = "0000:65:00.0";
  const auto findings = findings_for(cuda0, &previous, current);
  CHECK(findings.size() == 2);
  CHECK(has(findings, Severity::failed, "uncorrectable ECC"));
  CHECK(has(findings, Severity::degraded, "hw_slowdown"));
  CHECK(std::string(to_string(Severity::failed)) == "failed");
}
