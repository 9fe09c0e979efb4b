// TEST-ONLY STAND-IN for libnvidia-ml.so.1. It is NOT NVML and reads no hardware: it answers the
// NVML entry points substrated calls with values scripted in the scenario file named by
// $SUBSTRATE_NVML_STANDIN_SCRIPT, so the production dlopen path can be exercised on machines
// without an NVIDIA driver. Built only in the test tree and never installed.
//
// The scenario is re-read whenever the file changes (inode, size or mtime), checked on every
// call, so a test can make counters rise, XIDs arrive and a GPU get lost under a running daemon.
// docs/testing.md ("The NVML stand-in") describes the format; in short ('#' starts a comment):
//   devices <n>                 number of devices (default 0, at most 64)
//   init <code>                 nvmlInit returns this NVML code (default 0)
//   event_set_create <code>     nvmlEventSetCreate returns this code
//   event_wait <code|hang>      nvmlEventSetWait returns this code at once, or blocks ("hang")
//                               until the scenario changes
//   <index> <key> <value>       a value for one device; <value> "not_supported" or "error:<code>"
//                               makes that call return the code instead
//   <index> fail <entry|*> <code>  every call of that entry point (name without _vN; * = all) on
//                               that device returns <code>, e.g. "0 fail * 15" (GPU_IS_LOST)
//   <index> reset <n>           a GPU reset when <n> changes: the device's event registration is
//                               dropped, as the driver drops it
//   <index> xid <xid>           one XID event, delivered once through nvmlEventSetWait to the set
//                               the device is registered with; XID lines keep their delivery state
//                               across re-reads by position, so append new ones at the end
// Keys: uuid, pci (0000:65:00.0), ecc.<corrected|uncorrected>.<volatile|aggregate>.<total|l1|l2|
// device_memory|register_file|sram>, retired_pages.<single_bit|double_bit>,
// retired_pages_pending, remapped_rows (4 numbers: corr unc pending failure), temperature.gpu,
// temperature.memory, threshold.<shutdown|slowdown|mem_max|gpu_max>, clocks_event_reasons (hex),
// violation.<policy number> (ns), power_usage (mW), power_limit (mW), clock.<sm|memory> (MHz),
// utilization (2 numbers: gpu memory), pcie_replay, nvlink.<link>.state, nvlink.<link>.<counter>,
// recovery_action (NVML_FI_DEV_GET_GPU_RECOVERY_ACTION, a number),
// no_xid_events (any value: registration answers NOT_SUPPORTED), mig.mode (1: MIG enabled, so
// volatile ECC and remapped rows answer NOT_SUPPORTED as the driver does for a MIG parent; also
// what nvmlDeviceGetMigMode answers), mig.max (nvmlDeviceGetMaxMigDeviceCount, default 7), name
// (nvmlDeviceGetName), processes (compute processes of other programs: the count
// nvmlDeviceGetComputeRunningProcesses reports), vbios, serial, board_part_number (nvmlDeviceGetVbiosVersion,
// ...Serial,
// ...BoardPartNumber).
//   <index> mig <slot> MIG-<uuid> <gpu instance id> <name...>
//                               one MIG instance of the device, at MIG device index <slot> (0..7),
//                               e.g. "0 mig 0 MIG-5555...0005 1 NVIDIA H100 80GB HBM3 MIG 1g.10gb";
//                               its handle answers nvmlDeviceGetUUID, nvmlDeviceGetName and
//                               nvmlDeviceGetGpuInstanceId
// Without a value a call returns NOT_SUPPORTED.
//
// $SUBSTRATE_NVML_STANDIN_LOG, when set, names a file that receives each entry point's name on
// its first call, so tests can tell which symbol versions the loader picked. Tests read the
// stand-in's counters through the extra symbols substrate_standin_* at the end of this file.
#include <sys/stat.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
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

constexpr std::size_t kMaxDevices = 64;
constexpr int kHang = -1;  // event_wait hang

struct EventSetRecord {
  int marker = 0;  // its address is the handle
};

constexpr std::size_t kMigSlots = 8;

struct MigRecord {  // its address is the instance's handle
  bool present = false;
  std::string uuid;  // as NVML spells it: "MIG-<uuid>"
  unsigned int gpu_instance = 0;
  std::string name;
};

struct StandinDevice {
  std::map<std::string, std::string> values;
  std::array<MigRecord, kMigSlots> mig;
  std::map<std::string, api::Return> failing;  // entry point without _vN, or "*" -> code
  std::string reset_generation;
  const EventSetRecord* registered = nullptr;  // the set XID events go to
  unsigned long long calls = 0;                // every call that named this device
  unsigned long long registrations = 0;        // successful nvmlDeviceRegisterEvents
};

struct XidLine {
  std::size_t device;
  unsigned long long xid;
  bool delivered = false;
};

struct StandinState {
  std::mutex mutex;
  api::Return init_code = api::kSuccess;
  api::Return event_set_create_code = api::kSuccess;
  int event_wait_code = api::kSuccess;  // kSuccess: deliver XIDs or time out; kHang: block
  std::size_t device_count = 0;
  std::array<StandinDevice, kMaxDevices> devices;  // fixed storage: handles stay valid on re-reads
  std::vector<XidLine> xids;
  std::set<std::string> logged_calls;
  std::set<std::unique_ptr<EventSetRecord>> event_sets;  // live sets
  struct stat seen {};                                   // the scenario file as last read
  bool loaded = false;
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

bool same_file(const struct stat& a, const struct stat& b) {
  return a.st_ino == b.st_ino && a.st_dev == b.st_dev && a.st_size == b.st_size &&
         a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec;
}

// Parses the scenario into `s`, keeping what the driver would keep across a change of the world:
// device handles, event registrations (unless the device was reset), call counters, and which of
// the XID lines were delivered.
void parse_scenario(StandinState& s, std::istream& in) {
  s.init_code = api::kSuccess;
  s.event_set_create_code = api::kSuccess;
  s.event_wait_code = api::kSuccess;
  s.device_count = 0;
  std::vector<XidLine> xids;
  std::array<std::string, kMaxDevices> resets;
  for (StandinDevice& device : s.devices) {
    device.values.clear();
    device.failing.clear();
    for (MigRecord& record : device.mig) record.present = false;
  }
  for (std::string line; std::getline(in, line);) {
    if (const auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
    std::istringstream words(line);
    std::string first, key;
    if (!(words >> first)) continue;
    if (first == "devices") {
      words >> s.device_count;
      if (s.device_count > kMaxDevices) s.device_count = kMaxDevices;
      continue;
    }
    if (first == "init") {
      words >> s.init_code;
      continue;
    }
    if (first == "event_set_create") {
      words >> s.event_set_create_code;
      continue;
    }
    if (first == "event_wait") {
      std::string value;
      words >> value;
      s.event_wait_code = value == "hang" ? kHang : std::atoi(value.c_str());
      continue;
    }
    if (first.find_first_not_of("0123456789") != std::string::npos) continue;  // not a device line
    const std::size_t index = std::stoul(first);
    words >> key;
    std::string value;
    std::getline(words >> std::ws, value);
    if (index >= kMaxDevices) continue;
    if (key == "xid") {
      if (value.empty() || value.find_first_not_of("0123456789") != std::string::npos) continue;
      xids.push_back({index, std::stoull(value)});
    } else if (key == "fail") {
      std::istringstream call(value);
      std::string name;
      api::Return code = api::kErrorUnknown;
      call >> name >> code;
      s.devices[index].failing[name] = code;
    } else if (key == "reset") {
      resets[index] = value;
    } else if (key == "mig") {
      std::istringstream fields(value);
      std::size_t slot = kMigSlots;
      MigRecord record;
      fields >> slot >> record.uuid >> record.gpu_instance;
      std::getline(fields >> std::ws, record.name);
      record.present = true;
      if (slot < kMigSlots) s.devices[index].mig[slot] = record;
    } else {
      s.devices[index].values[key] = value;
    }
  }
  for (std::size_t i = 0; i < xids.size() && i < s.xids.size(); ++i) xids[i].delivered = s.xids[i].delivered;
  s.xids = std::move(xids);
  for (std::size_t i = 0; i < kMaxDevices; ++i) {
    StandinDevice& device = s.devices[i];
    if (resets[i] != device.reset_generation) {
      if (s.loaded) device.registered = nullptr;  // a reset drops the device's registrations
      device.reset_generation = resets[i];
    }
  }
  s.loaded = true;
}

// Re-reads the scenario when its file changed since the last read (or was never read).
void sync_scenario() {
  StandinState& s = state();
  const char* path = std::getenv("SUBSTRATE_NVML_STANDIN_SCRIPT");
  if (!path) return;
  struct stat now {};
  if (stat(path, &now) != 0) return;
  if (s.loaded && same_file(now, s.seen)) return;
  std::ifstream in(path);
  if (!in) return;
  parse_scenario(s, in);
  s.seen = now;
}

StandinDevice* device_of(api::Device handle) {
  auto* device = reinterpret_cast<StandinDevice*>(handle);
  StandinState& s = state();
  for (std::size_t i = 0; i < s.device_count; ++i) {
    if (&s.devices[i] == device) return device;
  }
  return nullptr;
}

// The MIG instance a handle names, or null (a whole GPU's handle, or none of ours).
const MigRecord* mig_of(api::Device handle) {
  StandinState& s = state();
  for (std::size_t i = 0; i < s.device_count; ++i) {
    for (const MigRecord& record : s.devices[i].mig) {
      if (record.present && reinterpret_cast<const void*>(&record) == reinterpret_cast<const void*>(handle)) {
        return &record;
      }
    }
  }
  return nullptr;
}

// Copies `value` into an NVML string buffer of `length` bytes.
api::Return copy_string(const std::string& value, char* out, unsigned int length) {
  if (value.size() + 1 > length) return api::kErrorInsufficientSize;
  std::memcpy(out, value.c_str(), value.size() + 1);
  return api::kSuccess;
}

// "nvmlDeviceGetPciInfo_v3" -> "nvmlDeviceGetPciInfo".
std::string base_name(const char* name) {
  std::string base = name;
  const auto v = base.rfind("_v");
  if (v != std::string::npos && v + 2 < base.size() &&
      base.find_first_not_of("0123456789", v + 2) == std::string::npos) {
    base.erase(v);
  }
  return base;
}

// Every entry point starts here, under the lock: re-reads a changed scenario and logs the call.
void enter(const char* name) {
  sync_scenario();
  log_call(name);
}

// For calls on a device: enter(), then count the call and apply the device's `fail` lines.
// Returns kSuccess with *out set, or the code the call must return.
api::Return enter_device(const char* name, api::Device handle, StandinDevice** out) {
  enter(name);
  StandinDevice* device = device_of(handle);
  if (!device) return api::kErrorInvalidArgument;
  ++device->calls;
  for (const std::string& key : {base_name(name), std::string("*")}) {
    if (const auto it = device->failing.find(key); it != device->failing.end()) return it->second;
  }
  *out = device;
  return api::kSuccess;
}

// Under MIG the driver answers NOT_SUPPORTED on the parent for what only the instances have:
// volatile ECC counters and row remapping (nvml.h).
bool hidden_by_mig(const StandinDevice& device, const std::string& key) {
  const auto mig = device.values.find("mig.mode");
  if (mig == device.values.end() || mig->second != "1") return false;
  return key == "remapped_rows" || (key.rfind("ecc.", 0) == 0 && key.find(".volatile.") != std::string::npos);
}

// The scripted value for `key`, or the code the call must return instead.
api::Return lookup(const StandinDevice& device, const std::string& key, std::string& value) {
  if (hidden_by_mig(device, key)) return api::kErrorNotSupported;
  const auto it = device.values.find(key);
  if (it == device.values.end() || it->second == "not_supported") return api::kErrorNotSupported;
  if (it->second.rfind("error:", 0) == 0) return std::atoi(it->second.c_str() + 6);
  value = it->second;
  return api::kSuccess;
}

template <class T>
api::Return lookup_number(const StandinDevice& device, const std::string& key, T* out) {
  std::string value;
  const api::Return rc = lookup(device, key, value);
  if (rc == api::kSuccess) *out = static_cast<T>(std::stoull(value, nullptr, 0));
  return rc;
}

// A string call on a whole GPU (under the lock): the scripted `key` copied into `out`.
api::Return device_string(const char* name, api::Device handle, const std::string& key, char* out,
                          unsigned int length) {
  StandinDevice* device = nullptr;
  if (const api::Return rc = enter_device(name, handle, &device); rc != api::kSuccess) return rc;
  std::string value;
  const api::Return rc = lookup(*device, key, value);
  return rc == api::kSuccess ? copy_string(value, out, length) : rc;
}

// The common shape of a device call: enter_device(), then a scripted number.
template <class T>
api::Return device_number(const char* name, api::Device handle, const std::string& key, T* out) {
  std::lock_guard lock(state().mutex);
  StandinDevice* device = nullptr;
  if (const api::Return rc = enter_device(name, handle, &device); rc != api::kSuccess) return rc;
  return lookup_number(*device, key, out);
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

// nvmlInit re-reads the scenario and starts afresh (no registrations, every XID line pending,
// counters and the call log from zero), as a process that loads NVML anew would. The stand-in
// stays loaded between the tests of one process, so this is where one test's state ends.
api::Return init_impl(const char* name) {
  std::lock_guard lock(state().mutex);
  StandinState& s = state();
  s.loaded = false;
  s.xids.clear();
  s.logged_calls.clear();
  for (StandinDevice& device : s.devices) {
    device.registered = nullptr;
    device.calls = 0;
    device.registrations = 0;
  }
  enter(name);
  return s.init_code;
}

api::Return count_impl(const char* name, unsigned int* count) {
  std::lock_guard lock(state().mutex);
  enter(name);
  *count = static_cast<unsigned int>(state().device_count);
  return api::kSuccess;
}

api::Return handle_impl(const char* name, unsigned int index, api::Device* device) {
  std::lock_guard lock(state().mutex);
  enter(name);
  StandinState& s = state();
  if (index >= s.device_count) return api::kErrorInvalidArgument;
  for (const std::string& key : {base_name(name), std::string("*")}) {
    if (const auto it = s.devices[index].failing.find(key); it != s.devices[index].failing.end()) return it->second;
  }
  *device = reinterpret_cast<api::Device>(&s.devices[index]);
  return api::kSuccess;
}

api::Return pci_impl(const char* name, api::Device handle, api::PciInfo* pci) {
  std::lock_guard lock(state().mutex);
  StandinDevice* device = nullptr;
  if (const api::Return rc = enter_device(name, handle, &device); rc != api::kSuccess) return rc;
  std::string value;
  const api::Return rc = lookup(*device, "pci", value);
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

api::Return wait_impl(const char* name, api::EventSet set, api::EventData* data, unsigned int timeout_ms) {
  const auto* record = reinterpret_cast<const EventSetRecord*>(set);
  for (;;) {
    {
      std::lock_guard lock(state().mutex);
      enter(name);
      StandinState& s = state();
      if (s.event_wait_code != kHang) {
        if (s.event_wait_code != api::kSuccess) return s.event_wait_code;
        for (XidLine& line : s.xids) {
          if (line.delivered || line.device >= s.device_count || s.devices[line.device].registered != record) {
            continue;
          }
          line.delivered = true;
          *data = api::EventData{};
          data->device = reinterpret_cast<api::Device>(&s.devices[line.device]);
          data->event_type = api::kEventTypeXidCriticalError;
          data->event_data = line.xid;
          return api::kSuccess;
        }
        break;
      }
    }
    // "hang": a wait stuck in the driver, until the scenario says otherwise.
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(timeout_ms));
  return api::kErrorTimeout;
}

api::Return reasons_impl(const char* name, api::Device device, unsigned long long* reasons) {
  return device_number(name, device, "clocks_event_reasons", reasons);
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
api::Return nvmlDeviceGetTemperatureV(api::Device handle, api::TemperatureV1* temperature) {
  std::lock_guard lock(state().mutex);
  StandinDevice* device = nullptr;
  if (const api::Return rc = enter_device("nvmlDeviceGetTemperatureV", handle, &device); rc != api::kSuccess) return rc;
  if (temperature->version != api::kTemperatureV1Version) return api::kErrorInvalidArgument;
  return lookup_number(*device, "temperature.gpu", &temperature->temperature);
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
api::Return nvmlDeviceGetTemperature(api::Device handle, int sensor, unsigned int* celsius) {
  std::lock_guard lock(state().mutex);
  StandinDevice* device = nullptr;
  if (const api::Return rc = enter_device("nvmlDeviceGetTemperature", handle, &device); rc != api::kSuccess) return rc;
  if (sensor != api::kTemperatureGpu) return api::kErrorNotSupported;
  return lookup_number(*device, "temperature.gpu", celsius);
}

api::Return nvmlShutdown() {
  std::lock_guard lock(state().mutex);
  enter("nvmlShutdown");
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
    case api::kErrorResetRequired:
      return "GPU requires reset (stand-in)";
    default:
      return "Unknown Error (stand-in)";
  }
}

api::Return nvmlDeviceGetUUID(api::Device handle, char* uuid, unsigned int length) {
  std::lock_guard lock(state().mutex);
  enter("nvmlDeviceGetUUID");
  if (const MigRecord* mig = mig_of(handle)) return copy_string(mig->uuid, uuid, length);
  return device_string("nvmlDeviceGetUUID", handle, "uuid", uuid, length);
}

api::Return nvmlDeviceGetName(api::Device handle, char* name, unsigned int length) {
  std::lock_guard lock(state().mutex);
  enter("nvmlDeviceGetName");
  if (const MigRecord* mig = mig_of(handle)) return copy_string(mig->name, name, length);
  return device_string("nvmlDeviceGetName", handle, "name", name, length);
}

// Answers the count query only (no array): SUCCESS for none, INSUFFICIENT_SIZE with the count,
// as the driver does when the array is too small.
api::Return compute_processes_impl(const char* name, api::Device handle, unsigned int* count, void* infos) {
  std::lock_guard lock(state().mutex);
  StandinDevice* device = nullptr;
  if (const api::Return rc = enter_device(name, handle, &device); rc != api::kSuccess) return rc;
  unsigned int processes = 0;
  if (const api::Return rc = lookup_number(*device, "processes", &processes); rc != api::kSuccess) {
    if (rc != api::kErrorNotSupported) return rc;
    processes = 0;  // no `processes` line: none
  }
  const unsigned int capacity = *count;
  *count = processes;
  if (processes > capacity || (processes > 0 && infos == nullptr)) return api::kErrorInsufficientSize;
  return api::kSuccess;  // never asked for the details by substrated; the array is left alone
}
api::Return nvmlDeviceGetComputeRunningProcesses_v3(api::Device handle, unsigned int* count, void* infos) {
  return compute_processes_impl("nvmlDeviceGetComputeRunningProcesses_v3", handle, count, infos);
}

api::Return nvmlDeviceGetVbiosVersion(api::Device handle, char* version, unsigned int length) {
  std::lock_guard lock(state().mutex);
  return device_string("nvmlDeviceGetVbiosVersion", handle, "vbios", version, length);
}

api::Return nvmlDeviceGetSerial(api::Device handle, char* serial, unsigned int length) {
  std::lock_guard lock(state().mutex);
  return device_string("nvmlDeviceGetSerial", handle, "serial", serial, length);
}

api::Return nvmlDeviceGetBoardPartNumber(api::Device handle, char* part, unsigned int length) {
  std::lock_guard lock(state().mutex);
  return device_string("nvmlDeviceGetBoardPartNumber", handle, "board_part_number", part, length);
}

api::Return nvmlDeviceGetMigMode(api::Device handle, unsigned int* current, unsigned int* pending) {
  std::lock_guard lock(state().mutex);
  StandinDevice* device = nullptr;
  if (const api::Return rc = enter_device("nvmlDeviceGetMigMode", handle, &device); rc != api::kSuccess) return rc;
  const api::Return rc = lookup_number(*device, "mig.mode", current);
  if (rc == api::kSuccess) *pending = *current;
  return rc;
}

api::Return nvmlDeviceGetMaxMigDeviceCount(api::Device handle, unsigned int* count) {
  std::lock_guard lock(state().mutex);
  StandinDevice* device = nullptr;
  if (const api::Return rc = enter_device("nvmlDeviceGetMaxMigDeviceCount", handle, &device); rc != api::kSuccess) {
    return rc;
  }
  *count = 7;  // an A100/H100's most instances
  return device->values.count("mig.max") ? lookup_number(*device, "mig.max", count) : api::kSuccess;
}

api::Return nvmlDeviceGetMigDeviceHandleByIndex(api::Device handle, unsigned int index, api::Device* mig) {
  std::lock_guard lock(state().mutex);
  StandinDevice* device = nullptr;
  if (const api::Return rc = enter_device("nvmlDeviceGetMigDeviceHandleByIndex", handle, &device);
      rc != api::kSuccess) {
    return rc;
  }
  if (index >= kMigSlots || !device->mig[index].present) return api::kErrorNotFound;
  *mig = reinterpret_cast<api::Device>(&device->mig[index]);
  return api::kSuccess;
}

// Only a MIG instance has a GPU instance id; a whole GPU's handle is an invalid argument.
api::Return nvmlDeviceGetGpuInstanceId(api::Device handle, unsigned int* id) {
  std::lock_guard lock(state().mutex);
  enter("nvmlDeviceGetGpuInstanceId");
  const MigRecord* mig = mig_of(handle);
  if (!mig) return api::kErrorInvalidArgument;
  *id = mig->gpu_instance;
  return api::kSuccess;
}

api::Return nvmlDeviceGetTotalEccErrors(api::Device device, int kind, int scope, unsigned long long* count) {
  return device_number("nvmlDeviceGetTotalEccErrors", device,
                       std::string("ecc.") + kKinds[kind & 1] + "." + kScopes[scope & 1] + ".total", count);
}

api::Return nvmlDeviceGetMemoryErrorCounter(api::Device device, int kind, int scope, int location,
                                            unsigned long long* count) {
  return device_number(
      "nvmlDeviceGetMemoryErrorCounter", device,
      std::string("ecc.") + kKinds[kind & 1] + "." + kScopes[scope & 1] + "." + location_name(location), count);
}

api::Return nvmlDeviceGetRetiredPages(api::Device handle, int cause, unsigned int* count,
                                      unsigned long long* addresses) {
  std::lock_guard lock(state().mutex);
  StandinDevice* device = nullptr;
  if (const api::Return rc = enter_device("nvmlDeviceGetRetiredPages", handle, &device); rc != api::kSuccess) return rc;
  unsigned int pages = 0;
  const api::Return rc = lookup_number(
      *device, cause == api::kRetirementDoubleBit ? "retired_pages.double_bit" : "retired_pages.single_bit", &pages);
  if (rc != api::kSuccess) return rc;
  // Like NVML: the count always comes back; addresses only when the buffer is big enough.
  const unsigned int capacity = *count;
  *count = pages;
  if (capacity < pages) return api::kErrorInsufficientSize;
  for (unsigned int i = 0; i < pages; ++i) addresses[i] = 0x1000ULL * (i + 1);
  return api::kSuccess;
}

api::Return nvmlDeviceGetRetiredPagesPendingStatus(api::Device device, int* pending) {
  return device_number("nvmlDeviceGetRetiredPagesPendingStatus", device, "retired_pages_pending", pending);
}

api::Return nvmlDeviceGetRemappedRows(api::Device handle, unsigned int* correctable, unsigned int* uncorrectable,
                                      unsigned int* pending, unsigned int* failure) {
  std::lock_guard lock(state().mutex);
  StandinDevice* device = nullptr;
  if (const api::Return rc = enter_device("nvmlDeviceGetRemappedRows", handle, &device); rc != api::kSuccess) return rc;
  std::string value;
  const api::Return rc = lookup(*device, "remapped_rows", value);
  if (rc != api::kSuccess) return rc;
  std::istringstream(value) >> *correctable >> *uncorrectable >> *pending >> *failure;
  return api::kSuccess;
}

api::Return nvmlDeviceGetTemperatureThreshold(api::Device device, int type, unsigned int* celsius) {
  return device_number("nvmlDeviceGetTemperatureThreshold", device, std::string("threshold.") + threshold_name(type),
                       celsius);
}

api::Return nvmlDeviceGetFieldValues(api::Device handle, int count, api::FieldValue* values) {
  std::lock_guard lock(state().mutex);
  StandinDevice* device = nullptr;
  if (const api::Return rc = enter_device("nvmlDeviceGetFieldValues", handle, &device); rc != api::kSuccess) return rc;
  for (int i = 0; i < count; ++i) {
    api::FieldValue& field = values[i];
    unsigned int value = 0;
    field.nvml_return =
        field.field_id == api::kFieldMemoryTemperature   ? lookup_number(*device, "temperature.memory", &value)
        : field.field_id == api::kFieldGpuRecoveryAction ? lookup_number(*device, "recovery_action", &value)
                                                         : api::kErrorNotSupported;
    field.value_type = api::kValueUnsignedInt;
    field.value.ui = value;
  }
  return api::kSuccess;
}

api::Return nvmlDeviceGetViolationStatus(api::Device device, int policy, api::ViolationTime* violation) {
  violation->reference_time = 0;
  return device_number("nvmlDeviceGetViolationStatus", device, "violation." + std::to_string(policy),
                       &violation->violation_time);
}

api::Return nvmlDeviceGetPowerUsage(api::Device device, unsigned int* milliwatts) {
  return device_number("nvmlDeviceGetPowerUsage", device, "power_usage", milliwatts);
}

api::Return nvmlDeviceGetEnforcedPowerLimit(api::Device device, unsigned int* milliwatts) {
  return device_number("nvmlDeviceGetEnforcedPowerLimit", device, "power_limit", milliwatts);
}

api::Return nvmlDeviceGetClockInfo(api::Device device, int clock, unsigned int* mhz) {
  const char* key = clock == api::kClockSm ? "clock.sm" : clock == api::kClockMemory ? "clock.memory" : "clock.other";
  return device_number("nvmlDeviceGetClockInfo", device, key, mhz);
}

api::Return nvmlDeviceGetUtilizationRates(api::Device handle, api::Utilization* utilization) {
  std::lock_guard lock(state().mutex);
  StandinDevice* device = nullptr;
  if (const api::Return rc = enter_device("nvmlDeviceGetUtilizationRates", handle, &device); rc != api::kSuccess) {
    return rc;
  }
  std::string value;
  const api::Return rc = lookup(*device, "utilization", value);
  if (rc == api::kSuccess) std::istringstream(value) >> utilization->gpu >> utilization->memory;
  return rc;
}

api::Return nvmlDeviceGetPcieReplayCounter(api::Device device, unsigned int* replays) {
  return device_number("nvmlDeviceGetPcieReplayCounter", device, "pcie_replay", replays);
}

api::Return nvmlDeviceGetNvLinkState(api::Device device, unsigned int link, int* enabled) {
  const api::Return rc =
      device_number("nvmlDeviceGetNvLinkState", device, "nvlink." + std::to_string(link) + ".state", enabled);
  // Like NVML on an NvLink device: a link index past the last one is an invalid argument.
  return rc == api::kErrorNotSupported && link > 0 ? api::kErrorInvalidArgument : rc;
}

api::Return nvmlDeviceGetNvLinkErrorCounter(api::Device device, unsigned int link, int counter,
                                            unsigned long long* count) {
  return device_number("nvmlDeviceGetNvLinkErrorCounter", device,
                       "nvlink." + std::to_string(link) + "." + std::to_string(counter), count);
}

api::Return nvmlEventSetCreate(api::EventSet* set) {
  std::lock_guard lock(state().mutex);
  enter("nvmlEventSetCreate");
  StandinState& s = state();
  if (s.event_set_create_code != api::kSuccess) return s.event_set_create_code;
  auto record = std::make_unique<EventSetRecord>();
  *set = reinterpret_cast<api::EventSet>(record.get());
  s.event_sets.insert(std::move(record));
  return api::kSuccess;
}

api::Return nvmlDeviceRegisterEvents(api::Device handle, unsigned long long types, api::EventSet set) {
  std::lock_guard lock(state().mutex);
  StandinDevice* device = nullptr;
  if (const api::Return rc = enter_device("nvmlDeviceRegisterEvents", handle, &device); rc != api::kSuccess) return rc;
  if (device->values.count("no_xid_events")) return api::kErrorNotSupported;
  if (!(types & api::kEventTypeXidCriticalError)) return api::kSuccess;
  device->registered = reinterpret_cast<const EventSetRecord*>(set);
  ++device->registrations;
  return api::kSuccess;
}

api::Return nvmlEventSetFree(api::EventSet set) {
  std::lock_guard lock(state().mutex);
  enter("nvmlEventSetFree");
  StandinState& s = state();
  const auto* record = reinterpret_cast<const EventSetRecord*>(set);
  for (StandinDevice& device : s.devices) {
    if (device.registered == record) device.registered = nullptr;
  }
  for (auto it = s.event_sets.begin(); it != s.event_sets.end(); ++it) {
    if (it->get() == record) {
      s.event_sets.erase(it);
      return api::kSuccess;
    }
  }
  return api::kErrorInvalidArgument;
}

// Not NVML: counters for the tests, found with dlsym on the loaded stand-in.
// Calls that named device `index` (handle lookups excluded), since the last nvmlInit.
unsigned long long substrate_standin_device_calls(unsigned int index) {
  std::lock_guard lock(state().mutex);
  return index < kMaxDevices ? state().devices[index].calls : 0;
}
// Successful XID registrations of device `index`, since the last nvmlInit.
unsigned long long substrate_standin_registrations(unsigned int index) {
  std::lock_guard lock(state().mutex);
  return index < kMaxDevices ? state().devices[index].registrations : 0;
}
// Event sets created and not yet freed.
unsigned long long substrate_standin_live_event_sets() {
  std::lock_guard lock(state().mutex);
  return state().event_sets.size();
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
static_assert(std::is_same_v<decltype(&nvmlEventSetCreate), api::EventSetCreateFn>);
static_assert(std::is_same_v<decltype(&nvmlEventSetFree), api::EventSetFreeFn>);
static_assert(std::is_same_v<decltype(&nvmlDeviceGetName), api::DeviceGetStringFn>);
static_assert(
    std::is_same_v<decltype(&nvmlDeviceGetComputeRunningProcesses_v3), api::DeviceGetComputeRunningProcessesFn>);
static_assert(std::is_same_v<decltype(&nvmlDeviceGetVbiosVersion), api::DeviceGetStringFn>);
static_assert(std::is_same_v<decltype(&nvmlDeviceGetSerial), api::DeviceGetStringFn>);
static_assert(std::is_same_v<decltype(&nvmlDeviceGetBoardPartNumber), api::DeviceGetStringFn>);
static_assert(std::is_same_v<decltype(&nvmlDeviceGetMigMode), api::DeviceGetMigModeFn>);
static_assert(std::is_same_v<decltype(&nvmlDeviceGetMaxMigDeviceCount), api::DeviceGetMaxMigDeviceCountFn>);
static_assert(std::is_same_v<decltype(&nvmlDeviceGetMigDeviceHandleByIndex), api::DeviceGetMigDeviceHandleByIndexFn>);
static_assert(std::is_same_v<decltype(&nvmlDeviceGetGpuInstanceId), api::DeviceGetGpuInstanceIdFn>);
