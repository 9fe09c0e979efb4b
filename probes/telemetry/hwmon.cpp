#include "probes/telemetry/hwmon.hpp"

#include <algorithm>
#include <cctype>
#include <optional>
#include <regex>
#include <set>
#include <system_error>

#include "probes/telemetry/sysfs.hpp"

namespace substrate::telemetry {

namespace fs = std::filesystem;

namespace {

bool is_hwmon_attribute(std::string_view name) {
  static const std::regex wanted(R"(temp\d+_(input|label|crit|emergency)|power1_(input|average|cap|max))");
  return std::regex_match(name.begin(), name.end(), wanted);
}

std::string sensor_name(const std::string& label) {
  std::string name;
  for (char c : label) {
    const auto u = static_cast<unsigned char>(c);
    name.push_back(std::isalnum(u) ? static_cast<char>(std::tolower(u)) : '_');
  }
  if (name == "mem" || name == "vram") return "memory";
  return name;
}

// Starts with 0x03 (display controller) or 0x12 (processing accelerator).
bool is_gpu_or_accelerator(const fs::path& pci_device) {
  auto pci_class = sysfs::read_text(pci_device / "class");
  return pci_class && (pci_class->starts_with("0x03") || pci_class->starts_with("0x12"));
}

}  // namespace

HwmonParse parse_hwmon_attributes(const std::map<std::string, std::string>& attributes) {
  HwmonParse result;
  auto number = [&](const std::string& name) -> std::optional<double> {
    const auto it = attributes.find(name);
    if (it == attributes.end()) return std::nullopt;
    auto value = sysfs::parse_integer(it->second);
    if (!value) {
      result.malformed.push_back(name);
      return std::nullopt;
    }
    return static_cast<double>(*value);
  };

  static const std::regex temp_input(R"(temp(\d+)_input)");
  for (const auto& [name, text] : attributes) {
    std::smatch match;
    if (!std::regex_match(name, match, temp_input)) continue;
    const std::string stem = "temp" + match[1].str();
    const auto label = attributes.find(stem + "_label");
    const std::string sensor = label != attributes.end() && !label->second.empty() ? sensor_name(label->second) : stem;
    if (const auto millidegrees = number(name))
      result.readings.temperatures.push_back({sensor, *millidegrees / 1000.0});
    for (const char* threshold : {"crit", "emergency"}) {
      if (const auto millidegrees = number(stem + "_" + threshold)) {
        result.readings.temperature_thresholds.push_back({sensor, threshold, *millidegrees / 1000.0});
      }
    }
  }
  const bool has_input = attributes.count("power1_input") != 0;
  if (const auto microwatts = number(has_input ? "power1_input" : "power1_average")) {
    result.readings.power_watts = *microwatts / 1e6;
  }
  const bool has_cap = attributes.count("power1_cap") != 0;
  if (const auto microwatts = number(has_cap ? "power1_cap" : "power1_max")) {
    result.readings.power_limit_watts = *microwatts / 1e6;
  }
  return result;
}

SourceResult read_hwmon(const fs::path& sysfs_root) {
  SourceResult result;
  std::set<fs::path> seen;
  auto read_one = [&](const fs::path& hwmon, std::string local_id, std::string pci_bus_id) {
    std::error_code ec;
    if (!seen.insert(fs::weakly_canonical(hwmon, ec)).second) return;
    const auto attributes = sysfs::read_attributes(hwmon, is_hwmon_attribute, kSourceHwmon, result.errors);
    HwmonParse parsed = parse_hwmon_attributes(attributes);
    for (const std::string& name : parsed.malformed) {
      result.errors.push_back(
          {kSourceHwmon, sysfs::kCauseMalformed, (hwmon / name).string() + ": '" + attributes.at(name) + "'"});
    }
    result.devices.push_back(
        {kSourceHwmon, std::move(local_id), std::move(pci_bus_id), "", "", std::move(parsed.readings)});
  };

  for (const fs::path& card : sysfs::numbered_entries(sysfs_root / "class" / "drm", "card")) {
    const std::string pci = sysfs::pci_bus_id_of(card);
    for (const fs::path& hwmon : sysfs::numbered_entries(card / "device" / "hwmon", "hwmon")) {
      read_one(hwmon, "drm-" + card.filename().string(), pci);
    }
  }
  for (const fs::path& hwmon : sysfs::numbered_entries(sysfs_root / "class" / "hwmon", "hwmon")) {
    const std::string pci = sysfs::pci_bus_id_of(hwmon);
    if (pci.empty() || !is_gpu_or_accelerator(hwmon / "device")) continue;
    const auto cards = sysfs::numbered_entries(hwmon / "device" / "drm", "card");
    read_one(hwmon, cards.empty() ? hwmon.filename().string() : "drm-" + cards.front().filename().string(), pci);
  }
  return result;
}

}  // namespace substrate::telemetry
