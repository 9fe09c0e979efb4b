#include "daemon/gpu_inventory.hpp"

#include <nlohmann/json.hpp>

#include "probes/core/probe_result.hpp"

namespace substrate {
namespace {

void take_board_identity(DeviceInfo& device, const nvml::GpuInventory& gpu) {
  device.vbios_version = gpu.vbios_version;
  device.serial = gpu.serial;
  device.board_part_number = gpu.board_part_number;
}

}  // namespace

void to_json(nlohmann::json& out, const UnprobedGpu& gpu) {
  out = {{"uuid", gpu.uuid},
         {"pci_bus_id", gpu.pci_bus_id},
         {"name", gpu.name},
         {"reason", gpu.reason},
         {"detail", gpu.detail}};
}

void from_json(const nlohmann::json& in, UnprobedGpu& gpu) {
  gpu.uuid = in.at("uuid").get<std::string>();
  gpu.pci_bus_id = in.at("pci_bus_id").get<std::string>();
  gpu.name = in.at("name").get<std::string>();
  gpu.reason = in.at("reason").get<std::string>();
  gpu.detail = in.at("detail").get<std::string>();
}

MigPlan apply_inventory(std::vector<DeviceInfo>& devices, const Expected<std::vector<nvml::GpuInventory>>& gpus) {
  MigPlan plan;
  static const std::vector<nvml::GpuInventory> none;
  const std::vector<nvml::GpuInventory>& listed = gpus ? *gpus : none;
  const auto gpu_of = [&](const DeviceInfo& device) -> const nvml::GpuInventory* {
    for (const nvml::GpuInventory& gpu : listed) {
      if (!gpu.pci_bus_id.empty() && gpu.pci_bus_id == device.pci_bus_id) return &gpu;
    }
    return nullptr;
  };
  for (const nvml::GpuInventory& gpu : listed) {
    if (!gpu.mig_enabled) continue;
    if (!gpu.unlisted_reason.empty()) {
      plan.unprobed.push_back({gpu.uuid, gpu.pci_bus_id, gpu.name, gpu.unlisted_reason, gpu.detail});
      continue;
    }
    for (const nvml::MigInstance& instance : gpu.instances) {
      DeviceInfo info;
      info.id = "cuda" + std::to_string(gpu.index) + "-mig" + std::to_string(instance.gpu_instance);
      info.backend = "cuda";
      info.uuid = instance.uuid;
      info.pci_bus_id = gpu.pci_bus_id;
      info.mig_parent_uuid = gpu.uuid;
      info.mig_gpu_instance = static_cast<int>(instance.gpu_instance);
      info.mig_profile = instance.profile;
      take_board_identity(info, gpu);
      plan.instances.push_back(std::move(info));
    }
  }
  for (auto it = devices.begin(); it != devices.end();) {
    const nvml::GpuInventory* gpu = gpu_of(*it);
    if (gpu) take_board_identity(*it, *gpu);
    const bool mig_slice =
        it->backend == "cuda" && ((gpu && gpu->mig_enabled) || it->name.find(" MIG ") != std::string::npos);
    if (!mig_slice) {
      ++it;
      continue;
    }
    if (!gpu || !gpu->mig_enabled) {
      // A MIG slice of a GPU NVML did not list as MIG-enabled: its instances are unknown, so the
      // GPU is reported rather than probed through the one slice this process happened to see.
      plan.unprobed.push_back(
          {"", it->pci_bus_id, it->name, gpus ? "enumeration_failed" : "nvml_unavailable",
           "CUDA shows a MIG instance (" + it->id + ") and NVML cannot list the GPU's instances: " +
               (gpus ? std::string("NVML does not report the GPU as MIG-enabled") : gpus.error().message)});
    }
    it = devices.erase(it);
  }
  return plan;
}

void take_planned_identity(DeviceInfo& device, const DeviceInfo& planned) {
  device.id = planned.id;
  device.mig_parent_uuid = planned.mig_parent_uuid;
  device.mig_gpu_instance = planned.mig_gpu_instance;
  device.mig_profile = planned.mig_profile;
  device.vbios_version = planned.vbios_version;
  device.serial = planned.serial;
  device.board_part_number = planned.board_part_number;
}

nlohmann::json run_request_for(const DeviceInfo& device, nlohmann::json request) {
  if (device.is_mig()) {
    request["cuda_visible_devices"] = cuda_visible_devices_for(device);
    request["mig_device"] = device;
  }
  return request;
}

std::string cuda_visible_devices_for(const DeviceInfo& device) {
  return device.is_mig() ? "MIG-" + device.uuid : std::string();
}

}  // namespace substrate
