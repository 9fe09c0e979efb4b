#pragma once
// libnvidia-ml.so.1 loaded with dlopen, so substrated has no link-time dependency on the NVIDIA
// driver. Entry points are resolved by name, preferring the versioned symbols that nvml.h maps the
// plain names to (an unversioned dlsym can return an older ABI) and falling back to older ones.
#include <memory>
#include <string>

#include "common/expected.hpp"
#include "probes/telemetry/nvml/nvml_api.hpp"

namespace substrate::nvml {

// Overrides the library path (tests point it at the stand-in); default "libnvidia-ml.so.1".
inline constexpr const char* kLibraryEnv = "SUBSTRATE_NVML_LIBRARY";
inline constexpr const char* kDefaultLibrary = "libnvidia-ml.so.1";

// Resolved entry points. The first four are required; any other may be null when this driver
// predates it, and callers treat a null entry as "not supported".
struct Api {
  api::InitFn init = nullptr;  // nvmlInit_v2, nvmlInit
  api::ShutdownFn shutdown = nullptr;
  api::DeviceGetCountFn device_get_count = nullptr;                    // _v2, plain
  api::DeviceGetHandleByIndexFn device_get_handle_by_index = nullptr;  // _v2, plain
  api::ErrorStringFn error_string = nullptr;
  api::DeviceGetPciInfoFn device_get_pci_info = nullptr;  // _v3, _v2, plain
  api::DeviceGetStringFn device_get_uuid = nullptr;
  api::DeviceGetStringFn device_get_name = nullptr;
  api::DeviceGetStringFn device_get_vbios_version = nullptr;
  api::DeviceGetStringFn device_get_serial = nullptr;
  api::DeviceGetStringFn device_get_board_part_number = nullptr;
  api::DeviceGetTotalEccErrorsFn device_get_total_ecc_errors = nullptr;
  api::DeviceGetMemoryErrorCounterFn device_get_memory_error_counter = nullptr;
  api::DeviceGetRetiredPagesFn device_get_retired_pages = nullptr;
  api::DeviceGetEnableStateFn device_get_retired_pages_pending_status = nullptr;
  api::DeviceGetRemappedRowsFn device_get_remapped_rows = nullptr;
  api::DeviceGetTemperatureVFn device_get_temperature_v = nullptr;  // preferred since R555
  api::DeviceGetTemperatureFn device_get_temperature = nullptr;     // deprecated fallback
  api::DeviceGetTemperatureThresholdFn device_get_temperature_threshold = nullptr;
  api::DeviceGetFieldValuesFn device_get_field_values = nullptr;
  api::DeviceGetReasonsFn device_get_current_clocks_event_reasons = nullptr;  // or ...ThrottleReasons
  api::DeviceGetViolationStatusFn device_get_violation_status = nullptr;
  api::DeviceGetUnsignedFn device_get_power_usage = nullptr;
  api::DeviceGetUnsignedFn device_get_enforced_power_limit = nullptr;
  api::DeviceGetClockInfoFn device_get_clock_info = nullptr;
  api::DeviceGetUtilizationRatesFn device_get_utilization_rates = nullptr;
  api::DeviceGetUnsignedFn device_get_pcie_replay_counter = nullptr;
  api::DeviceGetNvLinkStateFn device_get_nvlink_state = nullptr;
  api::DeviceGetNvLinkErrorCounterFn device_get_nvlink_error_counter = nullptr;
  api::EventSetCreateFn event_set_create = nullptr;
  api::DeviceRegisterEventsFn device_register_events = nullptr;
  api::EventSetWaitFn event_set_wait = nullptr;  // nvmlEventSetWait_v2, nvmlEventSetWait
  api::EventSetFreeFn event_set_free = nullptr;
  // MIG (R450 and newer): mode, instance enumeration and an instance's GPU instance id.
  api::DeviceGetMigModeFn device_get_mig_mode = nullptr;
  api::DeviceGetMaxMigDeviceCountFn device_get_max_mig_device_count = nullptr;
  api::DeviceGetMigDeviceHandleByIndexFn device_get_mig_device_handle_by_index = nullptr;
  api::DeviceGetGpuInstanceIdFn device_get_gpu_instance_id = nullptr;
  api::DeviceGetComputeRunningProcessesFn device_get_compute_running_processes = nullptr;  // _v3, _v2, plain
};

class Library {
 public:
  // Opens $SUBSTRATE_NVML_LIBRARY or libnvidia-ml.so.1 and resolves the entry points.
  // ErrorKind::unavailable with "NVML absent: <path> not found" when the library cannot be
  // loaded; ErrorKind::unavailable naming the symbol when a required entry point is missing.
  static Expected<std::shared_ptr<const Library>> open();

  ~Library();
  Library(const Library&) = delete;
  Library& operator=(const Library&) = delete;

  const Api& api() const { return api_; }
  const std::string& path() const { return path_; }
  // nvmlErrorString when the library has it, else "NVML error <code>".
  std::string describe(api::Return code) const;

 private:
  Library(void* handle, std::string path);
  void* handle_ = nullptr;
  std::string path_;
  Api api_;
};

// A bounded label value for an NVML return code: "no_permission", "gpu_is_lost", ... "other".
const char* error_cause(api::Return code);

}  // namespace substrate::nvml
