#pragma once
// An initialised NVML with its devices enumerated and an XID watcher running: the NVML telemetry
// source once nvmlInit succeeded (source.hpp retries nvmlInit until it does). Reads go straight to
// NVML; the daemon's telemetry reader calls read() on its own cadence.
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/expected.hpp"
#include "probes/telemetry/model.hpp"
#include "probes/telemetry/nvml/library.hpp"
#include "probes/telemetry/nvml/xid_watcher.hpp"

namespace substrate::nvml {

// The longest the XID thread blocks in one nvmlEventSetWait, so stopping is prompt.
inline constexpr std::chrono::milliseconds kDefaultXidWait{200};

class Session {
 public:
  // Loads the library, calls nvmlInit and enumerates the devices.
  // ErrorKind::unavailable: the library is absent or unusable (message "NVML absent: ...");
  // ErrorKind::device_error: nvmlInit failed (message names the NVML error).
  static Expected<std::unique_ptr<Session>> open(std::chrono::milliseconds xid_wait = kDefaultXidWait);
  // The same with a library already loaded: only ErrorKind::device_error (nvmlInit failed).
  static Expected<std::unique_ptr<Session>> open(std::shared_ptr<const Library> library,
                                                 std::chrono::milliseconds xid_wait);
  ~Session();  // stops the XID watcher, then nvmlShutdown
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Not for concurrent use (the telemetry reader serialises calls).
  // One device per NVML index (local id "nvml<index>", source "nvml"). NOT_SUPPORTED leaves a
  // reading absent; other NVML errors leave it absent and are listed in SourceResult::errors.
  // A device that answered GPU_IS_LOST once is never called again: from then on it is reported
  // with gpu_lost set and its last known UUID and PCI bus id (so it still joins its compute
  // device), and its XID registration is dropped. A device that answered RESET_REQUIRED and
  // then reads again was reset: the XID event set is rebuilt so its events are registered anew.
  telemetry::SourceResult read();

 private:
  struct Slot {
    api::Device handle = nullptr;  // null: nvmlDeviceGetHandleByIndex failed
    std::string uuid, pci_bus_id;  // last known identity
    bool lost = false;
    bool reset_required = false;  // the last read answered RESET_REQUIRED
  };

  Session(std::shared_ptr<const Library> library, std::vector<Slot> slots,
          std::vector<telemetry::ReadError> open_errors, std::chrono::milliseconds xid_wait);

  std::shared_ptr<const Library> library_;
  std::vector<Slot> slots_;
  std::vector<telemetry::ReadError> open_errors_;  // reported by the first read()
  std::unique_ptr<XidWatcher> xid_watcher_;
};

// What one read_device() learned about the device besides its readings.
struct DeviceStatus {
  bool reset_required = false;  // some call answered NVML_ERROR_RESET_REQUIRED
};

// Reads one device; `errors` receives the failures that are not NOT_SUPPORTED. After the first
// GPU_IS_LOST (readings.gpu_lost) it makes no further call on the device.
telemetry::TelemetryDevice read_device(const Library& library, api::Device device, unsigned int index,
                                       std::vector<telemetry::ReadError>& errors, DeviceStatus& status);

}  // namespace substrate::nvml
