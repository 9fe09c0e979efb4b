// The one place that knows which backends are compiled in.
#include "probes/backends/vulkan/vulkan_device.hpp"
#include "probes/backends/compute_device.hpp"
#if SUBSTRATE_WITH_CUDA
#include "probes/backends/cuda/cuda_backend.hpp"
#endif

namespace substrate {

Discovery discover_devices() {
  Discovery found;
  vulkan::discover(found.devices, found.backend_notes);
#if SUBSTRATE_WITH_CUDA
  cuda::discover(found.devices, found.backend_notes);
#else
  found.backend_notes.push_back("cuda: backend not compiled in (nvcc was not found at build time)");
#endif
  return found;
}

}  // namespace substrate
