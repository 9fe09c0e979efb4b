#pragma once
// The Vulkan backend's public face: discovery only. No Vulkan header here.
#include <string>
#include <vector>

#include "probes/backends/compute_device.hpp"

namespace substrate::vulkan {

// Appends every Vulkan device with a compute queue to `devices`; problems (no loader, no ICD)
// become a line in `notes` and never an exception.
void discover(std::vector<DevicePtr>& devices, std::vector<std::string>& notes);

}  // namespace substrate::vulkan
