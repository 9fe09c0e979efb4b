#pragma once
// The sysfs collectors, registered by name in one table (node_exporter style). Each reads a tree
// rooted at a sysfs path ("/sys" in production, a fixture tree in tests).
#include <filesystem>
#include <span>

#include "probes/telemetry/model.hpp"

namespace substrate::telemetry {

struct SysfsCollector {
  const char* name;  // "amdgpu", "hwmon", "accel"; also the source label of what it returns
  SourceResult (*read)(const std::filesystem::path& sysfs_root);
};

// Every sysfs collector, in the order their devices appear in a snapshot.
std::span<const SysfsCollector> sysfs_collectors();

}  // namespace substrate::telemetry
