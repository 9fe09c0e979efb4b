#include "probes/telemetry/nvml/session.hpp"

#include <utility>

namespace substrate::nvml {

Expected<std::unique_ptr<Session>> Session::open(std::chrono::milliseconds xid_wait) {
  TRY_ASSIGN(auto library, Library::open());
  const Api& a = library->api();
  if (const api::Return rc = a.init(); rc != api::kSuccess) {
    return Error{ErrorKind::device_error,
                 std::string("NVML init failed (") + error_cause(rc) + "): " + library->describe(rc)};
  }
  std::vector<telemetry::ReadError> open_errors;
  std::vector<api::Device> devices;
  unsigned int count = 0;
  if (const api::Return rc = a.device_get_count(&count); rc != api::kSuccess) {
    open_errors.push_back({telemetry::kSourceNvml, error_cause(rc), "nvmlDeviceGetCount: " + library->describe(rc)});
    count = 0;
  }
  for (unsigned int index = 0; index < count; ++index) {
    api::Device device = nullptr;
    const api::Return rc = a.device_get_handle_by_index(index, &device);
    if (rc != api::kSuccess) {
      // Keep the slot so nvml<index> names stay aligned with NVML's own indices.
      open_errors.push_back({telemetry::kSourceNvml, error_cause(rc),
                             "nvmlDeviceGetHandleByIndex(" + std::to_string(index) + "): " + library->describe(rc)});
    }
    devices.push_back(device);
  }
  return std::unique_ptr<Session>(
      new Session(std::move(library), std::move(devices), std::move(open_errors), xid_wait));
}

Session::Session(std::shared_ptr<const Library> library, std::vector<api::Device> devices,
                 std::vector<telemetry::ReadError> open_errors, std::chrono::milliseconds xid_wait)
    : library_(std::move(library)), devices_(std::move(devices)), open_errors_(std::move(open_errors)) {
  xid_watcher_ = std::make_unique<XidWatcher>(library_, devices_, xid_wait);
}

Session::~Session() {
  xid_watcher_.reset();
  library_->api().shutdown();
}

telemetry::SourceResult Session::read() {
  telemetry::SourceResult result;
  result.errors = std::exchange(open_errors_, {});
  for (unsigned int index = 0; index < devices_.size(); ++index) {
    if (!devices_[index]) continue;
    telemetry::TelemetryDevice device = read_device(*library_, devices_[index], index, result.errors);
    device.readings.xids = xid_watcher_->counts(index);
    result.devices.push_back(std::move(device));
  }
  for (auto& error : xid_watcher_->take_errors()) result.errors.push_back(std::move(error));
  return result;
}

}  // namespace substrate::nvml
