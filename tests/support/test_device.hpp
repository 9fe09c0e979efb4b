#pragma once
// The Vulkan device the tests run on: lavapipe on machines without a GPU (a real Vulkan driver
// executing on the CPU), otherwise the first Vulkan device. Shared so pipelines compile once.
#include <catch2/catch.hpp>

#include "probes/backends/compute_device.hpp"

namespace substrate::testing {

inline ComputeDevice& vulkan_device() {
  static Discovery found = discover_devices();
  static ComputeDevice* device = [] {
    ComputeDevice* chosen = nullptr;
    for (auto& d : found.devices) {
      if (d->info().backend == "vulkan" && (!chosen || d->info().is_cpu())) chosen = d.get();
    }
    return chosen;
  }();
  if (!device) FAIL("no Vulkan device: install mesa-vulkan-drivers (lavapipe)");
  return *device;
}

}  // namespace substrate::testing
