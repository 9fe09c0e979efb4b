// Joining telemetry devices to compute devices by PCI bus id and UUID.
#include <catch2/catch.hpp>

#include "probes/telemetry/join.hpp"

using namespace substrate;
using namespace substrate::telemetry;

namespace {

TelemetryDevice telemetry_device(const char* source, const char* local_id, const char* pci, const char* uuid = "") {
  TelemetryDevice device;
  device.source = source;
  device.local_id = local_id;
  device.pci_bus_id = pci;
  device.uuid = uuid;
  return device;
}

DeviceInfo compute_device(const char* id, const char* pci, const char* uuid = "") {
  DeviceInfo info;
  info.id = id;
  info.pci_bus_id = pci;
  info.uuid = uuid;
  return info;
}

}  // namespace

TEST_CASE("telemetry: PCI bus ids normalise from NVML and sysfs spellings", "[unit]") {
  CHECK(normalize_pci_bus_id("00000000:65:00.0") == "0000:65:00.0");
  CHECK(normalize_pci_bus_id("0000:B3:00.0") == "0000:b3:00.0");
  CHECK(normalize_pci_bus_id("65:00.0") == "0000:65:00.0");
  CHECK(normalize_pci_bus_id("0001:00:1f.7") == "0001:00:1f.7");
  CHECK(normalize_pci_bus_id("coretemp.0").empty());
  CHECK(normalize_pci_bus_id("0000:65:20.0").empty());  // device number above 0x1f
  CHECK(normalize_pci_bus_id("").empty());
}

TEST_CASE("telemetry: UUIDs normalise from NVML's GPU- prefix", "[unit]") {
  CHECK(normalize_uuid("GPU-8E8F1C2A-1B2C-3D4E-5F60-718293A4B5C6") == "8e8f1c2a-1b2c-3d4e-5f60-718293a4b5c6");
  CHECK(normalize_uuid("8e8f1c2a1b2c3d4e5f60718293a4b5c6") == "8e8f1c2a-1b2c-3d4e-5f60-718293a4b5c6");
  CHECK(normalize_uuid("GPU-short").empty());
}

TEST_CASE("telemetry: join matches by PCI bus id, then UUID, else names the physical device once", "[unit]") {
  Snapshot snapshot;
  snapshot.devices = {
      telemetry_device("nvml", "nvml0", "0000:65:00.0", "GPU-8e8f1c2a-1b2c-3d4e-5f60-718293a4b5c6"),
      telemetry_device("nvml", "nvml1", "", "GPU-11111111-2222-3333-4444-555555555555"),
      telemetry_device("amdgpu", "drm-card1", "0000:b3:00.0"),
      telemetry_device("hwmon", "drm-card1", "0000:b3:00.0"),
      telemetry_device("hwmon", "hwmon7", "0000:c1:00.0"),
      telemetry_device("nvml", "nvml2", "0000:c1:00.0"),
      telemetry_device("accel", "accel0", ""),
  };
  const std::vector<DeviceInfo> compute = {
      compute_device("vulkan0", "0000:65:00.0"),
      compute_device("cuda0", "0000:65:00.0"),
      compute_device("cuda1", "", "11111111-2222-3333-4444-555555555555"),
  };
  const Snapshot joined = join_devices(snapshot, compute);
  CHECK(joined.devices[0].device == "vulkan0");    // PCI match: the first compute device wins
  CHECK(joined.devices[1].device == "cuda1");      // UUID match
  CHECK(joined.devices[2].device == "drm-card1");  // unmatched, named by the amdgpu member
  CHECK(joined.devices[3].device == "drm-card1");
  CHECK(joined.devices[4].device == "nvml2");  // nvml is preferred over hwmon for the name
  CHECK(joined.devices[5].device == "nvml2");
  CHECK(joined.devices[6].device == "accel0");
}

TEST_CASE("telemetry: same_device prefers PCI over UUID", "[unit]") {
  const auto nvml = telemetry_device("nvml", "nvml0", "00000000:65:00.0", "GPU-8e8f1c2a-1b2c-3d4e-5f60-718293a4b5c6");
  CHECK(same_device(nvml, compute_device("cuda0", "0000:65:00.0")));
  CHECK_FALSE(same_device(nvml, compute_device("cuda1", "0000:66:00.0", "8e8f1c2a-1b2c-3d4e-5f60-718293a4b5c6")));
  CHECK(same_device(nvml, compute_device("cuda2", "", "8e8f1c2a-1b2c-3d4e-5f60-718293a4b5c6")));
  CHECK_FALSE(same_device(telemetry_device("accel", "accel0", ""), compute_device("vulkan0", "")));
}

TEST_CASE("telemetry: sources are listed per joined device", "[unit]") {
  Snapshot snapshot;
  snapshot.devices = {telemetry_device("amdgpu", "drm-card0", "0000:65:00.0"),
                      telemetry_device("hwmon", "drm-card0", "0000:65:00.0"),
                      telemetry_device("accel", "accel0", "0000:00:0b.0")};
  const Snapshot joined = join_devices(snapshot, {compute_device("vulkan0", "0000:65:00.0")});
  CHECK(telemetry_sources(joined, "vulkan0") == std::vector<std::string>{"amdgpu", "hwmon"});
  CHECK(telemetry_sources(joined, "accel0") == std::vector<std::string>{"accel"});
  CHECK(telemetry_sources(joined, "cuda0").empty());
}
