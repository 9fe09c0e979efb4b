// The sysfs collectors walking the fixture tree in tests/fixtures/sysfs (modelled on the kernel's
// layout: class/ views are symlinks into devices/).
#include <catch2/catch.hpp>

#include <algorithm>

#include "daemon/telemetry_reader.hpp"
#include "probes/telemetry/accel.hpp"
#include "probes/telemetry/amdgpu_ras.hpp"
#include "probes/telemetry/collectors.hpp"
#include "probes/telemetry/hwmon.hpp"
#include "probes/telemetry/sysfs.hpp"
#include "tests/probes/telemetry/test_support.hpp"

using namespace substrate::telemetry;
using substrate::telemetry::testing::fixture_sysfs;

namespace {

std::uint64_t ecc_count(const TelemetryDevice& device, const std::string& kind, const std::string& location) {
  for (const auto& e : device.readings.ecc) {
    if (e.kind == kind && e.location == location) return e.count;
  }
  FAIL("no ECC count " << kind << "/" << location);
  return 0;
}

std::size_t count_cause(const std::vector<ReadError>& errors, const std::string& cause) {
  return static_cast<std::size_t>(
      std::count_if(errors.begin(), errors.end(), [&](const ReadError& e) { return e.cause == cause; }));
}

}  // namespace

TEST_CASE("telemetry: amdgpu RAS reader finds both cards, skips the malformed block", "[unit]") {
  const SourceResult result = read_amdgpu_ras(fixture_sysfs());
  REQUIRE(result.devices.size() == 2);

  const TelemetryDevice& card0 = result.devices[0];
  CHECK(card0.source == "amdgpu");
  CHECK(card0.local_id == "drm-card0");
  CHECK(card0.pci_bus_id == "0000:65:00.0");
  CHECK(ecc_count(card0, "corrected", "umc") == 3);
  CHECK(ecc_count(card0, "uncorrected", "gfx") == 1);
  CHECK(ecc_count(card0, "uncorrected", "sdma") == 0);
  CHECK(std::none_of(card0.readings.ecc.begin(), card0.readings.ecc.end(),
                     [](const EccCount& e) { return e.location == "mmhub"; }));
  CHECK(card0.readings.vram_bad_pages == 2u);

  const TelemetryDevice& card1 = result.devices[1];
  CHECK(card1.pci_bus_id == "0000:b3:00.0");
  CHECK(ecc_count(card1, "uncorrected", "umc") == 2);
  CHECK_FALSE(card1.readings.vram_bad_pages.has_value());  // file missing: absent, not an error

  CHECK(result.errors.size() == 2);  // mmhub_err_count and one bad-page line
  CHECK(count_cause(result.errors, "malformed") == 2);
}

TEST_CASE("telemetry: hwmon reader takes GPU hwmon once each and leaves CPU and NVMe out", "[unit]") {
  const SourceResult result = read_hwmon(fixture_sysfs());
  REQUIRE(result.devices.size() == 3);
  CHECK(result.devices[0].local_id == "drm-card0");
  CHECK(result.devices[1].local_id == "drm-card1");
  CHECK(result.devices[2].local_id == "drm-card2");
  CHECK(result.devices[2].pci_bus_id == "0000:00:02.0");

  const Readings& amd = result.devices[0].readings;
  REQUIRE(amd.temperatures.size() == 3);
  CHECK(amd.temperatures[0].sensor == "edge");
  CHECK(amd.temperatures[1].sensor == "junction");
  CHECK(amd.temperatures[2].sensor == "memory");
  CHECK(amd.temperatures[2].celsius == Approx(48.0));
  CHECK(amd.temperature_thresholds.size() == 6);
  CHECK(*amd.power_watts == Approx(85.0));
  CHECK(*amd.power_limit_watts == Approx(300.0));

  const Readings& hot = result.devices[1].readings;
  REQUIRE(hot.temperatures.size() == 1);  // the malformed edge reading is skipped
  CHECK(hot.temperatures[0].sensor == "junction");
  CHECK(*hot.power_watts == Approx(120.5));

  const Readings& intel = result.devices[2].readings;
  CHECK(intel.temperatures.empty());
  CHECK(*intel.power_limit_watts == Approx(35.0));

  REQUIRE(result.errors.size() == 1);
  CHECK(result.errors[0].cause == "malformed");
  CHECK(result.errors[0].detail.find("temp1_input") != std::string::npos);
}

TEST_CASE("telemetry: accel reader reports the NPU with what it exposes", "[unit]") {
  const SourceResult result = read_accel(fixture_sysfs());
  REQUIRE(result.devices.size() == 1);
  const TelemetryDevice& npu = result.devices[0];
  CHECK(npu.local_id == "accel0");
  CHECK(npu.pci_bus_id == "0000:00:0b.0");
  CHECK(npu.readings.npu.at("busy_seconds") == Approx(1.234567));
  CHECK(npu.readings.npu.at("memory_used_bytes") == Approx(10485760));
  CHECK(npu.readings.npu.at("current_frequency_hertz") == Approx(1.4e9));
  CHECK(result.errors.size() == 1);
}

TEST_CASE("telemetry: a missing sysfs root yields no devices and no errors", "[unit]") {
  for (const SysfsCollector& collector : sysfs_collectors()) {
    const SourceResult result = collector.read("/nonexistent/substrate-sysfs");
    CHECK(result.devices.empty());
    CHECK(result.errors.empty());
  }
}

TEST_CASE("telemetry: the reader accumulates error totals across reads", "[unit]") {
  TelemetryReader reader({fixture_sysfs(), false, {}, substrate::nvml::kDefaultXidWait});
  const Snapshot first = reader.read();
  CHECK(first.devices.size() == 6);  // 2 amdgpu + 3 hwmon + 1 accel
  const Snapshot second = reader.read();
  REQUIRE(second.error_totals.size() == 3);
  for (const ErrorTotal& total : second.error_totals) {
    CHECK(total.cause == "malformed");
    const std::uint64_t per_read = total.source == "amdgpu" ? 2 : 1;
    CHECK(total.count == 2 * per_read);
  }
}

TEST_CASE("telemetry: a disabled collector is not read", "[unit]") {
  TelemetryReader reader({fixture_sysfs(), false, {"hwmon", "accel"}, substrate::nvml::kDefaultXidWait});
  const Snapshot snapshot = reader.read();
  REQUIRE(snapshot.devices.size() == 2);
  CHECK(snapshot.devices[0].source == "amdgpu");
}

TEST_CASE("telemetry: sysfs reads tell missing files from unreadable ones", "[unit]") {
  const auto card0 = fixture_sysfs() / "class" / "drm" / "card0" / "device";
  CHECK(*sysfs::read_text(card0 / "ras" / "umc_err_count") == "ue: 0\nce: 3");
  CHECK(sysfs::read_text(card0 / "ras" / "no_such_err_count").error().kind == substrate::ErrorKind::unavailable);
  // A read that fails (here EISDIR; on real hardware EIO from a GPU in reset) is an I/O error.
  CHECK(sysfs::read_text(card0 / "ras").error().kind == substrate::ErrorKind::io_error);
}
