#pragma once
// An initialised NVML with its devices enumerated and an XID watcher running: the NVML telemetry
// source. Reads go straight to NVML (cheap, done at scrape time).
#include <chrono>
#include <memory>
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
  ~Session();  // stops the XID watcher, then nvmlShutdown
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Not for concurrent use (the telemetry reader serialises calls).
  // One device per NVML index (local id "nvml<index>", source "nvml"). NOT_SUPPORTED leaves a
  // reading absent; other NVML errors leave it absent and are listed in SourceResult::errors.
  telemetry::SourceResult read();

 private:
  Session(std::shared_ptr<const Library> library, std::vector<api::Device> devices,
          std::vector<telemetry::ReadError> open_errors, std::chrono::milliseconds xid_wait);

  std::shared_ptr<const Library> library_;
  std::vector<api::Device> devices_;
  std::vector<telemetry::ReadError> open_errors_;  // reported by the first read()
  std::unique_ptr<XidWatcher> xid_watcher_;
};

// Reads one device; `errors` receives the failures that are not NOT_SUPPORTED.
telemetry::TelemetryDevice read_device(const Library& library, api::Device device, unsigned int index,
                                       std::vector<telemetry::ReadError>& errors);

}  // namespace substrate::nvml
