#include "probes/telemetry/accel.hpp"

#include "probes/telemetry/sysfs.hpp"

namespace substrate::telemetry {

namespace fs = std::filesystem;

namespace {

struct AccelAttribute {
  const char* file;
  const char* key;
  double scale;  // to base units
};

constexpr AccelAttribute kAttributes[] = {
    {"npu_busy_time_us", "busy_seconds", 1e-6},
    {"npu_memory_utilization", "memory_used_bytes", 1.0},
    {"npu_current_frequency_mhz", "current_frequency_hertz", 1e6},
    {"npu_max_frequency_mhz", "max_frequency_hertz", 1e6},
};

bool is_npu_attribute(std::string_view name) { return name.starts_with("npu_"); }

}  // namespace

AccelParse parse_accel_attributes(const std::map<std::string, std::string>& attributes) {
  AccelParse result;
  for (const AccelAttribute& attribute : kAttributes) {
    const auto it = attributes.find(attribute.file);
    if (it == attributes.end()) continue;
    auto value = sysfs::parse_integer(it->second);
    if (!value || *value < 0) {
      result.malformed.push_back(attribute.file);
      continue;
    }
    result.npu[attribute.key] = static_cast<double>(*value) * attribute.scale;
  }
  return result;
}

SourceResult read_accel(const fs::path& sysfs_root) {
  SourceResult result;
  for (const fs::path& accel : sysfs::numbered_entries(sysfs_root / "class" / "accel", "accel")) {
    const auto attributes = sysfs::read_attributes(accel / "device", is_npu_attribute, kSourceAccel, result.errors);
    AccelParse parsed = parse_accel_attributes(attributes);
    for (const std::string& name : parsed.malformed) {
      result.errors.push_back({kSourceAccel, sysfs::kCauseMalformed,
                               (accel / "device" / name).string() + ": '" + attributes.at(name) + "'"});
    }
    TelemetryDevice device;
    device.source = kSourceAccel;
    device.local_id = accel.filename().string();
    device.pci_bus_id = sysfs::pci_bus_id_of(accel);
    device.readings.npu = std::move(parsed.npu);
    result.devices.push_back(std::move(device));
  }
  return result;
}

}  // namespace substrate::telemetry
