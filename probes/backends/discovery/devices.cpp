// The one place that knows which backends are compiled in.
#include "probes/backends/compute_device.hpp"
#include "probes/backends/discovery/one_gpu.hpp"
#include "probes/backends/vulkan/vulkan_device.hpp"
#if SUBSTRATE_WITH_CUDA
#include "probes/backends/cuda/cuda_backend.hpp"
#endif

namespace substrate {

Discovery discover_devices(const std::vector<std::string>& preference) {
  Discovery found;
  vulkan::discover(found.devices, found.backend_notes);
#if SUBSTRATE_WITH_CUDA
  cuda::discover(found.devices, found.backend_notes);
#else
  found.backend_notes.push_back("cuda: backend not compiled in (nvcc was not found at build time)");
#endif
  std::vector<DeviceInfo> infos;
  for (const DevicePtr& device : found.devices) infos.push_back(device->info());
  const std::vector<std::size_t> drop = twins_to_drop(infos, preference, found.backend_notes);
  for (auto it = drop.rbegin(); it != drop.rend(); ++it) {
    found.devices.erase(found.devices.begin() + static_cast<std::ptrdiff_t>(*it));
  }
  return found;
}

void open_for_listing(Discovery& found) {
  for (auto it = found.devices.begin(); it != found.devices.end();) {
    const Status opened = (*it)->open();
    if (opened.ok()) {
      ++it;
      continue;
    }
    const DeviceInfo& info = (*it)->info();
    const bool usable = opened.error().kind != ErrorKind::unavailable;
    found.backend_notes.push_back(info.backend + ": " + info.id + " (" + info.name + ") " +
                                  (usable ? "listed but not opened: " : "unusable: ") + opened.error().message);
    it = usable ? it + 1 : found.devices.erase(it);
  }
}

}  // namespace substrate
