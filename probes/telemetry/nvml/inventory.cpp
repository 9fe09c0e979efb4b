#include "probes/telemetry/nvml/inventory.hpp"

#include "probes/telemetry/join.hpp"
#include "probes/telemetry/nvml/library.hpp"

namespace substrate::nvml {
namespace {

// A string entry point's answer (UUID, name); empty when the driver lacks it or it fails.
std::string device_string(api::DeviceGetStringFn fn, api::Device device) {
  char text[api::kUuidBufferSize] = {};  // the largest of NVML's string buffers
  if (!fn || fn(device, text, sizeof text) != api::kSuccess) return {};
  return text;
}

// NVML's instance UUID "MIG-<uuid>" (R470 and newer) in canonical form; empty for the older
// "MIG-GPU-<uuid>/<gi>/<ci>" form, which CUDA_VISIBLE_DEVICES names differently.
std::string mig_uuid(std::string text) {
  if (text.rfind("MIG-", 0) == 0) text.erase(0, 4);
  return telemetry::normalize_uuid(text);
}

// Lists the instances of one MIG-enabled GPU into `gpu`, or says why it cannot.
void list_instances(const Library& library, api::Device device, GpuInventory& gpu) {
  const Api& a = library.api();
  if (!a.device_get_max_mig_device_count || !a.device_get_mig_device_handle_by_index || !a.device_get_gpu_instance_id) {
    gpu.unlisted_reason = "enumeration_failed";
    gpu.detail = "this NVML lacks the MIG enumeration entry points";
    return;
  }
  const auto failed = [&](const char* call, api::Return rc) {
    gpu.instances.clear();
    gpu.unlisted_reason = rc == api::kErrorNoPermission ? "no_permission" : "enumeration_failed";
    gpu.detail = std::string(call) + ": " + library.describe(rc);
  };
  unsigned int slots = 0;
  if (const api::Return rc = a.device_get_max_mig_device_count(device, &slots); rc != api::kSuccess) {
    return failed("nvmlDeviceGetMaxMigDeviceCount", rc);
  }
  for (unsigned int slot = 0; slot < slots; ++slot) {
    api::Device instance = nullptr;
    const api::Return rc = a.device_get_mig_device_handle_by_index(device, slot, &instance);
    if (rc == api::kErrorNotFound) continue;  // an empty slot
    if (rc != api::kSuccess) return failed("nvmlDeviceGetMigDeviceHandleByIndex", rc);
    MigInstance found;
    char uuid[api::kUuidBufferSize] = {};
    if (const api::Return u =
            a.device_get_uuid ? a.device_get_uuid(instance, uuid, sizeof uuid) : api::kErrorNotSupported;
        u != api::kSuccess) {
      return failed("nvmlDeviceGetUUID", u);
    }
    found.uuid = mig_uuid(uuid);
    if (found.uuid.empty()) {
      gpu.instances.clear();
      gpu.unlisted_reason = "enumeration_failed";
      gpu.detail = std::string("instance UUID '") + uuid + "' is not of the MIG-<uuid> form (driver older than R470)";
      return;
    }
    if (const api::Return g = a.device_get_gpu_instance_id(instance, &found.gpu_instance); g != api::kSuccess) {
      return failed("nvmlDeviceGetGpuInstanceId", g);
    }
    found.profile = mig_profile_of(device_string(a.device_get_name, instance));
    gpu.instances.push_back(std::move(found));
  }
  if (gpu.instances.empty()) {
    gpu.unlisted_reason = "no_instances";
    gpu.detail = "MIG is enabled and no GPU instance is created";
  }
}

}  // namespace

std::string mig_profile_of(const std::string& name) {
  const auto at = name.rfind(" MIG ");
  return at == std::string::npos ? name : name.substr(at + 5);
}

Expected<std::vector<GpuInventory>> read_inventory() {
  TRY_ASSIGN(auto library, Library::open());
  const Api& a = library->api();
  if (const api::Return rc = a.init(); rc != api::kSuccess) {
    return Error{ErrorKind::unavailable, "nvmlInit: " + library->describe(rc)};
  }
  std::vector<GpuInventory> gpus;
  unsigned int count = 0;
  const api::Return counted = a.device_get_count(&count);
  for (unsigned int index = 0; counted == api::kSuccess && index < count; ++index) {
    api::Device device = nullptr;
    if (a.device_get_handle_by_index(index, &device) != api::kSuccess) continue;
    GpuInventory gpu;
    gpu.index = index;
    gpu.uuid = telemetry::normalize_uuid(device_string(a.device_get_uuid, device));
    gpu.name = device_string(a.device_get_name, device);
    gpu.vbios_version = device_string(a.device_get_vbios_version, device);
    gpu.serial = device_string(a.device_get_serial, device);
    gpu.board_part_number = device_string(a.device_get_board_part_number, device);
    api::PciInfo pci{};
    if (a.device_get_pci_info && a.device_get_pci_info(device, &pci) == api::kSuccess) {
      gpu.pci_bus_id = telemetry::normalize_pci_bus_id(pci.bus_id);
    }
    unsigned int current = 0, pending = 0;
    gpu.mig_enabled = a.device_get_mig_mode && a.device_get_mig_mode(device, &current, &pending) == api::kSuccess &&
                      current == api::kDeviceMigEnable;
    if (gpu.mig_enabled) list_instances(*library, device, gpu);
    gpus.push_back(std::move(gpu));
  }
  a.shutdown();
  if (counted != api::kSuccess)
    return Error{ErrorKind::unavailable, "nvmlDeviceGetCount: " + library->describe(counted)};
  return gpus;
}

Expected<unsigned int> count_compute_processes(const std::string& pci_bus_id) {
  TRY_ASSIGN(auto library, Library::open());
  const Api& a = library->api();
  if (!a.device_get_compute_running_processes || !a.device_get_pci_info) {
    return Error{ErrorKind::unavailable, "this NVML cannot list compute processes"};
  }
  if (const api::Return rc = a.init(); rc != api::kSuccess) {
    return Error{ErrorKind::unavailable, "nvmlInit: " + library->describe(rc)};
  }
  Expected<unsigned int> found = Error{ErrorKind::unavailable, "NVML lists no GPU at " + pci_bus_id};
  unsigned int count = 0;
  if (a.device_get_count(&count) != api::kSuccess) count = 0;
  for (unsigned int index = 0; index < count; ++index) {
    api::Device device = nullptr;
    api::PciInfo pci{};
    if (a.device_get_handle_by_index(index, &device) != api::kSuccess ||
        a.device_get_pci_info(device, &pci) != api::kSuccess ||
        telemetry::normalize_pci_bus_id(pci.bus_id) != pci_bus_id) {
      continue;
    }
    unsigned int processes = 0;
    const api::Return rc = a.device_get_compute_running_processes(device, &processes, nullptr);
    if (rc == api::kSuccess) {
      found = 0u;
    } else if (rc == api::kErrorInsufficientSize) {
      found = processes;
    } else {
      found = Error{ErrorKind::unavailable, "nvmlDeviceGetComputeRunningProcesses: " + library->describe(rc)};
    }
    break;
  }
  a.shutdown();
  return found;
}

}  // namespace substrate::nvml
