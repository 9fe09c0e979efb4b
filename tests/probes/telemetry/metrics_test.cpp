// Snapshots as Prometheus text: the golden scrape over the sysfs fixtures, promtool's lint, and
// label sets that vanish with their device.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>

#include <prometheus/text_serializer.h>

#include "daemon/telemetry_reader.hpp"
#include "probes/telemetry/join.hpp"
#include "probes/telemetry/metrics.hpp"
#include "tests/probes/telemetry/test_support.hpp"

using namespace substrate;
using namespace substrate::telemetry;
namespace support = substrate::telemetry::testing;

namespace {

std::string serialize(const std::vector<prometheus::MetricFamily>& families) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return out.str();
}

// The fixtures as the daemon would see them: card0 joined to a compute device, the rest unmatched.
std::string fixture_scrape() {
  TelemetryReader reader({support::fixture_sysfs(), false, {}, substrate::nvml::kDefaultXidWait});
  DeviceInfo vulkan0;
  vulkan0.id = "vulkan0";
  vulkan0.vendor = "amd";
  vulkan0.pci_bus_id = "0000:65:00.0";
  Snapshot snapshot = join_devices(reader.read(), {vulkan0});
  // The read's own time, the one value that changes from run to run.
  for (SourceStatus& source : snapshot.sources) source.last_success_seconds = 1.7e9;
  return serialize(to_metric_families(snapshot, {device_identity(vulkan0, {vulkan0})}));
}

}  // namespace

TEST_CASE("telemetry: scrape of the sysfs fixtures matches the golden file", "[unit]") {
  const std::string scrape = fixture_scrape();
  // SUBSTRATE_UPDATE_GOLDEN=1 rewrites the golden file; review the diff before committing it.
  if (std::getenv("SUBSTRATE_UPDATE_GOLDEN")) std::ofstream(support::golden_scrape()) << scrape;
  std::ifstream golden(support::golden_scrape());
  REQUIRE(golden);
  const std::string expected{std::istreambuf_iterator<char>(golden), std::istreambuf_iterator<char>()};
  CHECK(scrape == expected);
}

TEST_CASE("telemetry: scrape of the sysfs fixtures passes promtool check metrics", "[unit]") {
  const auto result = support::promtool_check_metrics(fixture_scrape());
  INFO(result.output);
  CHECK(result.exit_code == 0);
}

TEST_CASE("telemetry: metric names and labels follow docs/metrics.md", "[unit]") {
  const std::string scrape = fixture_scrape();
  // card0 is vulkan0's GPU: its identity, the PCI bus id as sysfs prints it (an AMD GPU).
  const std::string vulkan0 = "substrate_device=\"vulkan0\",pci_bus_id=\"0000:65:00.0\",gpu=\"0\"";
  CHECK_THAT(scrape, Catch::Contains("substrate_telemetry_source_info{" + vulkan0 + ",source=\"amdgpu\"} 1"));
  CHECK_THAT(scrape, Catch::Contains("substrate_telemetry_source_info{" + vulkan0 + ",source=\"hwmon\"} 1"));
  CHECK_THAT(scrape, Catch::Contains("substrate_gpu_temperature_threshold_celsius{" + vulkan0 +
                                     ",sensor=\"junction\",threshold=\"emergency\"} 115"));
  CHECK_THAT(scrape, Catch::Contains("substrate_vram_bad_pages{" + vulkan0 + "} 2"));
  // Devices no compute device claimed keep their local id and the PCI bus id sysfs gives them.
  CHECK_THAT(scrape, Catch::Contains("substrate_ecc_errors_total{substrate_device=\"drm-card1\",pci_bus_id=\"0000:b3:"
                                     "00.0\",kind=\"uncorrected\",scope=\"volatile\",location=\"umc\"} 2"));
  CHECK_THAT(scrape, Catch::Contains(
                         "substrate_power_limit_watts{substrate_device=\"drm-card2\",pci_bus_id=\"0000:00:02.0\"} 35"));
  CHECK_THAT(scrape, Catch::Contains("substrate_telemetry_errors_total{source=\"hwmon\",cause=\"malformed\"} 1"));
  CHECK_FALSE(std::regex_search(scrape, std::regex("[{,]device=")));  // dcgm-exporter's name is not ours
  CHECK_THAT(scrape, !Catch::Contains("coretemp"));
  CHECK_THAT(scrape, !Catch::Contains("nvme"));
}

TEST_CASE("telemetry: each snapshot is rendered afresh so vanished devices leave no series", "[unit]") {
  int scrape = 0;
  auto take_snapshot = [&scrape] {
    Snapshot snapshot;
    TelemetryDevice device;
    device.source = kSourceHwmon;
    device.local_id = scrape++ == 0 ? "drm-card0" : "drm-card1";
    device.readings.power_watts = 10.0;
    snapshot.devices.push_back(device);
    return snapshot;
  };
  const std::string first = serialize(to_metric_families(take_snapshot(), {}));
  const std::string second = serialize(to_metric_families(take_snapshot(), {}));
  CHECK_THAT(first, Catch::Contains("substrate_power_watts{substrate_device=\"drm-card0\"} 10"));
  CHECK_THAT(second, Catch::Contains("substrate_power_watts{substrate_device=\"drm-card1\"} 10"));
  CHECK_THAT(second, !Catch::Contains("drm-card0"));
}

TEST_CASE("telemetry: a label set is emitted once even when two sources carry it", "[unit]") {
  Snapshot snapshot;
  for (int i = 0; i < 2; ++i) {
    TelemetryDevice device;
    device.source = kSourceHwmon;
    device.local_id = "drm-card0";
    device.readings.temperatures.push_back({"edge", 40.0 + i});
    snapshot.devices.push_back(device);
  }
  const auto families = to_metric_families(snapshot, {});
  for (const auto& family : families) {
    if (family.name == "substrate_gpu_temperature_celsius") {
      REQUIRE(family.metric.size() == 1);
      CHECK(family.metric[0].gauge.value == 40.0);
    }
  }
}
