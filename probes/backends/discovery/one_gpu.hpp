#pragma once
// One GPU is one device: where NVIDIA's Vulkan driver and libcuda both see a GPU, discovery finds
// it twice (vulkan<i> and cuda<j>) under one UUID. Keeping both made the daemon's state (keyed by
// UUID) flip between backends on every start and reset its baselines; one of them is kept.
#include <cstddef>
#include <string>
#include <vector>

#include "probes/backends/compute_device.hpp"

namespace substrate {

// True when `a` and `b` are views of one physical device: the same non-empty UUID, or the same
// non-empty PCI bus id (both canonical: DeviceInfo's formats). Devices of one backend are never
// twins (a backend lists each of its devices once).
bool same_physical_device(const DeviceInfo& a, const DeviceInfo& b);

// The indices of `infos` to drop so that each physical device is listed once: of twins, the one
// whose backend comes first in `preference` is kept (a backend not listed ranks after every
// listed one; between equals, the first discovered). Appends one note per dropped device to
// `notes`, e.g. "vulkan: vulkan0 (NVIDIA H100) is the GPU of cuda0: probed through cuda
// (backend_preference)". Returned in increasing order.
std::vector<std::size_t> twins_to_drop(const std::vector<DeviceInfo>& infos, const std::vector<std::string>& preference,
                                       std::vector<std::string>& notes);

}  // namespace substrate
