// The one place that knows which backends are compiled in.
#include "probes/backends/vulkan/vulkan_device.hpp"
#include "probes/compute_device.hpp"

namespace substrate {

Discovery discover_devices() {
  Discovery found;
  vulkan::discover(found.devices, found.backend_notes);
  return found;
}

}  // namespace substrate
