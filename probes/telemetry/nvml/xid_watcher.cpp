#include "probes/telemetry/nvml/xid_watcher.hpp"

#include <algorithm>

#include "probes/telemetry/model.hpp"

namespace substrate::nvml {

XidWatcher::XidWatcher(std::shared_ptr<const Library> library, std::vector<api::Device> devices,
                       std::chrono::milliseconds wait)
    : library_(std::move(library)), devices_(std::move(devices)), wait_(wait) {
  const Api& a = library_->api();
  if (!a.event_set_create || !a.device_register_events || !a.event_set_wait || !a.event_set_free) return;
  if (const api::Return rc = a.event_set_create(&event_set_); rc != api::kSuccess) {
    event_set_ = nullptr;
    record_error(rc, "nvmlEventSetCreate");
    return;
  }
  bool any_registered = false;
  for (api::Device device : devices_) {
    if (!device) continue;  // its handle could not be obtained
    const api::Return rc = a.device_register_events(device, api::kEventTypeXidCriticalError, event_set_);
    if (rc == api::kSuccess) {
      any_registered = true;
    } else if (rc != api::kErrorNotSupported) {
      record_error(rc, "nvmlDeviceRegisterEvents");
    }
  }
  if (any_registered) thread_ = std::jthread([this](std::stop_token stop) { run(stop); });
}

XidWatcher::~XidWatcher() {
  if (thread_.joinable()) {
    thread_.request_stop();
    thread_.join();
  }
  if (event_set_) library_->api().event_set_free(event_set_);
}

void XidWatcher::run(std::stop_token stop) {
  const auto wait_ms = static_cast<unsigned int>(wait_.count());
  while (!stop.stop_requested()) {
    api::EventData data{};
    const api::Return rc = library_->api().event_set_wait(event_set_, &data, wait_ms);
    if (rc == api::kErrorTimeout) continue;
    if (rc != api::kSuccess) {
      // A lost GPU can make every wait fail at once: pace the retries instead of spinning.
      record_error(rc, "nvmlEventSetWait");
      std::this_thread::sleep_for(wait_);
      continue;
    }
    if (!(data.event_type & api::kEventTypeXidCriticalError)) continue;
    const auto found = std::find(devices_.begin(), devices_.end(), data.device);
    if (found == devices_.end()) continue;
    const auto index = static_cast<std::size_t>(found - devices_.begin());
    const auto xid = static_cast<std::uint32_t>(data.event_data);
    const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    std::lock_guard lock(mutex_);
    telemetry::XidCount& count = counts_[{index, xid}];
    count.xid = xid;
    ++count.count;
    count.last_timestamp_seconds = now;
  }
}

void XidWatcher::record_error(api::Return code, const char* what) {
  std::lock_guard lock(mutex_);
  errors_.push_back({telemetry::kSourceNvml, error_cause(code), std::string(what) + ": " + library_->describe(code)});
}

std::vector<telemetry::XidCount> XidWatcher::counts(std::size_t device_index) const {
  std::lock_guard lock(mutex_);
  std::vector<telemetry::XidCount> result;
  for (const auto& [key, count] : counts_) {
    if (key.first == device_index) result.push_back(count);
  }
  return result;
}

std::vector<telemetry::ReadError> XidWatcher::take_errors() {
  std::lock_guard lock(mutex_);
  return std::exchange(errors_, {});
}

}  // namespace substrate::nvml
