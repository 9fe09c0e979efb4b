#pragma once
// Accelerators on the accel subsystem (/sys/class/accel, e.g. intel_vpu NPUs). They expose little:
// intel_vpu has npu_busy_time_us, npu_memory_utilization (bytes), npu_current_frequency_mhz and
// npu_max_frequency_mhz on the PCI device; no temperature or RAS counters.
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "probes/telemetry/model.hpp"

namespace substrate::telemetry {

struct AccelParse {
  std::map<std::string, double> npu;   // busy_seconds, memory_used_bytes, *_frequency_hertz
  std::vector<std::string> malformed;  // attribute names whose value was skipped
};

// Pure: attribute file name -> text to base-unit values; unknown npu_* attributes are ignored.
AccelParse parse_accel_attributes(const std::map<std::string, std::string>& attributes);

// One device (source "accel", local id "accelN") per <root>/class/accel/accel*, with whatever of
// the attributes above its device directory has.
SourceResult read_accel(const std::filesystem::path& sysfs_root);

}  // namespace substrate::telemetry
