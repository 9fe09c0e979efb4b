#pragma once
// hwmon readings of GPUs and accelerators (Documentation/hwmon/sysfs-interface.rst): amdgpu,
// i915, xe and any other driver that registers hwmon on a display or accelerator PCI device.
//   temp<N>_input / _crit / _emergency  millidegrees Celsius, temp<N>_label names the sensor
//   power1_input or power1_average      microwatts drawn
//   power1_cap (amdgpu) or power1_max (i915, xe)  microwatts, the enforced limit
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "probes/telemetry/model.hpp"

namespace substrate::telemetry {

struct HwmonParse {
  Readings readings;
  std::vector<std::string> malformed;  // attribute names whose value was skipped
};

// Pure: attribute file name -> text (as read from one hwmon directory) to readings. Sensors are
// named by their label, lower-cased, with "mem" and "vram" spelled "memory"; unlabelled sensors
// keep their file stem ("temp2").
HwmonParse parse_hwmon_attributes(const std::map<std::string, std::string>& attributes);

// Walks <root>/class/drm/card*/device/hwmon/hwmon* and those <root>/class/hwmon/hwmon* whose
// parent is a PCI display controller (class 0x03) or processing accelerator (0x12), each
// directory once. One device (source "hwmon") per directory; local id "drm-cardN" when the parent
// has a DRM card, else "hwmonN".
SourceResult read_hwmon(const std::filesystem::path& sysfs_root);

}  // namespace substrate::telemetry
