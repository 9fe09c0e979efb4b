// Reads every NVML value docs/metrics.md names for one device.
#include <cstdio>
#include <iterator>
#include <string>

#include "probes/telemetry/join.hpp"
#include "probes/telemetry/nvml/session.hpp"

namespace substrate::nvml {

namespace {

struct Named {
  int value;
  const char* name;
};

constexpr Named kEccKinds[] = {{api::kMemoryErrorCorrected, "corrected"},
                               {api::kMemoryErrorUncorrected, "uncorrected"}};
constexpr Named kEccScopes[] = {{api::kVolatileEcc, "volatile"}, {api::kAggregateEcc, "aggregate"}};
constexpr Named kEccLocations[] = {{api::kLocationL1Cache, "l1"},
                                   {api::kLocationL2Cache, "l2"},
                                   {api::kLocationDeviceMemory, "device_memory"},
                                   {api::kLocationRegisterFile, "register_file"},
                                   {api::kLocationSram, "sram"}};
constexpr Named kRetirementCauses[] = {{api::kRetirementMultipleSingleBit, "single_bit"},
                                       {api::kRetirementDoubleBit, "double_bit"}};
constexpr Named kPerfPolicies[] = {{api::kPerfPolicyPower, "power"},
                                   {api::kPerfPolicyThermal, "thermal"},
                                   {api::kPerfPolicySyncBoost, "sync_boost"},
                                   {api::kPerfPolicyBoardLimit, "board_limit"},
                                   {api::kPerfPolicyLowUtilization, "low_utilization"},
                                   {api::kPerfPolicyReliability, "reliability"},
                                   {api::kPerfPolicyTotalAppClocks, "total_app_clocks"},
                                   {api::kPerfPolicyTotalBaseClocks, "total_base_clocks"}};
constexpr Named kClocks[] = {{api::kClockSm, "sm"}, {api::kClockMemory, "memory"}};
constexpr Named kNvLinkCounters[] = {{api::kNvLinkErrorReplay, "replay"},
                                     {api::kNvLinkErrorRecovery, "recovery"},
                                     {api::kNvLinkErrorCrcFlit, "crc_flit"},
                                     {api::kNvLinkErrorCrcData, "crc_data"},
                                     {api::kNvLinkErrorEccData, "ecc_data"}};

struct ReasonBit {
  unsigned long long bit;
  const char* name;
};
constexpr ReasonBit kClockEventReasons[] = {
    {api::kReasonGpuIdle, "gpu_idle"},
    {api::kReasonApplicationsClocksSetting, "applications_clocks_setting"},
    {api::kReasonSwPowerCap, "sw_power_cap"},
    {api::kReasonHwSlowdown, "hw_slowdown"},
    {api::kReasonSyncBoost, "sync_boost"},
    {api::kReasonSwThermalSlowdown, "sw_thermal_slowdown"},
    {api::kReasonHwThermalSlowdown, "hw_thermal_slowdown"},
    {api::kReasonHwPowerBrakeSlowdown, "hw_power_brake_slowdown"},
    {api::kReasonDisplayClockSetting, "display_clock_setting"},
};

struct Threshold {
  int type;
  const char* sensor;
  const char* threshold;
};
constexpr Threshold kThresholds[] = {{api::kThresholdShutdown, "gpu", "shutdown"},
                                     {api::kThresholdSlowdown, "gpu", "slowdown"},
                                     {api::kThresholdGpuMax, "gpu", "max"},
                                     {api::kThresholdMemMax, "memory", "max"}};

// Sorts NVML return codes: success goes on, NOT_SUPPORTED means "absent", anything else is
// recorded as an error; GPU_IS_LOST also marks the device lost, after which lost() is true and
// the readers make no further call on it (nvml.h: calls on a lost GPU can be slow).
class Checker {
 public:
  Checker(const Library& library, unsigned int index, telemetry::Readings& readings,
          std::vector<telemetry::ReadError>& errors, DeviceStatus& status)
      : library_(library), index_(index), readings_(readings), errors_(errors), status_(status) {}

  // True on success; false for NOT_SUPPORTED (nothing recorded) or another error (recorded).
  bool ok(api::Return rc, const char* what) {
    if (rc == api::kSuccess) return true;
    if (rc == api::kErrorNotSupported || rc == api::kErrorFunctionNotFound) return false;
    if (rc == api::kErrorGpuIsLost) readings_.gpu_lost = true;
    if (rc == api::kErrorResetRequired) status_.reset_required = true;
    errors_.push_back({telemetry::kSourceNvml, error_cause(rc),
                       std::string(what) + " (device " + std::to_string(index_) + "): " + library_.describe(rc)});
    return false;
  }
  bool lost() const { return readings_.gpu_lost; }

 private:
  const Library& library_;
  unsigned int index_;
  telemetry::Readings& readings_;
  std::vector<telemetry::ReadError>& errors_;
  DeviceStatus& status_;
};

std::string pci_bus_id(const api::PciInfo& pci) {
  char text[32];
  std::snprintf(text, sizeof text, "%04x:%02x:%02x.0", pci.domain, pci.bus, pci.device);
  return telemetry::normalize_pci_bus_id(text);
}

double field_as_double(const api::FieldValue& field) {
  switch (field.value_type) {
    case api::kValueDouble:
      return field.value.d;
    case api::kValueUnsignedInt:
      return field.value.ui;
    case api::kValueUnsignedLong:
      return static_cast<double>(field.value.ul);
    case api::kValueUnsignedLongLong:
      return static_cast<double>(field.value.ull);
    case api::kValueSignedLongLong:
      return static_cast<double>(field.value.sll);
    case api::kValueSignedInt:
      return field.value.si;
    case api::kValueUnsignedShort:
      return field.value.us;
    default:
      return field.value.ui;
  }
}

void read_identity(const Api& a, api::Device handle, Checker& check, telemetry::TelemetryDevice& device) {
  if (a.device_get_pci_info && !check.lost()) {
    api::PciInfo pci{};
    if (check.ok(a.device_get_pci_info(handle, &pci), "nvmlDeviceGetPciInfo")) device.pci_bus_id = pci_bus_id(pci);
  }
  if (a.device_get_uuid && !check.lost()) {
    char uuid[api::kUuidBufferSize] = {};
    if (check.ok(a.device_get_uuid(handle, uuid, sizeof uuid), "nvmlDeviceGetUUID")) {
      device.uuid = telemetry::normalize_uuid(uuid);
    }
  }
}

void read_memory_errors(const Api& a, api::Device handle, Checker& check, telemetry::Readings& r) {
  for (const Named& kind : kEccKinds) {
    for (const Named& scope : kEccScopes) {
      if (check.lost()) return;
      unsigned long long count = 0;
      if (a.device_get_total_ecc_errors &&
          check.ok(a.device_get_total_ecc_errors(handle, kind.value, scope.value, &count),
                   "nvmlDeviceGetTotalEccErrors")) {
        r.ecc.push_back({kind.name, scope.name, "total", count});
      }
      for (const Named& location : kEccLocations) {
        if (a.device_get_memory_error_counter && !check.lost() &&
            check.ok(a.device_get_memory_error_counter(handle, kind.value, scope.value, location.value, &count),
                     "nvmlDeviceGetMemoryErrorCounter")) {
          r.ecc.push_back({kind.name, scope.name, location.name, count});
        }
      }
    }
  }
  if (!check.lost() && a.device_get_retired_pages) {
    for (const Named& cause : kRetirementCauses) {
      if (check.lost()) break;
      // A zero-sized query returns the page count, as SUCCESS or INSUFFICIENT_SIZE.
      unsigned int pages = 0;
      const api::Return rc = a.device_get_retired_pages(handle, cause.value, &pages, nullptr);
      if (rc == api::kErrorInsufficientSize || check.ok(rc, "nvmlDeviceGetRetiredPages"))
        r.retired_pages[cause.name] = pages;
    }
  }
  int pending = 0;
  if (!check.lost() && a.device_get_retired_pages_pending_status &&
      check.ok(a.device_get_retired_pages_pending_status(handle, &pending), "nvmlDeviceGetRetiredPagesPendingStatus")) {
    r.retired_pages_pending = pending == api::kEnableStateEnabled;
  }
  unsigned int correctable = 0, uncorrectable = 0, is_pending = 0, failure = 0;
  if (!check.lost() && a.device_get_remapped_rows &&
      check.ok(a.device_get_remapped_rows(handle, &correctable, &uncorrectable, &is_pending, &failure),
               "nvmlDeviceGetRemappedRows")) {
    r.remapped_rows["correctable"] = correctable;
    r.remapped_rows["uncorrectable"] = uncorrectable;
    r.remapped_rows_pending = is_pending != 0;
    r.remapped_rows_failure = failure != 0;
  }
}

void read_thermal(const Api& a, api::Device handle, Checker& check, telemetry::Readings& r) {
  if (check.lost()) return;
  if (a.device_get_temperature_v) {
    api::TemperatureV1 temperature{api::kTemperatureV1Version, api::kTemperatureGpu, 0};
    if (check.ok(a.device_get_temperature_v(handle, &temperature), "nvmlDeviceGetTemperatureV")) {
      r.temperatures.push_back({"gpu", static_cast<double>(temperature.temperature)});
    }
  } else if (a.device_get_temperature) {
    unsigned int celsius = 0;
    if (check.ok(a.device_get_temperature(handle, api::kTemperatureGpu, &celsius), "nvmlDeviceGetTemperature")) {
      r.temperatures.push_back({"gpu", static_cast<double>(celsius)});
    }
  }
  if (!check.lost() && a.device_get_field_values) {
    api::FieldValue field{};
    field.field_id = api::kFieldMemoryTemperature;
    if (check.ok(a.device_get_field_values(handle, 1, &field), "nvmlDeviceGetFieldValues") &&
        check.ok(field.nvml_return, "nvmlDeviceGetFieldValues(NVML_FI_DEV_MEMORY_TEMP)")) {
      r.temperatures.push_back({"memory", field_as_double(field)});
    }
  }
  for (const Threshold& threshold : kThresholds) {
    unsigned int celsius = 0;
    if (a.device_get_temperature_threshold && !check.lost() &&
        check.ok(a.device_get_temperature_threshold(handle, threshold.type, &celsius),
                 "nvmlDeviceGetTemperatureThreshold")) {
      r.temperature_thresholds.push_back({threshold.sensor, threshold.threshold, static_cast<double>(celsius)});
    }
  }
  unsigned long long reasons = 0;
  if (!check.lost() && a.device_get_current_clocks_event_reasons &&
      check.ok(a.device_get_current_clocks_event_reasons(handle, &reasons), "nvmlDeviceGetCurrentClocksEventReasons")) {
    for (const ReasonBit& reason : kClockEventReasons) r.clock_event_reasons[reason.name] = (reasons & reason.bit) != 0;
  }
  for (const Named& policy : kPerfPolicies) {
    api::ViolationTime violation{};
    if (a.device_get_violation_status && !check.lost() &&
        check.ok(a.device_get_violation_status(handle, policy.value, &violation), "nvmlDeviceGetViolationStatus")) {
      r.throttle_seconds[policy.name] = static_cast<double>(violation.violation_time) * 1e-9;
    }
  }
}

// nvmlDeviceGpuRecoveryAction_t values, in order.
constexpr const char* kRecoveryActions[] = {"none",      "gpu_reset",       "node_reboot",
                                            "drain_p2p", "drain_and_reset", "recover_imex_domain",
                                            "bus_reset", "system_reboot"};

void read_recovery_action(const Api& a, api::Device handle, Checker& check, telemetry::Readings& r) {
  if (!a.device_get_field_values) return;
  api::FieldValue field{};
  field.field_id = api::kFieldGpuRecoveryAction;
  if (!check.ok(a.device_get_field_values(handle, 1, &field), "nvmlDeviceGetFieldValues")) return;
  // A driver that predates the field id may call it an invalid argument rather than unsupported.
  if (field.nvml_return == api::kErrorInvalidArgument) return;
  if (!check.ok(field.nvml_return, "nvmlDeviceGetFieldValues(NVML_FI_DEV_GET_GPU_RECOVERY_ACTION)")) return;
  const double action = field_as_double(field);  // compared as a double: no out-of-range conversion
  r.recovery_action = action >= 0 && action < static_cast<double>(std::size(kRecoveryActions))
                          ? kRecoveryActions[static_cast<std::size_t>(action)]
                          : "other";
}

void read_activity(const Api& a, api::Device handle, Checker& check, telemetry::Readings& r) {
  unsigned int milliwatts = 0;
  if (!check.lost() && a.device_get_power_usage &&
      check.ok(a.device_get_power_usage(handle, &milliwatts), "nvmlDeviceGetPowerUsage")) {
    r.power_watts = milliwatts / 1000.0;
  }
  if (!check.lost() && a.device_get_enforced_power_limit &&
      check.ok(a.device_get_enforced_power_limit(handle, &milliwatts), "nvmlDeviceGetEnforcedPowerLimit")) {
    r.power_limit_watts = milliwatts / 1000.0;
  }
  for (const Named& clock : kClocks) {
    unsigned int mhz = 0;
    if (a.device_get_clock_info && !check.lost() &&
        check.ok(a.device_get_clock_info(handle, clock.value, &mhz), "nvmlDeviceGetClockInfo")) {
      r.clock_hertz[clock.name] = mhz * 1e6;
    }
  }
  api::Utilization utilization{};
  if (!check.lost() && a.device_get_utilization_rates &&
      check.ok(a.device_get_utilization_rates(handle, &utilization), "nvmlDeviceGetUtilizationRates")) {
    r.utilization_ratio["gpu"] = utilization.gpu / 100.0;
    r.utilization_ratio["memory"] = utilization.memory / 100.0;
  }
  unsigned int replays = 0;
  if (!check.lost() && a.device_get_pcie_replay_counter &&
      check.ok(a.device_get_pcie_replay_counter(handle, &replays), "nvmlDeviceGetPcieReplayCounter")) {
    r.pcie_replays = replays;
  }
}

void read_nvlink(const Api& a, api::Device handle, Checker& check, telemetry::Readings& r) {
  if (!a.device_get_nvlink_state || !a.device_get_nvlink_error_counter) return;
  for (unsigned int link = 0; link < api::kNvLinkMaxLinks && !check.lost(); ++link) {
    int state = 0;
    const api::Return rc = a.device_get_nvlink_state(handle, link, &state);
    // INVALID_ARGUMENT: past this device's last link; NOT_SUPPORTED: no NvLink at all.
    if (rc == api::kErrorInvalidArgument || rc == api::kErrorNotSupported) break;
    if (!check.ok(rc, "nvmlDeviceGetNvLinkState") || state != api::kEnableStateEnabled) continue;
    for (const Named& counter : kNvLinkCounters) {
      unsigned long long count = 0;
      if (!check.lost() && check.ok(a.device_get_nvlink_error_counter(handle, link, counter.value, &count),
                                    "nvmlDeviceGetNvLinkErrorCounter")) {
        r.nvlink_errors.push_back({link, counter.name, count});
      }
    }
  }
}

}  // namespace

telemetry::TelemetryDevice read_device(const Library& library, api::Device handle, unsigned int index,
                                       std::vector<telemetry::ReadError>& errors, DeviceStatus& status) {
  telemetry::TelemetryDevice device;
  device.source = telemetry::kSourceNvml;
  device.local_id = "nvml" + std::to_string(index);
  status.reset_required = false;
  Checker check(library, index, device.readings, errors, status);
  const Api& a = library.api();
  read_identity(a, handle, check, device);
  // Each section is skipped once the GPU answered GPU_IS_LOST.
  for (auto* section : {read_memory_errors, read_thermal, read_activity, read_recovery_action, read_nvlink}) {
    if (!check.lost()) section(a, handle, check, device.readings);
  }
  return device;
}

}  // namespace substrate::nvml
