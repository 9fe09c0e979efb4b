// TEST-ONLY STAND-IN for libnvidia-ml.so.1. It is NOT NVML and reads no hardware: it answers the
// NVML entry points substrated calls with values scripted in the file named by
// $SUBSTRATE_NVML_STANDIN_SCRIPT, so the production dlopen path can be exercised on machines
// without an NVIDIA driver. Built only in the test tree and never installed.
//
// Script lines ('#' starts a comment):
//   devices <n>                 number of devices (default 0)
//   init <code>                 nvmlInit returns this NVML code (default 0)
//   <index> <key> <value>       a value for one device; <value> "not_supported" or "error:<code>"
//                               makes the call return that instead
//   <index> xid <xid>           one XID event, delivered once through nvmlEventSetWait
// Keys: uuid, pci (0000:65:00.0), ecc.<corrected|uncorrected>.<volatile|aggregate>.<total|l1|l2|
// device_memory|register_file|sram>, retired_pages.<single_bit|double_bit>,
// retired_pages_pending, remapped_rows (4 numbers: corr unc pending failure), temperature.gpu,
// temperature.memory, threshold.<shutdown|slowdown|mem_max|gpu_max>, clocks_event_reasons (hex),
// violation.<policy number> (ns), power_usage (mW), power_limit (mW), clock.<sm|memory> (MHz),
// utilization (2 numbers: gpu memory), pcie_replay, nvlink.<link>.state, nvlink.<link>.<counter>.
// Without a value a call returns NOT_SUPPORTED.
//
// $SUBSTRATE_NVML_STANDIN_LOG, when set, names a file that receives each entry point's name on
// its first call, so tests can tell which symbol versions the loader picked.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "probes/telemetry/nvml/nvml_api.hpp"

namespace api = substrate::nvml::api;

namespace {

struct StandinDevice {
  std::map<std::string, std::string> values;
  bool xid_registered = false;
};

struct StandinState {
  std::mutex mutex;
  api::Return init_code = api::kSuccess;
  std::vector<StandinDevice> devices;
  std::vector<std::pair<std::size_t, unsigned long long>> pending_xids;  // device, xid
  std::set<std::string> logged_calls;
  int event_set_marker = 0;  // its address is the event set handle
};

StandinState& state() {
  static StandinState instance;
  return instance;
}

void log_call(const char* name) {
  const char* log_path = std::getenv("SUBSTRATE_NVML_STANDIN_LOG");
  if (!log_path || !state().logged_calls.insert(name).second) return;
  std::ofstream(log_path, std::ios::app) << name << '\n';
}

void load_script() {
  StandinState& s = state();
  s.init_code = api::kSuccess;
  s.devices.clear();
  s.pending_xids.clear();
  s.logged_calls.clear();
  const char* path = std::getenv("SUBSTRATE_NVML_STANDIN_SCRIPT");
  if (!path) return;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (const auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
    std::istringstream words(line);
    std::string first, key;
    if (!(words >> first)) continue;
    if (first == "devices") {
      std::size_t count = 0;
      words >> count;
      s.devices.resize(count);
      continue;
    }
    if (first == "init") {
      words >> s.init_code;
      continue;
    }
    const std::size_t index = std::stoul(first);
    words >> key;
    std::string value;
    std::getline(words >> std::ws, value);
    if (index >= s.devices.size()) continue;
    if (key == "xid") {
      s.pending_xids.emplace_back(index, std::stoull(value));
    } else {
      s.devices[index].values[key] = value;
    }
  }
}

StandinDevice* device_of(api::Device handle) {
  auto* device = reinterpret_cast<StandinDevice*>(handle);
  for (StandinDevice& candidate : state().devices) {
    if (&candidate == device) return device;
  }
  return nullptr;
}

// The scripted value for `key`, or the code the call must return instead.
api::Return lookup(api::Device handle, const std::string& key, std::string& value) {
  StandinDevice* device = device_of(handle);
  if (!device) return api::kErrorInvalidArgument;
  const auto it = device->values.find(key);
  if (it == device->values.end() || it->second == "not_supported") return api::kErrorNotSupported;
  if (it->second.rfind("error:", 0) == 0) return std::atoi(it->second.c_str() + 6);
  value = it->second;
  return api::kSuccess;
}

template <class T>
api::Return lookup_number(api::Device handle, const std::string& key, T* out) {
  std::string value;
  const api::Return rc = lookup(handle, key, value);
  if (rc == api::kSuccess) *out = static_cast<T>(std::stoull(value, nullptr, 0));
  return rc;
}

const char* const kKinds[] = {"corrected", "uncorrected"};
const char* const kScopes[] = {"volatile", "aggregate"};
const char* location_name(int location) {
  switch (location) {
    case api::kLocationL1Cache:
      return "l1";
    case api::kLocationL2Cache:
      return "l2";
    case api::kLocationDeviceMemory:
      return "device_memory";
    case api::kLocationRegisterFile:
      return "register_file";
    case api::kLocationSram:
      return "sram";
    default:
      return "other";
  }
}
const char* threshold_name(int type) {
  switch (type) {
    case api::kThresholdShutdown:
      return "shutdown";
    case api::kThresholdSlowdown:
      return "slowdown";
    case api::kThresholdMemMax:
      return "mem_max";
    case api::kThresholdGpuMax:
      return "gpu_max";
    default:
      return "other";
  }
}

api::Return init_impl(const char* name) {
  std::lock_guard lock(state().mutex);
  load_script();
  log_call(name);
  return state().init_code;
}

api::Return count_impl(const char* name, unsigned int* count) {
  std::lock_guard lock(state().mutex);
  log_call(name);
  *count = static_cast<unsigned int>(state().devices.size());
  return api::kSuccess;
}

api::Return handle_impl(const char* name, unsigned int index, api::Device* device) {
  std::lock_guard lock(state().mutex);
  log_call(name);
  if (index >= state().devices.size()) return api::kErrorInvalidArgument;
  *device = reinterpret_cast<api::Device>(&state().devices[index]);
  return api::kSuccess;
}

api::Return pci_impl(const char* name, api::Device device, api::PciInfo* pci) {
  std::lock_guard lock(state().mutex);
  log_call(name);
  std::string value;
  const api::Return rc = lookup(device, "pci", value);
  if (rc != api::kSuccess) return rc;
  unsigned int domain = 0, bus = 0, slot = 0;
  std::sscanf(value.c_str(), "%x:%x:%x", &domain, &bus, &slot);
  *pci = api::PciInfo{};
  pci->domain = domain;
  pci->bus = bus;
  pci->device = slot;
  std::snprintf(pci->bus_id, sizeof pci->bus_id, "%08X:%02X:%02X.0", domain, bus, slot);
  std::snprintf(pci->bus_id_legacy, sizeof pci->bus_id_legacy, "%04X:%02X:%02X.0", domain, bus, slot);
  return api::kSuccess;
}

api::Return wait_impl(const char* name, api::EventSet, api::EventData* data, unsigned int timeout_ms) {
  {
    std::lock_guard lock(state().mutex);
    log_call(name);
    StandinState& s = state();
    for (auto it = s.pending_xids.begin(); it != s.pending_xids.end(); ++it) {
      if (!s.devices[it->first].xid_registered) continue;
      *data = api::EventData{};
      data->device = reinterpret_cast<api::Device>(&s.devices[it->first]);
      data->event_type = api::kEventTypeXidCriticalError;
      data->event_data = it->second;
      s.pending_xids.erase(it);
      return api::kSuccess;
    }
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(timeout_ms));
  return api::kErrorTimeout;
}

api::Return reasons_impl(const char* name, api::Device device, unsigned long long* reasons) {
  std::lock_guard lock(state().mutex);
  log_call(name);
  return lookup_number(device, "clocks_event_reasons", reasons);
}

}  // namespace

extern "C" {

#ifndef SUBSTRATE_NVML_STANDIN_LEGACY
api::Return nvmlInit_v2() { return init_impl("nvmlInit_v2"); }
api::Return nvmlDeviceGetCount_v2(unsigned int* count) { return count_impl("nvmlDeviceGetCount_v2", count); }
api::Return nvmlDeviceGetHandleByIndex_v2(unsigned int index, api::Device* device) {
  return handle_impl("nvmlDeviceGetHandleByIndex_v2", index, device);
}
api::Return nvmlDeviceGetPciInfo_v3(api::Device device, api::PciInfo* pci) {
  return pci_impl("nvmlDeviceGetPciInfo_v3", device, pci);
}
api::Return nvmlEventSetWait_v2(api::EventSet set, api::EventData* data, unsigned int timeout_ms) {
  return wait_impl("nvmlEventSetWait_v2", set, data, timeout_ms);
}
api::Return nvmlDeviceGetCurrentClocksEventReasons(api::Device device, unsigned long long* reasons) {
  return reasons_impl("nvmlDeviceGetCurrentClocksEventReasons", device, reasons);
}
api::Return nvmlDeviceGetTemperatureV(api::Device device, api::TemperatureV1* temperature) {
  std::lock_guard lock(state().mutex);
  log_call("nvmlDeviceGetTemperatureV");
  if (temperature->version != api::kTemperatureV1Version) return api::kErrorInvalidArgument;
  return lookup_number(device, "temperature.gpu", &temperature->temperature);
}
#endif

// Unversioned (older) names, exported by real drivers too; the legacy stand-in exports only these.
api::Return nvmlInit() { return init_impl("nvmlInit"); }
api::Return nvmlDeviceGetCount(unsigned int* count) { return count_impl("nvmlDeviceGetCount", count); }
api::Return nvmlDeviceGetHandleByIndex(unsigned int index, api::Device* device) {
  return handle_impl("nvmlDeviceGetHandleByIndex", index, device);
}
api::Return nvmlDeviceGetPciInfo(api::Device device, api::PciInfo* pci) {
  return pci_impl("nvmlDeviceGetPciInfo", device, pci);
}
api::Return nvmlEventSetWait(api::EventSet set, api::EventData* data, unsigned int timeout_ms) {
  return wait_impl("nvmlEventSetWait", set, data, timeout_ms);
}
api::Return nvmlDeviceGetCurrentClocksThrottleReasons(api::Device device, unsigned long long* reasons) {
  return reasons_impl("nvmlDeviceGetCurrentClocksThrottleReasons", device, reasons);
}
api::Return nvmlDeviceGetTemperature(api::Device device, int sensor, unsigned int* celsius) {
  std::lock_guard lock(state().mutex);
  log_call("nvmlDeviceGetTemperature");
  if (sensor != api::kTemperatureGpu) return api::kErrorNotSupported;
  return lookup_number(device, "temperature.gpu", celsius);
}

api::Return nvmlShutdown() {
  std::lock_guard lock(state().mutex);
  log_call("nvmlShutdown");
  return api::kSuccess;
}

const char* nvmlErrorString(api::Return code) {
  switch (code) {
    case api::kSuccess:
      return "Success (stand-in)";
    case api::kErrorNotSupported:
      return "Not Supported (stand-in)";
    case api::kErrorNoPermission:
      return "Insufficient Permissions (stand-in)";
    case api::kErrorGpuIsLost:
      return "GPU is lost (stand-in)";
    case api::kErrorDriverNotLoaded:
      return "Driver Not Loaded (stand-in)";
    default:
      return "Unknown Error (stand-in)";
  }
}

api::Return nvmlDeviceGetUUID(api::Device device, char* uuid, unsigned int length) {
  std::lock_guard lock(state().mutex);
  log_call("nvmlDeviceGetUUID");
  std::string value;
  const api::Return rc = lookup(device, "uuid", value);
  if (rc != api::kSuccess) return rc;
  if (value.size() + 1 > length) return api::kErrorInsufficientSize;
  std::memcpy(uuid, value.c_str(), value.size() + 1);
  return api::kSuccess;
}

api::Return nvmlDeviceGetTotalEccErrors(api::Device device, int kind, int scope, unsigned long long* count) {
  std::lock_guard lock(state().mutex);
  log_call("nvmlDeviceGetTotalEccErrors");
  return lookup_number(device, std::string("ecc.") + kKinds[kind & 1] + "." + kScopes[scope & 1] + ".total", count);
}

api::Return nvmlDeviceGetMemoryErrorCounter(api::Device device, int kind, int scope, int location,
                                            unsigned long long* count) {
  std::lock_guard lock(state().mutex);
  log_call("nvmlDeviceGetMemoryErrorCounter");
  return lookup_number(
      device, std::string("ecc.") + kKinds[kind & 1] + "." + kScopes[scope & 1] + "." + location_name(location), count);
}

api::Return nvmlDeviceGetRetiredPages(api::Device device, int cause, unsigned int* count,
                                      unsigned long long* addresses) {
  std::lock_guard lock(state().mutex);
  log_call("nvmlDeviceGetRetiredPages");
  unsigned int pages = 0;
  const api::Return rc = lookup_number(
      device, cause == api::kRetirementDoubleBit ? "retired_pages.double_bit" : "retired_pages.single_bit", &pages);
  if (rc != api::kSuccess) return rc;
  // Like NVML: the count always comes back; addresses only when the buffer is big enough.
  const unsigned int capacity = *count;
  *count = pages;
  if (capacity < pages) return api::kErrorInsufficientSize;
  for (unsigned int i = 0; i < pages; ++i) addresses[i] = 0x1000ULL * (i + 1);
  return api::kSuccess;
}

api::Return nvmlDeviceGetRetiredPagesPendingStatus(api::Device device, int* pending) {
  std::lock_guard lock(state().mutex);
  log_call("nvmlDeviceGetRetiredPagesPendingStatus");
  return lookup_number(device, "retired_pages_pending", pending);
}

api::Return nvmlDeviceGetRemappedRows(api::Device device, unsigned int* correctable, unsigned int* uncorrectable,
                                      unsigned int* pending, unsigned int* failure) {
  std::lock_guard lock(state().mutex);
  log_call("nvmlDeviceGetRemappedRows");
  std::string value;
  const api::Return rc = lookup(device, "remapped_rows", value);
  if (rc != api::kSuccess) return rc;
  std::istringstream(value) >> *correctable >> *uncorrectable >> *pending >> *failure;
  return api::kSuccess;
}

api::Return nvmlDeviceGetTemperatureThreshold(api::Device device, int type, unsigned int* celsius) {
  std::lock_guard lock(state().mutex);
  log_call("nvmlDeviceGetTemperatureThreshold");
  return lookup_number(device, std::string("threshold.") + threshold_name(type), celsius);
}

api::Return nvmlDeviceGetFieldValues(api::Device device, int count, api::FieldValue* values) {
  std::lock_guard lock(state().mutex);
  log_call("nvmlDeviceGetFieldValues");
  if (!device_of(device)) return api::kErrorInvalidArgument;
  for (int i = 0; i < count; ++i) {
    api::FieldValue& field = values[i];
    unsigned int celsius = 0;
    field.nvml_return = field.field_id == api::kFieldMemoryTemperature
                            ? lookup_number(device, "temperature.memory", &celsius)
                            : api::kErrorNotSupported;
    field.value_type = api::kValueUnsignedInt;
    field.value.ui = celsius;
  }
  return api::kSuccess;
}

api::Return nvmlDeviceGetViolationStatus(api::Device device, int policy, api::ViolationTime* violation) {
  std::lock_guard lock(state().mutex);
  log_call("nvmlDeviceGetViolationStatus");
  violation->reference_time = 0;
  return lookup_number(device, "violation." + std::to_string(policy), &violation->violation_time);
}

api::Return nvmlDeviceGetPowerUsage(api::Device device, unsigned int* milliwatts) {
  std::lock_guard lock(state().mutex);
  log_call("nvmlDeviceGetPowerUsage");
  return lookup_number(device, "power_usage", milliwatts);
}

api::Return nvmlDeviceGetEnforcedPowerLimit(api::Device device, unsigned int* milliwatts) {
  std::lock_guard lock(state().mutex);
  log_call("nvmlDeviceGetEnforcedPowerLimit");
  return lookup_number(device, "power_limit", milliwatts);
}

api::Return nvmlDeviceGetClockInfo(api::Device device, int clock, unsigned int* mhz) {
  std::lock_guard lock(state().mutex);
  log_call("nvmlDeviceGetClockInfo");
  const char* key = clock == api::kClockSm ? "clock.sm" : clock == api::kClockMemory ? "clock.memory" : "clock.other";
  return lookup_number(device, key, mhz);
}

api::Return nvmlDeviceGetUtilizationRates(api::Device device, api::Utilization* utilization) {
  std::lock_guard lock(state().mutex);
  log_call("nvmlDeviceGetUtilizationRates");
  std::string value;
  const api::Return rc = lookup(device, "utilization", value);
  if (rc == api::kSuccess) std::istringstream(value) >> utilization->gpu >> utilization->memory;
  return rc;
}

api::Return nvmlDeviceGetPcieReplayCounter(api::Device device, unsigned int* replays) {
  std::lock_guard lock(state().mutex);
  log_call("nvmlDeviceGetPcieReplayCounter");
  return lookup_number(device, "pcie_replay", replays);
}

api::Return nvmlDeviceGetNvLinkState(api::Device device, unsigned int link, int* enabled) {
  std::lock_guard lock(state().mutex);
  log_call("nvmlDeviceGetNvLinkState");
  const api::Return rc = lookup_number(device, "nvlink." + std::to_string(link) + ".state", enabled);
  // Like NVML on an NvLink device: a link index past the last one is an invalid argument.
  return rc == api::kErrorNotSupported && link > 0 ? api::kErrorInvalidArgument : rc;
}

api::Return nvmlDeviceGetNvLinkErrorCounter(api::Device device, unsigned int link, int counter,
                                            unsigned long long* count) {
  std::lock_guard lock(state().mutex);
  log_call("nvmlDeviceGetNvLinkErrorCounter");
  return lookup_number(device, "nvlink." + std::to_string(link) + "." + std::to_string(counter), count);
}

api::Return nvmlEventSetCreate(api::EventSet* set) {
  std::lock_guard lock(state().mutex);
  log_call("nvmlEventSetCreate");
  *set = reinterpret_cast<api::EventSet>(&state().event_set_marker);
  return api::kSuccess;
}

api::Return nvmlDeviceRegisterEvents(api::Device device, unsigned long long types, api::EventSet) {
  std::lock_guard lock(state().mutex);
  log_call("nvmlDeviceRegisterEvents");
  StandinDevice* standin = device_of(device);
  if (!standin) return api::kErrorInvalidArgument;
  if (standin->values.count("no_xid_events")) return api::kErrorNotSupported;
  standin->xid_registered = (types & api::kEventTypeXidCriticalError) != 0;
  return api::kSuccess;
}

api::Return nvmlEventSetFree(api::EventSet) {
  std::lock_guard lock(state().mutex);
  log_call("nvmlEventSetFree");
  return api::kSuccess;
}

}  // extern "C"

// The stand-in's signatures must be the ones the loader casts its symbols to.
#ifndef SUBSTRATE_NVML_STANDIN_LEGACY
static_assert(std::is_same_v<decltype(&nvmlInit_v2), api::InitFn>);
static_assert(std::is_same_v<decltype(&nvmlEventSetWait_v2), api::EventSetWaitFn>);
static_assert(std::is_same_v<decltype(&nvmlDeviceGetTemperatureV), api::DeviceGetTemperatureVFn>);
#endif
static_assert(std::is_same_v<decltype(&nvmlDeviceGetPciInfo), api::DeviceGetPciInfoFn>);
static_assert(std::is_same_v<decltype(&nvmlDeviceGetTotalEccErrors), api::DeviceGetTotalEccErrorsFn>);
static_assert(std::is_same_v<decltype(&nvmlDeviceGetMemoryErrorCounter), api::DeviceGetMemoryErrorCounterFn>);
static_assert(std::is_same_v<decltype(&nvmlDeviceGetRetiredPages), api::DeviceGetRetiredPagesFn>);
static_assert(std::is_same_v<decltype(&nvmlDeviceGetRemappedRows), api::DeviceGetRemappedRowsFn>);
static_assert(std::is_same_v<decltype(&nvmlDeviceGetFieldValues), api::DeviceGetFieldValuesFn>);
static_assert(std::is_same_v<decltype(&nvmlDeviceGetViolationStatus), api::DeviceGetViolationStatusFn>);
static_assert(std::is_same_v<decltype(&nvmlDeviceGetNvLinkErrorCounter), api::DeviceGetNvLinkErrorCounterFn>);
static_assert(std::is_same_v<decltype(&nvmlDeviceRegisterEvents), api::DeviceRegisterEventsFn>);
