// The identity labels: the formats NVIDIA's tools print (so dcgm-exporter's series join without
// label_replace), nvidia-smi's index, and telemetry-only devices.
#include <catch2/catch.hpp>

#include "probes/telemetry/identity.hpp"
#include "probes/telemetry/join.hpp"

using namespace substrate;
using namespace substrate::telemetry;

namespace {

DeviceInfo device(const std::string& id, const std::string& vendor, const std::string& uuid, const std::string& pci) {
  DeviceInfo info;
  info.id = id;
  info.vendor = vendor;
  info.uuid = uuid;
  info.pci_bus_id = pci;
  return info;
}

}  // namespace

TEST_CASE("identity: NVIDIA UUIDs and PCI bus ids as nvidia-smi and dcgm-exporter print them", "[unit]") {
  CHECK(vendor_uuid("nvidia", "5fd4a1b2-0c3d-4e5f-8a9b-0c1d2e3f4a5b") == "GPU-5fd4a1b2-0c3d-4e5f-8a9b-0c1d2e3f4a5b");
  CHECK(vendor_uuid("nvidia", "GPU-5FD4A1B2-0C3D-4E5F-8A9B-0C1D2E3F4A5B") ==
        "GPU-5fd4a1b2-0c3d-4e5f-8a9b-0c1d2e3f4a5b");
  CHECK(vendor_uuid("nvidia", "MIG-5fd4a1b2-0c3d-4e5f-8a9b-0c1d2e3f4a5b") ==
        "MIG-5fd4a1b2-0c3d-4e5f-8a9b-0c1d2e3f4a5b");
  CHECK(vendor_uuid("amd", "5FD4A1B2-0C3D-4E5F-8A9B-0C1D2E3F4A5B") == "5fd4a1b2-0c3d-4e5f-8a9b-0c1d2e3f4a5b");
  CHECK(vendor_uuid("nvidia", "not a uuid").empty());
  CHECK(vendor_pci_bus_id("nvidia", "0000:3b:00.0") == "00000000:3B:00.0");
  CHECK(vendor_pci_bus_id("nvidia", "00000000:3B:00.0") == "00000000:3B:00.0");
  CHECK(vendor_pci_bus_id("nvidia", "0001:af:1f.7") == "00000001:AF:1F.7");
  CHECK(vendor_pci_bus_id("amd", "0000:C1:00.0") == "0000:c1:00.0");
  CHECK(vendor_pci_bus_id("nvidia", "").empty());
}

TEST_CASE("identity: the index is nvidia-smi's, PCI bus order among the host's GPUs of the vendor", "[unit]") {
  // CUDA's default order is FASTEST_FIRST, so cuda0 need not be the lowest bus; the same GPU found
  // by Vulkan counts once; an AMD GPU between them is numbered among AMD's.
  const std::vector<DeviceInfo> host{
      device("cuda0", "nvidia", "", "0000:b1:00.0"),   device("cuda1", "nvidia", "", "0000:3b:00.0"),
      device("vulkan0", "nvidia", "", "0000:3b:00.0"), device("vulkan1", "amd", "", "0000:5e:00.0"),
      device("cuda2", "nvidia", "", "0000:86:00.0"),   device("vulkan2", "mesa", "", "")};
  CHECK(device_identity(host[0], host).index == "2");
  CHECK(device_identity(host[1], host).index == "0");
  CHECK(device_identity(host[2], host).index == "0");
  CHECK(device_identity(host[3], host).index == "0");
  CHECK(device_identity(host[4], host).index == "1");
  CHECK(device_identity(host[5], host).index.empty());  // lavapipe: not on PCI
  // Selected out of `devices:` but still on the host: cuda0 keeps its number with cuda1 alone shown.
  CHECK(device_identity(host[0], {host[0]}).index == "0");
  CHECK(device_identity(host[0], host).pci_bus_id == "00000000:B1:00.0");
}

TEST_CASE("identity: labels are the identity then the series' own, never a `device` label", "[unit]") {
  const DeviceIdentity identity{"cuda3", "GPU-5fd4a1b2-0c3d-4e5f-8a9b-0c1d2e3f4a5b", "00000000:3B:00.0", "3"};
  const auto labels = identity_labels(identity, {{"probe", "gemm"}});
  REQUIRE(labels.size() == 5);
  CHECK(labels[0].name == "substrate_device");
  CHECK(labels[0].value == "cuda3");
  CHECK(labels[1].name == "UUID");
  CHECK(labels[2].name == "pci_bus_id");
  CHECK(labels[3].name == "gpu");
  CHECK(labels[3].value == "3");
  CHECK(labels[4].name == "probe");
  // Unknown fields are left out rather than exported empty.
  CHECK(identity_labels({"vulkan0", "", "", ""}).size() == 1);
}

TEST_CASE("identity: a GPU only telemetry sees gets NVML's spelling and index, one set per label", "[unit]") {
  Snapshot snapshot;
  TelemetryDevice nvml;
  nvml.source = kSourceNvml;
  nvml.local_id = "nvml2";
  nvml.pci_bus_id = "00000000:86:00.0";
  nvml.uuid = "GPU-8E8F1C2A-1B2C-3D4E-5F60-718293A4B5C6";
  TelemetryDevice hwmon;
  hwmon.source = kSourceHwmon;
  hwmon.local_id = "hwmon3";
  hwmon.pci_bus_id = "0000:86:00.0";
  TelemetryDevice claimed = nvml;
  claimed.local_id = "nvml0";
  claimed.pci_bus_id = "0000:3b:00.0";
  claimed.uuid.clear();
  snapshot.devices = {hwmon, nvml, claimed};
  const Snapshot joined = join_devices(snapshot, {device("cuda1", "nvidia", "", "0000:3b:00.0")});
  const auto identities = telemetry_only_identities(joined, {{"cuda1", "", "", ""}});
  REQUIRE(identities.size() == 1);
  CHECK(identities[0].device == "nvml2");
  CHECK(identities[0].uuid == "GPU-8e8f1c2a-1b2c-3d4e-5f60-718293a4b5c6");
  CHECK(identities[0].pci_bus_id == "00000000:86:00.0");
  CHECK(identities[0].index == "2");
}
