#pragma once
// XID critical-error events from one NVML event set, on a thread of its own. Counted per device
// and XID with the time of the last one, so repeats stay visible (a last-value gauge hides them).
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "probes/telemetry/model.hpp"
#include "probes/telemetry/nvml/library.hpp"

namespace substrate::nvml {

class XidWatcher {
 public:
  // Registers every device for XID events and starts the thread; `devices` is indexed like NVML
  // and may hold null handles, which are skipped. A device that does not support
  // XID events is skipped silently; other failures are returned by take_errors(). The thread waits
  // at most `wait` per call, which bounds how long destruction takes.
  XidWatcher(std::shared_ptr<const Library> library, std::vector<api::Device> devices, std::chrono::milliseconds wait);
  ~XidWatcher();  // stops and joins the thread, then frees the event set
  XidWatcher(const XidWatcher&) = delete;
  XidWatcher& operator=(const XidWatcher&) = delete;

  // Events seen so far for the device at `device_index`, ordered by XID.
  std::vector<telemetry::XidCount> counts(std::size_t device_index) const;
  // Errors since the last call (registration, waiting).
  std::vector<telemetry::ReadError> take_errors();

 private:
  void run(std::stop_token stop);
  void record_error(api::Return code, const char* what);

  std::shared_ptr<const Library> library_;
  std::vector<api::Device> devices_;
  std::chrono::milliseconds wait_;
  api::EventSet event_set_ = nullptr;
  mutable std::mutex mutex_;
  std::map<std::pair<std::size_t, std::uint32_t>, telemetry::XidCount> counts_;
  std::vector<telemetry::ReadError> errors_;
  std::jthread thread_;  // last member: started after everything else exists, stopped first
};

}  // namespace substrate::nvml
