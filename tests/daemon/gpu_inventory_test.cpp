#include "daemon/gpu_inventory.hpp"

#include "probes/core/probe_result.hpp"

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

using namespace substrate;

namespace {

DeviceInfo cuda(const std::string& id, const std::string& name, const std::string& pci, const std::string& uuid) {
  DeviceInfo info;
  info.id = id;
  info.backend = "cuda";
  info.name = name;
  info.pci_bus_id = pci;
  info.uuid = uuid;
  return info;
}

nvml::GpuInventory mig_gpu() {
  nvml::GpuInventory gpu;
  gpu.index = 1;
  gpu.uuid = "aaaaaaaa-0000-0000-0000-00000000000a";
  gpu.pci_bus_id = "0000:3b:00.0";
  gpu.name = "NVIDIA H100 80GB HBM3";
  gpu.vbios_version = "96.00.74.00.01";
  gpu.serial = "1654923012345";
  gpu.board_part_number = "692-2G520-0200-000";
  gpu.mig_enabled = true;
  gpu.instances = {{"44444444-0000-0000-0000-000000000004", 1, "4g.40gb"},
                   {"55555555-0000-0000-0000-000000000005", 2, "3g.40gb"}};
  return gpu;
}

// What a process without CUDA_VISIBLE_DEVICES sees: a whole GPU, one slice of the MIG GPU, a
// Vulkan device.
std::vector<DeviceInfo> seen() {
  DeviceInfo vulkan;
  vulkan.id = "vulkan0";
  vulkan.backend = "vulkan";
  vulkan.name = "llvmpipe";
  return {cuda("cuda0", "NVIDIA H100 80GB HBM3", "0000:1a:00.0", "11111111-0000-0000-0000-000000000001"),
          cuda("cuda1", "NVIDIA H100 80GB HBM3 MIG 4g.40gb", "0000:3b:00.0", "44444444-0000-0000-0000-000000000004"),
          vulkan};
}

}  // namespace

TEST_CASE("mig: the CUDA slice of a MIG GPU becomes one labelled device per instance", "[unit]") {
  std::vector<DeviceInfo> devices = seen();
  nvml::GpuInventory whole;  // GPU 0: no MIG, a board without a serial number
  whole.uuid = "11111111-0000-0000-0000-000000000001";
  whole.pci_bus_id = "0000:1a:00.0";
  whole.vbios_version = "96.00.89.00.01";
  const MigPlan plan = apply_inventory(devices, std::vector<nvml::GpuInventory>{whole, mig_gpu()});
  REQUIRE(devices.size() == 2);  // the slice is gone; the whole GPU and Vulkan stay
  CHECK(devices[0].id == "cuda0");
  CHECK(devices[0].vbios_version == "96.00.89.00.01");  // board identity joined by PCI bus id
  CHECK(devices[0].serial.empty());
  CHECK(devices[1].vbios_version.empty());
  CHECK(devices[1].id == "vulkan0");
  CHECK(plan.unprobed.empty());
  REQUIRE(plan.instances.size() == 2);
  CHECK(plan.instances[0].id == "cuda1-mig1");
  CHECK(plan.instances[0].uuid == "44444444-0000-0000-0000-000000000004");
  CHECK(plan.instances[0].pci_bus_id == "0000:3b:00.0");
  CHECK(plan.instances[0].mig_parent_uuid == "aaaaaaaa-0000-0000-0000-00000000000a");
  CHECK(plan.instances[0].mig_gpu_instance == 1);
  CHECK(plan.instances[0].mig_profile == "4g.40gb");
  CHECK(plan.instances[0].serial == "1654923012345");  // the parent board's
  CHECK(plan.instances[0].board_part_number == "692-2G520-0200-000");
  CHECK(plan.instances[1].id == "cuda1-mig2");
  CHECK(cuda_visible_devices_for(plan.instances[1]) == "MIG-55555555-0000-0000-0000-000000000005");
  CHECK(cuda_visible_devices_for(devices[0]).empty());

  // A run request shows an instance's worker that instance alone, and a whole device's is unchanged.
  const nlohmann::json request = {{"type", "run"}, {"device", "x"}};
  const nlohmann::json for_instance = run_request_for(plan.instances[1], request);
  CHECK(for_instance.at("cuda_visible_devices") == "MIG-55555555-0000-0000-0000-000000000005");
  CHECK(for_instance.at("mig_device").get<DeviceInfo>().id == "cuda1-mig2");
  CHECK(run_request_for(devices[0], request) == request);

  // What the instance's own worker saw ("cuda0") takes the daemon's id and labels.
  DeviceInfo in_worker = cuda("cuda0", "NVIDIA H100 80GB HBM3 MIG 3g.40gb", "0000:3b:00.0", plan.instances[1].uuid);
  take_planned_identity(in_worker, plan.instances[1]);
  CHECK(in_worker.id == "cuda1-mig2");
  CHECK(in_worker.is_mig());
  CHECK(in_worker.mig_profile == "3g.40gb");
  CHECK(in_worker.vbios_version == "96.00.74.00.01");
  // The labels survive the worker protocol's JSON (a whole device has none).
  const DeviceInfo back = nlohmann::json(in_worker).get<DeviceInfo>();
  CHECK(back.mig_parent_uuid == in_worker.mig_parent_uuid);
  CHECK(back.mig_gpu_instance == 2);
  CHECK(back.mig_profile == "3g.40gb");
  CHECK(back.serial == "1654923012345");
  CHECK(back.board_part_number == "692-2G520-0200-000");
  CHECK_FALSE(nlohmann::json(devices[0]).contains("mig"));
  CHECK_FALSE(nlohmann::json(devices[0]).get<DeviceInfo>().is_mig());
}

TEST_CASE("mig: a MIG GPU whose instances are unknown is unprobed with the reason, never one slice", "[unit]") {
  SECTION("NVML could not list its instances") {
    nvml::GpuInventory gpu = mig_gpu();
    gpu.instances.clear();
    gpu.unlisted_reason = "no_permission";
    gpu.detail = "nvmlDeviceGetMigDeviceHandleByIndex: Insufficient Permissions";
    std::vector<DeviceInfo> devices = seen();
    const MigPlan plan = apply_inventory(devices, std::vector<nvml::GpuInventory>{gpu});
    CHECK(devices.size() == 2);
    CHECK(plan.instances.empty());
    REQUIRE(plan.unprobed.size() == 1);
    CHECK(plan.unprobed[0].uuid == gpu.uuid);
    CHECK(plan.unprobed[0].pci_bus_id == "0000:3b:00.0");
    CHECK(plan.unprobed[0].reason == "no_permission");
    CHECK(plan.unprobed[0].detail == gpu.detail);
  }
  SECTION("no NVML: the slice is known from CUDA's name alone") {
    std::vector<DeviceInfo> devices = seen();
    const MigPlan plan = apply_inventory(
        devices, Expected<std::vector<nvml::GpuInventory>>(Error{ErrorKind::unavailable, "NVML absent: x"}));
    CHECK(devices.size() == 2);
    CHECK(plan.instances.empty());
    REQUIRE(plan.unprobed.size() == 1);
    CHECK(plan.unprobed[0].reason == "nvml_unavailable");
    CHECK(plan.unprobed[0].pci_bus_id == "0000:3b:00.0");
    CHECK(plan.unprobed[0].detail.find("NVML absent: x") != std::string::npos);
  }
  SECTION("NVML lists the GPU without MIG while CUDA names a MIG slice: unprobed as well") {
    nvml::GpuInventory gpu = mig_gpu();
    gpu.mig_enabled = false;
    gpu.instances.clear();
    std::vector<DeviceInfo> devices = seen();
    const MigPlan plan = apply_inventory(devices, std::vector<nvml::GpuInventory>{gpu});
    CHECK(devices.size() == 2);
    REQUIRE(plan.unprobed.size() == 1);
    CHECK(plan.unprobed[0].reason == "enumeration_failed");
  }
  SECTION("no MIG anywhere: nothing changes") {
    std::vector<DeviceInfo> devices = {seen()[0], seen()[2]};
    const MigPlan plan = apply_inventory(devices, std::vector<nvml::GpuInventory>{});
    CHECK(devices.size() == 2);
    CHECK(plan.instances.empty());
    CHECK(plan.unprobed.empty());
  }
}

TEST_CASE("device info: a malformed MIG label in a device frame is refused", "[unit]") {
  nlohmann::json frame = cuda("cuda0", "x", "", "");
  frame["mig"] = {{"parent_uuid", "p"}, {"gpu_instance", -3}, {"profile", "1g.10gb"}};
  CHECK_THROWS_WITH(frame.get<DeviceInfo>(), Catch::Contains("gpu_instance"));
  frame["mig"] = {{"parent_uuid", "p"}};
  CHECK_THROWS(frame.get<DeviceInfo>());
}
