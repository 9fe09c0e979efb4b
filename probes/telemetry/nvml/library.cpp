#include "probes/telemetry/nvml/library.hpp"

#include <dlfcn.h>

#include <cstdlib>
#include <initializer_list>

namespace substrate::nvml {

namespace {

// The first of `names` the library exports, or null.
template <class Fn>
Fn resolve(void* handle, std::initializer_list<const char*> names) {
  for (const char* name : names) {
    if (void* symbol = dlsym(handle, name)) return reinterpret_cast<Fn>(symbol);
  }
  return nullptr;
}

}  // namespace

Library::Library(void* handle, std::string path) : handle_(handle), path_(std::move(path)) {
  Api& a = api_;
  a.init = resolve<api::InitFn>(handle, {"nvmlInit_v2", "nvmlInit"});
  a.shutdown = resolve<api::ShutdownFn>(handle, {"nvmlShutdown"});
  a.device_get_count = resolve<api::DeviceGetCountFn>(handle, {"nvmlDeviceGetCount_v2", "nvmlDeviceGetCount"});
  a.device_get_handle_by_index =
      resolve<api::DeviceGetHandleByIndexFn>(handle, {"nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex"});
  a.error_string = resolve<api::ErrorStringFn>(handle, {"nvmlErrorString"});
  a.device_get_pci_info = resolve<api::DeviceGetPciInfoFn>(
      handle, {"nvmlDeviceGetPciInfo_v3", "nvmlDeviceGetPciInfo_v2", "nvmlDeviceGetPciInfo"});
  a.device_get_uuid = resolve<api::DeviceGetStringFn>(handle, {"nvmlDeviceGetUUID"});
  a.device_get_name = resolve<api::DeviceGetStringFn>(handle, {"nvmlDeviceGetName"});
  a.device_get_vbios_version = resolve<api::DeviceGetStringFn>(handle, {"nvmlDeviceGetVbiosVersion"});
  a.device_get_serial = resolve<api::DeviceGetStringFn>(handle, {"nvmlDeviceGetSerial"});
  a.device_get_board_part_number = resolve<api::DeviceGetStringFn>(handle, {"nvmlDeviceGetBoardPartNumber"});
  a.device_get_total_ecc_errors = resolve<api::DeviceGetTotalEccErrorsFn>(handle, {"nvmlDeviceGetTotalEccErrors"});
  a.device_get_memory_error_counter =
      resolve<api::DeviceGetMemoryErrorCounterFn>(handle, {"nvmlDeviceGetMemoryErrorCounter"});
  a.device_get_retired_pages = resolve<api::DeviceGetRetiredPagesFn>(handle, {"nvmlDeviceGetRetiredPages"});
  a.device_get_retired_pages_pending_status =
      resolve<api::DeviceGetEnableStateFn>(handle, {"nvmlDeviceGetRetiredPagesPendingStatus"});
  a.device_get_remapped_rows = resolve<api::DeviceGetRemappedRowsFn>(handle, {"nvmlDeviceGetRemappedRows"});
  a.device_get_temperature_v = resolve<api::DeviceGetTemperatureVFn>(handle, {"nvmlDeviceGetTemperatureV"});
  a.device_get_temperature = resolve<api::DeviceGetTemperatureFn>(handle, {"nvmlDeviceGetTemperature"});
  a.device_get_temperature_threshold =
      resolve<api::DeviceGetTemperatureThresholdFn>(handle, {"nvmlDeviceGetTemperatureThreshold"});
  a.device_get_field_values = resolve<api::DeviceGetFieldValuesFn>(handle, {"nvmlDeviceGetFieldValues"});
  a.device_get_current_clocks_event_reasons = resolve<api::DeviceGetReasonsFn>(
      handle, {"nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons"});
  a.device_get_violation_status = resolve<api::DeviceGetViolationStatusFn>(handle, {"nvmlDeviceGetViolationStatus"});
  a.device_get_power_usage = resolve<api::DeviceGetUnsignedFn>(handle, {"nvmlDeviceGetPowerUsage"});
  a.device_get_enforced_power_limit = resolve<api::DeviceGetUnsignedFn>(handle, {"nvmlDeviceGetEnforcedPowerLimit"});
  a.device_get_clock_info = resolve<api::DeviceGetClockInfoFn>(handle, {"nvmlDeviceGetClockInfo"});
  a.device_get_utilization_rates = resolve<api::DeviceGetUtilizationRatesFn>(handle, {"nvmlDeviceGetUtilizationRates"});
  a.device_get_pcie_replay_counter = resolve<api::DeviceGetUnsignedFn>(handle, {"nvmlDeviceGetPcieReplayCounter"});
  a.device_get_nvlink_state = resolve<api::DeviceGetNvLinkStateFn>(handle, {"nvmlDeviceGetNvLinkState"});
  a.device_get_nvlink_error_counter =
      resolve<api::DeviceGetNvLinkErrorCounterFn>(handle, {"nvmlDeviceGetNvLinkErrorCounter"});
  a.event_set_create = resolve<api::EventSetCreateFn>(handle, {"nvmlEventSetCreate"});
  a.device_register_events = resolve<api::DeviceRegisterEventsFn>(handle, {"nvmlDeviceRegisterEvents"});
  a.event_set_wait = resolve<api::EventSetWaitFn>(handle, {"nvmlEventSetWait_v2", "nvmlEventSetWait"});
  a.event_set_free = resolve<api::EventSetFreeFn>(handle, {"nvmlEventSetFree"});
  a.device_get_mig_mode = resolve<api::DeviceGetMigModeFn>(handle, {"nvmlDeviceGetMigMode"});
  a.device_get_max_mig_device_count =
      resolve<api::DeviceGetMaxMigDeviceCountFn>(handle, {"nvmlDeviceGetMaxMigDeviceCount"});
  a.device_get_mig_device_handle_by_index =
      resolve<api::DeviceGetMigDeviceHandleByIndexFn>(handle, {"nvmlDeviceGetMigDeviceHandleByIndex"});
  a.device_get_gpu_instance_id = resolve<api::DeviceGetGpuInstanceIdFn>(handle, {"nvmlDeviceGetGpuInstanceId"});
  a.device_get_compute_running_processes = resolve<api::DeviceGetComputeRunningProcessesFn>(
      handle, {"nvmlDeviceGetComputeRunningProcesses_v3", "nvmlDeviceGetComputeRunningProcesses_v2",
               "nvmlDeviceGetComputeRunningProcesses"});
}

Library::~Library() { dlclose(handle_); }

Expected<std::shared_ptr<const Library>> Library::open() {
  const char* override_path = std::getenv(kLibraryEnv);
  const std::string path = override_path && *override_path ? override_path : kDefaultLibrary;
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) return Error{ErrorKind::unavailable, "NVML absent: " + path + " not found"};
  std::shared_ptr<const Library> library(new Library(handle, path));
  const Api& a = library->api();
  const char* missing = !a.init                         ? "nvmlInit_v2"
                        : !a.shutdown                   ? "nvmlShutdown"
                        : !a.device_get_count           ? "nvmlDeviceGetCount_v2"
                        : !a.device_get_handle_by_index ? "nvmlDeviceGetHandleByIndex_v2"
                                                        : nullptr;
  if (missing) return Error{ErrorKind::unavailable, "NVML unusable: " + path + " lacks " + missing};
  return library;
}

std::string Library::describe(api::Return code) const {
  if (api_.error_string) {
    if (const char* text = api_.error_string(code)) return text;
  }
  return "NVML error " + std::to_string(code);
}

const char* error_cause(api::Return code) {
  switch (code) {
    case api::kErrorUninitialized:
      return "uninitialized";
    case api::kErrorInvalidArgument:
      return "invalid_argument";
    case api::kErrorNoPermission:
      return "no_permission";
    case api::kErrorNotFound:
      return "not_found";
    case api::kErrorInsufficientSize:
      return "insufficient_size";
    case api::kErrorInsufficientPower:
      return "insufficient_power";
    case api::kErrorDriverNotLoaded:
      return "driver_not_loaded";
    case api::kErrorTimeout:
      return "timeout";
    case api::kErrorIrqIssue:
      return "irq_issue";
    case api::kErrorLibraryNotFound:
      return "library_not_found";
    case api::kErrorCorruptedInforom:
      return "corrupted_inforom";
    case api::kErrorGpuIsLost:
      return "gpu_is_lost";
    case api::kErrorResetRequired:
      return "reset_required";
    case api::kErrorOperatingSystem:
      return "operating_system";
    case api::kErrorLibRmVersionMismatch:
      return "lib_rm_version_mismatch";
    case api::kErrorInUse:
      return "in_use";
    case api::kErrorMemory:
      return "memory";
    case api::kErrorNoData:
      return "no_data";
    case api::kErrorUnknown:
      return "unknown";
    default:
      return "other";
  }
}

}  // namespace substrate::nvml
