#include "probes/telemetry/nvml/session.hpp"

#include <utility>

namespace substrate::nvml {

Expected<std::unique_ptr<Session>> Session::open(std::chrono::milliseconds xid_wait) {
  TRY_ASSIGN(auto library, Library::open());
  return open(std::move(library), xid_wait);
}

Expected<std::unique_ptr<Session>> Session::open(std::shared_ptr<const Library> library,
                                                 std::chrono::milliseconds xid_wait) {
  const Api& a = library->api();
  if (const api::Return rc = a.init(); rc != api::kSuccess) {
    return Error{ErrorKind::device_error,
                 std::string("NVML init failed (") + error_cause(rc) + "): " + library->describe(rc)};
  }
  std::vector<telemetry::ReadError> open_errors;
  std::vector<Slot> slots;
  unsigned int count = 0;
  if (const api::Return rc = a.device_get_count(&count); rc != api::kSuccess) {
    open_errors.push_back({telemetry::kSourceNvml, error_cause(rc), "nvmlDeviceGetCount: " + library->describe(rc)});
    count = 0;
  }
  for (unsigned int index = 0; index < count; ++index) {
    Slot slot;
    const api::Return rc = a.device_get_handle_by_index(index, &slot.handle);
    if (rc != api::kSuccess) {
      // Keep the slot so nvml<index> names stay aligned with NVML's own indices.
      slot.handle = nullptr;
      open_errors.push_back({telemetry::kSourceNvml, error_cause(rc),
                             "nvmlDeviceGetHandleByIndex(" + std::to_string(index) + "): " + library->describe(rc)});
    }
    slots.push_back(std::move(slot));
  }
  return std::unique_ptr<Session>(new Session(std::move(library), std::move(slots), std::move(open_errors), xid_wait));
}

Session::Session(std::shared_ptr<const Library> library, std::vector<Slot> slots,
                 std::vector<telemetry::ReadError> open_errors, std::chrono::milliseconds xid_wait)
    : library_(std::move(library)), slots_(std::move(slots)), open_errors_(std::move(open_errors)) {
  std::vector<api::Device> handles;
  for (const Slot& slot : slots_) handles.push_back(slot.handle);
  xid_watcher_ = std::make_unique<XidWatcher>(library_, std::move(handles), xid_wait);
}

Session::~Session() {
  xid_watcher_.reset();
  library_->api().shutdown();
}

telemetry::SourceResult Session::read() {
  telemetry::SourceResult result;
  result.errors = std::exchange(open_errors_, {});
  xid_watcher_->supervise();
  for (unsigned int index = 0; index < slots_.size(); ++index) {
    Slot& slot = slots_[index];
    if (!slot.handle) continue;
    telemetry::TelemetryDevice device;
    if (slot.lost) {
      device.source = telemetry::kSourceNvml;
      device.local_id = "nvml" + std::to_string(index);
      device.readings.gpu_lost = true;
    } else {
      DeviceStatus status;
      device = read_device(*library_, slot.handle, index, result.errors, status);
      if (device.readings.gpu_lost) {
        slot.lost = true;
        xid_watcher_->exclude(index);
        xid_watcher_->rebuild();  // drops the lost device's registration
      } else if (slot.reset_required && !status.reset_required) {
        xid_watcher_->rebuild();  // reset: the driver dropped its event registration
      }
      slot.reset_required = status.reset_required;
    }
    // The last identity the device gave keeps it joined to its compute device once it is lost.
    if (device.uuid.empty()) device.uuid = slot.uuid;
    if (device.pci_bus_id.empty()) device.pci_bus_id = slot.pci_bus_id;
    slot.uuid = device.uuid;
    slot.pci_bus_id = device.pci_bus_id;
    device.readings.xids = xid_watcher_->counts(index);
    result.devices.push_back(std::move(device));
  }
  for (auto& error : xid_watcher_->take_errors()) result.errors.push_back(std::move(error));
  return result;
}

}  // namespace substrate::nvml
